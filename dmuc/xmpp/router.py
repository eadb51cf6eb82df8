"""
Where a service's stanzas come from and go: its XEP-0114 component
connection, dmuc's own S2S endpoint, or both.

The service's handler sees one stream (L{LocalStream}): whatever arrives
on any route is dispatched there, and C{send} picks the route by the
recipient's domain:

  - C{connection = component}: everything through the local server, except
    the domains named in C{direct_peers}, which go over dmuc's own S2S (the
    I{direct link} between two dmuc sites);
  - C{connection = s2s}: everything over dmuc's own S2S.

The router also tells the service's link monitors what the streams
themselves show: a stream to or from a watched peer that breaks marks it
split at once; one that comes back starts the netjoin.
"""

from twisted.application import service
from twisted.logger import Logger
from twisted.words.xish import utility
from wokkel.subprotocols import XMPPHandler

from dmuc.xmpp.stanzas import parse_jid

log = Logger(namespace="dmuc.xmpp")


class LocalStream(utility.EventDispatcher):
    """What the service's handlers observe and send on."""

    def __init__(self, router):
        utility.EventDispatcher.__init__(self)
        self.router = router

    def send(self, obj):
        self.router.send(obj)


class Router(service.MultiService):
    """
    @param component: a L{ComponentConnection}, or C{None}.
    @param s2s: the process's L{S2SServer}, or C{None}.
    @param direct_peers: domains sent over S2S although a component
        connection exists.
    """

    def __init__(self, domain, component=None, s2s=None, direct_peers=()):
        service.MultiService.__init__(self)
        self.handlers = []
        self.domain = domain
        self.component = component
        self.s2s = s2s
        self.direct_peers = frozenset(direct_peers)
        self.stream = LocalStream(self)
        self._initialized = False
        if component is not None:
            _Forwarder(self).setHandlerParent(component)
            component.setServiceParent(self)
        if s2s is not None:
            s2s.host(domain, self)

    # -- the handlers' parent

    def addHandler(self, handler):
        self.handlers.append(handler)
        handler.makeConnection(self.stream)
        if self._initialized:
            handler.connectionInitialized()

    def removeHandler(self, handler):
        self.handlers.remove(handler)

    def send(self, stanza):
        if self._over_s2s(stanza):
            self.s2s.send(stanza)
        else:
            self.component.send(stanza)

    def _over_s2s(self, stanza):
        recipient = parse_jid(stanza.getAttribute("to"))
        return self._s2s_for(recipient.host if recipient is not None else None)

    def _s2s_for(self, domain):
        if self.component is None:
            return True
        return self.s2s is not None and domain in self.direct_peers

    def keep_stream(self, peer, retry_max=None):
        """The service watches C{peer}: over S2S, keep a stream to it,
        retried at least every C{retry_max} seconds while it is down."""
        if self.s2s is not None and self._s2s_for(peer):
            self.s2s.keep(self.domain, peer, retry_max)

    def startService(self):
        service.MultiService.startService(self)
        if self.component is None:
            self.route_up()
        for peer in sorted(self.direct_peers):
            self.s2s.keep(self.domain, peer)

    def route_up(self):
        """A route is ready; the handlers start (once: they observe the
        local stream, which outlives reconnections)."""
        if self._initialized:
            return
        self._initialized = True
        if self.component is None:
            log.info("{domain}: the service is online over dmuc's own S2S", domain=self.domain)
        for handler in self.handlers:
            handler.connectionInitialized()

    # -- what arrives

    def receive(self, stanza):
        self.stream.dispatch(stanza)

    def stream_lost(self, peer, reason):
        for monitors in self._monitors():
            monitors.stream_lost(peer, reason)

    def stream_up(self, peer):
        for monitors in self._monitors():
            monitors.stream_up(peer)

    def _monitors(self):
        return [h.monitors for h in self.handlers if hasattr(h, "monitors")]


class _Forwarder(XMPPHandler):
    """On the component connection: hands every stanza to the router."""

    def __init__(self, router):
        XMPPHandler.__init__(self)
        self.router = router

    def connectionInitialized(self):
        for name in ("presence", "message", "iq"):
            self.xmlstream.addObserver("/%s" % name, self.router.receive)
        self.router.route_up()
