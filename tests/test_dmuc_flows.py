"""
docs/protocol.md 1-5, 7 and 8 on a master and a mirror wired in memory: what
users on both sites see, and what crosses the link between the sites.
The same flows run over real Prosody S2S in tests/test_two_sites.py.
"""

from twisted.logger import LogLevel
from twisted.trial import unittest

from dmuc.xmpp import namespaces as ns
from dmuc.xmpp.stanzas import child, payload
from tests.stanza_helpers import error_condition, item, logged, status_codes
from tests.two_site_helpers import MASTER, MIRROR, MROOM, ROOM, TwoSites

KEVIN = "kevin@fairfax.test/desk"
WAYNE = "wayne@raleigh.test/laptop"
KEITH = "keith@raleigh.test/phone"
MUC_X = "<x xmlns='http://jabber.org/protocol/muc'>%s</x>"


def join(sites, user, nick, room=MROOM, extra=""):
    sites.send(user, "<presence to='%s/%s'>%s</presence>" % (room, nick, MUC_X % extra))
    return sites.take(user)


def say(sites, user, body, room):
    sites.send(user, "<message to='%s' type='groupchat'><body>%s</body></message>"
               % (room, body))


def conversation(**options):
    """Two sites with Kevin in the room at fairfax and Wayne and Keith
    through the mirror, everyone's inbox empty."""
    sites = TwoSites(**options)
    join(sites, KEVIN, "Kevin", ROOM)
    join(sites, WAYNE, "Wayne")
    join(sites, KEITH, "Keith")
    for user in (KEVIN, WAYNE, KEITH):
        sites.take(user)
    return sites


def bodies(stanzas):
    return [str(b) for s in stanzas for b in s.elements(None, "body")]


class MirrorJoinTests(unittest.TestCase):

    def setUp(self):
        self.sites = TwoSites()
        join(self.sites, KEVIN, "Kevin", ROOM)
        say(self.sites, KEVIN, "before", ROOM)
        self.sites.take(KEVIN)
        self.sites.link_count()

    def test_join_sequence_through_the_mirror(self):
        seen = join(self.sites, WAYNE, "Wayne")
        self.assertEqual([s.name for s in seen], ["presence", "presence", "message", "message"])
        self.assertEqual(seen[0]["from"], MROOM + "/Kevin")
        self.assertEqual(seen[1]["from"], MROOM + "/Wayne")
        self.assertEqual(status_codes(seen[1]), ["110"])
        self.assertEqual(bodies([seen[2]]), ["before"])
        delay = next(seen[2].elements(ns.DELAY, "delay"))
        self.assertEqual(delay["from"], MROOM)
        self.assertEqual(next(seen[2].elements(ns.STANZA_ID, "stanza-id"))["by"], MROOM)
        self.assertEqual(seen[3]["from"], MROOM)
        # No trace of the envelope reaches anyone.
        for stanza in seen + self.sites.take(KEVIN):
            self.assertNotIn(ns.FMUC, stanza.toXml())

    def test_master_users_see_the_remote_user(self):
        join(self.sites, WAYNE, "Wayne")
        presence, = self.sites.take(KEVIN)
        self.assertEqual(presence["from"], ROOM + "/Wayne")
        self.assertEqual(item(presence)["jid"], WAYNE)  # Kevin moderates

    def test_later_joins_cost_one_presence_each_way(self):
        join(self.sites, WAYNE, "Wayne")
        self.sites.link_count()
        for n in range(2, 11):
            join(self.sites, "user%d@raleigh.test/r" % n, "User%d" % n)
            directions = [d for d, _ in self.sites.link]
            self.assertEqual(sorted(directions), ["fairfax>raleigh", "raleigh>fairfax"])
            self.sites.link = []

    def test_one_message_crosses_once_for_ten_mirror_users(self):
        users = ["user%d@raleigh.test/r" % n for n in range(10)]
        for n, user in enumerate(users):
            join(self.sites, user, "User%d" % n)
        self.sites.link_count()
        say(self.sites, KEVIN, "to all", ROOM)
        self.assertEqual(self.sites.link_count(), 1)
        for user in users:
            self.assertEqual(bodies(self.sites.take(user)), ["to all"])

    def test_join_error_reaches_only_the_user(self):
        self.sites.send(KEVIN, "<iq type='set' id='c' to='%s'><query xmlns='%s'><x xmlns='jabber:x:data' "
                        "type='submit'><field var='muc#roomconfig_roomsecret'><value>s</value></field>"
                        "</x></query></iq>" % (ROOM, ns.MUC_OWNER))
        join(self.sites, KEITH, "Keith", extra="<password>s</password>")
        seen = join(self.sites, WAYNE, "Wayne")
        self.assertEqual(len(seen), 1)
        self.assertEqual(error_condition(seen[0]), ("auth", "not-authorized"))
        self.assertEqual(seen[0]["from"], MROOM + "/Wayne")
        self.assertEqual(self.sites.take(KEITH), [])

    def test_nick_conflict_across_sites(self):
        seen = join(self.sites, WAYNE, "Kevin")
        self.assertEqual(error_condition(seen[0]), ("cancel", "conflict"))

    def test_undistributed_room_refuses_mirrors(self):
        self.sites.send(KEVIN, "<iq type='set' id='c' to='%s'><query xmlns='%s'><x xmlns='jabber:x:data' "
                        "type='submit'><field var='muc#roomconfig_distributed'><value>0</value>"
                        "</field></x></query></iq>" % (ROOM, ns.MUC_OWNER))
        seen = join(self.sites, WAYNE, "Wayne")
        self.assertEqual(error_condition(seen[0]), ("cancel", "not-allowed"))


