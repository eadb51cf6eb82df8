"""
The one connection between a dmuc service and its XMPP server.

Today that is an external component (XEP-0114) attached to Prosody.  Every
service talks to the network only through L{ComponentConnection}: its
handlers (wokkel C{XMPPHandler}s) are attached with C{setHandlerParent} and
send with C{self.send}.  A direct server-to-server mode will be a second
class with the same surface.

What an operator reads in the log: connecting, connected, authenticated,
refused (with the server's reason: a wrong secret shows as
C{not-authorized}), disconnected, and reconnecting in N seconds.  The
connection retries for ever with exponential back-off capped at
C{max_delay}: Prosody restarts are routine.
"""

from twisted.application import service
from twisted.internet import defer
from twisted.logger import Logger
from twisted.words.protocols.jabber import component, xmlstream
from twisted.words.xish.xmlstream import XmlStreamFactoryMixin
from wokkel.subprotocols import StreamManager

log = Logger(namespace="dmuc.xmpp")

# At stop, how long to wait for what was sent last (the users' status 332)
# to leave before the process ends anyway.
CLOSE_TIMEOUT = 3.0


class _ReconnectingFactory(xmlstream.XmlStreamFactory):
    """
    The XEP-0114 stream factory, with back-off tuned for a local server and
    with log lines for every connection attempt.
    """

    initialDelay = 0.5
    factor = 2.0
    maxDelay = 30.0
    noisy = False  # our own log lines below say it better

    def __init__(self, authenticator, label):
        xmlstream.XmlStreamFactory.__init__(self, authenticator)
        self.label = label

    def buildProtocol(self, addr):
        # Twisted's factory resets the back-off as soon as TCP connects;
        # a server that refuses the stream (a wrong secret) would then be
        # retried twice a second for ever.  The delay is reset once the
        # stream is authenticated (ComponentConnection._authd).
        return XmlStreamFactoryMixin.buildProtocol(self, addr)

    def clientConnectionFailed(self, connector, reason):
        log.warn("{label}: cannot connect to {host}:{port}: {reason}",
                 label=self.label, host=connector.host, port=connector.port,
                 reason=reason.getErrorMessage())
        xmlstream.XmlStreamFactory.clientConnectionFailed(self, connector, reason)
        self._log_retry()

    def clientConnectionLost(self, connector, reason):
        if self.continueTrying:
            log.warn("{label}: disconnected from {host}:{port}",
                     label=self.label, host=connector.host, port=connector.port)
        xmlstream.XmlStreamFactory.clientConnectionLost(self, connector, reason)
        self._log_retry()

    def _log_retry(self):
        if self.continueTrying and self._callID is not None:
            delay = self._callID.getTime() - self.clock.seconds()
            log.info("{label}: reconnecting in {delay:.1f} s",
                     label=self.label, delay=delay)


class _Authenticator(component.ConnectComponentAuthenticator):
    """
    XEP-0114's authenticator, noting how the server answered: a client
    (c2s) port answers a component's stream as a client stream
    (C{jabber:client}), and its refusal would read like a missing
    Component block.
    """

    answered_as_client = False

    def streamStarted(self, rootElement):
        self.answered_as_client = rootElement.defaultUri == "jabber:client"
        component.ConnectComponentAuthenticator.streamStarted(self, rootElement)


class ComponentConnection(StreamManager, service.Service):
    """
    A XEP-0114 component connection that reconnects and says what it does.

    @ivar jid: the component's domain, e.g. C{conference.fairfax.test}.
    @ivar connected: whether the stream is authenticated right now.
    """

    def __init__(self, jid, secret, host, port, reactor=None):
        if reactor is None:
            from twisted.internet import reactor
        authenticator = _Authenticator(jid, secret)
        factory = _ReconnectingFactory(authenticator, jid)
        factory.clock = reactor
        StreamManager.__init__(self, factory, reactor)
        self.jid = jid
        self.host = host
        self.port = port
        self.connected = False
        self._connector = None
        self._closing = []
        factory.addBootstrap(xmlstream.STREAM_CONNECTED_EVENT, self._on_tcp)
        factory.addBootstrap(xmlstream.STREAM_ERROR_EVENT, self._on_stream_error)

    def startService(self):
        service.Service.startService(self)
        log.info("{jid}: connecting to the XMPP server at {host}:{port}",
                 jid=self.jid, host=self.host, port=self.port)
        self.factory.continueTrying = True
        self._connector = self._reactor.connectTCP(self.host, self.port, self.factory)

    def stopService(self):
        """
        Close the stream.  The Deferred fires once it is closed: the
        reactor would otherwise stop with the last stanzas still in the
        socket's buffer.
        """
        service.Service.stopService(self)
        self.factory.stopTrying()
        closed = None
        if self.connected:
            closed = defer.Deferred()
            self._closing.append(closed)
            timeout = self._reactor.callLater(CLOSE_TIMEOUT, self._closed)
            closed.addBoth(lambda result: (timeout.active() and timeout.cancel(), result)[1])
        if self._connector is not None:
            self._connector.disconnect()
            self._connector = None
        return closed

    def _closed(self):
        closing, self._closing = self._closing, []
        for d in closing:
            d.callback(None)

    def send(self, obj):
        """
        Send a stanza if the stream is up.  While disconnected, stanzas are
        dropped rather than queued: the occupants they were for are gone
        from the server's point of view, and an unbounded queue would grow
        for as long as the server is down.
        """
        if self._initialized:
            self.xmlstream.send(obj)
        else:
            log.debug("{jid}: not connected, dropped a {name}",
                      jid=self.jid, name=getattr(obj, "name", "stanza"))

    # -- log lines for the operator

    def _on_tcp(self, xs):
        log.info("{jid}: connected to {host}:{port}, authenticating",
                 jid=self.jid, host=self.host, port=self.port)

    def _authd(self, xs):
        self.connected = True
        self.factory.resetDelay()
        log.info("{jid}: authenticated; the component is online", jid=self.jid)
        StreamManager._authd(self, xs)

    def _on_stream_error(self, reason):
        condition = getattr(reason.value, "condition", None)
        if condition == "not-authorized":
            log.error("{jid}: refused by the XMPP server: not-authorized "
                      "(the secret does not match the server's component_secret)",
                      jid=self.jid)
        elif condition == "host-unknown" and self.factory.authenticator.answered_as_client:
            log.error("{jid}: refused by the XMPP server: host-unknown; {host}:{port} is its "
                      "client (c2s) port, not its component port (Prosody: component_ports, "
                      "5347 by default)", jid=self.jid, host=self.host, port=self.port)
        elif condition == "host-unknown":
            log.error("{jid}: refused by the XMPP server: host-unknown "
                      "(the server has no Component block for this domain)",
                      jid=self.jid)
        else:
            log.error("{jid}: stream error from the XMPP server: {reason}",
                      jid=self.jid, reason=reason.getErrorMessage())

    def initializationFailed(self, reason):
        log.error("{jid}: stream initialisation failed: {reason}",
                  jid=self.jid, reason=reason.getErrorMessage())
        if self.xmlstream is not None:
            self.xmlstream.transport.loseConnection()

    def _disconnected(self, reason):
        self.connected = False
        StreamManager._disconnected(self, reason)
        self._closed()
