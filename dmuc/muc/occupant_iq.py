"""
IQs sent to an occupant JID, routed as Prosody 0.12's mod_muc routes
them (handle_iq_to_occupant): the room gives the IQ its own id, sends it
from the asker's occupant JID to the target, and routes the answer back
only when it comes from where the request went.  A request for data a
user's server keeps for the account (vCards, PEP avatars) goes to the
target's bare JID, where that server answers it.

Used by the mirror for the IQs it routes itself; the master decides the
bare-JID rule with L{goes_to_bare_jid} too.
"""

from collections import OrderedDict
from dataclasses import dataclass

#: Seconds a routed request waits for its answer before it is forgotten
#: (clients give up on an IQ well within it; a late answer is dropped).
ROUTED_IQ_TIMEOUT = 120

# The payloads Prosody's handle_iq_to_occupant sends to the bare JID.
BARE_JID_PAYLOADS = frozenset((
    "vcard-temp",
    "urn:ietf:params:xml:ns:vcard-4.0",
    "http://jabber.org/protocol/pubsub",
))


def goes_to_bare_jid(iq):
    """
    Whether a request to an occupant is for the occupant's account (its
    server answers at the bare JID) rather than for its client.
    """
    payload = next(iter(iq.elements()), None)
    return payload is not None and payload.uri in BARE_JID_PAYLOADS


def bare(jid):
    """The bare part of a JID written as text."""
    return jid.split("/", 1)[0]


@dataclass
class RoutedIq:
    """
    One request on its way, waiting for its answer.

    @ivar their_id: the asker's id, given back with the answer.
    @ivar requester: where the answer goes (a JID as text).
    @ivar responder: the full JID the request is meant for; its bare JID
        may answer too (the request may have gone there).
    @ivar answer_from: the occupant JID the answer comes from, as the
        requester sees the room.
    @ivar room: the room (bare JID) the answer must be addressed to.
    """

    their_id: str
    requester: str
    responder: str
    answer_from: str
    room: str


class RoutedIqs:
    """
    Requests routed by a room service, by the id it gave them.  An IQ
    nobody answers must not stay for ever: each is kept for
    L{ROUTED_IQ_TIMEOUT} seconds (by C{clock}), and only so many at once.
    """

    limit = 10000

    def __init__(self, clock=None, timeout=ROUTED_IQ_TIMEOUT):
        self._waiting = OrderedDict()   # our id -> (when routed, what)
        self.clock, self.timeout = clock, timeout

    def __len__(self):
        return len(self._waiting)

    def add(self, our_id, routed):
        now = self.clock.seconds() if self.clock is not None else 0
        # Oldest first: drop those whose time is up, then the surplus.
        while self._waiting:
            first, (when, _) = next(iter(self._waiting.items()))
            if when > now - self.timeout:
                break
            del self._waiting[first]
        self._waiting[our_id] = (now, routed)
        while len(self._waiting) > self.limit:
            self._waiting.popitem(last=False)

    def get(self, iq_id):
        entry = self._waiting.get(iq_id)
        return entry[1] if entry is not None else None

    def discard(self, iq_id):
        self._waiting.pop(iq_id, None)

    def answer(self, iq_id, sender, room):
        """
        The request an answer belongs to, taken out of the waiting ones;
        C{None} when there is none, or when C{sender} (a JID as text) is
        not where it went, or the answer is addressed to another room:
        nobody may answer in the target's place.
        """
        routed = self.get(iq_id)
        if routed is None or routed.room != room:
            return None
        if sender not in (routed.responder, bare(routed.responder)):
            return None
        del self._waiting[iq_id]
        return routed
