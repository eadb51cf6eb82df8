"""
dmuc's own S2S endpoint (L{dmuc.s2s.server}, L{dmuc.s2s.streams}) on the
real reactor over loopback TCP: dmuc to dmuc, and against peers that
misbehave.  Each test asserts what the other server or the service's
router sees: stanzas delivered (or not), stream errors, bounces, and
streams reported lost or up.
"""

import random

from twisted.internet import defer, reactor
from twisted.logger import LogLevel
from twisted.trial import unittest

from dmuc.s2s.streams import dialback_key
from tests.s2s_helpers import (Certificates, Endpoint, HostilePeer, SilentPeer,
                               closed_port, error_condition, loopback_address, message,
                               pair, pause, until)
from tests.stanza_helpers import logged

WARNINGS = (LogLevel.warn, LogLevel.error)
ALL = (LogLevel.info, LogLevel.warn, LogLevel.error)


def logged_with(lines, *words):
    """The log lines that contain all C{words}."""
    return [line for line in lines if all(w in line for w in words)]


class AuthenticationTests(unittest.TestCase):

    @defer.inlineCallbacks
    def test_certificates_authenticate_both_ways(self):
        """With a shared CA and secure_auth, each side authenticates by
        SASL EXTERNAL; stanzas cross both ways with from/to kept."""
        certificates = Certificates(self)
        a, b = yield pair(self, certificates=certificates, ca_file=certificates.ca_file,
                    secure_auth=True)
        a.send(message("y@a.test", "x@b.test", "hello b", id="m1"))
        b.send(message("x@b.test", "y@a.test", "hello a", id="m2"))
        yield until(lambda: b.router.received and a.router.received, what="both messages")
        got = b.router.received[0]
        self.assertEqual((got["from"], got["to"], got["id"], str(got.body)),
                         ("y@a.test", "x@b.test", "m1", "hello b"))
        got = a.router.received[0]
        self.assertEqual((got["from"], got["to"], str(got.body)),
                         ("x@b.test", "y@a.test", "hello a"))
        for side, remote in ((a, "b.test"), (b, "a.test")):
            authenticator = side.outgoing(remote).xs.authenticator
            self.assertEqual(authenticator.authentication, "certificate")
            self.assertTrue(authenticator.tls_done())
        self.assertEqual(b.inbound_from("a.test")[0].xs.authenticator.authenticated,
                         {"a.test": "certificate (SASL EXTERNAL)"})

    @defer.inlineCallbacks
    def test_dialback_over_tls_with_authoritative_verify(self):
        """No CA, secure_auth off: dialback authenticates, the receiving
        server having asked the originating domain's own server."""
        lines = logged(self, *ALL)
        certificates = Certificates(self)
        a, b = yield pair(self, certificates=certificates, secure_auth=False)
        a.send(message("y@a.test", "x@b.test", "by dialback"))
        yield until(lambda: b.router.received, what="the message")
        self.assertEqual(b.router.bodies(), ["by dialback"])
        authenticator = a.outgoing("b.test").xs.authenticator
        self.assertEqual(authenticator.authentication, "dialback")
        self.assertTrue(authenticator.tls_done())
        self.assertEqual(b.inbound_from("a.test")[0].xs.authenticator.authenticated,
                         {"a.test": "dialback"})
        self.assertTrue(logged_with(lines, "b.test asked whether a.test's dialback key is "
                                    "genuine: valid"), lines)

    @defer.inlineCallbacks
    def test_plaintext_dialback_when_encryption_is_optional(self):
        a, b = yield pair(self, require_encryption=False, secure_auth=False)
        a.send(message("y@a.test", "x@b.test", "in the clear"))
        yield until(lambda: b.router.received, what="the message")
        self.assertEqual(b.router.bodies(), ["in the clear"])
        authenticator = a.outgoing("b.test").xs.authenticator
        self.assertEqual(authenticator.authentication, "dialback")
        self.assertFalse(authenticator.tls_done())

    @defer.inlineCallbacks
    def test_dialback_key_of_an_impostor_is_refused(self):
        """Someone claiming to be a.test with a made-up key: b.test asks
        a.test's real server, which says invalid; nothing is delivered."""
        lines = logged(self, *ALL)
        a, b = yield pair(self, require_encryption=False, secure_auth=False)
        peer = yield HostilePeer.connect(self, b)
        yield peer.open("b.test", "a.test")
        peer.send("<db:result from='a.test' to='b.test'>%s</db:result>" % ("0" * 64,))
        answer = yield peer.expect(r"<db:result [^>]*>", "the dialback answer")
        self.assertIn("type='invalid'", answer.group(0))
        self.assertTrue(logged_with(lines, "b.test asked whether a.test's dialback key is "
                                    "genuine: invalid"), lines)
        peer.send("<message from='y@a.test' to='x@b.test'><body>spoofed</body></message>")
        self.assertEqual((yield peer.stream_error()), "not-authorized")
        self.assertEqual(b.router.received, [])