class MirrorConversationTests(unittest.TestCase):

    def setUp(self):
        self.sites = conversation()
        self.sites.link_count()

    def test_remote_message_reaches_everyone_once(self):
        say(self.sites, WAYNE, "from raleigh", MROOM)
        self.assertEqual(self.sites.link_count(), 2)   # up, and the one copy down
        for user, room in ((KEVIN, ROOM), (WAYNE, MROOM), (KEITH, MROOM)):
            message, = self.sites.take(user)
            self.assertEqual(message["from"], room + "/Wayne")
            self.assertEqual(bodies([message]), ["from raleigh"])

    def test_status_change(self):
        self.sites.send(WAYNE, "<presence to='%s/Wayne'><show>away</show></presence>" % MROOM)
        # Up once: the mirror shows its users the change itself.
        self.assertEqual(self.sites.link_count(), 1)
        for user in (KEVIN, WAYNE, KEITH):
            presence, = self.sites.take(user)
            self.assertEqual(str(next(presence.elements(None, "show"))), "away")
        self.assertEqual(status_codes(presence), [])

    def test_private_messages(self):
        self.sites.send(WAYNE, "<message to='%s/Keith' type='chat'><body>local</body></message>" % MROOM)
        self.assertEqual(self.sites.link_count(), 0)
        self.assertEqual(self.sites.take(KEITH)[0]["from"], MROOM + "/Wayne")
        self.sites.send(WAYNE, "<message to='%s/Kevin' type='chat'><body>up</body></message>" % MROOM)
        self.assertEqual(self.sites.take(KEVIN)[0]["from"], ROOM + "/Wayne")
        self.sites.send(KEVIN, "<message to='%s/Wayne' type='chat'><body>down</body></message>" % ROOM)
        message, = self.sites.take(WAYNE)
        self.assertEqual((message["from"], bodies([message])), (MROOM + "/Kevin", ["down"]))

    def test_iq_between_sites(self):
        self.sites.send(WAYNE, "<iq type='get' id='v' to='%s/Kevin'><query xmlns='jabber:iq:version'/></iq>"
                        % MROOM)
        request, = self.sites.take(KEVIN)
        self.assertEqual(request["from"], ROOM + "/Wayne")
        self.sites.send(KEVIN, "<iq type='result' id='%s' to='%s/Wayne'/>" % (request["id"], ROOM))
        answer, = self.sites.take(WAYNE)
        self.assertEqual((answer["id"], answer["from"], answer["type"]), ("v", MROOM + "/Kevin", "result"))

    def test_iqs_between_sites_carry_no_real_jid(self):
        # The envelope names the mirror user's real JID: it is for the
        # master, never for the occupant on the other end (Prosody routes
        # an occupant's IQ with nothing but the occupant JID).
        self.sites.send(WAYNE, "<iq type='get' id='v' to='%s/Kevin'><query xmlns='jabber:iq:version'/></iq>"
                        % MROOM)
        request, = self.sites.take(KEVIN)
        self.sites.send(KEVIN, "<iq type='get' id='t' to='%s/Wayne'><time xmlns='urn:xmpp:time'/></iq>"
                        % ROOM)
        asked, = self.sites.take(WAYNE)
        self.sites.send(WAYNE, "<iq type='result' id='%s' to='%s/Kevin'><time xmlns='urn:xmpp:time'>"
                        "<tzo>+00:00</tzo><utc>2026-12-01T10:00:00Z</utc></time></iq>"
                        % (asked["id"], MROOM))
        answer, = self.sites.take(KEVIN)
        self.assertEqual((answer["id"], answer["from"]), ("t", ROOM + "/Wayne"))
        for stanza in (request, answer):
            self.assertNotIn("wayne@raleigh.test", stanza.toXml())
            self.assertEqual([e.name for e in stanza.elements()], [stanza.firstChildElement().name])

    def test_nick_conflict_refused_at_the_mirror(self):
        """A nick the mirror knows taken costs the link nothing (nick
        changes themselves: tests/test_mirror_nick_change.py)."""
        self.sites.send(WAYNE, "<presence to='%s/Keith'/>" % MROOM)
        error, = self.sites.take(WAYNE)
        self.assertEqual(error_condition(error), ("cancel", "conflict"))
        self.assertEqual(self.sites.link_count(), 0)

    def test_leaves_and_the_last_one_out(self):
        self.sites.send(WAYNE, "<presence type='unavailable' to='%s/Wayne'/>" % MROOM)
        self.assertEqual(self.sites.link_count(), 2)
        self.assertEqual(status_codes(self.sites.take(WAYNE)[0]), ["110"])
        self.assertEqual(self.sites.take(KEITH)[0]["type"], "unavailable")
        self.sites.send(KEITH, "<presence type='unavailable' to='%s/Keith'/>" % MROOM)
        left = [s for _, s in self.sites.link if s.getAttribute("to") == MROOM]
        self.assertEqual(len(left), 1)
        self.assertIsNotNone(next(next(left[0].elements(ns.FMUC, "fmuc")).elements(ns.FMUC, "left")))
        self.sites.link = []
        say(self.sites, KEVIN, "nobody remote", ROOM)
        self.assertEqual(self.sites.link_count(), 0)

    def test_kick_of_a_mirror_user(self):
        self.sites.send(KEVIN, "<iq type='set' id='k' to='%s'><query xmlns='%s'><item nick='Wayne' "
                        "role='none'/></query></iq>" % (ROOM, ns.MUC_ADMIN))
        kicked, = self.sites.take(WAYNE)
        self.assertEqual(status_codes(kicked), ["307", "110"])
        seen, = self.sites.take(KEITH)
        self.assertEqual(status_codes(seen), ["307"])
        say(self.sites, WAYNE, "still here?", MROOM)
        self.assertEqual(error_condition(self.sites.take(WAYNE)[0]), ("cancel", "not-acceptable"))

    def test_subject_and_config_pushed(self):
        self.sites.send(KEVIN, "<message to='%s' type='groupchat'><subject>News</subject></message>" % ROOM)
        self.assertEqual(str(next(self.sites.take(WAYNE)[0].elements(None, "subject"))), "News")
        self.sites.send(KEVIN, "<iq type='set' id='c' to='%s'><query xmlns='%s'><x xmlns='jabber:x:data' "
                        "type='submit'><field var='muc#roomconfig_roomname'><value>Renamed</value>"
                        "</field></x></query></iq>" % (ROOM, ns.MUC_OWNER))
        self.assertEqual(self.sites.mirror.rooms[MROOM].config.name, "Renamed")
        self.assertEqual(status_codes(self.sites.take(WAYNE)[-1]), ["104"])

    def test_config_push_carries_values_not_labels(self):
        """The pushed form is read like a submission: no title, labels or
        options (they cost 3 KB of link at a first sync), and the mirror
        still gets every value, lists included."""
        self.sites.link = []
        self.sites.send(KEVIN, "<iq type='set' id='c' to='%s'><query xmlns='%s'><x xmlns='jabber:x:data' "
                        "type='submit'><field var='muc#roomconfig_whois'><value>anyone</value></field>"
                        "<field var='muc#roomconfig_maxusers'><value>30</value></field>"
                        "</x></query></iq>" % (ROOM, ns.MUC_OWNER))
        push, = [s for _, s in self.sites.link
                 if s.name == "iq" and next(s.elements(ns.DMUC_COMPACT, "config"), None) is not None]
        text = push.toXml()
        for human in ("label=", "<title", "<instructions", "<option"):
            self.assertNotIn(human, text)
        config = self.sites.mirror.rooms[MROOM].config
        self.assertEqual((config.whois, config.max_users), ("anyone", 30))
        # The compact profile's push lists what differs from the defaults
        # only: the two changed fields.
        form = child(child(push, "config", ns.DMUC_COMPACT), "x", ns.DATA_FORMS)
        self.assertEqual(sorted(f["var"] for f in form.elements(ns.DATA_FORMS, "field")),
                         ["muc#roomconfig_maxusers", "muc#roomconfig_whois"])
        self.assertLess(len(text), 500)

    def test_mirror_room_disco(self):
        self.sites.send(WAYNE, "<iq type='get' id='d' to='%s'><query xmlns='%s'/></iq>"
                        % (MROOM, ns.DISCO_INFO))
        reply, = self.sites.take(WAYNE)
        form = next(next(reply.elements(ns.DISCO_INFO, "query")).elements(ns.DATA_FORMS, "x"))
        values = {f["var"]: str(next(f.elements(ns.DATA_FORMS, "value"), ""))
                  for f in form.elements(ns.DATA_FORMS, "field")}
        self.assertEqual(values["dmuc-source"], ROOM)
        self.sites.send(WAYNE, "<iq type='get' id='i' to='%s'><query xmlns='%s'/></iq>"
                        % (MIRROR, ns.DISCO_ITEMS))
        reply, = self.sites.take(WAYNE)
        items = [i["jid"] for i in next(reply.elements(ns.DISCO_ITEMS, "query")).elements()]
        self.assertEqual(items, [MROOM])


