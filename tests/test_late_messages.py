"""
Messages held in the link (issue 9, defect 3): what reaches the other
side late keeps its original time, and nobody is told anything false at
the netjoin.  The master and the mirror are wired in memory
(tests/two_site_helpers.py); the relay holds one direction back.
"""

from twisted.trial import unittest

from dmuc.muc.history import order_key
from dmuc.xmpp import namespaces as ns
from dmuc.xmpp.timestamps import parse_timestamp
from tests.test_dmuc_flows import KEITH, KEVIN, WAYNE, bodies, conversation, join, say
from tests.two_site_helpers import MROOM, ROOM


def delays(stanzas, text):
    """The <delay/> stamps of the messages saying C{text}, as times."""
    return [parse_timestamp(d["stamp"]) if d is not None else None
            for s in stanzas if bodies([s]) == [text]
            for d in [next(s.elements(ns.DELAY, "delay"), None)]]


def errors(stanzas):
    return [s for s in stanzas if s.getAttribute("type") == "error"]


class LateMessageTests(unittest.TestCase):

    def setUp(self):
        self.sites = conversation()

    def history_times(self, room, text):
        return [e.timestamp for e in room.history if ">%s<" % text in e.xml]

    def test_held_without_a_split_keeps_its_time(self):
        self.sites.stall("raleigh>fairfax")
        sent = self.sites.clock.seconds()
        say(self.sites, WAYNE, "held", MROOM)
        self.sites.advance(15)
        say(self.sites, KEVIN, "meanwhile", ROOM)
        self.sites.heal()
        self.assertEqual(delays(self.sites.take(KEVIN), "held"), [sent])
        self.assertEqual(delays(self.sites.take(KEITH), "held"), [sent])
        master = self.sites.master.rooms[ROOM]
        mirror = self.sites.mirror.rooms[MROOM]
        self.assertEqual(self.history_times(master, "held"), [sent])
        self.assertEqual([e.stanza_id for e in sorted(master.history, key=order_key)],
                         [e.stanza_id for e in mirror.history])

    def test_a_later_joiner_gets_one_delay_per_message(self):
        self.sites.stall("raleigh>fairfax")
        say(self.sites, WAYNE, "held", MROOM)
        self.sites.advance(15)
        self.sites.heal()
        self.sites.stall("raleigh>fairfax")
        say(self.sites, WAYNE, "held through a split", MROOM)
        self.sites.advance(120)
        self.sites.heal()
        self.sites.advance(30)
        for user, room in (("carol@fairfax.test/x", ROOM), ("dave@raleigh.test/x", MROOM)):
            backlog = [s for s in join(self.sites, user, user[0].upper(), room)
                       if bodies([s])]
            self.assertEqual(bodies(backlog), ["held", "held through a split"])
            self.assertEqual([len(list(s.elements(ns.DELAY, "delay"))) for s in backlog],
                             [1, 1], user)

    def test_a_prompt_message_gets_no_delay(self):
        say(self.sites, WAYNE, "prompt", MROOM)
        self.assertEqual(delays(self.sites.take(KEVIN), "prompt"), [None])

    def test_held_through_a_split_once_with_its_time_and_no_false_error(self):
        self.sites.stall("raleigh>fairfax")
        sent = self.sites.clock.seconds()
        say(self.sites, WAYNE, "held", MROOM)
        self.sites.advance(120)            # both sides see the split
        self.sites.heal()
        self.sites.advance(30)
        kevin = self.sites.take(KEVIN)
        self.assertEqual(delays(kevin, "held"), [sent])
        for user in (WAYNE, KEITH):
            seen = self.sites.take(user)
            self.assertEqual(errors(seen), [], user)
            self.assertLessEqual(len([s for s in seen if bodies([s]) == ["held"]]), 1, user)
        master = self.sites.master.rooms[ROOM]
        self.assertEqual(self.history_times(master, "held"), [sent])
        # Wayne is back before his late message reaches fairfax's users.
        wayne_back = [i for i, s in enumerate(kevin) if s.name == "presence"
                      and s["from"] == ROOM + "/Wayne" and s.getAttribute("type") is None]
        held_at = [i for i, s in enumerate(kevin) if bodies([s]) == ["held"]]
        self.assertTrue(wayne_back and wayne_back[0] < held_at[0], (wayne_back, held_at))

    def test_a_client_cannot_set_the_time(self):
        self.sites.send(KEVIN, "<message to='%s' type='groupchat'><body>forged</body>"
                        "<time xmlns='urn:xmpp:dmuc:0' stamp='2001-01-01T00:00:00Z'/>"
                        "</message>" % ROOM)
        self.sites.send(WAYNE, "<message to='%s' type='groupchat'><body>forged too</body>"
                        "<time xmlns='urn:xmpp:dmuc:0' stamp='2001-01-01T00:00:00Z'/>"
                        "</message>" % MROOM)
        now = self.sites.clock.seconds()
        for room in (self.sites.master.rooms[ROOM], self.sites.mirror.rooms[MROOM]):
            for text in ("forged", "forged too"):
                self.assertEqual(self.history_times(room, text), [now], (room.jid, text))
        for user in (KEVIN, WAYNE, KEITH):
            self.assertNotIn(ns.DMUC_SYNC, "".join(s.toXml() for s in self.sites.take(user)))
