"""
XEP-0138 stream compression (zlib) for dmuc's own S2S streams.

Compression is negotiated after authentication, only between dmuc peers
that are configured for it.  The receiving side adds L{feature()} to its
stream features and answers C{<compress/>} with L{answer_compress}; the
initiating side puts a L{CompressionInitializer} in its initializers.  Once
C{<compressed/>} has crossed, both sides call L{start_compression} and the
stream restarts, compressed, as it does after STARTTLS.

Why one zlib context per stream direction, flushed per stanza: what dmuc
sends between two sites is the same few stanza shapes again and again
(presences with the same JIDs, C{<fmuc/>} elements, room addresses).  A
context that lives as long as the stream keeps its 32 KiB window of what
came before, so each new stanza is mostly back-references: on dmuc's
message flow this measured 15 to 18 times fewer bytes (8 times with varied
message bodies), against 1.7 times when each stanza is compressed alone.
C{Z_SYNC_FLUSH} after each write ends every stanza on a byte boundary, so
the peer can parse it at once; it costs 4 to 5 bytes per write.

What compression exposes: the length of what is sent now depends on how
much of it repeats what was sent before on the same stream.  Someone who
can put text of their choosing on the stream (a message body, a nick) and
watch the encrypted lengths can guess, a byte at a time, other things the
stream carries (CRIME- and BREACH-like attacks): here, the real JIDs that
rooms hide from occupants, other users' messages and nicks.  TLS does not
hide lengths.  This is why XEP-0138 is obsolete for general use and why
dmuc offers it only to configured dmuc peers, with a switch per peer to
turn it off.

Decompression is bounded: input is inflated at most L{CHUNK_SIZE} bytes at a
time and fed to the XML parser chunk by chunk, so a small compressed input
(a "zip bomb") never becomes one large allocation; a single read that
inflates to more than L{MAX_INFLATED_PER_READ} bytes ends the stream with a
C{policy-violation} stream error.
"""

import zlib

from twisted.internet import defer
from twisted.logger import Logger
from twisted.words.protocols.jabber import error, xmlstream
from twisted.words.xish import domish
from zope.interface import providedBy

log = Logger(namespace="dmuc.s2s")

NS_FEATURE = "http://jabber.org/features/compress"
NS_COMPRESS = "http://jabber.org/protocol/compress"

METHOD = "zlib"

# Largest piece inflated (and handed to the XML parser) in one step.
CHUNK_SIZE = 64 * 1024

# One read of at most 64 KiB (TCP) or 32 KiB (TLS) that inflates to more
# than this is a bomb, not XMPP: real dmuc traffic compresses about 20:1.
MAX_INFLATED_PER_READ = 16 * 1024 * 1024


def feature():
    """
    The stream feature a receiving server offers after authentication.

    @return: C{<compression xmlns=NS_FEATURE><method>zlib</method>
        </compression>}
    @rtype: L{domish.Element}
    """
    element = domish.Element((NS_FEATURE, "compression"))
    element.addElement("method", content=METHOD)
    return element


def offered(features):
    """
    Whether a peer's stream features offer zlib compression.

    @param features: the received C{<stream:features/>} element, or an
        L{xmlstream.XmlStream.features} dictionary.
    @rtype: C{bool}
    """
    if isinstance(features, dict):
        element = features.get((NS_FEATURE, "compression"))
    else:
        element = next(features.elements(NS_FEATURE, "compression"), None)
    return element is not None and METHOD in _methods(element, NS_FEATURE)


def _methods(element, uri):
    """
    The method names listed in a C{<compression/>} or C{<compress/>}.
    """
    return [str(method).strip() for method in element.elements(uri, "method")]


class CompressionStats:
    """
    Byte counts of a compressed stream, for logs and the benchmark.

    @ivar raw_out: bytes the stream wrote, before compression.
    @ivar wire_out: compressed bytes handed to the transport.
    @ivar wire_in: compressed bytes received from the transport.
    @ivar raw_in: bytes they inflated to, handed to the XML parser.
    """

    def __init__(self):
        self.raw_out = 0
        self.wire_out = 0
        self.raw_in = 0
        self.wire_in = 0

    @staticmethod
    def _ratio(raw, wire):
        return raw / wire if wire else None

    def ratio_out(self):
        """
        @return: raw bytes per wire byte sent, or C{None} before any.
        @rtype: C{float} or C{None}
        """
        return self._ratio(self.raw_out, self.wire_out)

    def ratio_in(self):
        """
        @return: raw bytes per wire byte received, or C{None} before any.
        @rtype: C{float} or C{None}
        """
        return self._ratio(self.raw_in, self.wire_in)

    def __repr__(self):
        return "<CompressionStats out %d->%d in %d->%d>" % (
            self.raw_out,
            self.wire_out,
            self.wire_in,
            self.raw_in,
        )