class FireAndForgetTests(unittest.TestCase):

    def test_local_users_get_it_at_once_and_the_master_sends_no_copy(self):
        sites = TwoSites(fire_and_forget=True)
        join(sites, KEVIN, "Kevin", ROOM)
        join(sites, WAYNE, "Wayne")
        join(sites, KEITH, "Keith")
        for user in (KEVIN, WAYNE, KEITH):
            sites.take(user)
        sites.link_count()
        say(sites, WAYNE, "quick", MROOM)
        up, = [s for _, s in sites.link]
        # The compact envelope's "no copy for my mirror".
        self.assertEqual(child(up, "u", ns.DMUC_COMPACT).getAttribute("n"), "1")
        self.assertEqual(bodies(sites.take(KEITH)), ["quick"])
        self.assertEqual(bodies(sites.take(WAYNE)), ["quick"])
        self.assertEqual(bodies(sites.take(KEVIN)), ["quick"])


class PrivacyRuleTests(unittest.TestCase):
    """DMUC2: real JIDs only to mirrors that host a moderator."""

    def test_semi_anonymous_room_hides_jids_from_mirrors_without_moderator(self):
        sites = TwoSites()
        join(sites, KEVIN, "Kevin", ROOM)
        join(sites, WAYNE, "Wayne")
        roster = [s for _, s in sites.link if s.name == "iq"
                  and next(s.elements(ns.DMUC_SYNC, "roster"), None) is not None][0]
        self.assertNotIn("jid", next(next(roster.elements(ns.DMUC_SYNC, "roster")).elements()).attributes)
        sites.link = []
        join(sites, "carol@fairfax.test/x", "Carol", ROOM)
        copy, = [s for _, s in sites.link]
        self.assertNotIn("jid", item(copy).attributes)
        sites.link = []
        sites.send(KEVIN, "<iq type='set' id='a' to='%s'><query xmlns='%s'><item "
                   "jid='wayne@raleigh.test' affiliation='admin'/></query></iq>" % (ROOM, ns.MUC_ADMIN))
        join(sites, "dave@fairfax.test/x", "Dave", ROOM)
        copy = [s for _, s in sites.link if s.getAttribute("from") == ROOM + "/Dave"][0]
        self.assertEqual(item(copy)["jid"], "dave@fairfax.test/x")


