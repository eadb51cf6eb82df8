"""
Real XMPP clients (slixmpp) driven synchronously from test methods.

slixmpp is asyncio-based while our tests are synchronous trial methods, so
every client of the test process lives on one asyncio event loop running
in a daemon thread (started on first use).  The public methods of
L{Client} are called from the test thread; they hand work to that loop and
block until it is done or a timeout expires.

A client records every stanza it receives after session start (message,
presence and iq, in arrival order) as a copy of the raw
L{xml.etree.ElementTree.Element}, before slixmpp's handlers see (and
possibly reply to, or rewrite) it.  Tests take stanzas out of that inbox
with L{Client.wait_for}, L{Client.take_all}, L{Client.iq} and
L{Client.barrier}.
"""

import asyncio
import copy
import itertools
import ssl
import threading
import time

import slixmpp

from tests.harness.xml import CLIENT_NS, NS, parse, qname, tostring

STANZA_TAGS = frozenset(
    qname(CLIENT_NS, kind) for kind in ("message", "presence", "iq"))

#: The default SASL mechanism.  slixmpp computes SCRAM's 4096 PBKDF2
#: rounds in pure Python, about 35 ms per login; PLAIN takes 5 ms, and
#: the test servers allow it in plain text.
DEFAULT_MECHANISM = "PLAIN"
#: Only disco: it answers queries like a real client and sends nothing on
#: its own.  Not xep_0045: it pulls in entity caps (xep_0115), which sends
#: disco#info queries of its own (to the server at login, to peers whose
#: presence carries caps), and their replies would land in the inbox.
DEFAULT_PLUGINS = ("xep_0030",)

_loop = None
_loop_lock = threading.Lock()
_ids = itertools.count(1)


class ClientError(Exception):
    """A client could not connect, authenticate or send."""


def event_loop():
    """Return the shared client event loop, starting its thread if needed."""
    global _loop
    with _loop_lock:
        if _loop is None:
            loop = asyncio.new_event_loop()
            thread = threading.Thread(
                target=loop.run_forever, name="slixmpp-loop", daemon=True)
            thread.start()
            _loop = loop
        return _loop


def run_on_loop(coroutine, timeout):
    """
    Run a coroutine on the client loop and return its result.

    @raise TimeoutError: if it takes longer than C{timeout} seconds (the
        coroutine is then cancelled).
    """
    future = asyncio.run_coroutine_threadsafe(coroutine, event_loop())
    try:
        return future.result(timeout)
    except TimeoutError:
        future.cancel()
        raise


def call_on_loop(function, *args, timeout=5):
    """Call a plain function on the client loop and return its result."""
    async def call():
        return function(*args)
    return run_on_loop(call(), timeout)


def unique_id(prefix="harness"):
    """Return a stanza id that is unique in this test process."""
    return "%s-%d" % (prefix, next(_ids))


class Inbox:
    """
    The stanzas a client received and no test has taken yet.

    Filled on the loop thread, read on the test thread.
    """

    def __init__(self):
        self._stanzas = []
        self._closed = None
        self._condition = threading.Condition()

    def put(self, stanza):
        with self._condition:
            self._stanzas.append(stanza)
            self._condition.notify_all()

    def close(self, reason):
        """Note that no more stanzas will come, so waits can end early."""
        with self._condition:
            self._closed = reason or "stream closed"
            self._condition.notify_all()

    def take(self, predicate, timeout, owner="client"):
        """
        Remove and return the first stanza matching C{predicate}.

        @raise AssertionError: if none arrives within C{timeout} seconds,
            or the stream closes first; the message lists the inbox.
        """
        deadline = time.monotonic() + timeout
        with self._condition:
            while True:
                for index, stanza in enumerate(self._stanzas):
                    if predicate(stanza):
                        return self._stanzas.pop(index)
                remaining = deadline - time.monotonic()
                if self._closed is not None or remaining <= 0:
                    break
                self._condition.wait(remaining)
            why = ("stream closed (%s)" % (self._closed,)
                   if self._closed is not None
                   else "timeout after %s s" % (timeout,))
            raise AssertionError(
                "%s: no matching stanza (%s); inbox holds %d:\n%s"
                % (owner, why, len(self._stanzas), self._dump()))

    def take_all(self):
        with self._condition:
            stanzas, self._stanzas = self._stanzas, []
            return stanzas

    def _dump(self):
        return "\n".join("  [%d] %s" % (index, tostring(stanza))
                         for index, stanza in enumerate(self._stanzas)) \
            or "  (empty)"


