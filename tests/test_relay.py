"""
The hostile-link relay itself, on plain TCP through loopback: it forwards
and counts, and when told to it cuts, stalls, delays and throttles.
Timing assertions are lower bounds only (nothing can arrive early), so
they hold on a loaded machine.
"""

import socket
import threading
import time
import zlib

from twisted.trial import unittest

from tests.harness.relay import LinkRelay
from tests.harness.prosody import free_ports


class EchoServer:
    """Echoes what it gets: the far side of the link."""

    def __init__(self, ip):
        self.socket = socket.socket()
        self.socket.bind((ip, 0))
        self.socket.listen()
        self.address = self.socket.getsockname()
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                connection, _ = self.socket.accept()
            except OSError:
                return
            threading.Thread(target=self._echo, args=(connection,), daemon=True).start()

    @staticmethod
    def _echo(connection):
        with connection:
            while True:
                data = connection.recv(65536)
                if not data:
                    return
                connection.sendall(data)

    def close(self):
        self.socket.close()


class RelayTests(unittest.TestCase):

    def setUp(self):
        self.echo = EchoServer("127.0.0.1")
        self.addCleanup(self.echo.close)
        port, = free_ports("127.0.0.1", 1)
        self.listen = ("127.0.0.1", port)
        self.relay = LinkRelay({self.listen: (self.echo.address, "fairfax>raleigh")})
        self.relay.start()
        self.addCleanup(self.relay.stop)

    def round_trip(self, payload, timeout=10):
        with socket.create_connection(self.listen, timeout=timeout) as s:
            start = time.monotonic()
            s.sendall(payload)
            got = b""
            while len(got) < len(payload):
                chunk = s.recv(65536)
                if not chunk:
                    break
                got += chunk
            return got, time.monotonic() - start

    def test_forwards_and_counts_stanzas(self):
        stanza = b"<stream:stream xmlns:stream='http://etherx.jabber.org/streams'>" \
                 b"<message to='a@b'><body>hi</body></message>"
        got, _ = self.round_trip(stanza)
        self.assertEqual(got, stanza)
        crossed = [(c.direction, c.name, c.size) for c in self.relay.crossings()]
        message = len(b"<message to='a@b'><body>hi</body></message>")
        self.assertEqual(sorted(crossed), [("fairfax>raleigh", "message", message),
                                           ("raleigh>fairfax", "message", message)])
        self.assertEqual(self.relay.bytes("fairfax>raleigh"), len(stanza))

    def test_counts_stanzas_inside_a_zlib_stream(self):
        # As two dmuc ends do (XEP-0138): after <compress/> the stream
        # restarts inside zlib; the relay counts compressed bytes on the
        # wire and stanzas at their inflated size.
        header = b"<stream:stream xmlns:stream='http://etherx.jabber.org/streams'>"
        request = b"<compress xmlns='http://jabber.org/protocol/compress'>" \
                  b"<method>zlib</method></compress>"
        stanza = b"<message to='a@b'><body>" + b"hello " * 50 + b"</body></message>"
        deflate = zlib.compressobj()
        compressed = deflate.compress(header + stanza) + deflate.flush(zlib.Z_SYNC_FLUSH)
        with socket.create_connection(self.listen, timeout=10) as s:
            s.sendall(header + request)
            self.receive(s, len(header + request))
            s.sendall(compressed)
            self.receive(s, len(compressed))
        crossed = [(c.direction, c.name, c.size) for c in self.relay.crossings()]
        self.assertEqual(crossed.count(("fairfax>raleigh", "message", len(stanza))), 1)
        self.assertEqual(self.relay.bytes("fairfax>raleigh"),
                         len(header + request + compressed))
        self.assertLess(len(compressed), len(stanza) / 3)

    @staticmethod
    def receive(s, count):
        got = b""
        while len(got) < count:
            chunk = s.recv(65536)
            if not chunk:
                break
            got += chunk
        return got

    def test_delay(self):
        self.relay.shape(delay=0.25)
        _, elapsed = self.round_trip(b"x")
        self.assertGreaterEqual(elapsed, 0.5)   # one delay each way

    def test_bandwidth(self):
        self.relay.shape(bandwidth=9600)
        _, elapsed = self.round_trip(b"x" * 1200)   # 9600 bits each way
        self.assertGreaterEqual(elapsed, 2.0)

    def test_stall_holds_and_heal_delivers(self):
        self.relay.stall("raleigh>fairfax")
        with socket.create_connection(self.listen, timeout=5) as s:
            s.sendall(b"held")
            s.settimeout(0.5)
            self.assertRaises(socket.timeout, s.recv, 10)
            self.relay.heal()
            s.settimeout(5)
            self.assertEqual(s.recv(10), b"held")

    def test_cut_resets_and_refuses(self):
        with socket.create_connection(self.listen, timeout=5) as s:
            self.assertEqual(self.round_trip(b"ok")[0], b"ok")
            self.relay.cut()
            s.settimeout(5)
            try:
                data = s.recv(10)
            except ConnectionResetError:
                data = b""
            self.assertEqual(data, b"")
        with socket.create_connection(self.listen, timeout=5) as s:
            s.settimeout(5)
            try:
                data = s.recv(10)
            except ConnectionResetError:
                data = b""
            self.assertEqual(data, b"")       # refused while cut
        self.relay.heal()
        self.assertEqual(self.round_trip(b"back")[0], b"back")