class TrustTests(unittest.TestCase):
    """docs/protocol.md 7 and 8: every case refused, logged, nothing disturbed."""

    def setUp(self):
        self.sites = TwoSites()
        join(self.sites, KEVIN, "Kevin", ROOM)
        self.sites.take(KEVIN)
        self.warnings = logged(self, LogLevel.warn, LogLevel.error)

    def assertLogged(self, *fragments):
        """An operator can read why, and who: the offending JIDs."""
        self.assertTrue(any(all(f in line for f in fragments) for line in self.warnings),
                        "no warning with %r in %r" % (fragments, self.warnings))

    def refusals_to(self, jid):
        """Errors the other site's component answered C{jid} with."""
        return [s for _, s in self.sites.link
                if s.getAttribute("to") == jid and s.getAttribute("type") == "error"]

    def assertRefused(self, stanzas, condition="not-allowed"):
        self.assertEqual(len(stanzas), 1, [s.toXml() for s in stanzas])
        self.assertEqual(error_condition(stanzas[0])[1], condition)
        # the room still works
        say(self.sites, KEVIN, "fine", ROOM)
        self.assertEqual(bodies(self.sites.take(KEVIN)), ["fine"])

    def test_untrusted_mirror(self):
        sites = TwoSites(trusted={})
        join(sites, KEVIN, "Kevin", ROOM)
        sites.take(KEVIN)
        self.assertRefused_in(sites, join(sites, WAYNE, "Wayne"))
        self.assertLogged("refused", "the mirror service mirror.raleigh.test is not in [master] "
                          "trusted_mirrors", MROOM + "/Wayne")

    def assertRefused_in(self, sites, stanzas):
        self.assertEqual(error_condition(stanzas[0]), ("cancel", "not-allowed"))
        self.assertEqual(list(sites.master.rooms[ROOM].occupants), ["Kevin"])

    def test_mirror_speaking_for_a_foreign_domain(self):
        # the mirror itself forged: its envelope names a user of another site
        self.sites.send(MROOM + "/Eve", "<presence to='%s/Eve'>%s<fmuc xmlns='%s' "
                        "from='eve@evil.test/x'/></presence>" % (ROOM, MUC_X % "", ns.FMUC))
        self.assertRefused(self.refusals_to(MROOM + "/Eve"))
        self.assertLogged("refused", "eve@evil.test", MROOM + "/Eve")
        self.assertEqual(list(self.sites.master.rooms[ROOM].occupants), ["Kevin"])

    def test_client_supplied_envelope_at_the_master(self):
        self.sites.send("eve@fairfax.test/x", "<presence to='%s/Eve'>%s<fmuc xmlns='%s' "
                        "from='kevin@fairfax.test/desk'/></presence>" % (ROOM, MUC_X % "", ns.FMUC))
        self.assertRefused(self.sites.take("eve@fairfax.test/x"))
        self.assertLogged("refused", "a client sent the DMUC envelope", "eve@fairfax.test/x")

    def test_client_supplied_envelope_at_the_mirror_is_stripped(self):
        self.sites.send(WAYNE, "<presence to='%s/Wayne'>%s<fmuc xmlns='%s' from='%s'/>"
                        "<u xmlns='%s' f='%s'/></presence>"
                        % (MROOM, MUC_X % "", ns.FMUC, KEVIN, ns.DMUC_COMPACT, KEVIN))
        up = [s for _, s in self.sites.link if s.name == "presence"][0]
        envelopes = ([e["from"] for e in up.elements(ns.FMUC, "fmuc")]
                     + [e["f"] for e in up.elements(ns.DMUC_COMPACT, "u")])
        self.assertEqual(envelopes, [WAYNE])
        self.assertEqual(self.sites.master.rooms[ROOM].occupants["Wayne"].real_jid.full(), WAYNE)

    def test_master_traffic_from_the_wrong_jid(self):
        join(self.sites, WAYNE, "Wayne")
        self.sites.take(WAYNE)
        self.sites.send("other@conference.fairfax.test/Mallory",
                        "<message to='%s' type='groupchat'><body>spoof</body></message>" % MROOM)
        self.assertRefused(self.refusals_to("other@conference.fairfax.test/Mallory"))
        self.assertLogged("refused", "other@conference.fairfax.test/Mallory", ROOM)
        self.assertEqual(bodies(self.sites.take(WAYNE)), ["fine"])

    def test_foreign_user_at_the_mirror(self):
        self.sites.send("eve@evil.test/x", "<presence to='%s/Eve'>%s</presence>" % (MROOM, MUC_X % ""))
        # A join is sent to the master room (tests/test_invites.py), any
        # other stanza refused.
        self.assertRefused(self.sites.take("eve@evil.test/x"), "redirect")
        self.assertLogged("refused", "eve@evil.test/x")
        self.sites.send("eve@evil.test/x", "<presence to='%s/Eve'/>" % MROOM)
        self.assertRefused(self.sites.take("eve@evil.test/x"))

    def test_malformed_escape(self):
        self.sites.send(WAYNE, "<presence to='chat\\4zconference.fairfax.test@%s/Wayne'>%s</presence>"
                        % (MIRROR, MUC_X % ""))
        self.assertRefused(self.sites.take(WAYNE), "jid-malformed")
        self.assertLogged("refused", WAYNE, "malformed")

    def test_mirror_room_writing_to_another_room(self):
        self.sites.send(MROOM + "/Wayne", "<presence to='other@%s/Wayne'>%s<fmuc xmlns='%s' "
                        "from='%s'/></presence>" % (MASTER, MUC_X % "", ns.FMUC, WAYNE))
        self.assertRefused(self.refusals_to(MROOM + "/Wayne"))
        self.assertLogged("refused", "another room", MROOM + "/Wayne")
        self.assertNotIn("other@" + MASTER, self.sites.master.rooms)


