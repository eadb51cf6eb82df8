"""
The master-side service: a complete XEP-0045 MUC component whose rooms
accept mirrors (the DMUC extension).

L{MasterService} ties together the storage, the rooms (L{MasterMUC}) and
the component connection, and starts them in that order: rooms are loaded
before the first stanza can arrive.
"""

from twisted.application import service
from twisted.logger import Logger

from dmuc.master.handler import MasterMUC
from dmuc.storage.sqlite import SQLiteRoomStore
from dmuc.xmpp.connection import ComponentConnection

log = Logger(namespace="dmuc.master")


class MasterService(service.MultiService):
    """The master MUC service as configured by a L{MasterConfig}."""

    def __init__(self, xmpp, master, reactor):
        service.MultiService.__init__(self)
        self.store = SQLiteRoomStore(master.database)
        self.muc = MasterMUC(master.jid, self.store, reactor,
                             trusted_mirrors=master.trusted_mirrors)
        self.connection = ComponentConnection(
            master.jid, master.secret, xmpp.host, xmpp.port, reactor=reactor)
        self.muc.setHandlerParent(self.connection)
        self.reactor = reactor
        self.database = master.database

    def startService(self):
        service.Service.startService(self)
        log.info("master service {jid}: opening {db}", jid=self.muc.domain,
                 db=self.database)
        d = self.store.open()
        d.addCallback(lambda _: self.muc.load())
        d.addCallback(lambda _: self.connection.setServiceParent(self))
        d.addErrback(self._failed)
        return d

    def _failed(self, failure):
        log.failure("master service {jid}: cannot start", failure,
                    jid=self.muc.domain)
        self.reactor.stop()

    def stopService(self):
        d = service.MultiService.stopService(self)
        if d is None:
            return self.store.close()
        return d.addBoth(lambda _: self.store.close())
