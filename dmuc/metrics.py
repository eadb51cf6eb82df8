"""
The OpenMetrics (Prometheus) endpoint of a dmuc process: off unless the
configuration has a [metrics] section.

    [metrics]
    listen = 127.0.0.1:9154

serves C{http://127.0.0.1:9154/metrics} with, for each service of the
process (label C{service}, its domain):

    dmuc_rooms                  rooms held (a mirror: room copies)
    dmuc_occupants              occupants (a master: all of its rooms';
                                a mirror: its own users)
    dmuc_peer_up                1 while the link to a peer is up, 0 split
    dmuc_peer_splits_total      splits seen on that link
    dmuc_peer_pings_total       keepalive pings sent to that peer
    dmuc_peer_stanzas_total     stanzas to and from the peer (label
                                direction: in, out)
    dmuc_peer_bytes_total       their serialised size
    dmuc_resync_seconds         resyncs after a netjoin (a mirror): count
                                and total duration
    dmuc_resync_messages        the messages they brought, and
    dmuc_resync_bytes           the size of the master's answers

Values are read from the services when scraped (a custom collector), so
nothing is kept twice; only the per-peer traffic is counted as it goes.

The same listener answers C{/status} with JSON for the C{dmuc} command
(L{dmuc.cli}): each service's rooms with their occupants and each peer's
link.  It names users: listen on loopback or a private address.
"""

import json

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, SummaryMetricFamily
from prometheus_client.twisted import MetricsResource
from twisted.application import internet
from twisted.logger import Logger
from twisted.web.resource import Resource
from twisted.web.server import Site

from dmuc.monitor.monitor import UP

log = Logger(namespace="dmuc.metrics")


class ServiceCollector:
    """The metrics of the services (their L{ComponentHandler}s)."""

    def __init__(self, handlers):
        self.handlers = handlers
        for handler in handlers:
            handler.metered = True

    def describe(self):
        return []

    def collect(self):
        rooms = GaugeMetricFamily("dmuc_rooms", "Rooms held by the service (a mirror: copies)",
                                  labels=["service"])
        occupants = GaugeMetricFamily(
            "dmuc_occupants", "Occupants (a master: of all its rooms; a mirror: its own users)",
            labels=["service"])
        up = GaugeMetricFamily("dmuc_peer_up", "1 while the link to the peer is up, 0 split",
                               labels=["service", "peer"])
        splits = CounterMetricFamily("dmuc_peer_splits", "Splits of the link to the peer",
                                     labels=["service", "peer"])
        pings = CounterMetricFamily("dmuc_peer_pings", "Keepalive pings sent to the peer",
                                    labels=["service", "peer"])
        stanzas = CounterMetricFamily("dmuc_peer_stanzas", "Stanzas exchanged with the peer",
                                      labels=["service", "peer", "direction"])
        size = CounterMetricFamily("dmuc_peer_bytes", "Serialised bytes exchanged with the peer",
                                   labels=["service", "peer", "direction"])
        resync_seconds = SummaryMetricFamily(
            "dmuc_resync_seconds", "Resyncs after a netjoin and how long they took",
            labels=["service"])
        resync_messages = SummaryMetricFamily(
            "dmuc_resync_messages", "Messages the resyncs brought", labels=["service"])
        resync_bytes = SummaryMetricFamily(
            "dmuc_resync_bytes", "Size of the master's resync answers", labels=["service"])
        fault = GaugeMetricFamily(
            "dmuc_storage_fault", "1 while the database refuses writes (read-only, full)",
            labels=["service"])
        held = GaugeMetricFamily(
            "dmuc_storage_held_writes", "Writes held in memory until the database takes them",
            labels=["service"])
        for handler in self.handlers:
            service = handler.domain
            store = handler.store
            fault.add_metric([service], 1 if getattr(store, "fault", None) else 0)
            held.add_metric([service], getattr(store, "held_writes", 0))
            rooms.add_metric([service], len(handler.rooms))
            occupants.add_metric([service], handler.occupant_count())
            for peer, monitor in sorted(handler.monitors.monitors.items()):
                up.add_metric([service, peer], 1 if monitor.state == UP else 0)
                splits.add_metric([service, peer], monitor.splits)
                pings.add_metric([service, peer], monitor.pings_sent)
                for direction in ("in", "out"):
                    stanzas.add_metric([service, peer, direction],
                                       handler.traffic[peer, direction, "stanzas"])
                    size.add_metric([service, peer, direction],
                                    handler.traffic[peer, direction, "bytes"])
            stats = handler.resyncs
            resync_seconds.add_metric([service], stats.count, stats.seconds)
            resync_messages.add_metric([service], stats.count, stats.messages)
            resync_bytes.add_metric([service], stats.count, stats.bytes)
        return [rooms, occupants, up, splits, pings, stanzas, size,
                resync_seconds, resync_messages, resync_bytes, fault, held]


def registry_for(handlers):
    registry = CollectorRegistry(auto_describe=False)
    registry.register(ServiceCollector(handlers))
    return registry


def status(handlers):
    """What C{/status} answers: per service, its rooms and links."""
    return {"services": [{"service": h.domain, "rooms": h.describe_rooms(),
                          "links": [m.status() for _, m in sorted(h.monitors.monitors.items())]}
                         for h in handlers]}


class StatusResource(Resource):
    isLeaf = True

    def __init__(self, handlers):
        Resource.__init__(self)
        self.handlers = handlers

    def render_GET(self, request):
        request.setHeader(b"content-type", b"application/json")
        return json.dumps(status(self.handlers), indent=1).encode("utf-8")


class MetricsService(internet.TCPServer):
    """The HTTP listener of C{/metrics}."""

    def __init__(self, settings, handlers, reactor=None):
        host, port = settings.listen
        root = Resource()
        root.putChild(b"metrics", MetricsResource(registry=registry_for(handlers)))
        root.putChild(b"status", StatusResource(handlers))
        internet.TCPServer.__init__(self, port, Site(root), interface=host, reactor=reactor)
        self.host, self.port = host, port

    def startService(self):
        internet.TCPServer.startService(self)
        log.info("metrics: serving http://{host}:{port}/metrics", host=self.host, port=self.port)