class LiteralJoinTests(unittest.TestCase):
    """docs/protocol.md 5: DMUC3 example 4 as written."""

    def test_literal_join_accepted_and_mirror_addressed_at_service(self):
        sites = TwoSites()
        join(sites, KEVIN, "Kevin", ROOM)
        sites.take(KEVIN)
        sites.send(WAYNE, "<presence to='%s/Wayne'>%s<dmuc xmlns='%s' from='%s'/></presence>"
                   % (ROOM, MUC_X % "", ns.DMUC3, MIRROR))
        own = [s for s in sites.take(WAYNE) if status_codes(s) == ["110"]]
        self.assertEqual(len(own), 1)
        self.assertEqual(sites.master.rooms[ROOM].occupants["Wayne"].via, MIRROR)
        sites.link = []
        say(sites, KEVIN, "hi", ROOM)
        self.assertEqual([s["to"] for _, s in sites.link], [MIRROR])

    def test_literal_join_naming_an_untrusted_mirror(self):
        sites = TwoSites()
        join(sites, KEVIN, "Kevin", ROOM)
        sites.send(WAYNE, "<presence to='%s/Wayne'>%s<dmuc xmlns='%s' from='mirror.evil.test'/>"
                   "</presence>" % (ROOM, MUC_X % "", ns.DMUC3))
        self.assertEqual(error_condition(sites.take(WAYNE)[0]), ("cancel", "not-allowed"))


