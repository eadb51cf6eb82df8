"""
The service tree of one dmuc service: its storage, its rooms (a
L{ComponentHandler} with a C{load()}), and its routes to the network (a
L{Router}: the component connection, dmuc's own S2S, or both), started in
that order so rooms are loaded before the first stanza arrives.
A storage that cannot be opened stops dmuc with a log line naming it.
"""

import os

from twisted.application import service
from twisted.logger import Logger

from dmuc.storage.sqlite import SQLiteRoomStore
from dmuc.xmpp.connection import ComponentConnection
from dmuc.xmpp.router import Router

log = Logger(namespace="dmuc")


class ComponentService(service.MultiService):
    """
    @param kind: C{master} or C{mirror}, for the log.
    @param make_handler: called with the store, returns the handler.
    """

    def __init__(self, kind, xmpp, jid, secret, database, make_handler, reactor,
                 connection="component", direct_peers=(), s2s=None):
        """
        @param connection: C{component} (XEP-0114 to the XMPP server at
            C{xmpp}) or C{s2s} (dmuc's own S2S endpoint C{s2s} only).
        @param direct_peers: domains reached over C{s2s} even with a
            component connection.
        """
        service.MultiService.__init__(self)
        self.kind = kind
        self.database = database
        self.reactor = reactor
        self.store = SQLiteRoomStore(database)
        self.handler = make_handler(self.store)
        component = None
        if connection == "component":
            component = ComponentConnection(jid, secret, xmpp.host, xmpp.port,
                                            reactor=reactor)
        self.connection = Router(jid, component=component, s2s=s2s,
                                 direct_peers=direct_peers)
        self.handler.setHandlerParent(self.connection)

    def startService(self):
        service.Service.startService(self)
        log.info("{kind} service {jid}: opening {db}", kind=self.kind,
                 jid=self.handler.domain, db=self.database)
        d = self.store.open()
        d.addCallback(lambda _: self.handler.load())
        d.addCallback(lambda _: self.connection.setServiceParent(self))
        d.addErrback(self._failed)
        return d

    def _failed(self, failure):
        log.failure("{kind} service {jid}: cannot start", failure, kind=self.kind,
                    jid=self.handler.domain)
        # Exit with status 1 once stopped: a service manager must see the
        # failure (status 0 reads as a clean stop, and is not restarted).
        self.reactor.addSystemEventTrigger("after", "shutdown", os._exit, 1)
        self.reactor.stop()

    def stopService(self):
        self.handler.monitors.stop()
        # Users (and mirrors) are told while the connection is still up.
        self.handler.shutdown()
        self.handler.release_output()
        d = service.MultiService.stopService(self)
        if d is None:
            return self._close()
        return d.addBoth(lambda _: self._close())

    def _close(self):
        # Saves the handler holds back (coalesced) are written before the
        # store closes; the store finishes what was asked.
        self.handler.flush()
        return self.store.close()
