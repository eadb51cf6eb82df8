"""
The monitors of one service, one per peer service, and the status file
an operator reads.

A service calls L{PeerMonitors.observe} with every stanza it receives and
L{PeerMonitors.watch} when it starts depending on a peer (a mirror synced
a room; a mirror room was created for a master).  Splits and netjoins go
to the service's C{split(peer, reason)} and C{netjoin(peer)}.
"""

import json
import os

from twisted.logger import Logger

from dmuc.monitor.monitor import SPLIT, LinkMonitor
from dmuc.xmpp import namespaces as ns

log = Logger(namespace="dmuc.monitor")

#: At most how often the status file is rewritten for pings and signs of
#: life (seconds); a split or netjoin rewrites it at once.
STATUS_DELAY = 1.0


class PeerMonitors:

    def __init__(self, service, settings, status_file=None):
        self.service = service
        self.settings = settings
        self.status_file = status_file
        self.monitors = {}
        self._status_call = None

    def watch(self, peer):
        if peer not in self.monitors:
            monitor = LinkMonitor(self.service.domain, peer, self.service.clock,
                                  self._send_ping, self, self.settings)
            self.monitors[peer] = monitor
            monitor.start()
            self.write_status()
            # Over dmuc's own S2S, a watched peer's stream is kept open,
            # and reopened at least as often as a split peer is pinged.
            keep = getattr(getattr(self.service, "parent", None), "keep_stream", None)
            if keep is not None:
                keep(peer, self.settings.split_ping_interval)

    def stop(self):
        for monitor in self.monitors.values():
            monitor.stop()
        if self._status_call is not None and self._status_call.active():
            self._status_call.cancel()
            self.write_status()
        self._status_call = None

    def _send_ping(self, stanza):
        self.service.send_at_once(stanza)
        self._status_soon()

    def peer_stopped(self, peer, reason):
        """The peer said it is stopping: split now, without waiting for a
        ping to go unanswered."""
        monitor = self.monitors.get(peer)
        if monitor is not None:
            monitor.peer_stopped(reason)

    def stream_lost(self, peer, reason):
        """dmuc's own S2S stream to or from the peer broke (it crashed,
        or the network did): split now."""
        monitor = self.monitors.get(peer)
        if monitor is not None:
            monitor.peer_stopped(reason)

    def stream_up(self, peer):
        """A stream to or from the peer is up again: ask at once whether
        the peer answers, so the netjoin need not wait for a ping timer."""
        monitor = self.monitors.get(peer)
        if monitor is not None:
            monitor.stream_up()

    def is_split(self, peer):
        monitor = self.monitors.get(peer)
        return monitor is not None and monitor.state == SPLIT

    def observe(self, stanza, sender):
        """Every stanza the service receives: is it from a watched peer,
        and is it a sign of life or a bounce?"""
        monitor = self.monitors.get(sender.host)
        if monitor is None:
            return
        if stanza.getAttribute("type") == "error" and _is_bounce(stanza):
            monitor.bounced(_condition(stanza))
            return
        monitor.heard(ping=_is_ping(stanza))
        self._status_soon()

    # -- the listener interface of LinkMonitor

    def split(self, peer, reason):
        self.write_status()
        self.service.split(peer, reason)

    def netjoin(self, peer):
        self.write_status()
        self.service.netjoin(peer)

    def _status_soon(self):
        """The status file rewritten within L{STATUS_DELAY}, once however
        much happens meanwhile: pings sent and the last sign of life are
        news to an operator, a rewrite per stanza would not be."""
        if not self.status_file or (self._status_call is not None
                                    and self._status_call.active()):
            return
        self._status_call = self.service.clock.callLater(STATUS_DELAY, self.write_status)

    def write_status(self):
        """The status file: one JSON object per peer (docs/monitor.md)."""
        if self._status_call is not None and self._status_call.active():
            self._status_call.cancel()
        self._status_call = None
        if not self.status_file:
            return
        status = {"service": self.service.domain,
                  "peers": [m.status() for _, m in sorted(self.monitors.items())]}
        temporary = self.status_file + ".tmp"
        try:
            with open(temporary, "w") as f:
                json.dump(status, f, indent=2)
            os.replace(temporary, self.status_file)
        except OSError as e:
            log.error("cannot write the status file {path}: {error}",
                      path=self.status_file, error=e)


def _condition(stanza):
    for error in stanza.elements():
        if error.name == "error":
            for element in error.elements():
                if element.uri == ns.STANZAS and element.name != "text":
                    return element.name
    return None


def _is_ping(stanza):
    return (stanza.name == "iq" and stanza.getAttribute("type") == "get"
            and any(getattr(c, "uri", None) == ns.PING for c in stanza.elements()))


def _is_bounce(stanza):
    """
    Prosody bounces what it cannot deliver to a peer with
    remote-server-not-found or remote-server-timeout (S2S failed, or the
    peer component is not connected).  A service-unavailable counts only
    as the answer to our own ping: a live peer may well answer other
    stanzas with it.
    """
    condition = _condition(stanza)
    if condition in ("remote-server-not-found", "remote-server-timeout"):
        return True
    return (condition == "service-unavailable"
            and (stanza.getAttribute("id") or "").startswith("dmuc-ping-"))
