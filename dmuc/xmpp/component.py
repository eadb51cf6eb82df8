"""
What every dmuc service's protocol edge shares: the stanza entry point
with its checks and error handling, sending from the service's domain,
time and ids, and fire-and-forget storage calls that log their failures.

Subclasses implement C{_dispatch(stanza, name, sender, recipient)} with the
stanza's kind (C{presence}, C{message}, C{iq}) and parsed JIDs, raising
L{StanzaError} to refuse.  Whatever a handler raises, the service answers
(unless the stanza is itself an error or result), logs, and keeps serving.
"""

import itertools
import os
from collections import Counter

from twisted.internet import defer
from twisted.logger import Logger
from wokkel.subprotocols import XMPPHandler

from dmuc.monitor.monitor import MonitorSettings
from dmuc.monitor.peers import PeerMonitors
from dmuc.xmpp.output import OutputGate
from dmuc.xmpp.stanzas import (
    Prepared, StanzaError, error_reply, larger_than, nested_deeper_than, parse_jid)

log = Logger(namespace="dmuc.xmpp")

# A stanza larger than this (serialised) is refused with policy-violation.
# Prosody's own c2s limit is 256 KiB; rooms fan messages out to every
# occupant and keep them in history, so they get a lower one.
MAX_STANZA_SIZE = 64 * 1024
# Elements nested deeper than this are refused with policy-violation
# (real payloads nest a handful deep; XEP-0060 items, forms: under 10).
MAX_STANZA_DEPTH = 50

# Saves of one room asked for within this many seconds are written as one
# (L{ComponentHandler.save_soon}): a mirror room's copy holds its whole
# roster, and presences come by the hundred in a large room.
SAVE_DELAY = 0.5