class CompressionTests(unittest.TestCase):

    def setUp(self):
        self.certificates = Certificates(self)

    def endpoints(self, a_compress, b_compress):
        return pair(self, certificates=self.certificates, ca_file=self.certificates.ca_file,
                    a_options={"compress": frozenset(a_compress)},
                    b_options={"compress": frozenset(b_compress)})

    @defer.inlineCallbacks
    def test_compressed_when_both_list_the_peer(self):
        a, b = yield self.endpoints(["b.test"], ["a.test"])
        words = "room nick presence occupant affiliation moderator hello anyone there".split()
        rng = random.Random(7)
        bodies = [" ".join(rng.choice(words) for _ in range(rng.randint(1, 12))) + " %d" % i
                  for i in range(60)]
        for i, body in enumerate(bodies):
            a.send(message("user%d@a.test" % (i % 5), "room@b.test", body, id="id%d" % i))
        yield until(lambda: len(b.router.received) == len(bodies), what="60 messages")
        self.assertEqual(b.router.bodies(), bodies)
        sent = a.outgoing("b.test").xs.compression
        self.assertIsNotNone(sent)
        self.assertLess(sent.wire_out * 2, sent.raw_out, sent)
        got = b.inbound_from("a.test")[0].xs.compression
        self.assertEqual((got.wire_in, got.raw_in), (sent.wire_out, sent.raw_out))

    @defer.inlineCallbacks
    def test_not_compressed_when_only_one_side_lists_the_peer(self):
        a, b = yield self.endpoints(["b.test"], [])
        a.send(message("y@a.test", "x@b.test", "plain"))
        b.send(message("x@b.test", "y@a.test", "plain too"))
        yield until(lambda: b.router.received and a.router.received, what="both messages")
        self.assertEqual((b.router.bodies(), a.router.bodies()), (["plain"], ["plain too"]))
        self.assertIsNone(getattr(a.outgoing("b.test").xs, "compression", None))
        self.assertIsNone(getattr(b.outgoing("a.test").xs, "compression", None))