class _RecordingXMPP(slixmpp.ClientXMPP):
    """A ClientXMPP that copies each incoming stanza into an L{Inbox}."""

    def __init__(self, jid, password, inbox, loop, mechanism):
        # Prosody's plain-text test setup (tests/harness/prosody.py): no TLS,
        # so slixmpp must be allowed PLAIN and SCRAM without it.
        mechanisms = {"unencrypted_plain": True, "unencrypted_scram": True}
        if mechanism:
            mechanisms["use_mech"] = mechanism
        # A bare context: TLS is never used, and slixmpp's default one
        # loads the system CA store, about 60 ms per client.
        super().__init__(jid, password,
                         plugin_config={"feature_mechanisms": mechanisms},
                         ssl_context=ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT),
                         loop=loop)
        self.inbox = inbox
        self.listeners = []
        self.recording = False
        self.enable_direct_tls = False
        self.enable_starttls = False
        self.enable_plaintext = True

    def incoming_filter(self, xml):
        # The earliest hook, before stanza objects exist: slixmpp's replies
        # (e.g. to an unhandled iq) mutate the received element in place.
        if self.recording and xml.tag in STANZA_TAGS:
            for listener in self.listeners:
                listener(xml)
            self.inbox.put(copy.deepcopy(xml))
        return xml


class Client:
    """
    A connected, authenticated slixmpp client with a stanza inbox.

    No initial presence is sent; see L{send_initial_presence}.

    @ivar jid: the full JID bound by the server.
    @ivar xmpp: the underlying C{slixmpp.ClientXMPP} (only touch it on the
        client loop, e.g. via L{call_on_loop}).
    """

    def __init__(self, xmpp):
        self.xmpp = xmpp
        self.inbox = xmpp.inbox
        self.jid = str(xmpp.boundjid)
        self._connected = True

    @classmethod
    def connect(cls, jid, password, host, port, timeout=10,
                plugins=DEFAULT_PLUGINS, mechanism=DEFAULT_MECHANISM):
        """
        Connect in plain text to C{host:port}, authenticate and bind.

        @param jid: the account's JID, optionally with a resource.
        @param plugins: slixmpp plugins to register.
        @param mechanism: the SASL mechanism, or C{None} to let slixmpp
            choose the strongest offered (SCRAM).
        @raise ClientError: if the connection or authentication fails or
            takes longer than C{timeout} seconds.
        @return: the connected L{Client}.
        """
        inbox = Inbox()
        try:
            xmpp = run_on_loop(
                _connect(jid, password, host, port, inbox, plugins,
                         mechanism),
                timeout)
        except TimeoutError:
            raise ClientError("%s: no session with %s:%s after %s s"
                              % (jid, host, port, timeout)) from None
        return cls(xmpp)

    @classmethod
    def connect_many(cls, jids, password, host, port, timeout=60):
        """
        Connect several accounts of one server at once (the benchmarks
        log in a hundred users); arguments as for L{connect}.
        """
        async def connect_all():
            return await asyncio.gather(*[
                _connect(jid, password, host, port, Inbox(), DEFAULT_PLUGINS,
                         DEFAULT_MECHANISM) for jid in jids])
        try:
            sessions = run_on_loop(connect_all(), timeout)
        except TimeoutError:
            raise ClientError("%d clients: no sessions with %s:%s after %s s"
                              % (len(jids), host, port, timeout)) from None
        return [cls(xmpp) for xmpp in sessions]

    def __repr__(self):
        return "<Client %s>" % (self.jid,)

    def send(self, stanza):
        """
        Send one stanza.

        @param stanza: an Element, or stanza text in which elements without
            C{xmlns} are in C{jabber:client}, e.g.
            C{"<presence to='room@muc.example/nick'>"
            "<x xmlns='http://jabber.org/protocol/muc'/></presence>"}.
        @return: the Element sent.
        """
        if isinstance(stanza, str):
            stanza = parse(stanza)
        text = tostring(stanza)
        call_on_loop(self.xmpp.send_raw, text)
        return stanza

    def send_initial_presence(self):
        """Send available presence to the server."""
        self.send("<presence/>")

    def listen(self, listener):
        """
        Also call C{listener(element)} for every stanza received from now
        on, on the client loop thread, as it arrives (the benchmarks time
        and count deliveries this way).  It must not change the element.
        """
        call_on_loop(self.xmpp.listeners.append, listener)

    def wait_for(self, predicate, timeout=5):
        """
        Return the first inbox stanza for which C{predicate} is true.

        Only that stanza is removed; earlier ones stay in the inbox.

        @param predicate: a callable taking an Element (see
            L{tests.harness.xml.matcher}).
        @raise AssertionError: if none arrives within C{timeout} seconds;
            the message shows the inbox.
        """
        return self.inbox.take(predicate, timeout, owner=self.jid)

    def take_all(self):
        """Remove and return every stanza in the inbox, oldest first."""
        return self.inbox.take_all()

    def iq(self, stanza, timeout=5):
        """
        Send an iq and return its C{result} or C{error} reply.

        An C{id} is added if the iq has none.  The reply is removed from
        the inbox; other stanzas stay.
        """
        if isinstance(stanza, str):
            stanza = parse(stanza)
        if not stanza.get("id"):
            stanza.set("id", unique_id())
        iq_id = stanza.get("id")
        self.send(stanza)
        return self.wait_for(
            lambda reply: (reply.tag == qname(CLIENT_NS, "iq")
                           and reply.get("id") == iq_id
                           and reply.get("type") in ("result", "error")),
            timeout)

    def barrier(self, to, timeout=5):
        """
        Wait until C{to} has answered a disco#info request.

        Every stanza C{to} sent this client before its reply is then in
        the inbox, since stanzas between two entities keep their order.
        The reply itself is removed from the inbox and returned.
        """
        iq = parse("<iq type='get'><query xmlns='%s'/></iq>"
                   % (NS.DISCO_INFO,))
        iq.set("to", to)
        return self.iq(iq, timeout)

    def disconnect(self, timeout=5):
        """Close the stream and wait until it is closed; idempotent."""
        if not self._connected:
            return
        self._connected = False
        try:
            run_on_loop(_disconnect(self.xmpp, timeout), timeout + 1)
        except TimeoutError:
            call_on_loop(self.xmpp.abort)