class MirrorRestartTests(unittest.TestCase):

    def test_history_and_roster_copies_survive_a_restart(self):
        sites = TwoSites()
        join(sites, KEVIN, "Kevin", ROOM)
        join(sites, WAYNE, "Wayne")
        say(sites, KEVIN, "kept", ROOM)
        sites.restart_mirror()
        sites.take(WAYNE)
        sites.link_count()
        seen = join(sites, KEITH, "Keith")
        # No new sync: one presence each way, and (once per process) the
        # question of what the master offers (the compact profile).
        self.assertEqual(sorted(s.name for _, s in sites.link), ["iq", "iq", "presence", "presence"])
        self.assertEqual({payload(s).uri for _, s in sites.link if s.name == "iq"}, {ns.DISCO_INFO})
        occupants = sorted(s["from"] for s in seen if s.name == "presence" and not status_codes(s))
        self.assertEqual(occupants, [MROOM + "/Kevin", MROOM + "/Wayne"])
        self.assertEqual(bodies(seen), ["kept"])
        say(sites, KEVIN, "after", ROOM)
        self.assertEqual(bodies(sites.take(WAYNE))[-1], "after")


class MirrorFanOutTests(unittest.TestCase):
    """The mirror serialises a stanza once per version for its users."""

    def test_presence_versions_by_viewer(self):
        sites = TwoSites()
        join(sites, WAYNE, "Wayne", MROOM)   # creates the room: owner, moderator
        join(sites, KEITH, "Keith")
        join(sites, KEVIN, "Kevin", ROOM)
        sites.take(WAYNE), sites.take(KEITH)
        sites.send(KEVIN, "<presence to='%s/Kevin'><show>away</show></presence>" % ROOM)
        wayne, = sites.take(WAYNE)
        keith, = sites.take(KEITH)
        self.assertEqual(item(wayne)["jid"], KEVIN)
        self.assertNotIn("jid", item(keith).attributes)
        self.assertEqual(wayne["to"], WAYNE)
        self.assertEqual(keith["to"], KEITH)

    def test_message_to_every_user(self):
        sites = TwoSites()
        join(sites, WAYNE, "Wayne", MROOM)
        join(sites, KEITH, "Keith")
        odd = "oneil@raleigh.test/x'y&z<\""
        join(sites, odd, "Odd")
        for user in (WAYNE, KEITH, odd):
            sites.take(user)
        say(sites, KEITH, "hello", MROOM)
        for user in (WAYNE, KEITH, odd):
            message, = sites.take(user)
            self.assertEqual(message["to"], user)
            self.assertEqual(message["from"], MROOM + "/Keith")
            self.assertEqual(bodies([message]), ["hello"])


