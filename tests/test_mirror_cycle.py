"""
A mirror user leaving and joining again at once (poezio's C{/cycle}),
before the master has answered the leave: docs/poezio.md.  As at
Prosody's mod_muc, the user sees itself leave and then the whole join
sequence, and every site sees it go and come back.
"""

from twisted.trial import unittest

from tests.stanza_helpers import status_codes
from tests.test_dmuc_flows import KEITH, KEVIN, WAYNE, bodies, join, say
from tests.two_site_helpers import MROOM, ROOM, TwoSites

LEAVE = "<presence type='unavailable' to='%s/Wayne'/>" % MROOM
JOIN = "<presence to='%s/Wayne'><x xmlns='http://jabber.org/protocol/muc'/></presence>" % MROOM


def presences(stanzas, jid):
    """(type, status codes) of each presence from C{jid}, in order."""
    return [(s.getAttribute("type"), status_codes(s)) for s in stanzas
            if s.name == "presence" and s.getAttribute("from") == jid]


class CycleTests(unittest.TestCase):

    def setUp(self):
        self.sites = TwoSites()
        join(self.sites, KEVIN, "Kevin", ROOM)
        join(self.sites, WAYNE, "Wayne")
        self.sites.take(KEVIN)

    def cycle(self):
        """Leave and join again before the master's answer gets back."""
        self.sites.stall("fairfax>raleigh")
        self.sites.send(WAYNE, LEAVE)
        self.sites.send(WAYNE, JOIN)
        self.sites.heal()

    def test_the_user_sees_itself_leave_then_join(self):
        self.cycle()
        seen = self.sites.take(WAYNE)
        self.assertEqual(presences(seen, MROOM + "/Wayne"),
                         [("unavailable", ["110"]), (None, ["110"])])
        self.assertEqual(presences(seen, MROOM + "/Kevin"), [(None, [])])

    def test_both_sites_go_on_talking(self):
        self.cycle()
        self.assertEqual(presences(self.sites.take(KEVIN), ROOM + "/Wayne"),
                         [("unavailable", []), (None, [])])
        self.sites.take(WAYNE)
        say(self.sites, KEVIN, "still there?", ROOM)
        self.assertEqual(bodies(self.sites.take(WAYNE)), ["still there?"])
        self.sites.take(KEVIN)
        say(self.sites, WAYNE, "yes", MROOM)
        self.assertEqual(bodies(self.sites.take(KEVIN)), ["yes"])

    def test_another_mirror_user_sees_it_go_and_come_back(self):
        """The copy stays (not idle): the join is served from it."""
        join(self.sites, KEITH, "Keith")
        self.sites.take(WAYNE)
        self.cycle()
        self.assertEqual(presences(self.sites.take(KEITH), MROOM + "/Wayne"),
                         [("unavailable", []), (None, [])])
        seen = self.sites.take(WAYNE)
        self.assertEqual(presences(seen, MROOM + "/Wayne"),
                         [("unavailable", ["110"]), (None, ["110"])])
        self.assertEqual(presences(seen, MROOM + "/Keith"), [(None, [])])