async def _connect(jid, password, host, port, inbox, plugins, mechanism):
    xmpp = _RecordingXMPP(jid, password, inbox, asyncio.get_running_loop(),
                          mechanism)
    for plugin in plugins:
        xmpp.register_plugin(plugin)
    outcome = asyncio.get_running_loop().create_future()

    def settle(error=None):
        if outcome.done():
            return
        if error is None:
            outcome.set_result(None)
        else:
            outcome.set_exception(ClientError("%s: %s" % (jid, error)))

    def on_session_start(_event):
        # Synchronous, so it runs before the next stanza is parsed.
        xmpp.recording = True
        settle()

    def on_disconnected(reason):
        inbox.close(reason)
        settle("disconnected before session start: %s" % (reason,))

    xmpp.add_event_handler("session_start", on_session_start)
    xmpp.add_event_handler("disconnected", on_disconnected)
    xmpp.add_event_handler(
        "failed_all_auth", lambda _event: settle("authentication failed"))
    xmpp.add_event_handler(
        "connection_failed",
        lambda error: settle("cannot connect to %s:%s: %s"
                             % (host, port, error)))
    xmpp.add_event_handler(
        "stream_error", lambda error: settle("stream error: %s" % (error,)))
    xmpp.connect(host, port)
    try:
        await outcome
    except BaseException:
        # Also on cancellation (timeout): stop retrying, drop the socket.
        xmpp.cancel_connection_attempt()
        xmpp.abort()
        _stop_send_task(xmpp)
        raise
    return xmpp


async def _disconnect(xmpp, timeout):
    try:
        if xmpp.transport is not None:
            closed = asyncio.get_running_loop().create_future()

            def on_disconnected(_reason):
                if not closed.done():
                    closed.set_result(None)

            xmpp.add_event_handler("disconnected", on_disconnected,
                                   disposable=True)
            xmpp.disconnect(wait=timeout)
            await closed
    finally:
        _stop_send_task(xmpp)


def _stop_send_task(xmpp):
    # slixmpp's send-queue task outlives the stream (it is only cancelled
    # in __del__); left pending it warns at interpreter exit.
    task = getattr(xmpp, "_run_out_filters", None)
    if task is not None:
        task.cancel()


def connect(testcase, server, user, password="pw", resource=None,
            **kwargs):
    """
    Connect C{user@server.domain} for a trial test.

    The account is registered first unless this harness already did so
    with the same password, and the client is disconnected in the test's
    cleanup.

    @param server: a started L{tests.harness.prosody.ProsodyServer}.
    @param kwargs: further L{Client.connect} arguments.
    @return: the connected L{Client}.
    """
    if server.accounts.get(user) != password:
        server.register(user, password)
    jid = "%s@%s" % (user, server.domain)
    if resource:
        jid += "/" + resource
    client = Client.connect(jid, password, server.ip, server.c2s_port,
                            **kwargs)
    testcase.addCleanup(client.disconnect)
    return client
