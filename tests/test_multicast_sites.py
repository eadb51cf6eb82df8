"""
XEP-0033 multicast at a real raleigh Prosody 0.12 with the module dmuc
ships (etc/prosody-modules/mod_dmuc_multicast.lua), loaded as
docs/deploy.md says: the mirror hands Prosody one stanza for all its
users in a room, and they see exactly what they saw without it.
"""

from tests.harness.prosody import temp_directory
from tests.harness.sites import MIRROR, start_two_sites
from tests.harness.xml import find
from tests.test_two_sites import MROOM, ROOM, TwoSiteTestCase, body


def said(text):
    return lambda s: body(s) == text


class MulticastTests(TwoSiteTestCase):

    multicast_senders = (MIRROR,)

    def setUp(self):
        self.sites = start_two_sites(self, temp_directory(self),
                                     multicast_senders=self.multicast_senders)

    def prosody_log(self):
        with open(self.sites.raleigh.log_path, encoding="utf-8", errors="replace") as f:
            return f.read()

    def multicasts(self):
        return [line for line in self.prosody_log().splitlines()
                if "dmuc_multicast" in line and "Multicast of a" in line]

    def test_one_stanza_for_all_of_the_mirrors_users(self):
        kevin, wayne, keith = self.three_in_the_room()
        before = len(self.multicasts())
        kevin.send("<message to='%s' type='groupchat' id='m1'><body>to you both</body>"
                   "</message>" % ROOM)
        for user in (wayne, keith):
            message = user.wait_for(said("to you both"), timeout=10)
            self.assertEqual(message.get("from"), MROOM + "/Kevin")
            self.assertEqual(message.get("id"), "m1")
            self.assertIsNone(find(message, "addresses"))
        self.settle(kevin, wayne, keith)
        for user in (wayne, keith):
            self.assertEqual([s for s in user.take_all() if body(s) == "to you both"], [])
        multicasts = self.multicasts()[before:]
        self.assertEqual(len(multicasts), 1, multicasts)
        self.assertIn("to 2 users (list ", multicasts[0])
        self.assertIn("raleigh.test takes multicast from %s: one stanza for all its users in a "
                      "room (XEP-0033, with recipient lists)" % MIRROR,
                      self.sites.mirror.log_text())
        # The same two again: the list the module keeps, named by number.
        kevin.send("<message to='%s' type='groupchat' id='m2'><body>and again</body>"
                   "</message>" % ROOM)
        for user in (wayne, keith):
            message = user.wait_for(said("and again"), timeout=10)
            self.assertEqual((message.get("from"), message.get("id")), (MROOM + "/Kevin", "m2"))
            self.assertIsNone(find(message, "addresses"))
        self.settle(kevin, wayne, keith)
        for user in (wayne, keith):
            self.assertEqual([s for s in user.take_all() if body(s) == "and again"], [])
        again = self.multicasts()[before + 1:]
        self.assertEqual(len(again), 1, again)
        self.assertEqual(again[0].split("to 2 users")[1], multicasts[0].split("to 2 users")[1])

    def test_presence_too(self):
        kevin, wayne, keith = self.three_in_the_room()
        before = len(self.multicasts())
        kevin.send("<presence to='%s/Kevin'><show>away</show></presence>" % ROOM)
        for user in (wayne, keith):
            presence = user.wait_for(
                lambda s: s.get("from") == MROOM + "/Kevin" and find(s, "show") is not None,
                timeout=10)
            self.assertEqual(find(presence, "show").text, "away")
            self.assertIsNone(find(presence, "addresses"))
        self.assertTrue(any("Multicast of a presence" in line
                            for line in self.multicasts()[before:]))


class RefusedMulticastTests(MulticastTests):
    """A Prosody whose module lists another component: the mirror is
    told so, logs what to change, and sends one stanza per user."""

    multicast_senders = ("other.raleigh.test",)

    def test_one_stanza_for_all_of_the_mirrors_users(self):
        kevin, wayne, keith = self.three_in_the_room()
        kevin.send("<message to='%s' type='groupchat'><body>still to you both</body>"
                   "</message>" % ROOM)
        for user in (wayne, keith):
            user.wait_for(said("still to you both"), timeout=10)
        self.settle(kevin, wayne, keith)
        self.assertEqual(self.multicasts(), [])
        self.assertIn("raleigh.test offers multicast but not to %s (add it to "
                      "dmuc_multicast_senders)" % MIRROR, self.sites.mirror.log_text())

    def test_presence_too(self):
        kevin, wayne, keith = self.three_in_the_room()
        kevin.send("<presence to='%s/Kevin'><show>away</show></presence>" % ROOM)
        for user in (wayne, keith):
            user.wait_for(lambda s: s.get("from") == MROOM + "/Kevin"
                          and find(s, "show") is not None, timeout=10)
        self.assertEqual(self.multicasts(), [])
