"""
XEP-0138 zlib compression of dmuc's own S2S streams
(L{dmuc.s2s.compression}), with two XmlStreams connected in memory.
"""

import inspect
import random

from twisted.internet import ssl
from twisted.internet.interfaces import ISSLTransport
from twisted.internet.protocol import Factory
from twisted.internet.task import Clock
from twisted.protocols.tls import TLSMemoryBIOFactory
from twisted.python.filepath import FilePath
from twisted.test import iosim
from twisted.trial import unittest
from twisted.words.protocols.jabber import jid, xmlstream
from twisted.words.protocols.jabber.xmlstream import NS_STREAMS
from twisted.words.xish import domish

import twisted.test
from dmuc.s2s import compression
from dmuc.s2s.compression import (
    NS_COMPRESS,
    NS_FEATURE,
    CompressionInitializer,
    answer_compress,
    feature,
    offered,
)

NS_SERVER = "jabber:server"
NS_STREAM_ERRORS = "urn:ietf:params:xml:ns:xmpp-streams"


class Receiving(xmlstream.ListenAuthenticator):
    """
    The receiving server, as if authentication were done: it offers
    compression (unless told not to) and answers C{<compress/>}.

    @ivar headers: stream headers received (2 after a restart).
    @ivar answers: what L{answer_compress} returned, per request.
    """

    namespace = NS_SERVER

    def __init__(self, offer=True, refuse=None):
        super().__init__()
        self.offer = offer
        self.refuse = refuse
        self.headers = 0
        self.answers = []

    def associateWithStream(self, xs):
        super().associateWithStream(xs)
        xs.addObserver("/compress[@xmlns='%s']" % NS_COMPRESS, self._on_compress)

    def _on_compress(self, element):
        if self.refuse:
            # A peer that cannot compress just now.
            reply = domish.Element((NS_COMPRESS, "failure"))
            reply.addElement(self.refuse)
            self.xmlstream.send(reply)
            return
        self.answers.append(answer_compress(self.xmlstream, element))

    def streamStarted(self, rootElement):
        super().streamStarted(rootElement)
        self.headers += 1
        self.xmlstream.sendHeader()
        features = domish.Element((NS_STREAMS, "features"))
        if self.offer and getattr(self.xmlstream, "compression", None) is None:
            features.addChild(feature())
        self.xmlstream.send(features)


class Initiating(xmlstream.ConnectAuthenticator):
    """
    The initiating server, with compression as its only initializer.
    """

    namespace = NS_SERVER

    def __init__(self, wanted=True):
        super().__init__("mirror.raleigh.test")
        self.wanted = wanted

    def associateWithStream(self, xs):
        super().associateWithStream(xs)
        xs.thisEntity = jid.JID("conference.fairfax.test")
        xs.initializers = [CompressionInitializer(xs, wanted=self.wanted)]


class RecordingTransport(iosim.FakeTransport):
    """
    An in-memory transport that keeps every write: the bytes on the wire.
    """

    def __init__(self, protocol, isServer):
        super().__init__(protocol, isServer)
        self.written = []

    def write(self, data):
        self.written.append(data)
        super().write(data)

    def wire_since(self, mark):
        return b"".join(self.written[mark:])


class Pair:
    """
    An initiating and a receiving stream connected in memory.
    """

    def __init__(self, receiving=None, initiating=None):
        self.receiving = receiving or Receiving()
        self.initiating = initiating or Initiating()
        self.authenticated = []
        self.errors = []
        self.received = {"initiator": [], "receiver": []}
        self.initiator, self.receiver, self.pump = iosim.connectedServerAndClient(
            lambda: xmlstream.XmlStream(self.receiving),
            lambda: xmlstream.XmlStream(self.initiating),
            clientTransportFactory=lambda p: RecordingTransport(p, False),
            serverTransportFactory=lambda p: RecordingTransport(p, True),
            greet=False,
        )
        self.initiator_wire = self.initiator.transport
        self.receiver_wire = self.receiver.transport
        self.initiator.addObserver(
            xmlstream.STREAM_AUTHD_EVENT, self.authenticated.append
        )
        self.initiator.addObserver(xmlstream.STREAM_ERROR_EVENT, self.errors.append)
        for side, xs in (("initiator", self.initiator), ("receiver", self.receiver)):
            xs.addObserver("/message", self.received[side].append)
        self.pump.flush()

    def marks(self):
        return len(self.initiator_wire.written), len(self.receiver_wire.written)


