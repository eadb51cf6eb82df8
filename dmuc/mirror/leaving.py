"""
Our users' leaves on their way to the master.

A mirror user stays an occupant of the copy until the master answers its
leave.  A client that leaves and joins again at once (poezio's C{/cycle})
sends its join before that answer: taken then, it would look like the
occupant joining again from the same session, and the master's answer to
the leave would be taken for the answer to the join.  Prosody handles the
two in turn; so does the mirror, by holding what such a user sends until
its leave is answered (docs/poezio.md).
"""


class LeavesInFlight:
    """
    The leaves sent up and not answered yet, by (room JID, nick), each
    with the presences its user sent meanwhile, oldest first.
    """

    def __init__(self):
        self._held = {}

    def sent(self, room_jid, nick):
        """The user at C{nick} asked to leave; the master has not answered."""
        self._held[(room_jid, nick)] = []

    def hold(self, room_jid, nick, stanza):
        """
        Keep C{stanza} until the leave of C{nick} is answered.

        @return: whether it was kept (a leave is in flight).
        """
        held = self._held.get((room_jid, nick))
        if held is None:
            return False
        held.append(stanza)
        return True

    def answered(self, room_jid, nick):
        """The user at C{nick} is out: return what it sent meanwhile."""
        return self._held.pop((room_jid, nick), [])

    def unanswerable(self, room_jid):
        """The master is out of reach (a split): return everything held
        for the room, as the room now decides alone."""
        held = []
        for key in [k for k in self._held if k[0] == room_jid]:
            held += self._held.pop(key)
        return held
