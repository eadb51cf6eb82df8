"""
Helpers for testing dmuc's own S2S endpoint (L{dmuc.s2s}) on the real
reactor over loopback TCP: certificates made per test, endpoints with
routes to each other and a router that records what a service would see,
a peer that accepts TCP and never answers, and a hostile peer that speaks
XML by hand.

Every endpoint listens on a random 127.x.y.z address and a port the kernel
picks, so test runs side by side do not collide; routes are set once both
listen.  Waiting is on conditions with a deadline (L{until}), never sleeps.
"""

import base64
import os
import random
import re
import shutil
import socket
import tempfile

import trustme

import dmuc.compat  # noqa: F401 (the wokkel shim first)
from twisted.internet import defer, endpoints, protocol, reactor, ssl
from twisted.words.protocols.jabber import xmlstream

from dmuc.s2s.server import S2SPolicy, S2SServer
from dmuc.s2s.tls import TLSSettings
from dmuc.xmpp.stanzas import make_stanza

NS_STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas"

# How long a condition may take before a test fails: generous, for a
# loaded two-core machine; a passing test never waits for it.
DEADLINE = 5.0


def until(condition, timeout=DEADLINE, what="the condition"):
    """
    Wait, turning the reactor, until C{condition()} is true.

    @return: a Deferred firing with C{condition()}'s value, or failing with
        an C{AssertionError} naming C{what} after C{timeout} seconds.
    """
    d = defer.Deferred()
    deadline = reactor.seconds() + timeout

    def check():
        value = condition()
        if value:
            d.callback(value)
        elif reactor.seconds() >= deadline:
            d.errback(AssertionError("%s did not happen within %.1f s" % (what, timeout)))
        else:
            reactor.callLater(0.005, check)
    check()
    return d


def pause(seconds):
    """A Deferred firing after C{seconds}: only to show that something
    does B{not} happen in that time."""
    d = defer.Deferred()
    reactor.callLater(seconds, d.callback, None)
    return d


def loopback_address():
    """A random loopback address away from 127.0.0.1 (where outgoing
    connections take their source ports)."""
    return "127.%d.%d.%d" % (random.randint(16, 250), random.randint(0, 255),
                             random.randint(2, 254))


def closed_port(address):
    """A port nothing listens on at C{address} (just freed by us)."""
    with socket.socket() as probe:
        probe.bind((address, 0))
        return probe.getsockname()[1]


class Certificates:
    """
    A CA of its own and certificates it issues, as PEM files in a
    directory of the test.
    """

    def __init__(self, testcase, name="ca"):
        # Not testcase.mktemp(): under pytest that lands in the work tree.
        self.directory = tempfile.mkdtemp(prefix="dmuc-s2s-")
        testcase.addCleanup(shutil.rmtree, self.directory, True)
        self.ca = trustme.CA()
        self.ca_file = os.path.join(self.directory, name + ".pem")
        self.ca.cert_pem.write_to_path(self.ca_file)

    def issue(self, domain):
        """@return: the path of a PEM file with key and chain for C{domain}."""
        path = os.path.join(self.directory, domain + ".pem")
        self.ca.issue_cert(domain).private_key_and_cert_chain_pem.write_to_path(path)
        return path


class RecordingRouter:
    """
    What a service's router sees of the S2S endpoint: stanzas in, and
    streams lost or up.
    """

    def __init__(self):
        self.received = []
        self.lost = []          # (remote domain, reason)
        self.up = []            # remote domains

    def receive(self, stanza):
        self.received.append(stanza)

    def stream_lost(self, remote, reason):
        self.lost.append((remote, reason))

    def stream_up(self, remote):
        self.up.append(remote)

    def errors(self):
        return [s for s in self.received if s.getAttribute("type") == "error"]

    def bodies(self):
        return [str(s.body) for s in self.received
                if s.name == "message" and s.body is not None]


def error_condition(stanza):
    """The defined condition of an error stanza, e.g. C{remote-server-not-found}."""
    for error in stanza.elements(None, "error"):
        for child in error.elements():
            if child.uri == NS_STANZAS and child.name != "text":
                return child.name
    return None


