"""
dmuc's own server-to-server endpoint: one listener and one outgoing stream
per (our domain, remote domain), for every dmuc service configured to use
it.

What it promises the services above it (through their L{Router}):
  - a stanza to a remote domain is sent on an authenticated stream, or,
    while one is being opened, queued (at most C{queue_limit}) and
    bounced back as C{remote-server-not-found} or C{remote-server-timeout}
    when it cannot be, as Prosody bounces; the link monitor reads those;
  - a stanza from a remote server arrives only if its C{from} is the
    domain that stream authenticated and its C{to} is one we host;
  - a stream to or from a peer the service watches that ends without its
    closing tag (the peer crashed, the TCP link broke) is reported at once
    (C{stream_lost}), and one that comes back too (C{stream_up}).

Streams to remote domains reconnect with back-off while the service
wants them (a watched peer), close when idle otherwise, and send a
whitespace keepalive when nothing else was written for
C{keepalive_interval}.
"""

import collections
from dataclasses import dataclass, field

from twisted.application import service
from twisted.internet import defer, error as net_error, protocol
from twisted.logger import Logger
from twisted.names import client as dns, error as dns_error
from twisted.words.protocols.jabber import xmlstream
from twisted.words.protocols.jabber.error import StreamError
from twisted.words.xish.xmlstream import BootstrapMixin

from dmuc.s2s.streams import IncomingAuthenticator, NegotiationFailed, OutgoingAuthenticator
from dmuc.s2s.tls import TLSSettings
from dmuc.xmpp.stanzas import StanzaError, error_reply, parse_jid

log = Logger(namespace="dmuc.s2s")

DEFAULT_PORT = 5269

# At stop, how long streams get to close before the process ends anyway.
CLOSE_TIMEOUT = 3.0

# The most a peer may send without completing an element: Prosody's
# s2s_stanza_size_limit (512 KiB).  The stream parser holds an element in
# memory until it ends; past this the stream is closed with
# policy-violation.  (What the services accept is lower: MAX_STANZA_SIZE.)
MAX_ELEMENT_BYTES = 512 * 1024


@dataclass
class S2SPolicy:
    """The [s2s] section as the streams use it."""

    tls: TLSSettings = field(default_factory=TLSSettings)
    require_encryption: bool = True
    secure_auth: bool = True
    dialback_secret: str = ""
    compress: frozenset = frozenset()
    routes: dict = field(default_factory=dict)     # domain -> [(host, port)]
    connect_timeout: float = 20.0
    queue_limit: int = 1000
    idle_timeout: float = 600.0
    keepalive_interval: float = 60.0
    retry_min: float = 1.0
    retry_max: float = 30.0