def message(body, sender="room@conference.fairfax.test/alice"):
    element = domish.Element((NS_SERVER, "message"))
    element["from"] = sender
    element["to"] = "room@mirror.raleigh.test/bob"
    element["type"] = "groupchat"
    element.addElement("body", content=body)
    return element


def bodies(messages):
    return [str(m.body) for m in messages]


def assert_plain_stream(test, pair):
    """
    The stream is set up, uncompressed, and a message crosses it in plain.
    """
    test.assertEqual(1, len(pair.authenticated))
    test.assertIsNone(getattr(pair.initiator, "compression", None))
    mark = pair.marks()[0]
    pair.initiator.send(message("plain as day"))
    pair.pump.flush()
    test.assertEqual(["plain as day"], bodies(pair.received["receiver"]))
    test.assertIn(b"plain as day", pair.initiator_wire.wire_since(mark))


class NegotiationTests(unittest.TestCase):
    """
    The initiator asks, the receiver agrees, the stream restarts compressed.
    """

    def test_stanzas_cross_compressed_both_ways(self):
        pair = Pair()
        self.assertEqual(1, len(pair.authenticated))
        self.assertEqual(2, pair.receiving.headers)
        self.assertEqual([True], pair.receiving.answers)
        out, back = pair.marks()

        pair.initiator.send(message("meet at noon, room 4"))
        pair.receiver.send(message("on my way", sender="bob@raleigh.test"))
        pair.pump.flush()

        received = pair.received["receiver"][0]
        self.assertEqual(["meet at noon, room 4"], bodies(pair.received["receiver"]))
        self.assertEqual("room@conference.fairfax.test/alice", received["from"])
        self.assertEqual("groupchat", received["type"])
        self.assertEqual(["on my way"], bodies(pair.received["initiator"]))
        for wire in (pair.initiator_wire.wire_since(out),
                     pair.receiver_wire.wire_since(back)):
            self.assertNotIn(b"<message", wire)
            self.assertNotIn(b"noon", wire)
            self.assertNotIn(b"my way", wire)

    def test_restarted_stream_header_and_features_are_compressed(self):
        pair = Pair()
        # Written after <compressed/>: the initiator's second header and
        # the receiver's second header and features.
        compressed_at = next(
            i for i, data in enumerate(pair.receiver_wire.written)
            if b"<compressed" in data
        )
        after = pair.receiver_wire.wire_since(compressed_at + 1)
        self.assertTrue(after)
        self.assertNotIn(b"stream", after)
        self.assertNotIn(b"features", after)

    def test_repeated_flow_is_smaller(self):
        """
        A room's message flow, with varied bodies, takes a fraction of its
        plain size on the wire, and the stats count those wire bytes.
        """
        pair = Pair()
        plain = Pair(initiating=Initiating(wanted=False))
        words = ("lunch", "deploy", "ticket", "meeting", "review", "coffee",
                 "tomorrow", "build", "green", "friday", "merge", "release")
        rng = random.Random(7)
        flow = [
            message(" ".join(rng.choice(words) for _ in range(rng.randint(3, 12))),
                    sender="room@conference.fairfax.test/user%d" % (i % 5))
            for i in range(200)
        ]
        marks = pair.marks()[0], plain.marks()[0]
        counted_before = pair.initiator.compression.wire_out
        for stanza in flow:
            pair.initiator.send(stanza)
            plain.initiator.send(stanza)
        pair.pump.flush()
        plain.pump.flush()

        self.assertEqual(bodies(flow), bodies(pair.received["receiver"]))
        self.assertEqual(bodies(flow), bodies(plain.received["receiver"]))
        compressed = len(pair.initiator_wire.wire_since(marks[0]))
        uncompressed = len(plain.initiator_wire.wire_since(marks[1]))
        self.assertLess(compressed * 4, uncompressed)
        stats = pair.initiator.compression
        self.assertEqual(compressed, stats.wire_out - counted_before)
        self.assertEqual(stats.wire_out, pair.receiver.compression.wire_in)
        self.assertEqual(stats.raw_out, pair.receiver.compression.raw_in)
        self.assertGreater(stats.ratio_out(), 4)

    def test_stanza_split_across_reads_arrives_whole(self):
        pair = Pair()
        pair.initiator.send(message("split into single bytes"))
        wire = pair.initiator_wire.getOutBuffer()
        self.assertGreater(len(wire), 10)

        half = len(wire) // 2
        for i in range(half):
            pair.receiver_wire.bufferReceived(wire[i:i + 1])
        self.assertEqual([], pair.received["receiver"])
        for i in range(half, len(wire)):
            pair.receiver_wire.bufferReceived(wire[i:i + 1])

        self.assertEqual(["split into single bytes"],
                         bodies(pair.received["receiver"]))

    def test_over_tls(self):
        """
        Compression over a stream that is already TLS: the wire carries
        neither the XML nor the zlib stream, stanzas arrive intact, and the
        stream still looks like a TLS transport to whoever asks.
        """
        pem = FilePath(twisted.test.__file__).sibling("server.pem").getContent()
        server_tls = ssl.PrivateCertificate.loadPEM(pem).options()
        client_tls = ssl.CertificateOptions()
        receiving, initiating = Receiving(), Initiating()
        streams = {}
        # TLS batches small writes on a timer; the pump advances this one.
        # (An older Twisted writes at once and takes no clock.)
        clock = Clock()
        tls_clock = _takes_clock(TLSMemoryBIOFactory.__init__)
        pump_clock = _takes_clock(iosim.connectedServerAndClient)

        def tls_side(options, is_client, authenticator, name):
            def build():
                factory = Factory.forProtocol(
                    lambda: streams.setdefault(
                        name, xmlstream.XmlStream(authenticator)))
                return TLSMemoryBIOFactory(options, is_client, factory,
                                           **({"clock": clock} if tls_clock else {})
                                           ).buildProtocol(None)
            return build

        client, server, pump = iosim.connectedServerAndClient(
            tls_side(server_tls, False, receiving, "receiver"),
            tls_side(client_tls, True, initiating, "initiator"),
            clientTransportFactory=lambda p: RecordingTransport(p, False),
            **({"clock": clock} if pump_clock else {}))
        pump.flush()
        initiator, receiver = streams["initiator"], streams["receiver"]
        received = []
        receiver.addObserver("/message", received.append)
        self.assertEqual([True], receiving.answers)
        self.assertTrue(ISSLTransport.providedBy(initiator.transport))
        mark = len(client.transport.written)

        initiator.send(message("secret plans"))
        pump.flush()

        self.assertEqual(["secret plans"], bodies(received))
        wire = b"".join(client.transport.written[mark:])
        self.assertNotIn(b"secret", wire)
        self.assertEqual(initiator.compression.wire_out,
                         receiver.compression.wire_in)


