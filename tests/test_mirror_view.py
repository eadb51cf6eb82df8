"""
What a mirror user sees must be what a master user sees (issue: "every
modern client"): occupants' full presences after every kind of sync, the
occupant-ids clients attribute messages by, the features clients look for,
the history hints, and a rejoin from the same session.  The master and the
mirror are wired in memory (tests/two_site_helpers.py).
"""

from twisted.trial import unittest

from dmuc.xmpp import namespaces as ns
from tests.stanza_helpers import status_codes
from tests.test_dmuc_flows import KEITH, KEVIN, WAYNE, bodies, join, say
from tests.two_site_helpers import MROOM, ROOM, TwoSites

CAROL = "carol@fairfax.test/desk"
RICH = ("<show>away</show><status>at lunch</status>"
        "<c xmlns='http://jabber.org/protocol/caps' hash='sha-1' node='https://poez.io' "
        "ver='q07IKJEyjvHSyhy//CH0CxmKi8w='/>"
        "<x xmlns='vcard-temp:x:update'><photo>01b87fcd030b72895ff8e88db57ec525450f000d</photo></x>")


def rich_join(sites, user, nick, room):
    sites.send(user, "<presence to='%s/%s'><x xmlns='http://jabber.org/protocol/muc'/>%s"
                     "</presence>" % (room, nick, RICH))
    return sites.take(user)


def presence_from(stanzas, jid):
    found = [s for s in stanzas if s.name == "presence" and s.getAttribute("from") == jid]
    return found[-1] if found else None


def payload_of(presence):
    """What a client reads in a presence, without addressing: each child
    as XML text, the muc#user item without the real JID (who may see it
    differs per viewer), sorted."""
    texts = []
    for element in presence.elements():
        copy = element
        if element.uri == ns.MUC_USER:
            from dmuc.xmpp.stanzas import copy_element
            copy = copy_element(element)
            for item in copy.elements(ns.MUC_USER, "item"):
                item.attributes.pop("jid", None)
        texts.append(copy.toXml())
    return sorted(texts)


class RemoteStatusTests(unittest.TestCase):
    """Defect 1 and 10: a fairfax user's status, caps, avatar hash and
    occupant-id reach mirror users exactly as fairfax users see them."""

    def setUp(self):
        self.sites = TwoSites()
        rich_join(self.sites, KEVIN, "Kevin", ROOM)
        self.carol_view = presence_from(join(self.sites, CAROL, "Carol", ROOM), ROOM + "/Kevin")
        self.sites.take(KEVIN)

    def assert_same_as_at_the_master(self, presence):
        self.assertIsNotNone(presence)
        self.assertEqual(payload_of(presence), payload_of(self.carol_view))
        self.assertIsNotNone(next(presence.elements(ns.OCCUPANT_ID, "occupant-id"), None))

    def test_first_join_through_the_mirror(self):
        seen = join(self.sites, WAYNE, "Wayne")
        self.assert_same_as_at_the_master(presence_from(seen, MROOM + "/Kevin"))

    def test_second_local_join(self):
        join(self.sites, WAYNE, "Wayne")
        seen = join(self.sites, KEITH, "Keith")
        self.assert_same_as_at_the_master(presence_from(seen, MROOM + "/Kevin"))

    def test_status_after_a_change_then_a_later_join(self):
        join(self.sites, WAYNE, "Wayne")
        self.sites.send(KEVIN, "<presence to='%s/Kevin'><show>dnd</show>"
                               "<status>in a meeting</status></presence>" % ROOM)
        self.carol_view = presence_from(self.sites.take(CAROL), ROOM + "/Kevin")
        self.assert_same_as_at_the_master(presence_from(self.sites.take(WAYNE), MROOM + "/Kevin"))
        seen = join(self.sites, KEITH, "Keith")
        self.assert_same_as_at_the_master(presence_from(seen, MROOM + "/Kevin"))

    def test_netjoin(self):
        join(self.sites, WAYNE, "Wayne")
        self.sites.take(WAYNE)
        self.sites.cut = True
        self.sites.clock.advance(1)
        say(self.sites, WAYNE, "anyone?", MROOM)          # bounces: the mirror splits
        self.sites.take(WAYNE)
        self.sites.cut = False
        self.sites.advance(30)
        back = presence_from(self.sites.take(WAYNE), MROOM + "/Kevin")
        self.assert_same_as_at_the_master(back)
        self.assertNotIn("http://jabber.org/protocol/nick", back.toXml())


class RoomFeatureTests(unittest.TestCase):
    """Defect 9: clients use stanza-ids (replies, reactions, moderation)
    only when the room says it adds them (XEP-0359)."""

    def setUp(self):
        self.sites = TwoSites()
        join(self.sites, KEVIN, "Kevin", ROOM)
        join(self.sites, WAYNE, "Wayne")

    def features(self, user, room):
        self.sites.send(user, "<iq type='get' id='d' to='%s'><query xmlns='%s'/></iq>"
                              % (room, ns.DISCO_INFO))
        reply, = [s for s in self.sites.take(user) if s.name == "iq"]
        query = next(reply.elements(ns.DISCO_INFO, "query"))
        return {f["var"] for f in query.elements(ns.DISCO_INFO, "feature")}

    def test_stanza_ids_are_advertised_at_both_sites(self):
        for user, room in ((KEVIN, ROOM), (WAYNE, MROOM)):
            features = self.features(user, room)
            self.assertIn(ns.STANZA_ID, features, room)
            self.assertIn(ns.OCCUPANT_ID, features, room)


