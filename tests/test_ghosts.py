"""
A client whose stream Prosody closes for malformed XML (issue 13): the
room must lose the occupant, at the master's site and at the mirror's,
and the other users see it leave.
"""

from twisted.trial import unittest

from tests.harness.client import call_on_loop, connect
from tests.harness.xml import status_codes
from tests.test_netsplit_sites import MROOM, ROOM, TwoSitesInAConversation, eventually


class GhostTests(TwoSitesInAConversation, unittest.TestCase):

    def occupants_seen_by(self, site, user, room):
        client = connect(self, getattr(self.sites, site), user, resource="x")
        client.send("<presence to='%s/%s'><x xmlns='http://jabber.org/protocol/muc'>"
                    "<history maxstanzas='0'/></x></presence>" % (room, user))
        client.wait_for(lambda s: 110 in status_codes(s), timeout=10)
        nicks = sorted(s.get("from").rpartition("/")[2] for s in client.take_all()
                       if s.tag.endswith("presence") and s.get("type") is None)
        client.send("<presence to='%s/%s' type='unavailable'/>" % (room, user))
        return nicks

    BREAKERS = {
        "not well-formed": "<message><body>unclosed</message>",
        "a control character": "<message><body>\x01</body></message>",
        "over Prosody's stanza size limit": "<message><body>%s</body></message>" % (
            "x" * 600000),
    }

    def break_stream(self, client, how="not well-formed"):
        call_on_loop(client.xmpp.send_raw, self.BREAKERS[how])

    def test_a_master_site_user_whose_stream_breaks_leaves(self):
        self.break_stream(self.kevin)
        self.wayne.wait_for(lambda s: s.get("from") == MROOM + "/Kevin"
                            and s.get("type") == "unavailable", timeout=15)
        self.assertNotIn("Kevin", self.occupants_seen_by("fairfax", "dave", ROOM))

    def test_a_mirror_site_user_whose_stream_breaks_leaves(self):
        self.mirror_user_breaks("not well-formed")

    def test_a_control_character(self):
        self.mirror_user_breaks("a control character")

    def test_a_stanza_over_prosodys_limit(self):
        self.mirror_user_breaks("over Prosody's stanza size limit")

    def mirror_user_breaks(self, how):
        self.break_stream(self.wayne, how)
        self.kevin.wait_for(lambda s: s.get("from") == ROOM + "/Wayne"
                            and s.get("type") == "unavailable", timeout=15)
        self.keith.wait_for(lambda s: s.get("from") == MROOM + "/Wayne"
                            and s.get("type") == "unavailable", timeout=15)
        self.assertTrue(eventually(
            lambda: "Wayne" not in self.occupants_seen_by("raleigh", "eve", MROOM), timeout=5))