class MirrorRecordTests(unittest.TestCase):

    def test_saved_roster_follows_presence_changes(self):
        """The mirror keeps each presence's text between saves; a new
        presence is saved, not the one before."""
        sites = TwoSites()
        join(sites, WAYNE, "Wayne", MROOM)
        join(sites, KEVIN, "Kevin", ROOM)
        room = sites.mirror.rooms[MROOM]
        for show in ("away", "dnd", "away"):
            sites.send(KEVIN, "<presence to='%s/Kevin'><show>%s</show></presence>"
                       % (ROOM, show))
            kevin, = [o for o in room.to_record().config["roster"] if o["nick"] == "Kevin"]
            self.assertIn("<show>%s</show>" % show, kevin["presence"])


class UnansweredIqTests(unittest.TestCase):
    """A routed IQ nobody answers is forgotten after a while (the asker's
    client gave up long before), at the master and at a mirror."""

    def test_forgotten_at_both_ends(self):
        from dmuc.muc.occupant_iq import ROUTED_IQ_TIMEOUT
        sites = conversation()
        room = sites.master.rooms[ROOM]
        sites.send(WAYNE, "<iq type='get' id='v1' to='%s/Kevin'><query "
                          "xmlns='jabber:iq:version'/></iq>" % MROOM)
        asked, = sites.take(KEVIN)
        self.assertEqual((len(room._pending_iqs), len(sites.mirror._forwarded_iqs)), (1, 1))
        sites.clock.advance(ROUTED_IQ_TIMEOUT + 1)
        # The next request finds the old one gone.
        sites.send(WAYNE, "<iq type='get' id='v2' to='%s/Kevin'><query "
                          "xmlns='jabber:iq:version'/></iq>" % MROOM)
        self.assertEqual((len(room._pending_iqs), len(sites.mirror._forwarded_iqs)), (1, 1))
        # A late answer to the first is dropped; the second still works.
        sites.send(KEVIN, "<iq type='result' id='%s' to='%s/Wayne'/>" % (asked["id"], ROOM))
        self.assertEqual(sites.take(WAYNE), [])
        second, = sites.take(KEVIN)
        sites.send(KEVIN, "<iq type='result' id='%s' to='%s/Wayne'/>" % (second["id"], ROOM))
        answer, = sites.take(WAYNE)
        self.assertEqual(answer["id"], "v2")
