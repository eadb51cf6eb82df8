"""The link monitor's state machine, on a Clock: no waiting."""

from twisted.internet.task import Clock
from twisted.trial import unittest

from dmuc.monitor.monitor import SPLIT, UP, LinkMonitor, MonitorSettings


class Listener:
    def __init__(self):
        self.events = []

    def split(self, peer, reason):
        self.events.append(("split", peer, reason))

    def netjoin(self, peer):
        self.events.append(("netjoin", peer))


class MonitorTests(unittest.TestCase):

    def setUp(self):
        self.clock = Clock()
        self.sent = []
        self.listener = Listener()
        self.monitor = LinkMonitor("conference.fairfax.test", "mirror.raleigh.test",
                                   self.clock, self.sent.append, self.listener,
                                   MonitorSettings(60, 20, 10))
        self.monitor.start()

    def pings(self):
        return [s for s in self.sent if s.name == "iq"]

    def test_no_ping_while_the_peer_talks(self):
        for _ in range(10):
            self.clock.advance(30)
            self.monitor.heard()
        self.assertEqual(self.pings(), [])

    def test_ping_after_silence_then_answer(self):
        self.clock.advance(60)
        ping, = self.pings()
        self.assertEqual((ping["to"], ping["type"]), ("mirror.raleigh.test", "get"))
        self.clock.advance(5)
        self.monitor.heard()
        self.clock.advance(30)
        self.assertEqual(self.monitor.state, UP)
        self.assertEqual(self.listener.events, [])

    def test_idle_link_costs_one_ping_per_interval(self):
        """A silent but healthy peer: exactly one ping per ping_interval."""
        answered = 0
        for _ in range(600):            # ten idle hours, minute by minute
            self.clock.advance(60)
            if len(self.pings()) > answered:
                answered = len(self.pings())
                self.monitor.heard()     # the pong
        self.assertEqual(len(self.pings()), 600)
        self.assertEqual(self.monitor.state, UP)

    def test_missed_answer_splits_then_faster_pings_then_netjoin(self):
        self.clock.advance(60)
        self.clock.advance(19)
        self.assertEqual(self.monitor.state, UP)
        self.clock.advance(1)
        self.assertEqual(self.monitor.state, SPLIT)
        self.assertEqual(self.listener.events[0][:2], ("split", "mirror.raleigh.test"))
        before = len(self.pings())
        self.clock.pump([10, 10, 10])
        self.assertEqual(len(self.pings()) - before, 3)
        self.monitor.heard()
        self.assertEqual(self.monitor.state, UP)
        self.assertEqual(self.listener.events[-1], ("netjoin", "mirror.raleigh.test"))

    def test_bounce_splits_at_once(self):
        self.monitor.bounced("remote-server-not-found")
        self.assertEqual(self.monitor.state, SPLIT)
        self.monitor.bounced("remote-server-not-found")
        self.assertEqual(len(self.listener.events), 1)

    def test_other_errors_do_not_split(self):
        self.monitor.bounced("forbidden")
        self.assertEqual(self.monitor.state, UP)

    def test_status(self):
        self.monitor.bounced("remote-server-timeout")
        status = self.monitor.status()
        self.assertEqual((status["peer"], status["state"]), ("mirror.raleigh.test", "split"))