class RefusalTests(unittest.TestCase):

    def setUp(self):
        self.lines = logged(self, *WARNINGS)
        self.certificates = Certificates(self)

    @defer.inlineCallbacks
    def test_untrusted_certificate_under_secure_auth(self):
        """a.test's certificate comes from a CA b.test does not trust: no
        stream, and a.test's queued stanzas come back as
        remote-server-not-found from b.test."""
        other_ca = Certificates(self, "other-ca")
        ca_file = self.certificates.ca_file
        a, b = yield pair(self, ca_file=ca_file, secure_auth=True,
                    a_options={"certificates": other_ca},
                    b_options={"certificates": self.certificates})
        a.send(message("y@a.test", "x@b.test", "one", id="m1"))
        a.send(message("y@a.test", "x@b.test", "two", id="m2"))
        yield until(lambda: len(a.router.errors()) == 2, what="two bounces")
        self.assertEqual([(e["id"], e["from"], e["to"], error_condition(e))
                          for e in a.router.errors()],
                         [("m1", "b.test", "y@a.test", "remote-server-not-found"),
                          ("m2", "b.test", "y@a.test", "remote-server-not-found")])
        self.assertEqual(b.router.received, [])
        self.assertIsNone(a.outgoing("b.test"))
        self.assertTrue(logged_with(self.lines, "dialback for a.test refused",
                                    "not trusted", "secure_auth is on"), self.lines)
        self.assertTrue(logged_with(self.lines, "S2S to b.test: cannot open a stream",
                                    "refused our dialback key"), self.lines)

    @defer.inlineCallbacks
    def test_stream_to_a_domain_not_hosted(self):
        b = yield Endpoint(self, "b.test", certificates=self.certificates).start()
        peer = yield HostilePeer.connect(self, b)
        peer.send("<?xml version='1.0'?><stream:stream xmlns='jabber:server' "
                  "xmlns:stream='http://etherx.jabber.org/streams' to='elsewhere.test' "
                  "from='a.test' version='1.0'>")
        self.assertEqual((yield peer.stream_error()), "host-unknown")
        self.assertTrue(logged_with(self.lines, "refused (host-unknown)", "elsewhere.test"),
                        self.lines)

    @defer.inlineCallbacks
    def authenticated_peer(self, b, domain="a.test"):
        """A hostile peer that authenticated to b.test as C{domain} with a
        certificate b.test trusts."""
        peer = yield HostilePeer.connect(self, b)
        yield peer.authenticate("b.test", domain, self.certificates.issue(domain))
        return peer

    def b_endpoint(self, **policy):
        return Endpoint(self, "b.test", certificates=self.certificates,
                        ca_file=self.certificates.ca_file, **policy).start()

    @defer.inlineCallbacks
    def test_spoofed_from_on_an_authenticated_stream(self):
        b = yield self.b_endpoint()
        peer = yield self.authenticated_peer(b)
        peer.send("<message from='y@a.test' to='x@b.test'><body>genuine</body></message>")
        yield until(lambda: b.router.received, what="the genuine message")
        peer.send("<message from='x@evil.test' to='x@b.test'><body>spoofed</body></message>")
        self.assertEqual((yield peer.stream_error()), "invalid-from")
        self.assertEqual(b.router.bodies(), ["genuine"])
        self.assertTrue(logged_with(self.lines, "refused (invalid-from)", "x@evil.test"),
                        self.lines)

    @defer.inlineCallbacks
    def test_endless_stanza_closes_the_stream(self):
        """A peer that sends more than 512 KiB without completing a stanza
        is cut off (policy-violation); the parser does not hold it all."""
        b = yield self.b_endpoint()
        peer = yield self.authenticated_peer(b)
        peer.send("<message from='y@a.test' to='x@b.test'><body>" + "x" * (600 * 1024))
        self.assertEqual((yield peer.stream_error()), "policy-violation")
        self.assertEqual(b.router.received, [])
        self.assertTrue(logged_with(self.lines, "without a complete stanza"), self.lines)

    @defer.inlineCallbacks
    def test_no_relaying(self):
        """A stanza to a domain b.test does not host is refused, and b.test
        sends nothing onward, even to a domain it has a route to."""
        b = yield self.b_endpoint()
        c = yield Endpoint(self, "c.test", certificates=self.certificates,
                           ca_file=self.certificates.ca_file).start()
        b.route_to(c)
        peer = yield self.authenticated_peer(b)
        peer.send("<message from='y@a.test' to='x@c.test'><body>relay me</body></message>")
        self.assertEqual((yield peer.stream_error()), "host-unknown")
        self.assertEqual(b.router.received, [])
        self.assertEqual(b.server.links, {})
        self.assertEqual((c.router.received, c.server.inbound), ([], set()))
        self.assertTrue(logged_with(self.lines, "refused (host-unknown)", "x@c.test",
                                    "no relaying"), self.lines)

    @defer.inlineCallbacks
    def test_plaintext_dialback_when_encryption_is_required(self):
        b = yield self.b_endpoint(secure_auth=False, require_encryption=True)
        peer = yield HostilePeer.connect(self, b)
        features = yield peer.open("b.test", "a.test")
        self.assertIn("<required", features)
        peer.send("<db:result from='a.test' to='b.test'>%s</db:result>"
                  "<message from='y@a.test' to='x@b.test'><body>hi</body></message>"
                  % ("0" * 64,))
        self.assertEqual((yield peer.stream_error()), "policy-violation")
        self.assertEqual(b.router.received, [])
        self.assertNotIn("type='valid'", peer.received)
        self.assertTrue(logged_with(self.lines, "refused (policy-violation)",
                                    "dialback without TLS"), self.lines)

    @defer.inlineCallbacks
    def test_stanza_before_authentication(self):
        b = yield self.b_endpoint(require_encryption=False)
        peer = yield HostilePeer.connect(self, b)
        yield peer.open("b.test", "a.test")
        peer.send("<message from='y@a.test' to='x@b.test'><body>hi</body></message>")
        self.assertEqual((yield peer.stream_error()), "not-authorized")
        self.assertEqual(b.router.received, [])
        self.assertTrue(logged_with(self.lines, "refused (not-authorized)",
                                    "before authentication"), self.lines)

    @defer.inlineCallbacks
    def test_verify_answers_for_keys_we_made_only(self):
        """As authoritative server b.test says valid only for its own key."""
        b = yield self.b_endpoint(require_encryption=False)
        peer = yield HostilePeer.connect(self, b)
        yield peer.open("b.test", "c.test")
        genuine = dialback_key(b.policy.dialback_secret, "c.test", "b.test", "s1")
        peer.send("<db:verify from='c.test' to='b.test' id='s0'>%s</db:verify>" % ("ab" * 32,))
        peer.send("<db:verify from='c.test' to='b.test' id='s1'>%s</db:verify>" % (genuine,))
        peer.send("<db:verify from='c.test' to='b.test' id='s2'>%s</db:verify>" % (genuine,))
        answers = []
        for _ in range(3):
            match = yield peer.expect(r"<db:verify [^>]*>|<verify [^>]*>")
            answers.append(match.group(0))
        verdicts = {}
        for answer in answers:
            stream_id = answer.split("id='")[1].split("'")[0]
            verdicts[stream_id] = answer.split("type='")[1].split("'")[0]
            self.assertIn("from='b.test'", answer)
            self.assertIn("to='c.test'", answer)
        # The key is bound to its stream id: replayed on another, invalid.
        self.assertEqual(verdicts, {"s0": "invalid", "s1": "valid", "s2": "invalid"})
        self.assertEqual(b.router.received, [])