class _CompressingTransport:
    """
    Stands in for a stream's transport: compresses what is written, passes
    everything else (TLS, addresses, loseConnection, producers) through.

    It looks up the wrapped transport's attributes on each use, so a
    transport that starts TLS in place keeps working under it.
    """

    def __init__(self, transport, stats):
        self._transport = transport
        self._stats = stats
        self._compressor = zlib.compressobj()

    @property
    def __providedBy__(self):
        # Code that asks ISSLTransport.providedBy(xs.transport) must get
        # the wrapped transport's answer, now and after a later startTLS.
        return providedBy(self._transport)

    def write(self, data):
        if not data:
            return
        compressed = self._compressor.compress(data)
        compressed += self._compressor.flush(zlib.Z_SYNC_FLUSH)
        self._stats.raw_out += len(data)
        self._stats.wire_out += len(compressed)
        self._transport.write(compressed)

    def writeSequence(self, data):
        # One flush for the whole sequence: it is one write for the peer.
        self.write(b"".join(data))

    def __getattr__(self, name):
        if name == "_transport":
            # Not set yet (copy, pickle): do not recurse.
            raise AttributeError(name)
        return getattr(self._transport, name)


class _Inflater:
    """
    Inflates a stream's input and feeds the XML parser, a bounded chunk at
    a time.
    """

    def __init__(self, xs, deliver, stats, chunk_size, max_per_read):
        self._xs = xs
        self._deliver = deliver
        self._stats = stats
        self._chunk_size = chunk_size
        self._max_per_read = max_per_read
        self._decompressor = zlib.decompressobj()
        self._failed = False

    def _closing(self):
        return (
            self._failed
            or self._xs.stream is None
            or getattr(self._xs.transport, "disconnecting", False)
        )

    def data_received(self, data):
        self._stats.wire_in += len(data)
        inflated = 0
        pending = data
        while not self._closing():
            try:
                chunk = self._decompressor.decompress(pending, self._chunk_size)
            except zlib.error as e:
                return self._fail("processing-failed", "cannot inflate: %s" % e)
            pending = self._decompressor.unconsumed_tail
            inflated += len(chunk)
            if inflated > self._max_per_read:
                return self._fail(
                    "policy-violation", "one read inflated past %d bytes" % inflated
                )
            if chunk:
                self._stats.raw_in += len(chunk)
                self._deliver(chunk)
            # A full chunk may leave output inside zlib even when all the
            # input is consumed: ask again until a short chunk comes out.
            if not pending and len(chunk) < self._chunk_size:
                break
        if self._decompressor.unused_data:
            self._fail("processing-failed", "data after the end of the zlib stream")

    def _fail(self, condition, reason):
        self._failed = True
        log.warn(
            "Compressed stream with {peer} closed: {reason}",
            peer=_peer(self._xs),
            reason=reason,
        )
        if condition == "processing-failed":
            # XEP-0138: a compression failure on an established stream.
            app = domish.Element((NS_COMPRESS, "processing-failed"))
            err = error.StreamError("undefined-condition", appCondition=app)
        else:
            err = error.StreamError(condition, text=reason)
        self._xs.sendStreamError(err)


def _peer(xs):
    other = getattr(xs, "otherEntity", None)
    return other.full() if other is not None else "?"


