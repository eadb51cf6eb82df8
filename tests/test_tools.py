"""
The newcomer's tools: `make run`'s link commands and `make demo`, the
demo on two real sites (tests/harness/sites.py) beside stock Prosody.
"""

import io
import os
import sys
import tempfile

from twisted.trial import unittest

from tests.harness.sites import TwoSites, free_addresses

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                "tools"))
import demo  # noqa: E402
import run_site  # noqa: E402


class FakeRelay:
    def __init__(self):
        self.calls = []

    def __getattr__(self, name):
        return lambda *args, **kwargs: self.calls.append((name, args, kwargs))


class FakeSites:
    def __init__(self):
        self.relay = FakeRelay()


class LinkCommandTests(unittest.TestCase):

    def play(self, *lines):
        sites, said, typed = FakeSites(), [], list(lines)

        def read(prompt):
            if not typed:
                raise EOFError
            return typed.pop(0)
        run_site.command_loop(sites, read=read, out=said.append)
        return sites.relay.calls, said

    def test_cut_stall_slow_heal(self):
        calls, said = self.play("cut", "stall r>f", "slow 9600 300", "heal")
        self.assertEqual(calls, [
            ("cut", (), {}), ("stall", ("raleigh>fairfax",), {}),
            ("shape", (), {"delay": 0.3, "bandwidth": 9600}),
            ("heal", (), {}), ("shape", (), {})])
        self.assertEqual(len(said), 4)

    def test_bad_input_is_answered_not_fatal(self):
        calls, said = self.play("stall sideways", "slow fast", "dance", "", "help")
        self.assertEqual(calls, [])
        self.assertEqual(said[:3], ["usage: see help", "usage: see help",
                                    "unknown command 'dance'; type help"])
        self.assertIn("counts", said[3])


class DemoTests(unittest.TestCase):

    def test_each_step_against_stock_in_lines_that_fit(self):
        sites = TwoSites(tempfile.mkdtemp(prefix="dmuc-demo-test-"), addresses=free_addresses(),
                         muc_domains=((demo.STOCK_MUC,), ()), log_level="info")
        self.addCleanup(sites.stop)
        sites.start()
        out = io.StringIO()
        dmuc, stock = demo.run(sites, out)
        lines = out.getvalue().splitlines()
        self.assertLessEqual(max(len(line) for line in lines), 100)
        self.assertIn("f>r", lines[1] + lines[2])
        steps = dict(dmuc)
        theirs = dict(stock)
        # One copy per site, where stock sends one per remote user.
        hello = "kevin says hello to both"
        self.assertEqual(steps[hello][2], 1)
        self.assertEqual(theirs[hello][2], 2)
        # Between two users of one mirror nothing crosses.
        self.assertEqual(steps["wayne to keith, privately"], (0, 0, 0))
        self.assertGreater(sum(theirs["wayne to keith, privately"][:2]), 0)
        self.assertTrue(lines[-3].startswith("In all: dmuc "), lines[-3])