class S2SServer(service.Service):
    """
    @ivar policy: the L{S2SPolicy}.
    @ivar links: (our domain, remote domain) -> L{OutgoingLink}.
    """

    def __init__(self, policy, interface, port, reactor, resolver=None):
        self.policy = policy
        self.interface = interface
        self.port = port
        self.reactor = reactor
        self.resolver = resolver or dns
        self.links = {}
        self.inbound = set()          # L{_Stream}s others opened to us
        self._routers = {}            # our domain -> Router
        self._listening = None

    # -- what the services see

    def host(self, domain, router):
        """Serve C{domain}: inbound stanzas to it go to C{router}."""
        self._routers[domain] = router

    def hosts(self, domain):
        return domain in self._routers

    def send(self, stanza):
        sender = parse_jid(stanza.getAttribute("from"))
        recipient = parse_jid(stanza.getAttribute("to"))
        if sender is None or sender.host not in self._routers or recipient is None:
            log.error("S2S: not sent: a {name} from {frm!r} to {to!r} (not from a domain "
                      "we host, or no recipient)", name=stanza.name,
                      frm=stanza.getAttribute("from"), to=stanza.getAttribute("to"))
            return
        if recipient.host in self._routers:
            # Between two services of this process: no stream needed.
            self.reactor.callLater(0, self.deliver, stanza, recipient.host, sender.host)
            return
        self._link(sender.host, recipient.host).send(stanza)

    def _link(self, local, remote):
        link = self.links.get((local, remote))
        if link is None:
            link = self.links[(local, remote)] = OutgoingLink(self, local, remote)
        return link

    def keep(self, local, remote, retry_max=None):
        """A service watches C{remote}: keep a stream to it open, and
        reopen it (with back-off) when it breaks.

        @param retry_max: the longest wait between two attempts, when
            shorter than the policy's (a monitor pinging every so often
            while split needs the stream at least as often).
        """
        self._link(local, remote).keep(retry_max)

    def deliver(self, stanza, local, remote):
        router = self._routers.get(local)
        if router is not None:
            router.receive(stanza)

    def lost(self, local, remote, reason):
        router = self._routers.get(local)
        if router is not None:
            router.stream_lost(remote, reason)

    def up(self, local, remote):
        router = self._routers.get(local)
        if router is not None:
            router.stream_up(remote)

    # -- the listener

    def startService(self):
        # The services hosting domains start after us (they stop before
        # us): say which domains once they are all known.
        service.Service.startService(self)
        self.reactor.callWhenRunning(self._listen)

    def _listen(self):
        factory = _ServerFactory(lambda: IncomingAuthenticator(self))
        factory.addBootstrap(xmlstream.STREAM_CONNECTED_EVENT, self._inbound_connected)
        self._listening = self.reactor.listenTCP(self.port, factory, interface=self.interface)
        log.info("S2S: listening on {interface}:{port} for {domains} (encryption {enc}, "
                 "secure auth {secure}, dialback {dialback})",
                 interface=self.interface, port=self._listening.getHost().port,
                 domains=", ".join(sorted(self._routers)),
                 enc="required" if self.policy.require_encryption else "optional",
                 secure="on" if self.policy.secure_auth else "off",
                 dialback="on" if self.policy.dialback_secret else "off")

    def stopService(self):
        """Close every stream with its closing tag; the Deferred fires
        once they are closed (at most L{CLOSE_TIMEOUT} seconds), so what
        the services sent last leaves before the process ends."""
        service.Service.stopService(self)
        closing = []
        for link in list(self.links.values()):
            if link.stream is not None:
                closing.append(link.stream.closed)
            link.close()
        for stream in list(self.inbound):
            closing.append(stream.closed)
            stream.close()
        if self._listening is not None:
            closing.append(defer.maybeDeferred(self._listening.stopListening))
        done = defer.DeferredList(closing, consumeErrors=True)
        timeout = self.reactor.callLater(CLOSE_TIMEOUT, done.cancel)
        done.addBoth(lambda _: timeout.active() and timeout.cancel())
        return done

    def _inbound_connected(self, xs):
        stream = _Stream(self, xs)
        self.inbound.add(stream)
        peer = xs.transport.getPeer()
        log.debug("S2S: connection from {host}:{port}", host=peer.host, port=peer.port)

        def gone(reason):
            self.inbound.discard(stream)
            auth = xs.authenticator
            for domain in auth.authenticated:
                if not stream.clean:
                    log.warn("S2S from {domain}: stream lost ({why})", domain=domain,
                             why=_why(reason))
                    self.lost(auth.local, domain, "the stream from %s broke (%s)"
                              % (domain, _why(reason)))
                else:
                    log.info("S2S from {domain}: stream closed", domain=domain)
        stream.on_lost = gone

    def inbound_authenticated(self, authenticator, domain):
        link = self.links.get((authenticator.local, domain))
        if link is not None:
            link.peer_back()
        self.up(authenticator.local, domain)

    # -- opening streams

    def open_stream(self, local, remote, verify=None):
        """
        Resolve C{remote}, connect, negotiate; fires with the ready
        L{_Stream}, or fails with a reason an operator can read.
        """
        d = self.resolve(remote)
        d.addCallback(self._try_addresses, local, remote, verify)
        return d

    def resolve(self, domain):
        """Static routes first, then the C{_xmpp-server._tcp} SRV records,
        then the domain itself on port 5269."""
        if domain in self.policy.routes:
            return defer.succeed(list(self.policy.routes[domain]))
        d = self.resolver.lookupService("_xmpp-server._tcp.%s" % (domain,))
        d.addCallbacks(lambda result: _srv_targets(result, domain),
                       lambda failure: _no_srv(failure, domain))
        return d

    @defer.inlineCallbacks
    def _try_addresses(self, addresses, local, remote, verify):
        if not addresses:
            raise NegotiationFailed("%s has no S2S service (SRV target '.')" % (remote,))
        reasons = []
        for host, port in addresses:
            try:
                stream = yield self._attempt(host, port, local, remote, verify)
            except (NegotiationFailed, net_error.ConnectError, net_error.ConnectionLost,
                    defer.TimeoutError, _StreamRefused) as e:
                reasons.append("%s:%d: %s" % (host, port, _why(e)))
                if isinstance(e, (NegotiationFailed, _StreamRefused)):
                    raise NegotiationFailed("; ".join(reasons))
                continue
            return stream
        error = NegotiationFailed("; ".join(reasons))
        error.timeout = all("timed out" in r for r in reasons)
        raise error

    def _attempt(self, host, port, local, remote, verify):
        compress = verify is None and remote in self.policy.compress
        authenticator = OutgoingAuthenticator(self.policy, local, remote,
                                              compress=compress, verify=verify)
        factory = _ClientFactory(authenticator)
        d = defer.Deferred()
        timeout = self.reactor.callLater(self.policy.connect_timeout, _timed_out, d, factory)

        def done(result):
            if timeout.active():
                timeout.cancel()
            return result

        def ready(xs):
            if not d.called:
                d.callback(_Stream(self, xs))

        def failed(reason):
            if not d.called:
                xs = factory.xmlstream
                if xs is not None and xs.transport is not None:
                    xs.transport.loseConnection()
                d.errback(reason)

        factory.addBootstrap(xmlstream.STREAM_AUTHD_EVENT, ready)
        factory.addBootstrap(xmlstream.INIT_FAILED_EVENT, failed)
        factory.addBootstrap(xmlstream.STREAM_ERROR_EVENT,
                             lambda reason: failed(_StreamRefused(reason.value)))
        factory.addBootstrap(xmlstream.STREAM_END_EVENT,
                             lambda reason: failed(net_error.ConnectionLost(
                                 "closed during negotiation")))
        factory.failed = failed
        self.reactor.connectTCP(host, port, factory, timeout=self.policy.connect_timeout)
        return d.addBoth(done)

    def verify_dialback(self, receiving, originating, stream_id, key):
        """Ask C{originating}'s authoritative server whether C{key} is
        genuine (XEP-0220 2.3); fires with C{True} or C{False}."""
        d = self.open_stream(receiving, originating, verify=(stream_id, key))

        def answered(stream):
            verdict = stream.xs.authenticator.verdict
            stream.close()
            return verdict
        return d.addCallback(answered)