class BounceTests(unittest.TestCase):

    def setUp(self):
        self.lines = logged(self, *WARNINGS)

    def sender(self, **policy):
        policy.setdefault("require_encryption", False)
        policy.setdefault("secure_auth", False)
        return Endpoint(self, "a.test", **policy).start()

    @defer.inlineCallbacks
    def test_closed_port_bounces_at_once(self):
        a = yield self.sender(connect_timeout=10)
        address = loopback_address()
        a.policy.routes["b.test"] = [(address, closed_port(address))]
        started = reactor.seconds()
        a.send(message("y@a.test", "x@b.test", "anyone?", id="m1"))
        yield until(lambda: a.router.errors(), what="the bounce")
        self.assertLess(reactor.seconds() - started, 2.0)
        error = a.router.errors()[0]
        self.assertEqual((error["id"], error["from"], error["to"], error_condition(error)),
                         ("m1", "b.test", "y@a.test", "remote-server-not-found"))
        self.assertTrue(logged_with(self.lines, "S2S to b.test: cannot open a stream",
                                    "connection refused"), self.lines)

    @defer.inlineCallbacks
    def test_silent_peer_bounces_after_connect_timeout(self):
        silent = SilentPeer(self)
        a = yield self.sender(connect_timeout=0.5)
        a.policy.routes["b.test"] = [(silent.address, silent.port)]
        started = reactor.seconds()
        a.send(message("y@a.test", "x@b.test", "hello?", id="m1"))
        yield until(lambda: a.router.errors(), what="the bounce")
        self.assertGreaterEqual(reactor.seconds() - started, 0.5)
        self.assertTrue(silent.connections, "a.test never connected")
        error = a.router.errors()[0]
        self.assertEqual((error["id"], error["from"], error_condition(error)),
                         ("m1", "b.test", "remote-server-timeout"))
        self.assertTrue(logged_with(self.lines, "S2S to b.test: cannot open a stream",
                                    "timed out"), self.lines)

    @defer.inlineCallbacks
    def test_queue_limit_bounces_the_excess_at_once(self):
        silent = SilentPeer(self)
        a = yield self.sender(connect_timeout=0.5, queue_limit=2)
        a.policy.routes["b.test"] = [(silent.address, silent.port)]
        for i in range(5):
            a.send(message("y@a.test", "x@b.test", "n%d" % i, id="m%d" % i))
        yield until(lambda: len(a.router.errors()) == 3, what="three bounces")
        self.assertEqual([(e["id"], error_condition(e)) for e in a.router.errors()],
                         [("m2", "remote-server-timeout"), ("m3", "remote-server-timeout"),
                          ("m4", "remote-server-timeout")])
        # The two queued ones wait for the stream until it times out.
        yield until(lambda: len(a.router.errors()) == 5, what="the queued bounces")
        self.assertEqual([e["id"] for e in a.router.errors()[3:]], ["m0", "m1"])
        self.assertTrue(logged_with(self.lines, "stanzas already wait for the stream"),
                        self.lines)