def start_compression(xs, chunk_size=None, max_inflated_per_read=None):
    """
    Compress everything C{xs} writes and inflate everything it receives
    from now on.

    Wraps C{xs.transport} (plain TCP or already TLS) and C{xs.dataReceived};
    the caller resets the XML parser (C{xs.reset()}) as the protocol says.

    @param xs: an authenticated stream.
    @type xs: L{xmlstream.XmlStream}
    @param chunk_size: largest piece inflated and parsed in one step
        (default L{CHUNK_SIZE}).
    @param max_inflated_per_read: bound on what one read may inflate to
        (default L{MAX_INFLATED_PER_READ}).
    @return: the stream's byte counts, also kept as C{xs.compression}.
    @rtype: L{CompressionStats}
    @raise ValueError: if the stream is compressed already.
    """
    if getattr(xs, "compression", None) is not None:
        raise ValueError("stream is already compressed")
    stats = CompressionStats()
    inflater = _Inflater(
        xs,
        xs.dataReceived,
        stats,
        chunk_size or CHUNK_SIZE,
        max_inflated_per_read or MAX_INFLATED_PER_READ,
    )
    xs.transport = _CompressingTransport(xs.transport, stats)
    xs.dataReceived = inflater.data_received
    xs.compression = stats
    return stats


def _failure(condition):
    element = domish.Element((NS_COMPRESS, "failure"))
    element.addElement(condition)
    return element


def answer_compress(xs, element):
    """
    Answer a C{<compress/>} request received on an authenticated stream.

    The caller decides whether this peer may compress; this answers the
    request itself.  After C{<compressed/>} the parser is reset so the
    initiator's new stream header is read inflated; the caller's
    authenticator answers that header as after any stream restart.

    @param element: the received C{<compress xmlns=NS_COMPRESS/>}.
    @return: whether compression started.
    @rtype: C{bool}
    """
    methods = _methods(element, NS_COMPRESS)
    if getattr(xs, "compression", None) is not None:
        condition = "setup-failed"
    elif not methods:
        condition = "setup-failed"
    elif METHOD not in methods:
        condition = "unsupported-method"
    else:
        condition = None
    if condition is not None:
        log.info(
            "Refused compression {methods} from {peer}: {condition}",
            methods=methods,
            peer=_peer(xs),
            condition=condition,
        )
        xs.send(_failure(condition))
        return False
    # <compressed/> itself still goes out uncompressed.
    xs.send(domish.Element((NS_COMPRESS, "compressed")))
    start_compression(xs)
    xs.reset()
    return True


class CompressionInitializer(xmlstream.BaseFeatureInitiatingInitializer):
    """
    Negotiates zlib compression for the initiating side of a stream.

    Compression is never required: if the peer does not offer it, or
    refuses, the stream goes on uncompressed.

    @ivar wanted: whether to ask for compression when it is offered (off
        for a peer the operator has turned it off for).
    @type wanted: C{bool}
    """

    feature = (NS_FEATURE, "compression")

    def __init__(self, xs, wanted=True):
        super().__init__(xs, required=False)
        self.wanted = wanted
        self._deferred = None

    def start(self):
        """
        Ask for zlib, if wanted and offered.

        @return: C{None} when not asking, else a L{defer.Deferred} that
            fires with L{xmlstream.Reset} once the compressed stream has
            restarted, or with C{None} if the peer refused.
        """
        if not self.wanted or not offered(self.xmlstream.features):
            return None
        if getattr(self.xmlstream, "compression", None) is not None:
            return None
        self._deferred = defer.Deferred()
        self.xmlstream.addOnetimeObserver(
            "/compressed[@xmlns='%s']" % NS_COMPRESS, self._on_compressed
        )
        self.xmlstream.addOnetimeObserver(
            "/failure[@xmlns='%s']" % NS_COMPRESS, self._on_failure
        )
        request = domish.Element((NS_COMPRESS, "compress"))
        request.addElement("method", content=METHOD)
        self.xmlstream.send(request)
        return self._deferred

    def _on_compressed(self, element):
        xs = self.xmlstream
        xs.removeObserver("/failure[@xmlns='%s']" % NS_COMPRESS, self._on_failure)
        start_compression(xs)
        xs.reset()
        xs.sendHeader()
        self._deferred.callback(xmlstream.Reset)

    def _on_failure(self, element):
        xs = self.xmlstream
        xs.removeObserver(
            "/compressed[@xmlns='%s']" % NS_COMPRESS, self._on_compressed
        )
        condition = next((child.name for child in element.elements()), None)
        log.warn(
            "{peer} refused compression ({condition}); going on uncompressed",
            peer=_peer(xs),
            condition=condition,
        )
        self._deferred.callback(None)
