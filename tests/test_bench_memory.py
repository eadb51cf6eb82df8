"""
The memory benchmark (bench/memory.py) on a small run: the report has its
shape, and the services held the rooms and occupants it claims to measure.
"""

from numbers import Real

from twisted.trial import unittest

from bench.memory import measure

ROOMS, OCCUPANTS = 5, 3
_result = []


def result():
    """One run for the whole module: it spawns three interpreters."""
    if not _result:
        _result.append(measure(rooms=ROOMS, occupants=OCCUPANTS))
    return _result[0]


class MemoryBenchmarkTests(unittest.TestCase):

    def test_shape(self):
        report = result()
        self.assertEqual((report["rooms"], report["occupants_per_room"], report["presence"]),
                         (ROOMS, OCCUPANTS, "caps"))
        for part in ("master", "master_remote", "mirror"):
            for key in ("baseline_kib", "kib_per_room", "kib_per_occupant",
                        "traced_baseline_kib", "traced_kib_per_room",
                        "traced_kib_per_occupant"):
                self.assertIsInstance(report[part][key], Real, (part, key))

    def test_figures_are_positive(self):
        # RSS grows in pages, so at this size only the baselines and the
        # Python-level (tracemalloc) sizes are sure to be above zero.
        report = result()
        for part in (report["master"], report["master_remote"], report["mirror"]["two_site"]):
            self.assertGreater(part["baseline_kib"], 0)
            self.assertTrue(all(v > 0 for v in part["rss_kib"].values()))
        for part in ("master", "master_remote", "mirror"):
            self.assertGreater(report[part]["traced_kib_per_room"], 0, part)
            self.assertGreater(report[part]["traced_kib_per_occupant"], 0, part)

    def test_master_held_what_was_asked(self):
        report = result()
        for part in ("master", "master_remote"):
            self.assertEqual(report[part]["counts_after_rooms"]["master_occupants"], ROOMS)
            counts = report[part]["counts"]
            self.assertEqual((counts["master_rooms"], counts["master_occupants"]),
                             (ROOMS, ROOMS * OCCUPANTS), part)
            self.assertEqual(counts["errors"], 0, part)

    def test_mirror_held_what_was_asked(self):
        report = result()
        after_rooms = report["mirror"]["counts_after_rooms"]
        self.assertEqual((after_rooms["mirror_rooms"], after_rooms["mirror_occupants"]),
                         (ROOMS, ROOMS))
        counts = report["mirror"]["counts"]
        self.assertEqual(
            (counts["mirror_rooms"], counts["mirror_synced_rooms"], counts["mirror_occupants"]),
            (ROOMS, ROOMS, ROOMS * OCCUPANTS))
        # Every join went through the master.
        self.assertEqual((counts["master_rooms"], counts["master_occupants"]),
                         (ROOMS, ROOMS * OCCUPANTS))
        self.assertEqual(counts["errors"], 0)
        self.assertGreater(counts["delivered"], 0)

    def test_mirror_store_caught_up(self):
        # The room copies are in the (memory) store when measured, so the
        # figure includes what the store keeps of them.
        counts = result()["mirror"]["counts"]
        self.assertEqual((counts["mirror_stored_rooms"], counts["mirror_stored_occupants"]),
                         (ROOMS, ROOMS * OCCUPANTS))
