"""
Smoke test of the hot-path benchmark (bench/hotpaths.py): it runs, and
gives every figure.  No assertion on how fast: that is the benchmark's
business, on a quiet machine.
"""

from twisted.trial import unittest

from bench import hotpaths

FAN_OUT = ("master_groupchat", "master_presence", "mirror_groupchat", "mirror_presence")
STORAGE = ("sqlite_appends_burst", "sqlite_appends_trickle")
PERSISTENT = ("master_persistent_burst", "master_persistent_trickle",
              "master_persistent_burst_uncommitted", "master_persistent_trickle_uncommitted")


class QuickRunTests(unittest.TestCase):

    def test_quick_run_gives_every_figure(self):
        result = hotpaths.measure(quick=True)
        self.assertTrue(result["quick"])
        self.assertGreater(result["machine"]["nproc"], 0)
        for name in FAN_OUT:
            figure = result[name]
            self.assertEqual(figure["occupants"], 50)
            # Every local occupant got it (the master: and the mirror).
            self.assertGreaterEqual(figure["sent_per_stanza"], 50)
            self._assert_spread(figure["us_per_stanza"])
        for size in hotpaths.QUICK["sizes"]:
            groupchat = result["mirror_user_groupchat_%d" % size]
            presence = result["mirror_user_presence_%d" % size]
            self.assertEqual(groupchat["occupants"], size)
            self.assertEqual(groupchat["sent_per_stanza"], 1)      # up to the master
            self.assertEqual(presence["sent_per_stanza"], size + 1)  # up, and to each user
            self._assert_spread(groupchat["us_per_stanza"])
            self._assert_spread(presence["us_per_stanza"])
        for name in STORAGE:
            self._assert_spread(result[name]["appends_per_s"])
        for name in PERSISTENT:
            self._assert_spread(result[name]["us_per_stanza"])

    def _assert_spread(self, spread):
        self.assertEqual(set(spread), {"min", "median", "max"})
        self.assertGreater(spread["min"], 0)
        self.assertLessEqual(spread["min"], spread["median"])
        self.assertLessEqual(spread["median"], spread["max"])
