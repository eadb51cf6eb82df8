"""
Tombstones of destroyed persistent rooms, as Prosody 0.12's mod_muc keeps
them (C{muc_tombstones}, C{muc_tombstone_expiry}): until it expires, every
stanza to the room's JID but an error or a result is answered C{gone},
with the alternate venue as an C{xmpp:} URI inside C{<gone/>} and the
owner's reason as the error text.  Nobody may recreate the room meanwhile
(Prosody lets a server admin; dmuc knows no admins).  Then the name is
free, and the tombstone leaves the database at the next stanza for it.
"""

from twisted.internet import defer
from twisted.logger import Logger

from dmuc.storage import Tombstone
from dmuc.xmpp.stanzas import StanzaError

log = Logger(namespace="dmuc.master")

DEFAULT_EXPIRY = 31 * 86400


class Tombstones:
    """
    The tombstones of one master service.

    @ivar expiry: seconds a tombstone lasts; 0 keeps none.
    """

    def __init__(self, host, expiry=DEFAULT_EXPIRY):
        """
        @param host: the service: its C{store}, C{clock}, C{domain} and
            C{stored()} (which logs a storage failure).
        """
        self.host = host
        self.expiry = expiry
        self._by_room = {}

    @defer.inlineCallbacks
    def load(self):
        for tombstone in (yield self.host.store.load_tombstones()):
            self._by_room[tombstone.jid] = tombstone

    def bury(self, room, alternate, reason):
        """Remember destroyed C{room}, if it was persistent."""
        if not room.config.persistent or self.expiry <= 0:
            return
        tombstone = Tombstone(room.jid, self.host.clock.seconds() + self.expiry,
                              alternate=alternate or None, reason=reason or None)
        self._by_room[room.jid] = tombstone
        self.host.stored(self.host.store.save_tombstone(tombstone), room, "save the tombstone")

    def check(self, room_jid, stanza):
        """
        @raise StanzaError: C{gone} while C{room_jid} has a live tombstone
            (an error or result is dropped instead: never answered).
        @return: C{True} if the stanza was for a tombstone and is dropped.
        """
        tombstone = self._by_room.get(room_jid)
        if tombstone is None:
            return False
        if tombstone.expires < self.host.clock.seconds():
            del self._by_room[room_jid]
            self.host.stored(self.host.store.delete_tombstone(room_jid), tombstone,
                             "delete the tombstone")
            log.info("{room}: tombstone expired; the name is free", room=room_jid)
            return False
        if stanza.getAttribute("type") in ("error", "result"):
            return True
        raise StanzaError(
            "gone", by=self.host.domain, text=tombstone.reason,
            content="xmpp:%s?join" % tombstone.alternate if tombstone.alternate else None)