class HintsTests(unittest.TestCase):
    """Defect 6: XEP-0334 hints decide what a later joiner's backlog holds,
    alike at both sites."""

    MESSAGES = (
        "<body>kept</body>",
        "<body>not kept</body><no-store xmlns='urn:xmpp:hints'/>",
        "<body>not kept either</body><no-permanent-store xmlns='urn:xmpp:hints'/>",
        "<reactions xmlns='urn:xmpp:reactions:0' id='x1'><reaction>+1</reaction></reactions>"
        "<store xmlns='urn:xmpp:hints'/>",
        "<active xmlns='http://jabber.org/protocol/chatstates'/>",
    )

    def backlog(self, user, nick, room):
        seen = join(self.sites, user, nick, room)
        return [[c.name for c in s.elements() if c.name not in ("delay", "stanza-id",
                                                                   "occupant-id", "origin-id")]
                for s in seen if s.name == "message" and next(s.elements(None, "subject"), None)
                is None]

    def check(self, sender, room):
        self.sites = TwoSites()
        join(self.sites, KEVIN, "Kevin", ROOM)
        join(self.sites, WAYNE, "Wayne")
        for payload in self.MESSAGES:
            self.sites.send(sender, "<message to='%s' type='groupchat'>%s</message>"
                            % (room, payload))
        expected = [["body"], ["reactions", "store"]]
        self.assertEqual(self.backlog(CAROL, "Carol", ROOM), expected)
        self.assertEqual(self.backlog(KEITH, "Keith", MROOM), expected)

    def test_hints_from_a_master_user(self):
        self.check(KEVIN, ROOM)

    def test_hints_from_a_mirror_user(self):
        self.check(WAYNE, MROOM)

    def test_hints_fire_and_forget(self):
        self.sites = TwoSites(fire_and_forget=True)
        join(self.sites, KEVIN, "Kevin", ROOM)
        join(self.sites, WAYNE, "Wayne")
        for payload in self.MESSAGES:
            self.sites.send(WAYNE, "<message to='%s' type='groupchat'>%s</message>"
                            % (MROOM, payload))
        expected = [["body"], ["reactions", "store"]]
        self.assertEqual(self.backlog(KEITH, "Keith", MROOM), expected)
        self.assertEqual(self.backlog(CAROL, "Carol", ROOM), expected)


class RejoinTests(unittest.TestCase):
    """Defect 5: a join from a session already in the room (the client
    lost its state) gets the whole join sequence again, as at Prosody."""

    def setUp(self):
        self.sites = TwoSites()
        join(self.sites, KEVIN, "Kevin", ROOM)
        say(self.sites, KEVIN, "earlier", ROOM)
        join(self.sites, WAYNE, "Wayne")
        join(self.sites, KEITH, "Keith")
        for user in (KEVIN, WAYNE, KEITH):
            self.sites.take(user)

    def test_rejoin_through_the_mirror(self):
        seen = join(self.sites, WAYNE, "Wayne")
        presences = [s for s in seen if s.name == "presence"]
        self.assertEqual(sorted(p["from"] for p in presences[:-1]),
                         [MROOM + "/Keith", MROOM + "/Kevin"])
        self.assertEqual(presences[-1]["from"], MROOM + "/Wayne")
        self.assertIn("110", status_codes(presences[-1]))
        messages = [s for s in seen if s.name == "message"]
        self.assertEqual(bodies(messages), ["earlier"])
        self.assertIsNotNone(next(messages[-1].elements(None, "subject"), None))
        self.assertEqual(seen[-1], messages[-1])
        # The others see at most a presence update, never a new join.
        for user in (KEVIN, KEITH):
            self.assertTrue(all(s.name == "presence" and "110" not in status_codes(s)
                                for s in self.sites.take(user)))

    def test_rejoin_through_the_mirror_during_a_split(self):
        self.sites.cut = True
        self.sites.clock.advance(1)
        say(self.sites, WAYNE, "anyone?", MROOM)          # bounces: the mirror splits
        self.sites.take(WAYNE)
        seen = join(self.sites, WAYNE, "Wayne")
        presences = [s for s in seen if s.name == "presence"]
        self.assertEqual([p["from"] for p in presences], [MROOM + "/Keith", MROOM + "/Wayne"])
        self.assertIn("110", status_codes(presences[-1]))
        self.assertEqual(bodies(s for s in seen if s.name == "message"), ["earlier", "anyone?"])
        self.assertIsNotNone(next(seen[-1].elements(None, "subject"), None))

    def test_rejoin_at_the_master_matches(self):
        at_master = join(self.sites, KEVIN, "Kevin", ROOM)
        self.assertEqual([s.name for s in at_master],
                         ["presence", "presence", "presence", "message", "message"])
