"""
Nick changes through a mirror, on a master and a mirror wired in memory:
the master renames a mirror occupant (status 303) as any other, and every
user at both sites sees what Prosody's mod_muc shows (docs/decisions.md,
"What users see through a mirror").
"""

from twisted.trial import unittest

from dmuc.xmpp import namespaces as ns
from tests.stanza_helpers import error_condition, item, status_codes
from tests.test_dmuc_flows import KEITH, KEVIN, WAYNE, bodies, join, say
from tests.two_site_helpers import MROOM, ROOM, TwoSites

WAYNE_PHONE = "wayne@raleigh.test/phone"
CAROL = "carol@fairfax.test/desk"
DOUG = "doug@raleigh.test/pc"


def change_nick(sites, user, nick, extra=""):
    sites.send(user, "<presence to='%s/%s'>%s</presence>" % (MROOM, nick, extra))


def occupant_id(stanza):
    found = list(stanza.elements(ns.OCCUPANT_ID, "occupant-id"))
    return found[0]["id"] if found else None


class MirrorNickChangeTests(unittest.TestCase):

    def setUp(self):
        self.sites = TwoSites()
        join(self.sites, KEVIN, "Kevin", ROOM)
        join(self.sites, WAYNE, "Wayne")
        join(self.sites, KEITH, "Keith")
        for user in (KEVIN, WAYNE, KEITH):
            self.sites.take(user)
        self.sites.link_count()

    def assertRenamed(self, stanzas, room, own=False):
        """The 303 from the old nick, then the presence from the new one
        (Prosody's order); the user itself with 110 in both."""
        self.assertEqual([(s["from"], s.getAttribute("type")) for s in stanzas],
                         [(room + "/Wayne", "unavailable"), (room + "/Bruce", None)])
        gone, back = stanzas
        self.assertEqual(status_codes(gone), ["303", "110"] if own else ["303"])
        self.assertEqual(status_codes(back), ["110"] if own else [])
        self.assertEqual(item(gone)["nick"], "Bruce")
        self.assertEqual((item(back)["affiliation"], item(back)["role"]),
                         ("none", "participant"))
        self.assertEqual(str(next(back.elements(None, "show"))), "away")
        return gone, back

    def test_everyone_sees_the_change(self):
        change_nick(self.sites, WAYNE, "Bruce", "<show>away</show>")
        gone, back = self.assertRenamed(self.sites.take(WAYNE), MROOM, own=True)
        # Prosody builds the user's own 303 by hand, without an occupant-id.
        self.assertIsNone(occupant_id(gone))
        self.assertEqual(item(back)["jid"], WAYNE)
        for user, room in ((KEITH, MROOM), (KEVIN, ROOM)):
            gone, back = self.assertRenamed(self.sites.take(user), room)
            self.assertIsNotNone(occupant_id(gone))
            self.assertEqual(occupant_id(gone), occupant_id(back))
        for stanza in self.sites.take(KEVIN) + self.sites.take(KEITH):
            self.assertNotIn(ns.FMUC, stanza.toXml())
        # Up, and the presences to the user's occupant JIDs coming down.
        self.assertEqual(self.sites.link_count(), 3)

    def test_messages_after_the_change(self):
        change_nick(self.sites, WAYNE, "Bruce")
        for user in (KEVIN, WAYNE, KEITH):
            self.sites.take(user)
        say(self.sites, WAYNE, "renamed", MROOM)
        for user, room in ((KEVIN, ROOM), (WAYNE, MROOM), (KEITH, MROOM)):
            message, = self.sites.take(user)
            self.assertEqual((message["from"], bodies([message])),
                             (room + "/Bruce", ["renamed"]))
        say(self.sites, KEVIN, "hello Bruce", ROOM)
        self.assertEqual(bodies(self.sites.take(WAYNE)), ["hello Bruce"])

    def test_status_and_leave_after_the_change(self):
        change_nick(self.sites, WAYNE, "Bruce")
        for user in (KEVIN, WAYNE, KEITH):
            self.sites.take(user)
        self.sites.send(WAYNE, "<presence to='%s/Bruce'><show>dnd</show></presence>" % MROOM)
        for user, room in ((KEVIN, ROOM), (WAYNE, MROOM), (KEITH, MROOM)):
            presence, = self.sites.take(user)
            self.assertEqual((presence["from"], str(next(presence.elements(None, "show")))),
                             (room + "/Bruce", "dnd"))
        self.sites.send(WAYNE, "<presence type='unavailable' to='%s/Bruce'/>" % MROOM)
        for user, room in ((KEVIN, ROOM), (WAYNE, MROOM), (KEITH, MROOM)):
            presence, = self.sites.take(user)
            self.assertEqual((presence["from"], presence["type"]),
                             (room + "/Bruce", "unavailable"))
        self.assertEqual(sorted(self.sites.master.rooms[ROOM].occupants), ["Keith", "Kevin"])
        # The old nick is free for anyone again, at both sites.
        join(self.sites, DOUG, "Wayne")
        self.assertEqual(self.sites.take(KEVIN)[0]["from"], ROOM + "/Wayne")

    def test_history_attribution_afterwards(self):
        say(self.sites, WAYNE, "as wayne", MROOM)
        change_nick(self.sites, WAYNE, "Bruce")
        say(self.sites, WAYNE, "as bruce", MROOM)
        for user, room in ((CAROL, ROOM), (DOUG, MROOM)):
            seen = join(self.sites, user, user.split("@")[0].title(), room)
            messages = [s for s in seen if s.name == "message" and bodies([s])]
            self.assertEqual([(m["from"], bodies([m])) for m in messages],
                             [(room + "/Wayne", ["as wayne"]), (room + "/Bruce", ["as bruce"])])
            others = [s["from"] for s in seen if s.name == "presence"]
            self.assertIn(room + "/Bruce", others)
            self.assertNotIn(room + "/Wayne", others)

    def test_private_messages_to_the_new_nick(self):
        change_nick(self.sites, WAYNE, "Bruce")
        for user in (KEVIN, WAYNE, KEITH):
            self.sites.take(user)
        self.sites.send(KEVIN, "<message to='%s/Bruce' type='chat'><body>down</body></message>"
                        % ROOM)
        message, = self.sites.take(WAYNE)
        self.assertEqual((message["from"], bodies([message])), (MROOM + "/Kevin", ["down"]))
        self.sites.send(KEITH, "<message to='%s/Bruce' type='chat'><body>local</body></message>"
                        % MROOM)
        message, = self.sites.take(WAYNE)
        self.assertEqual((message["from"], bodies([message])), (MROOM + "/Keith", ["local"]))
        self.sites.send(WAYNE, "<message to='%s/Kevin' type='chat'><body>up</body></message>"
                        % MROOM)
        message, = self.sites.take(KEVIN)
        self.assertEqual((message["from"], bodies([message])), (ROOM + "/Bruce", ["up"]))
        # Nobody is at the old nick any more.
        self.sites.send(KEVIN, "<message to='%s/Wayne' type='chat'><body>lost</body></message>"
                        % ROOM)
        error, = self.sites.take(KEVIN)
        self.assertEqual(error_condition(error), ("cancel", "item-not-found"))
        self.assertEqual(self.sites.take(WAYNE), [])

    def test_iq_to_the_new_nick(self):
        change_nick(self.sites, WAYNE, "Bruce")
        self.sites.take(WAYNE)
        self.sites.send(KEVIN, "<iq type='get' id='v' to='%s/Bruce'><query "
                        "xmlns='jabber:iq:version'/></iq>" % ROOM)
        request, = self.sites.take(WAYNE)
        self.assertEqual(request["from"], MROOM + "/Kevin")
        self.sites.send(WAYNE, "<iq type='result' id='%s' to='%s/Kevin'/>"
                        % (request["id"], MROOM))
        answer, = [s for s in self.sites.take(KEVIN) if s.name == "iq"]
        self.assertEqual((answer["id"], answer["from"], answer["type"]),
                         ("v", ROOM + "/Bruce", "result"))

    def assertConflict(self, nick):
        change_nick(self.sites, WAYNE, nick)
        error, = self.sites.take(WAYNE)
        self.assertEqual((error["from"], error_condition(error)),
                         (MROOM + "/" + nick, ("cancel", "conflict")))
        self.assertEqual(self.sites.take(KEVIN) + self.sites.take(KEITH), [])
        # Still Wayne, everywhere.
        say(self.sites, WAYNE, "still wayne", MROOM)
        for user, room in ((KEVIN, ROOM), (WAYNE, MROOM), (KEITH, MROOM)):
            message, = self.sites.take(user)
            self.assertEqual(message["from"], room + "/Wayne")

    def test_conflict_with_a_user_of_the_master_site(self):
        self.assertConflict("Kevin")

    def test_conflict_with_a_user_of_the_mirror_site(self):
        self.assertConflict("Keith")
        # The mirror knew: nothing went up for the refusal.
        say(self.sites, WAYNE, "x", MROOM)

    def test_conflict_with_a_reserved_nick(self):
        self.sites.master.rooms[ROOM].register("carol@fairfax.test", "Carol")
        self.sites.advance(1)
        for user in (KEVIN, WAYNE, KEITH):
            self.sites.take(user)
        self.assertConflict("Carol")

    def test_changing_twice_and_back(self):
        change_nick(self.sites, WAYNE, "Bruce")
        change_nick(self.sites, WAYNE, "Wayne")
        seen = self.sites.take(KEVIN)
        self.assertEqual([(s["from"], status_codes(s)) for s in seen],
                         [(ROOM + "/Wayne", ["303"]), (ROOM + "/Bruce", []),
                          (ROOM + "/Bruce", ["303"]), (ROOM + "/Wayne", [])])
        self.assertEqual(len(self.sites.take(WAYNE)), 4)
        say(self.sites, WAYNE, "back", MROOM)
        message, = self.sites.take(KEVIN)
        self.assertEqual(message["from"], ROOM + "/Wayne")

    def test_a_device_sharing_the_occupant_is_refused(self):
        """As at the master: the user's devices keep one nick."""
        join(self.sites, WAYNE_PHONE, "Wayne")
        for user in (KEVIN, WAYNE, WAYNE_PHONE, KEITH):
            self.sites.take(user)
        change_nick(self.sites, WAYNE_PHONE, "Bruce")
        error, = self.sites.take(WAYNE_PHONE)
        self.assertEqual(error_condition(error), ("modify", "not-acceptable"))
        self.assertEqual(self.sites.take(KEVIN), [])

    def test_the_new_nick_survives_a_mirror_restart(self):
        change_nick(self.sites, WAYNE, "Bruce")
        self.sites.restart_mirror(crash=True)
        for user in (KEVIN, WAYNE, KEITH):
            self.sites.take(user)
        say(self.sites, WAYNE, "after the restart", MROOM)
        for user, room in ((KEVIN, ROOM), (WAYNE, MROOM), (KEITH, MROOM)):
            message, = self.sites.take(user)
            self.assertEqual(message["from"], room + "/Bruce")

    def test_refused_during_a_split(self):
        """Refused with a clear error: nothing to carry to the master at the
        netjoin, where the nick might be taken meanwhile."""
        self.sites.cut = True
        say(self.sites, WAYNE, "alone?", MROOM)       # bounces: the mirror splits
        for user in (WAYNE, KEITH):
            self.sites.take(user)
        change_nick(self.sites, WAYNE, "Bruce")
        error, = self.sites.take(WAYNE)
        self.assertEqual((error["from"], error_condition(error)),
                         (MROOM + "/Bruce", ("wait", "recipient-unavailable")))
        self.assertIn("split", str(next(error.elements(None, "error")).children[-1]))
        self.assertEqual(self.sites.take(KEITH), [])
        self.sites.cut = False
        self.sites.advance(30)
        for user in (KEVIN, WAYNE, KEITH):
            self.sites.take(user)
        say(self.sites, WAYNE, "back", MROOM)
        self.assertEqual(self.sites.take(KEVIN)[-1]["from"], ROOM + "/Wayne")

    def test_a_message_sent_before_the_mirror_hears_of_the_change(self):
        """The user talks before the 303 reaches the mirror: the message
        goes up from the old occupant JID, and reaches everyone all the
        same, from the new nick (the master renamed the user first)."""
        self.sites.stall("fairfax>raleigh")
        change_nick(self.sites, WAYNE, "Bruce")
        say(self.sites, WAYNE, "quick", MROOM)
        self.sites.heal()
        self.assertEqual([(s.name, s["from"]) for s in self.sites.take(WAYNE)],
                         [("presence", MROOM + "/Wayne"), ("presence", MROOM + "/Bruce"),
                          ("message", MROOM + "/Bruce")])
        for user, room in ((KEVIN, ROOM), (KEITH, MROOM)):
            messages = [s for s in self.sites.take(user) if s.name == "message"]
            self.assertEqual([(m["from"], bodies([m])) for m in messages],
                             [(room + "/Bruce", ["quick"])])
        self.assertEqual(sorted(self.sites.master.rooms[ROOM].occupants),
                         ["Bruce", "Keith", "Kevin"])
