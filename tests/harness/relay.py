"""
The S2S link between two test sites, through a relay of our own that
counts what crosses it.

Each site's Prosody resolves the other site's domains to one of the
relay's listening addresses; the relay forwards to the real server.  So
every byte between the sites passes here, in one of two directions
(C{fairfax>raleigh}, C{raleigh>fairfax}) whichever side opened the TCP
connection.  For each direction the relay counts bytes, and parses the
XML stream to count and describe every top-level element: stanzas
(message, presence, iq) apart from stream set-up and dialback.

A stream that turns on XEP-0138 zlib (two dmuc ends on a direct link) is
inflated to be parsed: its bytes count as they crossed, compressed, and
its stanzas at their size before compression.  After STARTTLS nothing can
be parsed; only the bytes count.

It runs on the harness's asyncio loop thread; its methods are called from
the test thread.
"""

import asyncio
import threading
import xml.parsers.expat
import zlib

from tests.harness.client import event_loop, run_on_loop

STANZAS = ("message", "presence", "iq")
BARRIER_PREFIX = "harness"
NS_COMPRESS = "http://jabber.org/protocol/compress"
# The element after which this direction's bytes are zlib: the request
# from the initiating side, the answer from the other.
COMPRESSION_STARTS = (NS_COMPRESS + " compress", NS_COMPRESS + " compressed")


class Crossing:
    """One top-level element that crossed the link."""

    def __init__(self, direction, name, attributes, size):
        self.direction = direction
        self.name = name
        self.attributes = attributes
        self.size = size

    @property
    def is_stanza(self):
        return self.name in STANZAS

    @property
    def is_barrier(self):
        return (self.attributes.get("id") or "").startswith(BARRIER_PREFIX)

    def get(self, key, default=None):
        return self.attributes.get(key, default)

    def __repr__(self):
        return "<%s %s %s>" % (self.direction, self.name, self.attributes)


class _StreamCounter:
    """Parses one direction of one TCP connection; measures each top-level
    element in bytes as it was on the wire."""

    def __init__(self, direction, record):
        self.direction = direction
        self.record = record
        self.inflater = None
        self._new_stream()

    def _new_stream(self):
        self.depth = 0
        self.start = None
        self.current = None
        self.buffer = b""
        self.buffer_base = 0     # stream offset of self.buffer[0]
        self.parser = xml.parsers.expat.ParserCreate(namespace_separator=" ")
        self.parser.StartElementHandler = self._start
        self.parser.EndElementHandler = self._end
        self.broken = False
        self.compression_next = False

    def feed(self, data):
        if self.inflater is not None and not self.broken:
            try:
                data = self.inflater.decompress(data)
            except zlib.error:
                self.broken = True
        if self.broken:
            return
        self.buffer += data
        try:
            self.parser.Parse(data, False)
        except xml.parsers.expat.ExpatError:
            self.broken = True
        if self.compression_next:
            # Each side waits for the other after these elements, so
            # nothing compressed shares a read with them; a new stream
            # header follows, compressed.
            self._new_stream()
            self.inflater = zlib.decompressobj()
            return
        keep_from = self.start if self.current is not None else (
            self.buffer_base + len(self.buffer))
        cut = keep_from - self.buffer_base
        if cut > 0:
            self.buffer = self.buffer[cut:]
            self.buffer_base += cut

    def _start(self, name, attributes):
        self.depth += 1
        if self.depth == 2:
            self.start = self.parser.CurrentByteIndex
            self.current = (name.split(" ")[-1], dict(attributes))

    def _end(self, name):
        if self.depth == 2 and self.current is not None:
            # The element ends at the first '>' from where expat reports
            # its end tag (or, for <empty/>, its only tag).
            at = self.parser.CurrentByteIndex - self.buffer_base
            close = self.buffer.find(b">", max(at, 0))
            end = self.buffer_base + (close + 1 if close >= 0 else len(self.buffer))
            local, attributes = self.current
            self.record(Crossing(self.direction, local, attributes, end - self.start))
            self.current = None
            self.compression_next = name in COMPRESSION_STARTS
        self.depth -= 1


