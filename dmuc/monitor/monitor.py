"""
The link monitor: one per peer service (master service <-> mirror
service), not per room (docs/protocol.md 6).

It watches what arrives from the peer.  After C{ping_interval} seconds of
silence it sends one XEP-0199 ping; no answer within C{ping_timeout}, or a
bounce of any stanza to the peer (C{remote-server-not-found},
C{remote-server-timeout}, C{service-unavailable}), marks the peer
B{split}.  While split it pings every C{split_ping_interval}; the first
stanza from the peer that is not a bounce is the B{netjoin}.

Everything time-based runs on the clock it is given, so tests drive splits
and netjoins with L{twisted.internet.task.Clock}.
"""

from dataclasses import dataclass

from twisted.logger import Logger

from dmuc.xmpp import namespaces as ns
from dmuc.xmpp.stanzas import make_stanza
from dmuc.xmpp.timestamps import format_timestamp

log = Logger(namespace="dmuc.monitor")

BOUNCES = ("remote-server-not-found", "remote-server-timeout", "service-unavailable")
UP, SPLIT = "up", "split"


@dataclass
class MonitorSettings:
    """The [monitor] section; seconds."""

    ping_interval: float = 60
    ping_timeout: float = 20
    split_ping_interval: float = 10


class LinkMonitor:
    """
    @ivar state: C{up} or C{split}.
    @ivar since: when the state last changed (seconds since the epoch).
    @ivar pings_sent: pings sent so far (for the status and the tests).
    """

    def __init__(self, local, peer, clock, send, listener, settings):
        """
        @param send: sends a stanza (a C{domish.Element}).
        @param listener: has C{split(peer, reason)} and C{netjoin(peer)}.
        """
        self.local = local
        self.peer = peer
        self.clock = clock
        self.send = send
        self.listener = listener
        self.settings = settings
        self.state = UP
        self.since = clock.seconds()
        self.last_heard = clock.seconds()
        self.pings_sent = 0
        self.splits = 0
        self._ping_id = None
        self._ping_sent_at = None
        self._timer = None
        self._timeout = None
        self._counter = 0
        self._peer_pings = False

    def start(self):
        self._schedule(self.settings.ping_interval)

    def stop(self):
        for call in (self._timer, self._timeout):
            if call is not None and call.active():
                call.cancel()
        self._timer = self._timeout = None

    def assume_split(self):
        """Start as split (state carried over a restart): the first answer
        from the peer is a netjoin."""
        self._change(SPLIT, "split when the service stopped")
        self._schedule(self.settings.split_ping_interval)

    # -- what arrives from the peer

    def heard(self, ping=False):
        """Any stanza from the peer that is not a bounce: it is alive.

        @param ping: it is the peer's own ping.
        """
        self.last_heard = self.clock.seconds()
        self._peer_pings = ping
        self._ping_id = None
        if self._timeout is not None and self._timeout.active():
            self._timeout.cancel()
        if self.state == SPLIT:
            self._change(UP, "netjoin")
            self.listener.netjoin(self.peer)
            self._schedule(self.settings.ping_interval)

    def bounced(self, condition):
        """A stanza to the peer came back as undeliverable."""
        if condition in BOUNCES and self.state == UP:
            self._split("a stanza to %s bounced: %s" % (self.peer, condition))

    def peer_stopped(self, reason):
        """The peer says it stops: split at once; the first answer to our
        pings once it runs again is the netjoin."""
        if self.state == UP:
            self._split(reason)

    def stream_up(self):
        """A stream to the peer was (re)established: while split, ping
        now; the answer is the netjoin."""
        if self.state == SPLIT:
            self._ping()
            self._schedule(self.settings.split_ping_interval)

    # -- timers

    def _schedule(self, delay):
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = self.clock.callLater(delay, self._tick)

    def _tick(self):
        if self.state == SPLIT:
            self._ping()
            self._schedule(self.settings.split_ping_interval)
            return
        idle = self.clock.seconds() - self.last_heard
        quiet = self._quiet_period()
        if idle >= quiet and self._ping_id is None:
            self._ping()
            self._timeout = self.clock.callLater(self.settings.ping_timeout, self._no_answer)
            self._schedule(self.settings.ping_interval)
        else:
            self._schedule(max(quiet - idle, 0.001))

    def _quiet_period(self):
        """
        How long a silence this side lets pass before pinging.  Both ends
        of a link run a monitor; when what we last heard was the peer's
        own ping, the peer is keeping the link and will ping again after
        its C{ping_interval}: we wait C{ping_timeout} longer, so an idle
        link costs one exchange per interval, not one per side.  If the
        peer's pings stop, we take over.
        """
        if self._peer_pings:
            return self.settings.ping_interval + self.settings.ping_timeout
        return self.settings.ping_interval

    def _ping(self):
        self._counter += 1
        self._ping_id = "dmuc-ping-%d" % self._counter
        self.pings_sent += 1
        iq = make_stanza("iq", to=self.peer, frm=self.local, type="get", id=self._ping_id)
        iq.addElement((ns.PING, "ping"))
        self.send(iq)

    def _no_answer(self):
        if self.state == UP and self._ping_id is not None:
            self._split("no answer to a ping within %g s" % self.settings.ping_timeout)

    def _split(self, reason):
        self.splits += 1
        self._change(SPLIT, reason)
        self._ping_id = None
        if self._timeout is not None and self._timeout.active():
            self._timeout.cancel()
        self.listener.split(self.peer, reason)
        self._schedule(self.settings.split_ping_interval)

    def _change(self, state, reason):
        self.state = state
        self.since = self.clock.seconds()
        log_line = log.warn if state == SPLIT else log.info
        log_line("{local}: link to {peer} is {state} since {at} ({reason})",
                 local=self.local, peer=self.peer, state=state.upper(),
                 at=format_timestamp(self.since), reason=reason)

    def status(self):
        """What an operator reads in the status file."""
        return {"peer": self.peer, "state": self.state,
                "since": format_timestamp(self.since),
                "last_heard": format_timestamp(self.last_heard),
                "pings_sent": self.pings_sent}