class OutgoingLink:
    """
    Our stream from C{local} to C{remote}: opened on demand, with a
    bounded queue while it opens.
    """

    def __init__(self, server, local, remote):
        self.server = server
        self.local = local
        self.remote = remote
        self.stream = None
        self.queue = collections.deque()
        self.connecting = False
        self.kept = False
        self.retry_at = 0.0           # no attempt before (back-off)
        self.delay = 0.0
        self.kept_retry_max = None    # a watcher's shorter cap on the back-off
        self._retry = None
        self._idle = None
        self.last_error = ""

    @property
    def clock(self):
        return self.server.reactor

    @property
    def policy(self):
        return self.server.policy

    def keep(self, retry_max=None):
        self.kept = True
        if retry_max is not None:
            self.kept_retry_max = min(self.kept_retry_max or retry_max, retry_max)
        if self.stream is None and not self.connecting and self._retry is None:
            self.connect()

    def send(self, stanza):
        if self.stream is not None:
            self.stream.send(stanza)
            return
        if self.clock.seconds() < self.retry_at and not self.connecting:
            return self.server_bounce(stanza, "remote-server-not-found", self.last_error)
        if len(self.queue) >= self.policy.queue_limit:
            log.warn("S2S to {remote}: {n} stanzas already wait for the stream; bouncing",
                     remote=self.remote, n=len(self.queue))
            return self.server_bounce(stanza, "remote-server-timeout",
                                      "too many stanzas waiting for the stream")
        self.queue.append(stanza)
        if not self.connecting:
            self.connect()

    def connect(self):
        self._cancel_retry()
        self.connecting = True
        log.info("S2S to {remote}: connecting (as {local})", remote=self.remote,
                 local=self.local)
        d = self.server.open_stream(self.local, self.remote)
        d.addCallbacks(self._ready, self._failed)

    def _ready(self, stream):
        self.connecting = False
        self.stream = stream
        self.delay = 0.0
        self.retry_at = 0.0
        stream.on_lost = self._lost
        auth = stream.xs.authenticator
        log.info("S2S to {remote}: ready (as {local}; authenticated by {how}; {tls}{zlib})",
                 remote=self.remote, local=self.local, how=auth.authentication,
                 tls="TLS" if auth.tls_done() else "NOT ENCRYPTED",
                 zlib=", zlib" if getattr(stream.xs, "compression", None) else "")
        queued, self.queue = self.queue, collections.deque()
        for stanza in queued:
            stream.send(stanza)
        self._watch_idle()
        self.server.up(self.local, self.remote)

    def _failed(self, failure):
        self.connecting = False
        reason = failure.value
        self.last_error = _why(reason)
        timeout = getattr(reason, "timeout", False) or isinstance(reason, defer.TimeoutError)
        condition = "remote-server-timeout" if timeout else "remote-server-not-found"
        log.error("S2S to {remote}: cannot open a stream (as {local}): {why}",
                  remote=self.remote, local=self.local, why=self.last_error)
        queued, self.queue = self.queue, collections.deque()
        for stanza in queued:
            self.server_bounce(stanza, condition, self.last_error)
        self._back_off()

    def _back_off(self):
        longest = self.policy.retry_max
        if self.kept and self.kept_retry_max is not None:
            longest = min(longest, self.kept_retry_max)
        self.delay = min(max(self.delay * 2, self.policy.retry_min), longest)
        self.retry_at = self.clock.seconds() + self.delay
        if self.kept:
            log.info("S2S to {remote}: retrying in {delay:.1f} s", remote=self.remote,
                     delay=self.delay)
            self._retry = self.clock.callLater(self.delay, self._retry_now)

    def peer_back(self):
        """
        C{remote} just authenticated a stream to us, so it is up: forget
        the back-off (our stanzas to it would bounce until it ends) and
        reopen a kept stream now.
        """
        if self.stream is not None or self.connecting or not self.retry_at:
            return
        log.info("S2S to {remote}: the peer is back (its stream to us); retrying now",
                 remote=self.remote)
        self._cancel_retry()
        self.delay = 0.0
        self.retry_at = 0.0
        if self.kept:
            self.connect()

    def _retry_now(self):
        self._retry = None
        if self.stream is None and not self.connecting:
            self.connect()

    def _cancel_retry(self):
        if self._retry is not None and self._retry.active():
            self._retry.cancel()
        self._retry = None

    def _lost(self, reason):
        stream, self.stream = self.stream, None
        self._stop_idle()
        if stream.clean:
            log.info("S2S to {remote}: stream closed", remote=self.remote)
        else:
            self.last_error = _why(reason)
            log.warn("S2S to {remote}: stream lost ({why})", remote=self.remote,
                     why=self.last_error)
            self.server.lost(self.local, self.remote, "the stream to %s broke (%s)"
                             % (self.remote, self.last_error))
        if self.kept and self.server.running:
            self._back_off()

    # -- idle close

    def _watch_idle(self):
        self._stop_idle()
        self._idle = self.clock.callLater(self.policy.idle_timeout, self._check_idle)

    def _stop_idle(self):
        if self._idle is not None and self._idle.active():
            self._idle.cancel()
        self._idle = None

    def _check_idle(self):
        self._idle = None
        if self.stream is None:
            return
        quiet = self.clock.seconds() - self.stream.last_stanza
        if quiet >= self.policy.idle_timeout and not self.kept:
            log.info("S2S to {remote}: idle for {quiet:.0f} s; closing", remote=self.remote,
                     quiet=quiet)
            self.stream.close()
        else:
            self._idle = self.clock.callLater(
                max(self.policy.idle_timeout - quiet, 1.0), self._check_idle)

    def close(self):
        self.kept = False
        self._cancel_retry()
        self._stop_idle()
        if self.stream is not None:
            self.stream.close()

    def server_bounce(self, stanza, condition, text):
        bounce(self.server, stanza, condition, text)