class MonitoringTests(unittest.TestCase):

    @defer.inlineCallbacks
    def setUp(self):
        self.lines = logged(self, *ALL)
        certificates = Certificates(self)
        self.a, self.b = yield pair(
            self, certificates=certificates, ca_file=certificates.ca_file,
            a_options={"retry_min": 0.05, "retry_max": 0.2})

    def kept_stream_up(self):
        self.a.server.keep("a.test", "b.test")
        return until(lambda: self.a.outgoing("b.test"), what="the kept stream")

    @defer.inlineCallbacks
    def test_peer_crash_is_reported_and_kept_stream_returns(self):
        a, b = self.a, self.b
        yield self.kept_stream_up()
        self.assertEqual(a.router.up, ["b.test"])
        yield b.crash()
        yield until(lambda: a.router.lost, what="stream_lost")
        self.assertEqual([peer for peer, _ in a.router.lost], ["b.test"])
        self.assertIn("the stream to b.test broke", a.router.lost[0][1])
        yield b.restart()
        yield until(lambda: a.outgoing("b.test"), what="the stream back")
        self.assertEqual(a.router.up, ["b.test", "b.test"])
        a.send(message("y@a.test", "x@b.test", "after the crash"))
        yield until(lambda: b.router.received, what="the message")
        self.assertEqual(b.router.bodies(), ["after the crash"])

    @defer.inlineCallbacks
    def test_peer_back_by_its_own_stream_cuts_our_back_off_short(self):
        # The peer's stream to us proves it is back: our stanzas to it
        # must not bounce for the rest of a long back-off.
        a, b = self.a, self.b
        a.policy.retry_min = a.policy.retry_max = 60.0
        yield self.kept_stream_up()
        yield b.crash()
        yield until(lambda: a.router.lost, what="stream_lost")
        yield b.restart()
        b.send(message("x@b.test", "y@a.test", "I am back"))
        yield until(lambda: a.router.received, what="b's message")
        yield until(lambda: a.outgoing("b.test"), what="our stream back")
        a.send(message("y@a.test", "x@b.test", "welcome back", id="w1"))
        yield until(lambda: b.router.received, what="a's answer")
        self.assertEqual((b.router.bodies(), a.router.errors()), (["welcome back"], []))
        self.assertEqual(a.router.up, ["b.test", "b.test", "b.test"])

    @defer.inlineCallbacks
    def test_tcp_closed_without_the_closing_tag_is_a_loss_and_says_so(self):
        # What a cut link through a proxy looks like: a FIN, no </stream>.
        a, b = self.a, self.b
        yield self.kept_stream_up()
        yield until(lambda: b.inbound_from("a.test"), what="a's stream at b")
        b.inbound_from("a.test")[0].xs.transport.loseConnection()
        yield until(lambda: a.router.lost, what="stream_lost")
        reason = a.router.lost[0][1]
        self.assertIn("the stream to b.test broke (the connection closed without the "
                      "stream's closing tag)", reason)
        self.assertNotIn("cleanly", reason)

    @defer.inlineCallbacks
    def test_a_watched_peer_is_retried_at_least_every_retry_max_of_the_watcher(self):
        # The monitor pings a split peer every split_ping_interval; the
        # stream it needs must not wait for a back-off of 30 s.
        a, b = self.a, self.b
        a.policy.retry_min, a.policy.retry_max = 1.0, 60.0
        a.server.keep("a.test", "b.test", retry_max=0.5)
        yield until(lambda: a.outgoing("b.test"), what="the kept stream")
        yield b.crash()
        yield until(lambda: a.router.lost, what="stream_lost")
        yield pause(3.5)        # down long enough for a back-off of 4 s
        yield b.restart()
        started = reactor.seconds()
        yield until(lambda: a.outgoing("b.test"), timeout=2.0, what="the stream back")
        self.assertLess(reactor.seconds() - started, 2.0)

    @defer.inlineCallbacks
    def test_clean_stop_is_not_a_loss(self):
        a, b = self.a, self.b
        yield self.kept_stream_up()
        yield b.stop()
        yield until(lambda: a.outgoing("b.test") is None, what="the stream closing")
        self.assertEqual(a.router.lost, [])
        self.assertTrue(logged_with(self.lines, "S2S to b.test: stream closed"), self.lines)