class RefusalTests(unittest.TestCase):
    """
    Compression is never required: without it the stream goes on plain.
    """

    def test_refused_goes_on_uncompressed(self):
        pair = Pair(receiving=Receiving(refuse="setup-failed"))
        self.assertEqual(1, pair.receiving.headers)
        assert_plain_stream(self, pair)

    def test_not_wanted_sends_nothing(self):
        pair = Pair(initiating=Initiating(wanted=False))
        self.assertNotIn(b"compress", pair.initiator_wire.wire_since(0))
        assert_plain_stream(self, pair)

    def test_not_offered_sends_nothing(self):
        pair = Pair(receiving=Receiving(offer=False))
        self.assertNotIn(b"compress", pair.initiator_wire.wire_since(0))
        assert_plain_stream(self, pair)


class AnswerTests(unittest.TestCase):
    """
    L{answer_compress} refuses what it cannot do, in XEP-0138's words.
    """

    def request(self, pair, *methods):
        failures = []
        pair.initiator.addObserver(
            "/failure[@xmlns='%s']" % NS_COMPRESS, failures.append)
        element = domish.Element((NS_COMPRESS, "compress"))
        for method in methods:
            element.addElement("method", content=method)
        pair.initiator.send(element)
        pair.pump.flush()
        return [child.name for f in failures for child in f.elements()]

    def test_unsupported_method(self):
        pair = Pair(initiating=Initiating(wanted=False))
        self.assertEqual(["unsupported-method"], self.request(pair, "lzw"))
        self.assertEqual([False], pair.receiving.answers)
        self.assertIsNone(getattr(pair.receiver, "compression", None))
        assert_plain_stream(self, pair)

    def test_no_method(self):
        pair = Pair(initiating=Initiating(wanted=False))
        self.assertEqual(["setup-failed"], self.request(pair))

    def test_second_request_on_compressed_stream(self):
        pair = Pair()
        self.assertEqual(["setup-failed"], self.request(pair, "zlib"))
        self.assertEqual([True, False], pair.receiving.answers)
        pair.initiator.send(message("still compressed"))
        pair.pump.flush()
        self.assertEqual(["still compressed"], bodies(pair.received["receiver"]))