def bounce(server, stanza, condition, text):
    """
    Give the sender back an error from the remote domain, as a server
    does for a stanza it could not deliver; never for an error or a
    result (no loops).
    """
    if stanza.getAttribute("type") in ("error", "result"):
        return
    if not hasattr(stanza, "children"):      # a SerializedStanza: parse it back
        from dmuc.xmpp.stanzas import parse_xml
        stanza = parse_xml(stanza.toXml())
    reply = error_reply(stanza, StanzaError(condition, text=text or None))
    reply["from"] = parse_jid(stanza.getAttribute("to")).host
    local = parse_jid(stanza.getAttribute("from")).host
    server.reactor.callLater(0, server.deliver, reply, local, reply["from"])


class _Stream:
    """
    One negotiated stream, either way: sends, counts, keeps alive, and
    reports its end as clean (a closing tag either way) or not.

    @ivar clean: the stream ended with its closing tag.
    @ivar stanza_bytes: bytes of XML written and read (before any
        compression): C{[out, in]}.
    """

    def __init__(self, server, xs):
        self.server = server
        self.xs = xs
        self.clean = False
        self.on_lost = None
        self.closed = defer.Deferred()      # fires when the connection is gone
        self.stanza_bytes = [0, 0]
        self.last_write = self.last_stanza = server.reactor.seconds()
        self._keepalive = None
        self._unfinished = 0     # bytes read since the last complete element
        xs.rawDataOutFn = self._wrote
        xs.rawDataInFn = self._read
        ended = xs.onDocumentEnd

        def document_end():
            self.clean = True
            ended()
        xs.onDocumentEnd = document_end
        # The parser took the bound method when the stream last
        # (re)started; a stream that does not restart again (every
        # outgoing one, an inbound one without TLS) would otherwise report
        # the peer's closing tag as a broken stream.
        if xs.stream is not None:
            xs.stream.DocumentEndEvent = document_end
        xs.addObserver(xmlstream.STREAM_END_EVENT, self._ended)
        xs.addObserver("/*", self._element_done, priority=100)
        self._schedule_keepalive()

    def send(self, stanza):
        self.last_stanza = self.server.reactor.seconds()
        self.xs.send(_for_server_stream(stanza))

    def _wrote(self, data):
        self.stanza_bytes[0] += len(data)
        self.last_write = self.server.reactor.seconds()

    def _read(self, data):
        self.stanza_bytes[1] += len(data)
        self._unfinished += len(data)
        if self._unfinished > MAX_ELEMENT_BYTES and not self.clean:
            peer = self.xs.otherEntity.host if self.xs.otherEntity else "a peer"
            log.warn("S2S with {peer}: more than {limit} bytes without a complete "
                     "stanza; closing the stream (policy-violation)", peer=peer,
                     limit=MAX_ELEMENT_BYTES)
            self.clean = True
            self.xs.sendStreamError(StreamError("policy-violation",
                                                text="stanza too large"))

    def _element_done(self, element):
        self._unfinished = 0

    def _schedule_keepalive(self):
        self._keepalive = self.server.reactor.callLater(
            self.server.policy.keepalive_interval, self._keep_alive)

    def _keep_alive(self):
        quiet = self.server.reactor.seconds() - self.last_write
        if quiet >= self.server.policy.keepalive_interval:
            self.xs.send(" ")
        self._schedule_keepalive()

    def close(self):
        self.clean = True
        if self.xs.transport is not None and self.xs.transport.connected:
            try:
                self.xs.sendFooter()
            finally:
                self.xs.transport.loseConnection()

    def _ended(self, reason):
        if self._keepalive is not None and self._keepalive.active():
            self._keepalive.cancel()
        if self.on_lost is not None:
            self.on_lost(reason)
        if not self.closed.called:
            self.closed.callback(None)


