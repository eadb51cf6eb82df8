"""
The benchmark code, run at tiny sizes so that it cannot rot: every
two-site scenario in every mode on real servers, then the JSON, the page
and the charts.  No figure is judged here (timing belongs to `make
bench`); what is checked is that each scenario did what it says and that
the counts add up.
"""

import json
import os

from twisted.trial import unittest

from bench import run as bench_run
from bench.sites import MODE_SCENARIOS, SMOKE_MODES
from tests.harness.prosody import temp_directory

TWO_SITE = ("rooms", "idle", "resync", "constrained", "throughput")


def modes_of(scenario):
    """The modes that run C{scenario} (dmuc_mc runs only throughput)."""
    return [m for m in SMOKE_MODES if scenario in MODE_SCENARIOS.get(m, (scenario,))]


_outcome = {}


def quick_run():
    """One quick run for all the tests here (trial has no setUpClass); a
    failure is kept too, so that it is not run again for every test."""
    if "run" not in _outcome:
        try:
            _outcome["run"] = bench_run.run(bench_run.QUICK, TWO_SITE, SMOKE_MODES,
                                            quick=True, log=lambda line: None)
        except Exception as e:
            _outcome["run"] = e
    if isinstance(_outcome["run"], Exception):
        raise _outcome["run"]
    return _outcome["run"]


class QuickBenchTests(unittest.TestCase):
    # The first test runs the benchmark: about a minute on two cores.
    timeout = 600

    def setUp(self):
        self.results = quick_run()

    def test_every_room_scenario_has_a_row_per_size_and_a_column_per_mode(self):
        scenarios = self.results["scenarios"]
        for kind in ("messages", "joins", "presence"):
            self.assertEqual([r["remote_users"] for r in scenarios[kind]],
                             list(bench_run.QUICK["remote_users"]))
            for row in scenarios[kind]:
                for mode in modes_of("rooms"):
                    self.assertGreater(row["%s_bytes" % mode], 0, (kind, row))
                for mode in modes_of("rooms")[1:]:
                    for saving in ("saving", "wire_saving", "wire_estimate_saving"):
                        self.assertIn("%s_%s" % (mode, saving), row)

    def test_a_message_from_fairfax_crosses_once_per_raleigh_user_in_stock(self):
        # The stock room sends each raleigh occupant its own copy; dmuc one
        # per mirror: with two raleigh users, stock carries more stanzas.
        two = [r for r in self.results["scenarios"]["messages"] if r["remote_users"] == 2][0]
        self.assertGreater(two["stock_stanzas"], two["dmuc_ff_stanzas"])
        down = two["dmuc_ff_by_direction"]["fairfax>raleigh"]["stanzas"]
        fairfax_messages = sum(1 for n in range(bench_run.QUICK["messages"]) if n % 7 < 5)
        self.assertEqual(down, fairfax_messages)

    def test_bytes_by_direction_add_up(self):
        for row in self.results["scenarios"]["messages"]:
            for mode in modes_of("rooms"):
                directions = row["%s_by_direction" % mode].values()
                self.assertEqual(sum(d["bytes"] for d in directions), row["%s_bytes" % mode])

    def test_the_direct_link_crosses_compressed_and_nothing_counts_negative(self):
        for kind in ("messages", "joins", "presence", "resync"):
            for row in self.results["scenarios"][kind]:
                for mode in modes_of("rooms"):
                    self.assertGreaterEqual(row["%s_other_bytes" % mode], 0, (kind, mode))
                    self.assertLessEqual(row["%s_link_bytes" % mode],
                                         row["%s_wire_bytes" % mode], (kind, mode))
                for mode in ("direct", "direct_ff"):
                    self.assertLess(row["%s_wire_bytes" % mode], row["%s_bytes" % mode],
                                    (kind, mode))

    def test_idle_sites_exchange_no_room_traffic(self):
        for mode, idle in self.results["scenarios"]["idle"].items():
            self.assertEqual(idle["room_stanzas"], 0, mode)

    def test_resync_delivered_the_missed_messages_in_every_mode(self):
        row = self.results["scenarios"]["resync"][0]
        for mode in modes_of("resync"):
            self.assertGreater(row["%s_bytes" % mode], 0, mode)

    def test_timings_have_their_spread(self):
        for mode, figures in self.results["scenarios"]["constrained"].items():
            latency = figures["latency_raleigh_ms"]
            self.assertLessEqual(latency["min"], latency["p50"])
            self.assertLessEqual(latency["p50"], latency["max"])
            self.assertGreater(figures["fill_s"], 0)
        for mode, figures in self.results["scenarios"]["throughput"].items():
            self.assertGreater(figures["messages_per_s"]["median"], 0, mode)
            # Stock's two rooms, on the same servers, turn about.
            for baseline in ("baseline", "plain"):
                self.assertGreater(figures[baseline]["messages_per_s"]["median"], 0, mode)
        self.assertEqual(sorted(self.results["scenarios"]["throughput"]),
                         sorted(modes_of("throughput")))
        self.assertNotIn("stock", self.results["scenarios"]["throughput"])
        self.assertIn("dmuc_mc", self.results["scenarios"]["throughput"])

    def test_results_page_and_charts_are_written(self):
        directory = temp_directory(self)
        out, docs = os.path.join(directory, "results"), os.path.join(directory, "docs")
        bench_run.write(self.results, out, docs)
        with open(os.path.join(out, "latest.json")) as f:
            written = json.load(f)
        self.assertEqual(written["scenarios"]["messages"][0]["remote_users"], 1)
        with open(os.path.join(docs, "benchmarks.md")) as f:
            page = f.read()
        for title in ("## Messages", "## Joins", "## Idle", "## Resync", "## Constrained link",
                      "## Throughput", "## Targets"):
            self.assertIn(title, page)
        for chart in ("bench-messages-bytes.png", "bench-joins-bytes.png",
                      "bench-constrained-latency.png"):
            with open(os.path.join(docs, "img", chart), "rb") as f:
                self.assertEqual(f.read(8), b"\x89PNG\r\n\x1a\n")
            self.assertIn("img/" + chart, page)