class FeatureTests(unittest.TestCase):
    def test_offered(self):
        features = domish.Element((NS_STREAMS, "features"))
        self.assertFalse(offered(features))
        features.addChild(feature())
        self.assertTrue(offered(features))
        self.assertEqual(
            "<compression xmlns='%s'><method>zlib</method></compression>"
            % NS_FEATURE, feature().toXml())

    def test_other_method_only_is_not_offered(self):
        features = domish.Element((NS_STREAMS, "features"))
        element = features.addElement((NS_FEATURE, "compression"))
        element.addElement("method", content="lzw")
        self.assertFalse(offered(features))
        self.assertFalse(offered({(NS_FEATURE, "compression"): element}))


class InflateBoundTests(unittest.TestCase):
    """
    What arrives compressed is inflated in bounded chunks, and a peer whose
    small input inflates without end is cut off.
    """

    def setUp(self):
        self.patch(compression, "CHUNK_SIZE", 1024)
        self.patch(compression, "MAX_INFLATED_PER_READ", 64 * 1024)

    def test_decompression_bomb_is_bounded(self):
        pair = Pair()
        fed = []
        pair.receiver.rawDataInFn = lambda data: fed.append(len(data))
        bomb = b"<message><body>" + b"a" * (4 * 1024 * 1024)
        pair.initiator.send(bomb)
        wire = pair.initiator_wire.getOutBuffer()
        self.assertLess(len(wire), 16 * 1024)

        pair.receiver_wire.bufferReceived(wire)
        pair.pump.flush()

        self.assertLessEqual(max(fed), 1024)
        self.assertLessEqual(sum(fed), 64 * 1024)
        self.assertEqual([], pair.received["receiver"])
        conditions = [e.value.condition for e in pair.errors]
        self.assertEqual(["policy-violation"], conditions)
        self.assertTrue(pair.receiver_wire.disconnected)

    def test_large_stanza_within_bound_arrives(self):
        pair = Pair()
        body = "b" * (48 * 1024)
        pair.initiator.send(message(body))
        pair.pump.flush()
        self.assertEqual([body], bodies(pair.received["receiver"]))

    def test_garbage_ends_the_stream(self):
        pair = Pair()
        pair.initiator_wire.stream.append(b"this is not zlib at all")
        pair.pump.flush()
        errors = [e.value for e in pair.errors]
        self.assertEqual(["undefined-condition"], [e.condition for e in errors])
        self.assertEqual((NS_COMPRESS, "processing-failed"),
                         (errors[0].appCondition.uri, errors[0].appCondition.name))


def _takes_clock(function):
    return "clock" in inspect.signature(function).parameters