class ComponentHandler(XMPPHandler):
    """
    @ivar domain: the service's JID, e.g. C{conference.fairfax.test}.
    @ivar clock: an C{IReactorTime}; tests pass a L{Clock}.
    @ivar metered: whether the stanzas and bytes exchanged with each
        watched peer are counted (in L{traffic}); on only with the metrics
        endpoint, as counting bytes serialises each such stanza again.
    @ivar traffic: C{(peer, "in" or "out", "stanzas" or "bytes")} -> count.
    @ivar resyncs: what each resync after a netjoin took (L{ResyncStats}).
    """

    metered = False

    def __init__(self, domain, store, clock, monitor=None):
        """
        @param monitor: the [monitor] settings (a L{MonitorConfig}); the
            defaults when C{None}.
        """
        XMPPHandler.__init__(self)
        self.domain = domain
        self.store = store
        self.clock = clock
        self._ids = itertools.count(1)
        self._unsaved = {}      # room JID -> (room, what), saved at the next flush
        self._output = OutputGate(self._send_now)
        self._flush_call = None
        self._id_prefix = os.urandom(4).hex()
        settings = MonitorSettings()
        status_file = None
        if monitor is not None:
            settings = MonitorSettings(monitor.ping_interval, monitor.ping_timeout,
                                       monitor.split_ping_interval)
            status_file = monitor.status_file_for(self.domain)
        self.monitors = PeerMonitors(self, settings, status_file)
        self.traffic = Counter()
        # Rooms whose stored row could not be read at load: refused, and
        # never created anew over what storage holds.
        self.unloadable = set()
        self.resyncs = ResyncStats()

    # -- the link monitor's listener; services override what they do

    def split(self, peer, reason):
        pass

    def netjoin(self, peer):
        pass

    def shutdown(self):
        """The service stops; services tell their users (status 332)."""

    def connectionInitialized(self):
        for name in ("presence", "message", "iq"):
            self.xmlstream.addObserver("/%s" % name, self._receive, name=name)

    def send(self, stanza):
        """Send C{stanza} from this service, after the writes asked for
        before it (L{send_after_writes})."""
        if not stanza.getAttribute("from"):
            stanza["from"] = self.domain
        self._output.send(stanza)

    def send_at_once(self, stanza):
        """Send C{stanza} now, ahead of what waits for writes: for what
        acknowledges nothing (the link monitor's pings and their answers),
        so that a slow disk does not look like a dead link."""
        if not stanza.getAttribute("from"):
            stanza["from"] = self.domain
        self._send_now(stanza)

    def send_after_writes(self):
        """
        What is sent from now on leaves once storage has ended every
        write asked for so far (committed, or held for a fault: see
        L{IRoomStore.written}).  Called after a write that what follows
        acknowledges: a message stored before its echo, a configuration
        saved before its result.  Everything waits, so nothing is
        reordered; writes of one reactor turn commit together, so a busy
        room waits for one commit per turn, not one per message.
        """
        self._output.wait_for(self.store.written())

    def release_output(self):
        """The service stops: send what waits for writes now (the store
        finishes what was asked before it closes)."""
        self._output.open()

    def _send_now(self, stanza):
        if self.metered:
            self._count(stanza.getAttribute("to"), "out", stanza)
        XMPPHandler.send(self, stanza)

    def _count(self, address, direction, stanza):
        host = (address or "").rpartition("@")[2].partition("/")[0]
        if host in self.monitors.monitors:
            self.traffic[host, direction, "stanzas"] += 1
            self.traffic[host, direction, "bytes"] += len(stanza.toXml().encode("utf-8"))

    def prepare(self, stanza):
        """
        C{stanza} serialised once, to send to many: C{send(prepared.to(jid))}
        for each recipient (see L{Prepared}).  It must not change after.
        """
        if not stanza.getAttribute("from"):
            stanza["from"] = self.domain
        return Prepared(stanza)

    def now(self):
        """The time, to the millisecond: what time stamps can carry, so
        every node orders history by the same values."""
        return round(self.clock.seconds(), 3)

    def new_id(self):
        """
        Unique across restarts (a random prefix per process), and in
        creation order when compared as text (a zero-padded counter):
        history orders messages of the same millisecond by these ids.
        """
        return "%s-%012d" % (self._id_prefix, next(self._ids))

    def stored(self, d, room, what):
        """Let a storage call run; log (with the room) if it fails."""
        def failed(failure):
            log.failure("{room}: could not {what} in storage", failure,
                        room=room.jid, what=what)
        d.addErrback(failed)

    def save_soon(self, room, what):
        """
        Save C{room} (its C{to_record()}) within L{SAVE_DELAY} seconds,
        once however often it is asked for meanwhile; a failure is logged
        as L{stored} does.  L{flush} writes what is pending at once.
        """
        self._unsaved[room.jid] = (room, what)
        if self._flush_call is None:
            self._flush_call = self.clock.callLater(SAVE_DELAY, self.flush)

    def cancel_save(self, room_jid):
        """The room is deleted from storage: a pending save would bring
        it back."""
        self._unsaved.pop(room_jid, None)

    @defer.inlineCallbacks
    def load_each(self, records, load_one):
        """
        Bring back each stored room with C{load_one(record)} (it may return
        a Deferred).  One that cannot be read is logged and refused from
        then on (L{check_loadable}); the others load, and its row stays in
        storage untouched rather than created anew over it.
        """
        for record in records:
            try:
                if record.unreadable:
                    raise ValueError(record.unreadable)
                yield load_one(record)
            except Exception as e:
                log.error("{room}: cannot load this room ({why}); it stays in the database as "
                          "it is and is refused until it can be read", room=record.jid, why=e)
                self.unloadable.add(record.jid)

    def check_loadable(self, room_jid):
        """@raise StanzaError: C{room_jid} is a room storage could not give
        back at start."""
        if room_jid in self.unloadable:
            raise StanzaError("internal-server-error", type="wait", by=room_jid,
                              text="This room cannot be loaded from storage; the service's "
                              "operator has been told")

    def flush(self):
        """Write every pending save now; the service calls it at stop."""
        if self._flush_call is not None and self._flush_call.active():
            self._flush_call.cancel()
        self._flush_call = None
        unsaved, self._unsaved = self._unsaved, {}
        for room, what in unsaved.values():
            self.stored(self.store.save_room(room.to_record()), room, what)

    def _receive(self, stanza, name):
        stanza.handled = True
        sender = parse_jid(stanza.getAttribute("from"))
        recipient = parse_jid(stanza.getAttribute("to"))
        if sender is None:
            log.warn("{domain}: dropped a {name} with a missing or malformed sender {s!r}",
                     domain=self.domain, name=name, s=stanza.getAttribute("from"))
            return
        self.monitors.observe(stanza, sender)
        if nested_deeper_than(stanza, MAX_STANZA_DEPTH):
            # Before anything serialises or copies it (the recursion would
            # fail with a traceback).
            self._reply_error(stanza, StanzaError("policy-violation",
                                                  text="Stanza nested too deeply"))
            return
        if self.metered:
            self._count(sender.host, "in", stanza)
        try:
            if recipient is None:
                raise StanzaError("jid-malformed")
            if recipient.host != self.domain:
                raise StanzaError("service-unavailable")
            if larger_than(stanza, MAX_STANZA_SIZE):
                raise StanzaError("policy-violation", text="Stanza too large for this room")
            self._dispatch(stanza, name, sender, recipient)
        except StanzaError as e:
            self._reply_error(stanza, e)
        except Exception:
            log.failure("{domain}: failed to handle a {name} from {sender}",
                        domain=self.domain, name=name, sender=sender.full())
            self._reply_error(stanza, StanzaError("internal-server-error"))

    def _reply_error(self, stanza, error):
        if stanza.getAttribute("type") not in ("error", "result"):
            self.send(error_reply(stanza, error))

    def _dispatch(self, stanza, name, sender, recipient):
        raise NotImplementedError


class ResyncStats:
    """How many resyncs, and their total seconds, messages and bytes: what
    an OpenMetrics summary needs (count and sums)."""

    def __init__(self):
        self.count = 0
        self.seconds = self.messages = self.bytes = 0

    def add(self, seconds, messages, size):
        self.count += 1
        self.seconds += seconds
        self.messages += messages
        self.bytes += size