def _for_server_stream(stanza):
    """
    What dmuc builds has no namespace, or the one of the stream it came
    in on (C{jabber:component:accept}); on an S2S stream a stanza must be
    in C{jabber:server}, which it inherits when it declares none.
    """
    text = stanza.toXml()
    for uri in ("jabber:component:accept", "jabber:client"):
        for quote in ("'", '"'):
            declaration = " xmlns=%s%s%s" % (quote, uri, quote)
            head_end = text.find(">")
            at = text.find(declaration, 0, head_end)
            if at != -1:
                return text[:at] + text[at + len(declaration):]
    return text


class _StreamRefused(Exception):
    """The peer sent a stream error during negotiation."""

    def __init__(self, error):
        Exception.__init__(self, "the server sent the stream error %s%s" % (
            getattr(error, "condition", error),
            ": %s" % error.text if getattr(error, "text", None) else ""))


class _ClientFactory(BootstrapMixin, protocol.ClientFactory):
    """One attempt: no reconnection of its own (the link decides)."""

    protocol = xmlstream.XmlStream
    noisy = False

    def __init__(self, authenticator):
        BootstrapMixin.__init__(self)
        self.authenticator = authenticator
        self.xmlstream = None
        self.failed = None

    def buildProtocol(self, addr):
        xs = self.protocol(self.authenticator)
        xs.factory = self
        self.xmlstream = xs
        self.installBootstraps(xs)
        return xs

    def clientConnectionFailed(self, connector, reason):
        if self.failed is not None:
            self.failed(reason.value)