def message(frm, to, body, id=None, type="chat"):
    stanza = make_stanza("message", to=to, frm=frm, type=type, id=id)
    stanza.addElement("body", content=body)
    return stanza


class Endpoint:
    """
    One S2S endpoint serving one domain, with a L{RecordingRouter}.

    @ivar server: the L{S2SServer} (a new one after L{restart}).
    """

    def __init__(self, testcase, domain, certificates=None, ca_file=None, **policy):
        self.testcase = testcase
        self.domain = domain
        self.address = loopback_address()
        self.port = 0
        self.router = RecordingRouter()
        certificate = certificates.issue(domain) if certificates is not None else None
        policy.setdefault("dialback_secret", "secret of " + domain)
        policy.setdefault("routes", {})
        self.policy = S2SPolicy(tls=TLSSettings(certificate, None, ca_file), **policy)
        self.server = None
        self._servers = []
        testcase.addCleanup(self.stop_all)

    @defer.inlineCallbacks
    def start(self):
        """Start listening; fires with this endpoint once it does."""
        server = self.server = S2SServer(self.policy, self.address, self.port, reactor)
        server.host(self.domain, self.router)
        self._servers.append(server)
        server.startService()
        # It listens once the reactor runs (after the services started).
        yield until(lambda: server._listening is not None, what="listening")
        self.port = server._listening.getHost().port
        return self

    def route_to(self, other):
        self.policy.routes[other.domain] = [(other.address, other.port)]

    def send(self, stanza):
        self.server.send(stanza)

    def link(self, remote):
        return self.server.links.get((self.domain, remote))

    def outgoing(self, remote):
        """Our authenticated stream to C{remote}, or C{None}."""
        link = self.link(remote)
        return link.stream if link is not None else None

    def inbound_from(self, remote):
        """The streams C{remote} opened to us and authenticated."""
        return [s for s in self.server.inbound
                if remote in s.xs.authenticator.authenticated]

    def crash(self):
        """
        Vanish as a crashed process does: stop listening and drop every
        connection without a closing tag or TLS goodbye.
        """
        server = self.server
        listening, server._listening = server._listening, None
        d = listening.stopListening()
        streams = list(server.inbound) + [
            link.stream for link in server.links.values() if link.stream is not None]
        for stream in streams:
            stream.xs.transport.abortConnection()
        # A crashed process does not reconnect either.
        for link in server.links.values():
            link.kept = False
            link._cancel_retry()
        server.running = False
        return d

    def restart(self):
        """Come back on the same address and port."""
        return self.start()

    def stop(self):
        return defer.maybeDeferred(self.server.stopService)

    @defer.inlineCallbacks
    def stop_all(self):
        for server in self._servers:
            if server.running:
                yield server.stopService()
        # Trial wants the reactor clean when the test ends: no stream
        # still closing, no attempt still connecting.
        yield until(lambda: all(not s.inbound and not any(
            link.stream is not None or link.connecting for link in s.links.values())
            for s in self._servers), what="%s's streams closing" % (self.domain,))


@defer.inlineCallbacks
def pair(testcase, a_options=None, b_options=None, **common):
    """
    Two started endpoints, C{a.test} and C{b.test}, routed to each other.

    @param common: policy (and C{certificates}, C{ca_file}) for both;
        C{a_options} and C{b_options} override per side.
    @return: a Deferred firing with C{(a, b)}.
    """
    a = yield Endpoint(testcase, "a.test", **dict(common, **(a_options or {}))).start()
    b = yield Endpoint(testcase, "b.test", **dict(common, **(b_options or {}))).start()
    a.route_to(b)
    b.route_to(a)
    return a, b


class SilentPeer:
    """Accepts TCP connections and never says a word (a hung server)."""

    def __init__(self, testcase):
        self.address = loopback_address()
        self.connections = []
        factory = protocol.Factory.forProtocol(protocol.Protocol)
        build = factory.buildProtocol

        def keep(addr):
            p = build(addr)
            self.connections.append(p)
            return p
        factory.buildProtocol = keep
        self.listening = reactor.listenTCP(0, factory, interface=self.address)
        self.port = self.listening.getHost().port
        testcase.addCleanup(self.stop)

    def stop(self):
        for p in self.connections:
            if p.transport is not None:
                p.transport.abortConnection()
        return self.listening.stopListening()