class IdleTests(unittest.TestCase):

    def setUp(self):
        self.lines = logged(self, *ALL)

    @defer.inlineCallbacks
    def test_keepalive_whitespace_on_an_idle_stream(self):
        a, b = yield pair(self, require_encryption=False, secure_auth=False,
                    a_options={"keepalive_interval": 0.1})
        a.send(message("y@a.test", "x@b.test", "then silence"))
        yield until(lambda: b.router.received, what="the message")
        inbound = b.inbound_from("a.test")[0]
        heard = []
        inbound.xs.rawDataInFn = heard.append
        yield until(lambda: heard, what="a keepalive")
        yield pause(0.25)
        self.assertEqual(set(b"".join(heard)), {ord(" ")})
        self.assertGreaterEqual(len(heard), 2)
        self.assertEqual((a.router.lost, b.router.lost), ([], []))

    @defer.inlineCallbacks
    def test_idle_stream_closes_cleanly(self):
        a, b = yield pair(self, require_encryption=False, secure_auth=False,
                    a_options={"idle_timeout": 0.3})
        a.send(message("y@a.test", "x@b.test", "once"))
        yield until(lambda: b.router.received, what="the message")
        yield until(lambda: a.outgoing("b.test") is None, what="the idle close")
        yield until(lambda: not b.inbound_from("a.test"), what="b.test seeing it close")
        self.assertEqual((a.router.lost, b.router.lost), ([], []))
        self.assertTrue(logged_with(self.lines, "S2S to b.test: idle for"), self.lines)
        self.assertTrue(logged_with(self.lines, "S2S from a.test: stream closed"), self.lines)
        # A new stanza opens a new stream.
        a.send(message("y@a.test", "x@b.test", "again"))
        yield until(lambda: len(b.router.received) == 2, what="the second message")