class _ServerFactory(xmlstream.XmlStreamServerFactory):
    noisy = False


def _timed_out(d, factory):
    if not d.called:
        xs = factory.xmlstream
        if xs is not None and xs.transport is not None:
            xs.transport.abortConnection()
        d.errback(defer.TimeoutError("timed out"))


def _srv_targets(result, domain):
    answers = result[0]
    records = sorted((r.payload for r in answers if r.type == 33),
                     key=lambda p: (p.priority, -p.weight))
    if not records:
        return [(domain, DEFAULT_PORT)]
    targets = [(str(p.target), p.port) for p in records]
    return [t for t in targets if t[0] not in ("", ".")]


def _no_srv(failure, domain):
    failure.trap(dns_error.DomainError, dns_error.DNSNameError, dns_error.DNSServerError,
                 dns_error.DNSQueryTimeoutError, defer.TimeoutError)
    return [(domain, DEFAULT_PORT)]


def _why(reason):
    value = getattr(reason, "value", reason)
    if isinstance(value, net_error.ConnectionRefusedError):
        return "connection refused"
    if isinstance(value, (defer.TimeoutError, net_error.TimeoutError)):
        return "timed out"
    if isinstance(value, net_error.DNSLookupError):
        return "address not found"
    if isinstance(value, net_error.ConnectionDone):
        # Twisted says "closed cleanly" of the TCP connection; the stream
        # itself ended without its closing tag (a clean end is not a loss).
        return "the connection closed without the stream's closing tag"
    text = str(value) or value.__class__.__name__
    return " ".join(text.split())
