"""
The component connection to the XMPP server (dmuc/xmpp/connection.py), on
an in-memory reactor: what an operator reads when it cannot get online,
and how often it tries.
"""

from twisted.internet.error import ConnectionDone
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.logger import LogLevel
from twisted.python.failure import Failure
from twisted.trial import unittest

from dmuc.xmpp.connection import ComponentConnection
from tests.stanza_helpers import logged

STREAM_ERROR = ("<stream:error><%s xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>"
                "</stream:error>")


class ConnectionTests(unittest.TestCase):

    def setUp(self):
        self.reactor = MemoryReactorClock()
        self.connection = ComponentConnection("conference.fairfax.test", "secret",
                                              "127.0.0.1", 5347, self.reactor)
        self.lines = logged(self, LogLevel.info, LogLevel.warn, LogLevel.error)
        self.connection.startService()
        self.addCleanup(self.connection.stopService)
        self.factory = self.connection.factory
        self.connector = self.reactor.connectors[0]
        # What a real connector says of where it connects.
        self.connector.host, self.connector.port = "127.0.0.1", 5347

    def attempt(self, answer):
        """One TCP connection: the server answers C{answer}, then closes."""
        stream = self.factory.buildProtocol(None)
        stream.makeConnection(StringTransport())
        stream.dataReceived(answer)
        self.factory.clientConnectionLost(self.connector, Failure(ConnectionDone()))
        delay = self.factory._callID.getTime() - self.reactor.seconds()
        self.reactor.advance(delay)
        return delay

    def test_a_refused_secret_backs_off_to_thirty_seconds(self):
        refused = ("<stream:stream xmlns='jabber:component:accept' xmlns:stream="
                   "'http://etherx.jabber.org/streams' id='s1' from='conference.fairfax.test'>"
                   + STREAM_ERROR % "not-authorized")
        delays = [self.attempt(refused.encode()) for _ in range(12)]
        self.assertGreater(delays[4], 4 * delays[0], delays)
        self.assertGreaterEqual(max(delays), 25, delays)
        # Twisted adds a random jitter (12% standard deviation).
        self.assertLessEqual(max(delays), 30 * 1.6, delays)
        self.assertTrue(any("not-authorized" in line for line in self.lines))

    def test_the_client_port_is_named_as_such(self):
        # Prosody's c2s port answers a component's stream as a client
        # stream, then refuses the component's domain with host-unknown.
        c2s = ("<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/"
               "streams' version='1.0' id='c1' from='conference.fairfax.test'>"
               + STREAM_ERROR % "host-unknown")
        self.attempt(c2s.encode())
        errors = [line for line in self.lines if "host-unknown" in line]
        self.assertEqual(len(errors), 1, self.lines)
        self.assertIn("client (c2s) port", errors[0])
        self.assertNotIn("no Component block", errors[0])

    def test_no_component_block_is_still_said(self):
        unknown = ("<stream:stream xmlns='jabber:component:accept' xmlns:stream="
                   "'http://etherx.jabber.org/streams' id='s1' from='conference.fairfax.test'>"
                   + STREAM_ERROR % "host-unknown")
        self.attempt(unknown.encode())
        self.assertTrue(any("no Component block" in line for line in self.lines), self.lines)