class LinkRelay:
    """
    @param routes: listen address -> (target address, direction), e.g.
        C{{("127.0.0.4", 5269): (("127.0.0.3", 5269), "fairfax>raleigh")}}.

    A hostile link on command (issue 4): L{cut} breaks every connection and
    refuses new ones; L{stall} holds the bytes of one or both directions
    (a black hole: TCP would deliver them late), L{shape} adds one-way
    delay and caps bandwidth; L{heal} undoes cuts and stalls.  Counting
    happens when bytes are delivered, so what a cut or stall holds back
    has not crossed.
    """

    def __init__(self, routes):
        self.routes = dict(routes)
        self.directions = sorted({d for _, d in self.routes.values()} |
                                 {_reverse(d) for _, d in self.routes.values()})
        self._servers = []
        self._lock = threading.Lock()
        self._crossings = []
        self._bytes = {}
        self._connections = set()
        self._cut = False
        self._open = {}
        self._delay = {d: 0.0 for d in self.directions}
        self._bandwidth = {d: None for d in self.directions}

    # -- control from the test thread

    def start(self, timeout=5):
        run_on_loop(self._start(), timeout)
        return self

    def stop(self, timeout=5):
        run_on_loop(self._stop(), timeout)

    def cut(self):
        """Break the link: every S2S connection is reset, new ones fail."""
        run_on_loop(self._set_cut(True), 5)

    def stall(self, direction=None):
        """Hold back what crosses in C{direction} (both when C{None})."""
        run_on_loop(self._set_open(direction, False), 5)

    def heal(self):
        """Undo cuts and stalls; held-back bytes flow again."""
        run_on_loop(self._set_cut(False), 5)
        run_on_loop(self._set_open(None, True), 5)

    def shape(self, delay=0.0, bandwidth=None, direction=None):
        """
        @param delay: one-way delay in seconds.
        @param bandwidth: bits per second, or C{None} for no cap.
        """
        for d in self._chosen(direction):
            self._delay[d] = delay
            self._bandwidth[d] = bandwidth

    def crossings(self, stanzas_only=True, include_barriers=False):
        """Everything counted so far (a copy)."""
        with self._lock:
            items = list(self._crossings)
        return [c for c in items
                if (c.is_stanza or not stanzas_only)
                and (include_barriers or not c.is_barrier)]

    def bytes(self, direction):
        """All bytes in one direction, stream set-up and dialback included."""
        with self._lock:
            return self._bytes.get(direction, 0)

    def stanza_bytes(self, direction, include_barriers=False):
        """The bytes of the stanzas counted in one direction."""
        return sum(c.size for c in self.crossings(include_barriers=include_barriers)
                   if c.direction == direction)

    def reset(self):
        """Start counting afresh (the connections stay up).  Done on the
        loop, so that no delivery has its bytes counted on one side of
        the reset and its stanzas on the other."""
        async def clear():
            with self._lock:
                self._crossings = []
                self._bytes = {}
        run_on_loop(clear(), 5)

    # -- the loop side

    def _chosen(self, direction):
        return self.directions if direction is None else [direction]

    def _gate(self, direction):
        if direction not in self._open:
            self._open[direction] = asyncio.Event()
            self._open[direction].set()
        return self._open[direction]

    async def _set_open(self, direction, is_open):
        for d in self._chosen(direction):
            gate = self._gate(d)
            gate.set() if is_open else gate.clear()

    async def _set_cut(self, cut):
        self._cut = cut
        if cut:
            for writer in list(self._connections):
                writer.transport.abort()

    async def _start(self):
        for (host, port), (target, direction) in self.routes.items():
            server = await asyncio.start_server(
                lambda r, w, t=target, d=direction: self._accept(r, w, t, d),
                host, port, reuse_address=True)
            self._servers.append(server)

    async def _stop(self):
        for server in self._servers:
            server.close()
        for writer in list(self._connections):
            writer.transport.abort()
        for server in self._servers:
            await server.wait_closed()
        self._servers = []

    async def _accept(self, reader, writer, target, direction):
        if self._cut:
            writer.transport.abort()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(*target)
        except OSError:
            writer.close()
            return
        self._connections.update((writer, up_writer))
        back = _reverse(direction)
        await asyncio.gather(
            self._pump(reader, up_writer, _StreamCounter(direction, self._record), direction),
            self._pump(up_reader, writer, _StreamCounter(back, self._record), back),
            return_exceptions=True)
        self._connections.difference_update((writer, up_writer))

    async def _pump(self, reader, writer, counter, direction):
        """Read as it comes; deliver as the link conditions allow, in order.

        The link model: a chunk goes onto the wire when it has arrived and
        the chunk before it is off (bandwidth), and is delivered the delay
        later.  One sleep to that time per chunk: the loop's lateness on
        each wake-up (a millisecond or two) is paid once, not per stage."""
        queue = asyncio.Queue()
        loop = asyncio.get_running_loop()

        async def deliver():
            wire_free = 0.0    # when the previous chunk was off the wire
            while True:
                arrived, data = await queue.get()
                if data is None:
                    break
                gate = self._gate(direction)
                if not gate.is_set():
                    await gate.wait()
                    # What a stall held goes out at the link's pace from now.
                    wire_free = max(wire_free, loop.time() - self._delay[direction])
                on_wire = max(arrived, wire_free)
                bandwidth = self._bandwidth[direction]
                wire_free = on_wire + (len(data) * 8.0 / bandwidth if bandwidth else 0.0)
                wait = wire_free + self._delay[direction] - loop.time()
                if wait > 0:
                    await asyncio.sleep(wait)
                await self._gate(direction).wait()
                with self._lock:
                    self._bytes[direction] = self._bytes.get(direction, 0) + len(data)
                counter.feed(data)
                writer.write(data)
                await writer.drain()

        delivering = asyncio.ensure_future(deliver())
        try:
            while not delivering.done():
                data = await reader.read(65536)
                queue.put_nowait((loop.time(), data or None))
                if not data:
                    break
            await delivering
        finally:
            delivering.cancel()
            writer.close()

    def _record(self, crossing):
        with self._lock:
            self._crossings.append(crossing)


def _reverse(direction):
    return "%s>%s" % tuple(reversed(direction.split(">")))


def start_relay(testcase, routes):
    relay = LinkRelay(routes)
    event_loop()
    relay.start()
    testcase.addCleanup(relay.stop)
    return relay
