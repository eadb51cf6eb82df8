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


class FacingMonitorsTests(unittest.TestCase):
    """
    Both ends of an idle link run a monitor (the master's for the mirror,
    the mirror's for the master).  Between them they should cost one ping
    exchange per ping_interval, not one per side.
    """

    DELAY = 0.002     # one way, as on a LAN

    def setUp(self):
        self.clock = Clock()
        self.pings = []
        settings = MonitorSettings(5, 15, 1)
        self.master = LinkMonitor("conference.fairfax.test", "mirror.raleigh.test", self.clock,
                                  lambda s: self._carry(s, self.mirror), Listener(), settings)
        self.mirror = LinkMonitor("mirror.raleigh.test", "conference.fairfax.test", self.clock,
                                  lambda s: self._carry(s, self.master), Listener(), settings)

    def _carry(self, stanza, to):
        """The link: the peer's monitor hears it later; a ping is answered."""
        if stanza["type"] == "get":
            self.pings.append(stanza)

        def arrive():
            is_ping = stanza["type"] == "get"
            to.heard(ping=is_ping)
            if is_ping:
                reply = stanza.__class__(("jabber:component:accept", "iq"))
                reply["type"] = "result"
                to.send(reply)
        self.clock.callLater(self.DELAY, arrive)

    def test_an_idle_link_costs_one_exchange_per_interval(self):
        self.master.start()
        self.clock.advance(0.7)          # the mirror's monitor starts a bit later
        self.mirror.start()
        self.advance(200)
        self.assertLessEqual(len(self.pings), 200 / 5 + 1)
        self.assertGreaterEqual(len(self.pings), 0.9 * 200 / 5)   # still kept alive
        self.assertEqual((self.master.state, self.mirror.state), (UP, UP))

    def advance(self, seconds):
        for _ in range(int(seconds * 10)):
            self.clock.advance(0.1)

    def test_the_other_side_takes_over_when_the_pinger_stops(self):
        self.master.start()
        self.clock.advance(0.7)
        self.mirror.start()
        self.advance(30)
        pinger = self.master if self.master.pings_sent > self.mirror.pings_sent else self.mirror
        other = self.mirror if pinger is self.master else self.master
        before = other.pings_sent
        pinger.stop()                   # e.g. that service restarts
        self.advance(5 + 15 + 1)        # an interval, the grace, and a little
        self.assertGreater(other.pings_sent, before)


class KeptStreamTests(unittest.TestCase):
    """Over dmuc's own S2S a watched peer's stream is kept open."""

    def test_watching_keeps_the_stream_retried_as_often_as_split_pings(self):
        from dmuc.monitor.peers import PeerMonitors

        kept = []

        class Router:
            def keep_stream(self, peer, retry_max=None):
                kept.append((peer, retry_max))

        class Service:
            domain = "conference.fairfax.test"
            clock = Clock()
            parent = Router()

            def send_at_once(self, stanza):
                pass

        monitors = PeerMonitors(Service(), MonitorSettings(60, 20, 7))
        monitors.watch("mirror.raleigh.test")
        monitors.watch("mirror.raleigh.test")
        self.assertEqual(kept, [("mirror.raleigh.test", 7)])
        monitors.stop()


class StatusFileTests(unittest.TestCase):
    """The status file an operator (or a script) reads follows the link:
    pings sent and the last sign of life, not only state changes."""

    def setUp(self):
        import json

        from dmuc.monitor.peers import PeerMonitors
        from dmuc.xmpp.stanzas import parse_xml
        self.json, self.parse_xml = json, parse_xml
        self.clock = Clock()
        self.clock.advance(1_700_000_000)
        import shutil
        import tempfile
        directory = tempfile.mkdtemp(prefix="dmuc-status-")
        self.addCleanup(shutil.rmtree, directory, True)
        self.path = directory + "/status.json"
        sent = self.sent = []

        class Service:
            domain = "mirror.raleigh.test"
            clock = self.clock

            def send_at_once(self, stanza):
                sent.append(stanza)

        self.monitors = PeerMonitors(Service(), MonitorSettings(60, 20, 10), self.path)
        self.monitors.watch("conference.fairfax.test")
        self.addCleanup(self.monitors.stop)

    def status(self):
        with open(self.path) as f:
            peer, = self.json.load(f)["peers"]
        return peer

    def test_pings_and_answers_reach_the_file_within_a_second(self):
        from dmuc.xmpp.stanzas import parse_jid
        self.clock.advance(60)                     # silence: a ping goes
        self.clock.advance(1)
        self.assertEqual(self.status()["pings_sent"], 1)
        ping = self.sent[-1]
        answer = self.parse_xml("<iq type='result' id='%s' from='conference.fairfax.test' "
                                "to='mirror.raleigh.test'/>" % ping["id"])
        self.clock.advance(5)
        self.monitors.observe(answer, parse_jid("conference.fairfax.test"))
        self.clock.advance(1)
        self.assertEqual(self.status()["last_heard"], "2023-11-14T22:14:26Z")
        self.assertEqual(self.status()["state"], "up")

    def test_a_busy_link_writes_at_most_once_a_second(self):
        from unittest import mock

        from dmuc.xmpp.stanzas import parse_jid
        stanza = self.parse_xml("<message from='conference.fairfax.test' "
                                "to='mirror.raleigh.test'/>")
        with mock.patch("dmuc.monitor.peers.os.replace") as replace:
            for _ in range(100):
                self.monitors.observe(stanza, parse_jid("conference.fairfax.test"))
                self.clock.advance(0.01)
            self.clock.advance(1)
        self.assertLessEqual(replace.call_count, 2)
        self.assertGreaterEqual(replace.call_count, 1)
