"""
The mirror room service: local rooms that mirror remote master rooms, so
that a constrained link carries each room stanza once per site.

L{MirrorService} ties its storage, its rooms (L{MirrorMUC}) and its
component connection together, like L{dmuc.master.MasterService}.
"""

from twisted.application import service
from twisted.logger import Logger

from dmuc.mirror.handler import MirrorMUC
from dmuc.storage.sqlite import SQLiteRoomStore
from dmuc.xmpp.connection import ComponentConnection

log = Logger(namespace="dmuc.mirror")


class MirrorService(service.MultiService):
    """The mirror service as configured by a L{MirrorConfig}."""

    def __init__(self, xmpp, mirror, reactor):
        service.MultiService.__init__(self)
        self.store = SQLiteRoomStore(mirror.database)
        self.muc = MirrorMUC(mirror.jid, mirror.local_domains, self.store, reactor,
                             fire_and_forget=mirror.fire_and_forget)
        self.connection = ComponentConnection(
            mirror.jid, mirror.secret, xmpp.host, xmpp.port, reactor=reactor)
        self.muc.setHandlerParent(self.connection)
        self.reactor = reactor
        self.database = mirror.database

    def startService(self):
        service.Service.startService(self)
        log.info("mirror service {jid}: opening {db}", jid=self.muc.domain, db=self.database)
        d = self.store.open()
        d.addCallback(lambda _: self.muc.load())
        d.addCallback(lambda _: self.connection.setServiceParent(self))
        d.addErrback(self._failed)
        return d

    def _failed(self, failure):
        log.failure("mirror service {jid}: cannot start", failure, jid=self.muc.domain)
        self.reactor.stop()

    def stopService(self):
        d = service.MultiService.stopService(self)
        if d is None:
            return self.store.close()
        return d.addBoth(lambda _: self.store.close())
