"""
The benchmark's own arithmetic, without servers: the chat bodies, and
how what crossed the relay becomes stanza bytes, wire bytes and savings
(bench/chat.py, bench/scenarios.py, bench/run.py).
"""

from twisted.trial import unittest

from bench import run as bench_run
from bench.chat import Chat
from bench.scenarios import traffic, wire_estimate
from bench.sites import MASTER, MIRROR
from tests.harness.relay import Crossing

DOWN, UP = "fairfax>raleigh", "raleigh>fairfax"


class FakeRelay:
    """What L{traffic} reads of a L{tests.harness.relay.LinkRelay}."""

    directions = [DOWN, UP]

    def __init__(self, crossings, wire):
        self._crossings, self._wire = crossings, wire

    def crossings(self, stanzas_only=True, include_barriers=False):
        return list(self._crossings)

    def bytes(self, direction):
        return self._wire.get(direction, 0)


def message(direction, size, sender="room@%s/nick" % MASTER, to=MIRROR):
    return Crossing(direction, "message", {"from": sender, "to": to}, size)


class ChatTests(unittest.TestCase):

    def test_the_same_conversation_every_time(self):
        self.assertEqual(Chat().bodies(50), Chat().bodies(50))

    def test_bodies_are_unique_and_varied(self):
        bodies = Chat().bodies(2000)
        self.assertEqual(len(set(bodies)), len(bodies))
        lengths = [len(b.split()) for b in bodies]
        self.assertEqual(min(lengths), 2)            # one word and the tag
        self.assertGreater(max(lengths), 20)
        self.assertTrue(any("https://" in b for b in bodies))
        self.assertTrue(any(ord(c) > 0x2000 for b in bodies for c in b))
        # Far from one repeated text: few bodies share their first words.
        self.assertGreater(len({tuple(b.split()[:3]) for b in bodies}), 1500)


class TrafficTests(unittest.TestCase):

    def test_a_plain_stream_has_its_stanzas_at_their_size(self):
        relay = FakeRelay([message(DOWN, 300, "room@rooms.fairfax.test/n", "r1@raleigh.test"),
                           Crossing(DOWN, "result", {}, 50)], {DOWN: 400})
        down = traffic(relay)["by_direction"][DOWN]
        self.assertEqual((down["bytes"], down["link_bytes"], down["wire_bytes"],
                          down["other_bytes"]), (300, 300, 400, 100))

    def test_a_compressed_stream_shares_its_bytes_and_other_bytes_stay_positive(self):
        # 1000 bytes of stanzas and a 250-byte ping crossed as 125 bytes.
        crossings = [message(DOWN, 600), message(DOWN, 400),
                     Crossing(DOWN, "iq", {"from": MASTER, "to": MIRROR, "id": "harness-1"},
                              250)]
        figures = traffic(FakeRelay(crossings, {DOWN: 125}), direct=True)
        down = figures["by_direction"][DOWN]
        self.assertEqual(down["bytes"], 1000)
        self.assertEqual(down["stanzas"], 2)
        self.assertEqual(down["link_bytes"], 100)
        self.assertEqual(down["other_bytes"], 25)
        self.assertEqual(figures["wire_bytes"], 125)

    def test_plain_stanzas_beside_the_direct_stream_count_at_their_size(self):
        crossings = [message(UP, 1000),
                     message(UP, 200, "r1@raleigh.test/x", "f1@fairfax.test")]
        up = traffic(FakeRelay(crossings, {UP: 300}), direct=True)["by_direction"][UP]
        self.assertEqual(up["link_bytes"], 200 + 100)
        self.assertEqual(up["other_bytes"], 0)

    def test_dialback_before_compression_counts_plain(self):
        crossings = [Crossing(DOWN, "result", {"from": MASTER, "to": MIRROR}, 150),
                     message(DOWN, 1000)]
        down = traffic(FakeRelay(crossings, {DOWN: 250}), direct=True)["by_direction"][DOWN]
        self.assertEqual((down["link_bytes"], down["other_bytes"]), (100, 150))

    def test_the_wire_estimate_adds_a_record_per_element_and_headers_per_segment(self):
        self.assertEqual(wire_estimate(100, 2),
                         {"records": 2, "segments": 2, "bytes": 100 + 2 * 22 + 2 * 52})
        big = wire_estimate(10000, 1)
        self.assertEqual(big["segments"], 7)        # ceil(10022 / 1448)
        self.assertEqual(wire_estimate(0, 0)["bytes"], 0)


class SavingTests(unittest.TestCase):

    def test_every_dmuc_mode_has_savings_in_link_and_wire_bytes(self):
        row = {"remote_users": 20}
        figures = {"bytes": 10000, "stanzas": 100, "other_bytes": 0, "by_direction": {},
                   "link_bytes": 10000, "wire_bytes": 10000,
                   "wire_estimate": {"bytes": 20000}}
        bench_run._columns(row, "stock", figures)
        bench_run._columns(row, "direct", dict(figures, bytes=2000, link_bytes=100,
                                               wire_bytes=150, wire_estimate={"bytes": 500}))
        bench_run._ratios(row)
        self.assertEqual(row["direct_saving"], 100.0)
        self.assertEqual(row["direct_saving_uncompressed"], 5.0)
        self.assertEqual(row["direct_wire_saving"], 66.7)
        self.assertEqual(row["direct_wire_estimate_saving"], 40.0)

    def test_the_direct_link_targets_are_checked_at_r_20(self):
        rows = [{"remote_users": 20, "direct_saving": 60.0, "direct_ff_saving": 90.0}]
        checks = {c["name"]: c["met"] for c in bench_run.targets({"messages": rows})}
        self.assertEqual(checks["messages, R=20, direct"], True)
        self.assertEqual(checks["messages, R=20, direct_ff"], False)
