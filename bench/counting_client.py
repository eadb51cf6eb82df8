"""
A minimal XMPP client that only counts what it receives, for the
throughput benchmark.

Fifty slixmpp clients in the benchmark's own process would parse every
delivered stanza in Python, on the same two cores as the servers, and the
benchmark would measure them rather than the room.  This client speaks
just enough XMPP to log in (SASL PLAIN, resource binding, a MUC join) and
then counts, in the raw bytes, the bodies that start with a marker.  It
runs on the harness's client loop (L{tests.harness.client.event_loop}).
"""

import asyncio
import base64
import re
import threading
import time

from tests.harness.client import run_on_loop

STREAM = ("<?xml version='1.0'?><stream:stream to='%s' xmlns='jabber:client'"
          " xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>")
SASL = "urn:ietf:params:xml:ns:xmpp-sasl"
BIND = "urn:ietf:params:xml:ns:xmpp-bind"
# How Prosody writes the status code of a self-presence.
SELF_PRESENCE = b"<status code='110'/>"


class CountingClient:
    """
    One logged-in session.  L{count} is how many C{<body>MARKER...}
    elements arrived since L{connect}; L{last_arrival} when the last did.
    """

    def __init__(self, user, domain, password, host, port, marker=b"<body>t-"):
        self.user, self.domain, self.password = user, domain, password
        self.host, self.port = host, port
        self.marker = marker
        self.count = 0
        self.joins = 0
        self.last_arrival = None
        self._reader = self._writer = None
        self._counting = None
        self._changed = threading.Condition()

    # -- from the benchmark's thread

    def connect(self, timeout=10):
        run_on_loop(self._connect(), timeout)
        return self

    def send(self, text):
        run_on_loop(self._send(text), 5)

    def wait_count(self, count, timeout):
        """Block until L{count} reaches C{count}; return whether it did."""
        return self._wait(lambda: self.count >= count, timeout)

    def wait_joined(self, timeout, rooms=1):
        """Block until self-presences (status 110) came from C{rooms}
        rooms; whether they did."""
        return self._wait(lambda: self.joins >= rooms, timeout)

    def _wait(self, condition, timeout):
        deadline = time.monotonic() + timeout
        with self._changed:
            while not condition():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._changed.wait(remaining)
        return True

    def close(self):
        run_on_loop(self._close(), 5)

    # -- on the loop

    async def _send(self, text):
        self._writer.write(text.encode("utf-8"))
        await self._writer.drain()

    async def _connect(self):
        self._reader, self._writer = await asyncio.open_connection(self.host, self.port)
        await self._send(STREAM % self.domain)
        await self._read_until(b"</stream:features>")
        token = base64.b64encode(("\0%s\0%s" % (self.user, self.password)).encode()).decode()
        await self._send("<auth xmlns='%s' mechanism='PLAIN'>%s</auth>" % (SASL, token))
        reply = await self._read_until(b"success", b"failure")
        if b"failure" in reply:
            raise RuntimeError("%s@%s: authentication failed" % (self.user, self.domain))
        await self._send(STREAM % self.domain)
        await self._read_until(b"</stream:features>")
        await self._send("<iq type='set' id='bind'><bind xmlns='%s'><resource>bench</resource>"
                         "</bind></iq>" % BIND)
        await self._read_until(b"</iq>")
        self._counting = asyncio.ensure_future(self._count())

    async def _read_until(self, *endings):
        data = b""
        while not any(ending in data for ending in endings):
            chunk = await self._reader.read(65536)
            if not chunk:
                raise RuntimeError("%s@%s: stream closed during login" % (self.user, self.domain))
            data += chunk
        return data

    async def _count(self):
        # Keep the end of each chunk: a marker may straddle two reads.  A
        # match counts only if it ends in the new chunk.
        keep = max(len(self.marker), len(SELF_PRESENCE)) - 1
        body, joined = re.compile(re.escape(self.marker)), re.compile(re.escape(SELF_PRESENCE))
        tail = b""
        while True:
            chunk = await self._reader.read(262144)
            if not chunk:
                return
            data = tail + chunk
            found = sum(1 for m in body.finditer(data) if m.end() > len(tail))
            joins = sum(1 for m in joined.finditer(data) if m.end() > len(tail))
            tail = data[-keep:]
            if found or joins:
                with self._changed:
                    self.count += found
                    self.joins += joins
                    self.last_arrival = time.monotonic()
                    self._changed.notify_all()

    async def _close(self):
        if self._writer is not None:
            self._writer.write(b"</stream:stream>")
            self._writer.close()
        if self._counting is not None:
            self._counting.cancel()
