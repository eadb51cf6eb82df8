"""
The OpenMetrics endpoint's figures (dmuc/metrics.py), read as Prometheus
reads them, from a master and a mirror wired in memory.
"""

from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families
from twisted.trial import unittest

from dmuc.metrics import registry_for
from tests.test_dmuc_flows import KEITH, KEVIN, WAYNE, join, say
from tests.two_site_helpers import MASTER, MIRROR, MROOM, ROOM, TwoSites


def scrape(registry):
    """{(name, labels as a sorted tuple): value} of one scrape."""
    text = generate_latest(registry).decode("utf-8")
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(text) for sample in family.samples}


class MetricsTests(unittest.TestCase):

    def setUp(self):
        self.sites = TwoSites()
        self.registry = registry_for([self.sites.master, self.sites.mirror])
        join(self.sites, KEVIN, "Kevin", ROOM)
        join(self.sites, WAYNE, "Wayne")
        join(self.sites, KEITH, "Keith")

    def value(self, name, **labels):
        return scrape(self.registry)[name, tuple(sorted(labels.items()))]

    def test_rooms_occupants_and_links(self):
        self.assertEqual(self.value("dmuc_rooms", service=MASTER), 1)
        self.assertEqual(self.value("dmuc_rooms", service=MIRROR), 1)
        self.assertEqual(self.value("dmuc_occupants", service=MASTER), 3)
        self.assertEqual(self.value("dmuc_occupants", service=MIRROR), 2)
        self.assertEqual(self.value("dmuc_peer_up", service=MIRROR, peer=MASTER), 1)
        self.assertEqual(self.value("dmuc_peer_up", service=MASTER, peer=MIRROR), 1)

    def test_traffic_per_peer_and_direction_is_what_crossed(self):
        before_out = self.value("dmuc_peer_stanzas_total", service=MIRROR, peer=MASTER,
                                direction="out")
        before_in = self.value("dmuc_peer_stanzas_total", service=MASTER, peer=MIRROR,
                               direction="in")
        before_bytes = self.value("dmuc_peer_bytes_total", service=MIRROR, peer=MASTER,
                                  direction="out")
        self.sites.link_count()
        say(self.sites, WAYNE, "counted", MROOM)
        up = [s for d, s in self.sites.link if d == "raleigh>fairfax"]
        self.assertEqual(self.value("dmuc_peer_stanzas_total", service=MIRROR, peer=MASTER,
                                    direction="out") - before_out, len(up))
        self.assertEqual(self.value("dmuc_peer_bytes_total", service=MIRROR, peer=MASTER,
                                    direction="out") - before_bytes,
                         sum(len(s.toXml().encode()) for s in up))
        # The master counted them in (from when it watches the mirror).
        self.assertEqual(self.value("dmuc_peer_stanzas_total", service=MASTER, peer=MIRROR,
                                    direction="in") - before_in, len(up))

    def test_a_split_and_its_resync(self):
        self.sites.cut = True
        self.sites.advance(100)
        self.assertEqual(self.value("dmuc_peer_up", service=MIRROR, peer=MASTER), 0)
        say(self.sites, KEVIN, "missed", ROOM)
        self.sites.cut = False
        self.sites.advance(30)
        self.assertEqual(self.value("dmuc_peer_up", service=MIRROR, peer=MASTER), 1)
        self.assertEqual(self.value("dmuc_peer_splits_total", service=MIRROR, peer=MASTER), 1)
        self.assertGreater(self.value("dmuc_peer_pings_total", service=MIRROR, peer=MASTER), 0)
        self.assertEqual(self.value("dmuc_resync_seconds_count", service=MIRROR), 1)
        self.assertGreaterEqual(self.value("dmuc_resync_messages_sum", service=MIRROR), 1)
        self.assertGreater(self.value("dmuc_resync_bytes_sum", service=MIRROR), 100)
        self.assertGreaterEqual(self.value("dmuc_resync_seconds_sum", service=MIRROR), 0)


class StatusTests(unittest.TestCase):
    """What /status tells the dmuc command, and how the command shows it."""

    def setUp(self):
        self.sites = TwoSites()
        join(self.sites, KEVIN, "Kevin", ROOM)
        join(self.sites, WAYNE, "Wayne")

    def run_cli(self, *argv):
        import io
        from unittest import mock

        from dmuc import cli
        from dmuc.metrics import status
        out = io.StringIO()
        with mock.patch.object(cli, "_fetch", lambda url: status(
                [self.sites.master, self.sites.mirror])):
            code = cli.main(["--url", "http://127.0.0.1:9154"] + list(argv), out=out)
        return code, out.getvalue().splitlines()

    def test_rooms(self):
        code, lines = self.run_cli("rooms")
        self.assertEqual(code, 0)
        self.assertEqual(lines, [
            "%s: 1 room(s)" % MASTER, "  %s  2 in the room" % ROOM,
            "%s: 1 room(s)" % MIRROR, "  %s  2 in the room (mirror of %s)" % (MROOM, ROOM)])

    def test_who_at_the_master_names_the_mirror(self):
        code, lines = self.run_cli("who", ROOM)
        self.assertEqual(code, 0)
        self.assertEqual([line.split() for line in lines], [
            ["Kevin", "moderator", "owner", KEVIN],
            ["Wayne", "participant", "none", WAYNE, "(via", MROOM + ")"]])

    def test_links(self):
        self.sites.cut = True
        self.sites.advance(100)
        code, lines = self.run_cli("links")
        self.assertEqual(code, 0)
        self.assertTrue(any(line.startswith("%s -> %s: split since " % (MIRROR, MASTER))
                            for line in lines), lines)

    def test_an_unknown_room_is_an_error(self):
        code, lines = self.run_cli("who", "nowhere@" + MASTER)
        self.assertEqual((code, lines), (1, []))