STREAM_HEADER = ("<?xml version='1.0'?><stream:stream xmlns='jabber:server' "
                 "xmlns:stream='http://etherx.jabber.org/streams' "
                 "xmlns:db='jabber:server:dialback' to='%s'%s version='1.0'>")
FEATURES = re.compile(r"<stream:features(?:/>|>.*?</stream:features>)", re.S)
STREAM_ERROR = re.compile(r"<stream:error><([\w-]+)")


class HostilePeer(protocol.Protocol):
    """
    A remote server written by hand: it sends whatever XML a test gives
    it, over TCP and then TLS, and keeps everything it receives as text.

    @ivar received: all text received so far.
    @ivar closed: a Deferred firing when the connection is gone.
    """

    def __init__(self):
        self.received = ""
        self.seen = 0             # what L{expect} has matched up to
        self.closed = defer.Deferred()
        self.stream_id = None

    @classmethod
    def connect(cls, testcase, endpoint):
        """Connect to C{endpoint}'s listener; fires with the peer."""
        peer = cls()
        testcase.addCleanup(peer.abort)
        where = endpoints.TCP4ClientEndpoint(reactor, endpoint.address, endpoint.port)
        return endpoints.connectProtocol(where, peer)

    def dataReceived(self, data):
        self.received += data.decode("utf-8", "replace")

    def connectionLost(self, reason):
        self.closed.callback(None)

    def abort(self):
        if self.transport is not None and not self.closed.called:
            self.transport.abortConnection()
            return self.closed

    def send(self, text):
        self.transport.write(text.encode("utf-8"))

    def expect(self, pattern, what=None):
        """
        Wait for C{pattern} (a regular expression) in what arrives after
        the last match.

        @return: a Deferred firing with the match.
        """
        pattern = re.compile(pattern)

        def found():
            match = pattern.search(self.received, self.seen)
            if match:
                self.seen = match.end()
            return match
        return until(found, what=what or "%r from the server" % (pattern.pattern,))

    @defer.inlineCallbacks
    def open(self, to, frm=None):
        """Send a stream header; fires with the features received."""
        self.send(STREAM_HEADER % (to, " from='%s'" % frm if frm else ""))
        header = yield self.expect(re.compile(r"<stream:stream [^>]*>"), "a stream header")
        match = re.search(r"\bid=['\"]([^'\"]+)", header.group(0))
        self.stream_id = match.group(1) if match else None
        features = yield self.expect(FEATURES, "stream features")
        return features.group(0)

    @defer.inlineCallbacks
    def starttls(self, certificate=None):
        """STARTTLS, presenting C{certificate} (a PEM path) if given."""
        self.send("<starttls xmlns='%s'/>" % (xmlstream.NS_XMPP_TLS,))
        yield self.expect("<proceed", "TLS proceed")
        if certificate is not None:
            with open(certificate) as pem:
                options = ssl.PrivateCertificate.loadPEM(pem.read()).options()
        else:
            options = ssl.CertificateOptions()
        self.transport.startTLS(options)

    @defer.inlineCallbacks
    def authenticate(self, to, domain, certificate):
        """Open a stream and authenticate as C{domain} by SASL EXTERNAL."""
        yield self.open(to, domain)
        yield self.starttls(certificate)
        features = yield self.open(to, domain)
        assert "EXTERNAL" in features, features
        self.send("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='EXTERNAL'>"
                  "%s</auth>" % base64.b64encode(domain.encode()).decode())
        yield self.expect("<success", "SASL success")
        yield self.open(to, domain)

    @defer.inlineCallbacks
    def stream_error(self):
        """Wait for a stream error and the end of the connection; fires
        with the error's condition."""
        match = yield self.expect(STREAM_ERROR, "a stream error")
        yield self.closed
        return match.group(1)
