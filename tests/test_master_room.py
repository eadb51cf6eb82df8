"""
The master MUC service's XEP-0045 behaviour, on an in-memory stream.

Each test plays the stanzas a client would send and asserts on what the
service sends back, as a client would see it.  The same flows run against
real Prosody servers in tests/test_master_prosody.py.
"""

from twisted.trial import unittest
from twisted.words.xish.domish import escapeToXml

from dmuc.xmpp import namespaces as ns
from tests.stanza_helpers import (
    DOMAIN, ROOM, MasterFixture, error_condition, item, status_codes, to)

KEVIN = "kevin@fairfax.test/desk"
WAYNE = "wayne@fairfax.test/laptop"
KEITH = "keith@fairfax.test/phone"


def config_submit(*fields):
    values = "".join(
        "<field var='%s'><value>%s</value></field>" % field for field in fields)
    return (
        "<iq type='set' id='cfg' from='%s' to='%s'><query xmlns='%s'>"
        "<x xmlns='jabber:x:data' type='submit'>"
        "<field var='FORM_TYPE'><value>%s</value></field>%s</x></query></iq>"
        % (KEVIN, ROOM, ns.MUC_OWNER, ns.MUC_ROOMCONFIG, values))


def admin_set(actor, **attrs):
    reason = attrs.pop("reason", None)
    item_attrs = " ".join("%s='%s'" % kv for kv in attrs.items())
    inner = "<reason>%s</reason>" % reason if reason else ""
    return ("<iq type='set' id='adm' from='%s' to='%s'><query xmlns='%s'>"
            "<item %s>%s</item></query></iq>"
            % (actor, ROOM, ns.MUC_ADMIN, item_attrs, inner))


class JoinTests(unittest.TestCase):

    def setUp(self):
        self.f = MasterFixture()

    def test_first_join_creates_room_with_owner(self):
        out = self.f.join(KEVIN, "Kevin")
        presence, subject = out
        self.assertEqual(presence["from"], ROOM + "/Kevin")
        self.assertEqual(status_codes(presence), ["201", "110"])
        self.assertEqual(item(presence)["affiliation"], "owner")
        self.assertEqual(item(presence)["role"], "moderator")
        self.assertEqual(subject.name, "message")
        self.assertEqual(str(next(subject.elements(None, "subject"))), "")

    def test_join_sequence(self):
        self.f.join(KEVIN, "Kevin")
        self.f.say(KEVIN, "one")
        out = self.f.join(WAYNE, "Wayne")
        mine = to(out, WAYNE)
        # occupants, own presence (110), history, subject: in that order
        self.assertEqual([s.name for s in mine],
                         ["presence", "presence", "message", "message"])
        self.assertEqual(mine[0]["from"], ROOM + "/Kevin")
        self.assertNotIn("jid", item(mine[0]).attributes)  # semi-anonymous
        self.assertEqual(status_codes(mine[1]), ["110"])
        self.assertEqual(str(next(mine[2].elements(None, "body"))), "one")
        delay = next(mine[2].elements(ns.DELAY, "delay"))
        self.assertEqual(delay["from"], ROOM)
        self.assertEqual(delay["stamp"], "2023-11-14T22:13:20Z")
        sid = next(mine[2].elements(ns.STANZA_ID, "stanza-id"))
        self.assertEqual(sid["by"], ROOM)
        # Kevin, a moderator, sees Wayne's real JID
        seen = to(out, KEVIN)[0]
        self.assertEqual(item(seen)["jid"], WAYNE)

    def test_nick_conflict(self):
        self.f.join(KEVIN, "Kevin")
        out = self.f.join(WAYNE, "Kevin")
        self.assertEqual(len(out), 1)
        self.assertEqual(error_condition(out[0]), ("cancel", "conflict"))
        self.assertEqual(out[0]["to"], WAYNE)

    def test_blank_nick_refused(self):
        out = self.f.join(KEVIN, " ")
        self.assertEqual(error_condition(out[0]), ("modify", "not-allowed"))

    def test_password_room(self):
        self.f.join(KEVIN, "Kevin", extra="<password>secret</password>")
        out = self.f.join(WAYNE, "Wayne")
        self.assertEqual(error_condition(out[0]), ("auth", "not-authorized"))
        out = self.f.join(WAYNE, "Wayne", extra="<password>wrong</password>")
        self.assertEqual(error_condition(out[0]), ("auth", "not-authorized"))
        out = self.f.join(WAYNE, "Wayne", extra="<password>secret</password>")
        self.assertEqual(status_codes(to(out, WAYNE)[-2]), ["110"])

    def test_members_only(self):
        self.f.join(KEVIN, "Kevin")
        self.f.receive(config_submit(("muc#roomconfig_membersonly", "1")))
        out = self.f.join(WAYNE, "Wayne")
        self.assertEqual(error_condition(out[0]), ("auth", "registration-required"))
        self.f.receive(admin_set(KEVIN, jid="wayne@fairfax.test", affiliation="member"))
        out = self.f.join(WAYNE, "Wayne")
        self.assertEqual(item(to(out, WAYNE)[1])["affiliation"], "member")

    def test_max_users(self):
        self.f.join(KEVIN, "Kevin")
        self.f.receive(config_submit(("muc#roomconfig_maxusers", "2")))
        self.f.join(WAYNE, "Wayne")
        out = self.f.join(KEITH, "Keith")
        self.assertEqual(error_condition(out[0]), ("wait", "service-unavailable"))

    def test_join_without_muc_x_to_missing_room(self):
        out = self.f.receive("<presence from='%s' to='%s/Kevin'/>" % (KEVIN, ROOM))
        self.assertEqual(error_condition(out[0]), ("cancel", "item-not-found"))

    def test_history_limits(self):
        self.f.join(KEVIN, "Kevin")
        for n in range(5):
            self.f.clock.advance(60)
            self.f.say(KEVIN, "m%d" % n)

        def bodies(extra):
            out = self.f.join(WAYNE, "Wayne", extra=extra)
            self.f.receive("<presence type='unavailable' from='%s' to='%s/Wayne'/>"
                           % (WAYNE, ROOM))
            return [str(next(m.elements(None, "body"))) for m in to(out, WAYNE)
                    if m.name == "message" and list(m.elements(None, "body"))]

        self.assertEqual(bodies(""), ["m0", "m1", "m2", "m3", "m4"])
        self.assertEqual(bodies("<history maxstanzas='2'/>"), ["m3", "m4"])
        self.assertEqual(bodies("<history maxstanzas='0'/>"), [])
        self.assertEqual(bodies("<history seconds='90'/>"), ["m3", "m4"])
        self.assertEqual(bodies("<history since='2023-11-14T22:16:20Z'/>"),
                         ["m2", "m3", "m4"])
        one = len(self.f.muc.rooms[ROOM].history[-1].xml)
        self.assertEqual(bodies("<history maxchars='%d'/>" % (one * 2 + 1)),
                         ["m3", "m4"])
        self.assertEqual(bodies("<history maxchars='0'/>"), [])


class ConversationTests(unittest.TestCase):

    def setUp(self):
        self.f = MasterFixture()
        self.f.join(KEVIN, "Kevin")
        self.f.join(WAYNE, "Wayne")

    def test_groupchat_reaches_everyone(self):
        out = self.f.say(WAYNE, "hi")
        self.assertEqual(sorted(s["to"] for s in out), sorted([KEVIN, WAYNE]))
        for message in out:
            self.assertEqual(message["from"], ROOM + "/Wayne")
            self.assertEqual(message["id"], "m1")

    def test_forged_stanza_id_and_delay_are_removed(self):
        out = self.f.receive(
            "<message from='%s' to='%s' type='groupchat'><body>x</body>"
            "<stanza-id xmlns='urn:xmpp:sid:0' id='fake' by='%s'/>"
            "<delay xmlns='urn:xmpp:delay' from='%s' stamp='2000-01-01T00:00:00Z'/>"
            "</message>" % (WAYNE, ROOM, ROOM, ROOM))
        ids = [e["id"] for e in out[0].elements(ns.STANZA_ID, "stanza-id")]
        self.assertEqual(len(ids), 1)
        self.assertNotEqual(ids[0], "fake")
        self.assertEqual(list(out[0].elements(ns.DELAY, "delay")), [])

    def test_groupchat_from_non_occupant(self):
        out = self.f.say(KEITH, "hi")
        self.assertEqual(error_condition(out[0]), ("cancel", "not-acceptable"))

    def test_subject_change(self):
        out = self.f.receive("<message from='%s' to='%s' type='groupchat'>"
                             "<subject>Plans</subject></message>" % (KEVIN, ROOM))
        self.assertEqual(len(out), 2)
        self.assertEqual(out[0]["from"], ROOM + "/Kevin")
        out = self.f.join(KEITH, "Keith")
        subject = to(out, KEITH)[-1]
        self.assertEqual(str(next(subject.elements(None, "subject"))), "Plans")
        self.assertEqual(subject["from"], ROOM + "/Kevin")

    def test_subject_change_forbidden_for_participant(self):
        out = self.f.receive("<message from='%s' to='%s' type='groupchat'>"
                             "<subject>Mine</subject></message>" % (WAYNE, ROOM))
        self.assertEqual(error_condition(out[0]), ("auth", "forbidden"))

    def test_private_message(self):
        out = self.f.receive("<message from='%s' to='%s/Kevin' type='chat'>"
                             "<body>psst</body></message>" % (WAYNE, ROOM))
        self.assertEqual(len(out), 1)
        self.assertEqual(out[0]["to"], KEVIN)
        self.assertEqual(out[0]["from"], ROOM + "/Wayne")
        self.assertEqual(len(list(out[0].elements(ns.MUC_USER, "x"))), 1)

    def test_private_message_to_absent_nick(self):
        out = self.f.receive("<message from='%s' to='%s/Nobody' type='chat'>"
                             "<body>psst</body></message>" % (WAYNE, ROOM))
        self.assertEqual(error_condition(out[0]), ("cancel", "item-not-found"))

    def test_iq_between_occupants_round_trip(self):
        out = self.f.receive("<iq from='%s' to='%s/Kevin' type='get' id='v1'>"
                             "<query xmlns='jabber:iq:version'/></iq>" % (WAYNE, ROOM))
        self.assertEqual(out[0]["to"], KEVIN)
        self.assertEqual(out[0]["from"], ROOM + "/Wayne")
        routed = out[0]["id"]
        out = self.f.receive("<iq from='%s' to='%s/Wayne' type='result' id='%s'>"
                             "<query xmlns='jabber:iq:version'><name>x</name></query></iq>"
                             % (KEVIN, ROOM, routed))
        self.assertEqual(out[0]["to"], WAYNE)
        self.assertEqual(out[0]["id"], "v1")
        self.assertEqual(out[0]["from"], ROOM + "/Kevin")

    def test_status_change_and_leave(self):
        out = self.f.receive("<presence from='%s' to='%s/Wayne'><show>away</show>"
                             "</presence>" % (WAYNE, ROOM))
        self.assertEqual(sorted(s["to"] for s in out), sorted([KEVIN, WAYNE]))
        self.assertEqual(str(next(out[0].elements(None, "show"))), "away")
        out = self.f.receive("<presence type='unavailable' from='%s' to='%s/Wayne'>"
                             "<status>bye</status></presence>" % (WAYNE, ROOM))
        self.assertEqual([s.getAttribute("type") for s in out], ["unavailable"] * 2)
        self.assertEqual(status_codes(to(out, WAYNE)[0]), ["110"])
        self.assertEqual(str(next(to(out, KEVIN)[0].elements(None, "status"))), "bye")

    def test_nick_change(self):
        out = self.f.receive("<presence from='%s' to='%s/Wayne2'/>" % (WAYNE, ROOM))
        old = to(out, KEVIN)[0]
        self.assertEqual(old["type"], "unavailable")
        self.assertEqual(status_codes(old), ["303"])
        self.assertEqual(item(old)["nick"], "Wayne2")
        self.assertEqual(to(out, KEVIN)[1]["from"], ROOM + "/Wayne2")

    def test_temporary_room_disappears_when_empty(self):
        for user, nick in ((WAYNE, "Wayne"), (KEVIN, "Kevin")):
            self.f.receive("<presence type='unavailable' from='%s' to='%s/%s'/>"
                           % (user, ROOM, nick))
        self.assertNotIn(ROOM, self.f.muc.rooms)

    def test_bounce_removes_occupant(self):
        out = self.f.receive("<message from='%s' to='%s' type='error'><error type='cancel'>"
                             "<service-unavailable xmlns='%s'/></error></message>"
                             % (WAYNE, ROOM, ns.STANZAS))
        self.assertEqual(status_codes(to(out, KEVIN)[0]), ["333"])
        self.assertNotIn("Wayne", self.f.muc.rooms[ROOM].occupants)


class AdminTests(unittest.TestCase):

    def setUp(self):
        self.f = MasterFixture()
        self.f.join(KEVIN, "Kevin")
        self.f.join(WAYNE, "Wayne")

    def test_kick(self):
        out = self.f.receive(admin_set(KEVIN, nick="Wayne", role="none", reason="bye"))
        kicked = to(out, WAYNE)[0]
        self.assertEqual(kicked["type"], "unavailable")
        self.assertEqual(status_codes(kicked), ["307", "110"])
        self.assertEqual(str(next(item(kicked).elements(ns.MUC_USER, "reason"))), "bye")
        seen = [s for s in to(out, KEVIN) if s.name == "presence"][0]
        self.assertEqual(status_codes(seen), ["307"])
        result = [s for s in out if s.name == "iq"][0]
        self.assertEqual(result["type"], "result")

    def test_participant_cannot_kick(self):
        out = self.f.receive(admin_set(WAYNE, nick="Kevin", role="none"))
        self.assertEqual(error_condition(out[0]), ("cancel", "not-allowed"))

    def test_ban_then_rejoin_refused(self):
        out = self.f.receive(admin_set(KEVIN, jid="wayne@fairfax.test", affiliation="outcast"))
        self.assertEqual(status_codes(to(out, WAYNE)[0]), ["301", "110"])
        out = self.f.join(WAYNE, "Wayne")
        self.assertEqual(error_condition(out[0]), ("auth", "forbidden"))

    def test_voice_in_moderated_room(self):
        self.f.receive(config_submit(("muc#roomconfig_moderatedroom", "1")))
        out = self.f.join(KEITH, "Keith")
        self.assertEqual(item(to(out, KEITH)[-2])["role"], "visitor")
        out = self.f.say(KEITH, "may I?")
        self.assertEqual(error_condition(out[0]), ("auth", "forbidden"))
        self.f.receive(admin_set(KEVIN, nick="Keith", role="participant"))
        out = self.f.say(KEITH, "thanks")
        self.assertEqual(len(out), 3)

    def test_grant_admin_and_owner(self):
        out = self.f.receive(admin_set(KEVIN, jid="wayne@fairfax.test", affiliation="admin"))
        self.assertEqual(item(to(out, WAYNE)[0])["role"], "moderator")
        self.assertEqual(item(to(out, WAYNE)[0])["affiliation"], "admin")
        self.f.receive(admin_set(KEVIN, jid="wayne@fairfax.test", affiliation="owner"))
        out = self.f.receive(
            "<iq type='get' id='l' from='%s' to='%s'><query xmlns='%s'>"
            "<item affiliation='owner'/></query></iq>" % (WAYNE, ROOM, ns.MUC_ADMIN))
        jids = [i["jid"] for i in out[0].elements(ns.MUC_ADMIN, "query").__next__().elements()]
        self.assertEqual(jids, ["kevin@fairfax.test", "wayne@fairfax.test"])

    def test_last_owner_cannot_leave_ownership(self):
        out = self.f.receive(admin_set(KEVIN, jid="kevin@fairfax.test", affiliation="member"))
        self.assertEqual(error_condition(out[0]), ("cancel", "conflict"))

    def test_config_form_only_for_owner(self):
        out = self.f.receive("<iq type='get' id='c' from='%s' to='%s'><query xmlns='%s'/></iq>"
                             % (WAYNE, ROOM, ns.MUC_OWNER))
        self.assertEqual(error_condition(out[0]), ("auth", "forbidden"))
        out = self.f.receive("<iq type='get' id='c' from='%s' to='%s'><query xmlns='%s'/></iq>"
                             % (KEVIN, ROOM, ns.MUC_OWNER))
        form = next(next(out[0].elements(ns.MUC_OWNER, "query")).elements(ns.DATA_FORMS, "x"))
        fields = [f["var"] for f in form.elements(ns.DATA_FORMS, "field")]
        self.assertIn("muc#roomconfig_distributed", fields)

    def test_config_change_announced(self):
        out = self.f.receive(config_submit(("muc#roomconfig_roomname", "Plans")))
        notices = [s for s in out if s.name == "message"]
        self.assertEqual(len(notices), 2)
        self.assertEqual(status_codes(notices[0]), ["104"])

    def test_bad_config_value(self):
        out = self.f.receive(config_submit(("muc#roomconfig_historylength", "lots")))
        self.assertEqual(error_condition(out[0]), ("modify", "not-acceptable"))

    def test_a_field_twice_is_a_bad_request(self):
        # One field given twice (not one field with two values) is no form.
        out = self.f.receive(config_submit(("muc#roomconfig_roomname", "One"),
                                           ("muc#roomconfig_roomname", "Two")))
        self.assertEqual(error_condition(out[0]), ("modify", "bad-request"))
        self.assertEqual(self.f.muc.rooms[ROOM].config.name, "")

    def test_history_length_is_bounded_by_the_operator(self):
        # An owner asking for a billion messages would grow the process
        # without bound: the service's max_history_messages caps it, as
        # Prosody's option of that name does.
        from dmuc.master.handler import DEFAULT_MAX_HISTORY
        self.f.receive(config_submit(("muc#roomconfig_historylength", "1000000000")))
        room = self.f.muc.rooms[ROOM]
        self.assertEqual(room.config.history_length, DEFAULT_MAX_HISTORY)
        for n in range(DEFAULT_MAX_HISTORY + 5):
            self.f.receive("<message type='groupchat' from='%s' to='%s'><body>%d</body></message>"
                           % (KEVIN, ROOM, n))
        self.assertEqual(len(room.history), DEFAULT_MAX_HISTORY)
        form = self.f.receive("<iq type='get' id='g' from='%s' to='%s'><query xmlns='%s'/></iq>"
                              % (KEVIN, ROOM, ns.MUC_OWNER))
        self.assertIn("<value>%d</value>" % DEFAULT_MAX_HISTORY, form[0].toXml())

    def test_destroy(self):
        out = self.f.receive(
            "<iq type='set' id='d' from='%s' to='%s'><query xmlns='%s'>"
            "<destroy jid='new@%s'><reason>moving</reason></destroy></query></iq>"
            % (KEVIN, ROOM, ns.MUC_OWNER, DOMAIN))
        # Only its own departure, as at Prosody (tests/test_destroy.py).
        gone, = to(out, WAYNE)
        self.assertEqual((gone["type"], gone["from"]), ("unavailable", ROOM + "/Wayne"))
        self.assertNotIn(ROOM, self.f.muc.rooms)
        out = self.f.receive("<iq type='get' id='i' from='%s' to='%s'><query xmlns='%s'/></iq>"
                             % (KEVIN, ROOM, ns.DISCO_INFO))
        self.assertEqual(error_condition(out[0]), ("cancel", "item-not-found"))


class ServiceTests(unittest.TestCase):

    def setUp(self):
        self.f = MasterFixture()

    def test_disco_info_lists_dmuc_features(self):
        out = self.f.receive("<iq type='get' id='i' from='%s' to='%s'><query xmlns='%s'/></iq>"
                             % (KEVIN, DOMAIN, ns.DISCO_INFO))
        query = next(out[0].elements(ns.DISCO_INFO, "query"))
        features = {f["var"] for f in query.elements(ns.DISCO_INFO, "feature")}
        self.assertTrue({ns.MUC, ns.DMUC3, ns.DMUC_SYNC, ns.PING} <= features)

    def test_ping(self):
        out = self.f.receive("<iq type='get' id='p' from='%s' to='%s'><ping xmlns='%s'/></iq>"
                             % (KEVIN, DOMAIN, ns.PING))
        self.assertEqual(out[0]["type"], "result")
        self.assertEqual(out[0]["id"], "p")

    def test_unknown_namespace(self):
        out = self.f.receive("<iq type='get' id='u' from='%s' to='%s'><q xmlns='urn:x'/></iq>"
                             % (KEVIN, DOMAIN))
        self.assertEqual(error_condition(out[0]), ("cancel", "service-unavailable"))

    def test_room_disco(self):
        self.f.join(KEVIN, "Kevin")
        out = self.f.receive("<iq type='get' id='i' from='%s' to='%s'><query xmlns='%s'/></iq>"
                             % (KEVIN, ROOM, ns.DISCO_INFO))
        query = next(out[0].elements(ns.DISCO_INFO, "query"))
        form = next(query.elements(ns.DATA_FORMS, "x"))
        values = {f["var"]: str(next(f.elements(ns.DATA_FORMS, "value"), ""))
                  for f in form.elements(ns.DATA_FORMS, "field")}
        self.assertEqual(values["FORM_TYPE"], ns.MUC_ROOMINFO)
        self.assertEqual(values["muc#roominfo_occupants"], "1")
        out = self.f.receive("<iq type='get' id='i' from='%s' to='%s'><query xmlns='%s'/></iq>"
                             % (KEVIN, DOMAIN, ns.DISCO_ITEMS))
        items = list(next(out[0].elements(ns.DISCO_ITEMS, "query")).elements())
        self.assertEqual([i["jid"] for i in items], [ROOM])

    def test_huge_body_refused_and_service_keeps_serving(self):
        self.f.join(KEVIN, "Kevin")
        out = self.f.say(KEVIN, "x" * 100_000)
        self.assertEqual(error_condition(out[0]), ("modify", "policy-violation"))
        self.assertEqual(len(self.f.say(KEVIN, "small")), 1)

    def test_handler_crash_answers_internal_error(self):
        self.f.join(KEVIN, "Kevin")
        room = self.f.muc.rooms[ROOM]
        room.handle_groupchat = lambda *a, **kw: 1 / 0
        out = self.f.say(KEVIN, "boom")
        self.assertEqual(error_condition(out[0]), ("wait", "internal-server-error"))
        self.assertEqual(len(self.flushLoggedErrors(ZeroDivisionError)), 1)
        del room.handle_groupchat
        self.assertEqual(len(self.f.say(KEVIN, "fine")), 1)

    def test_malformed_sender_is_dropped(self):
        out = self.f.receive("<message from='@@bad' to='%s' type='groupchat'>"
                             "<body>x</body></message>" % ROOM)
        self.assertEqual(out, [])


class PersistenceTests(unittest.TestCase):

    def test_persistent_room_survives_restart(self):
        f = MasterFixture()
        f.join(KEVIN, "Kevin")
        f.receive(config_submit(("muc#roomconfig_persistentroom", "1")))
        f.receive(admin_set(KEVIN, jid="wayne@fairfax.test", affiliation="member"))
        f.say(KEVIN, "kept")
        restarted = MasterFixture(store=f.store)
        restarted.muc.load()
        room = restarted.muc.rooms[ROOM]
        self.assertEqual(room.affiliations, {"kevin@fairfax.test": "owner",
                                             "wayne@fairfax.test": "member"})
        self.assertTrue(room.config.persistent)
        self.assertEqual([e.xml.count("kept") for e in room.history], [1])


class RejoinTests(unittest.TestCase):

    def test_join_from_present_occupant_resends_the_room(self):
        """A client that lost its state (its server restarted) joins again
        with the same JID and nick: it gets the whole join sequence."""
        f = MasterFixture()
        f.join(KEVIN, "Kevin")
        f.join(WAYNE, "Wayne")
        f.say(KEVIN, "before")
        out = to(f.join(WAYNE, "Wayne"), WAYNE)
        self.assertEqual([s.name for s in out],
                         ["presence", "presence", "message", "message"])
        self.assertEqual(out[0]["from"], ROOM + "/Kevin")
        self.assertEqual(status_codes(out[1]), ["110"])
        self.assertEqual(len(f.muc.rooms[ROOM].occupants), 2)


class ProbeTests(unittest.TestCase):

    def test_occupant_probe_gets_current_presence(self):
        f = MasterFixture()
        f.join(KEVIN, "Kevin")
        f.join(WAYNE, "Wayne")
        out = f.receive("<presence type='probe' from='%s' to='%s/Kevin'/>" % (WAYNE, ROOM))
        self.assertEqual([(s["to"], s["from"]) for s in out], [(WAYNE, ROOM + "/Kevin")])
        out = f.receive("<presence type='probe' from='%s' to='%s/Kevin'/>" % (KEITH, ROOM))
        self.assertEqual(error_condition(out[0]), ("cancel", "not-acceptable"))


class HistoryOrderTests(unittest.TestCase):

    def test_messages_of_one_millisecond_keep_their_order(self):
        """Found by CI: ids compared as text put "-10" before "-9"."""
        f = MasterFixture()
        f.join(KEVIN, "Kevin")
        for n in range(12):
            f.say(KEVIN, "m%d" % n)      # the clock does not move
        room = f.muc.rooms[ROOM]
        self.assertEqual([e.xml.split("<body>")[1].split("<")[0] for e in room.history],
                         ["m%d" % n for n in range(12)])


def escape(jid):
    return escapeToXml(jid, isattrib=1)


class FanOutTests(unittest.TestCase):
    """A broadcast is serialised once per version; each recipient still
    gets its own copy, addressed to it."""

    ODD = "obrien@fairfax.test/a'b&c<d>\"e"

    def setUp(self):
        self.f = MasterFixture()
        self.f.join(KEVIN, "Kevin")   # the owner: a moderator, sees real JIDs
        self.f.join(WAYNE, "Wayne")
        self.f.join(escape(self.ODD), "Odd")

    def test_message_reaches_a_resource_that_needs_escaping(self):
        out = self.f.say(WAYNE, "a &amp; b")
        self.assertEqual(sorted(s["to"] for s in out), sorted([KEVIN, WAYNE, self.ODD]))
        texts = {s.toXml().replace(escape(s["to"]), "") for s in out}
        self.assertEqual(len(texts), 1)
        self.assertEqual([str(b) for b in to(out, self.ODD)[0].elements(None, "body")],
                         ["a & b"])

    def test_presence_versions_by_viewer(self):
        out = self.f.receive("<presence from='%s' to='%s/Wayne'><show>away</show></presence>"
                             % (WAYNE, ROOM))
        self.assertEqual(item(to(out, KEVIN)[0])["jid"], WAYNE)
        self.assertNotIn("jid", item(to(out, self.ODD)[0]).attributes)
        own = to(out, WAYNE)
        self.assertEqual(status_codes(own[0]), ["110"])
        self.assertIs(out[-1], own[0])


KEVIN_PHONE = "kevin@fairfax.test/phone"
WAYNE_PHONE = "wayne@fairfax.test/phone"


def bodies(stanzas):
    return [str(b) for s in stanzas for b in s.elements(None, "body")]


def items(stanza):
    return [i for x in stanza.elements(ns.MUC_USER, "x")
            for i in x.elements(ns.MUC_USER, "item")]


class MultiSessionTests(unittest.TestCase):
    """
    Two devices, one nick: a second resource of the same user joining the
    same nick shares the occupant (Prosody's multi-session occupants).
    """

    def setUp(self):
        self.f = MasterFixture()
        self.f.join(KEVIN, "Kevin")   # the owner: a moderator, sees real JIDs
        self.f.join(WAYNE, "Wayne")
        self.f.say(KEVIN, "before")

    def test_second_device_joins_the_same_occupant(self):
        out = self.f.join(WAYNE_PHONE, "Wayne")
        phone = to(out, WAYNE_PHONE)
        # The others, itself (110), history, subject: as any join.
        self.assertEqual([s.name for s in phone], ["presence", "presence", "message", "message"])
        self.assertEqual(phone[0]["from"], ROOM + "/Kevin")
        self.assertEqual(phone[1]["from"], ROOM + "/Wayne")
        self.assertEqual(status_codes(phone[1]), ["110"])
        self.assertEqual(bodies([phone[2]]), ["before"])
        # The first device hears of its occupant again, never of a leave.
        laptop, = to(out, WAYNE)
        self.assertEqual(status_codes(laptop), ["110"])
        self.assertFalse(laptop.hasAttribute("type"))
        # The others see one occupant, still available; a moderator sees
        # both devices' JIDs, as Prosody lists every session.
        seen, = to(out, KEVIN)
        self.assertEqual(seen["from"], ROOM + "/Wayne")
        self.assertFalse(seen.hasAttribute("type"))
        self.assertEqual([i["jid"] for i in items(seen)], [WAYNE, WAYNE_PHONE])
        self.assertEqual(len(self.f.muc.rooms[ROOM].occupants), 2)

    def test_every_device_gets_the_room_and_private_messages(self):
        self.f.join(WAYNE_PHONE, "Wayne")
        out = self.f.say(KEVIN, "to all")
        self.assertEqual(sorted(s["to"] for s in out), sorted([KEVIN, WAYNE, WAYNE_PHONE]))
        out = self.f.say(WAYNE_PHONE, "from the phone")
        self.assertEqual(sorted(s["to"] for s in out), sorted([KEVIN, WAYNE, WAYNE_PHONE]))
        self.assertEqual({s["from"] for s in out}, {ROOM + "/Wayne"})
        out = self.f.receive("<message from='%s' to='%s/Wayne' type='chat'><body>pm</body>"
                             "</message>" % (KEVIN, ROOM))
        self.assertEqual(sorted(s["to"] for s in out), sorted([WAYNE, WAYNE_PHONE]))
        out = self.f.receive("<message from='%s' to='%s/Kevin' type='chat'><body>back</body>"
                             "</message>" % (WAYNE_PHONE, ROOM))
        self.assertEqual([(s["to"], s["from"]) for s in out], [(KEVIN, ROOM + "/Wayne")])

    def test_one_device_leaves(self):
        self.f.join(WAYNE_PHONE, "Wayne")
        out = self.f.receive("<presence type='unavailable' from='%s' to='%s/Wayne'/>"
                             % (WAYNE_PHONE, ROOM))
        gone, = to(out, WAYNE_PHONE)
        self.assertEqual((gone["type"], status_codes(gone)), ("unavailable", ["110"]))
        # Wayne is still in the room for everyone else.
        seen, = to(out, KEVIN)
        self.assertFalse(seen.hasAttribute("type"))
        # This announcement still lists the leaving device, as Prosody's does.
        self.assertEqual([i["jid"] for i in items(seen)], [WAYNE, WAYNE_PHONE])
        self.assertEqual(len(items(gone)), 2)
        out = self.f.say(KEVIN, "after")
        self.assertEqual(sorted(s["to"] for s in out), sorted([KEVIN, WAYNE]))

    def test_the_first_device_leaves_then_the_last(self):
        self.f.join(WAYNE_PHONE, "Wayne")
        out = self.f.receive("<presence type='unavailable' from='%s' to='%s/Wayne'/>"
                             % (WAYNE, ROOM))
        self.assertEqual(to(out, WAYNE)[0]["type"], "unavailable")
        self.assertFalse(to(out, KEVIN)[0].hasAttribute("type"))
        out = self.f.say(WAYNE_PHONE, "still here")
        self.assertEqual(sorted(s["to"] for s in out), sorted([KEVIN, WAYNE_PHONE]))
        out = self.f.receive("<presence type='unavailable' from='%s' to='%s/Wayne'/>"
                             % (WAYNE_PHONE, ROOM))
        seen, = to(out, KEVIN)
        self.assertEqual(seen["type"], "unavailable")
        self.assertNotIn("Wayne", self.f.muc.rooms[ROOM].occupants)

    def test_kick_removes_every_device(self):
        self.f.join(WAYNE_PHONE, "Wayne")
        out = self.f.receive(admin_set(KEVIN, nick="Wayne", role="none"))
        for device in (WAYNE, WAYNE_PHONE):
            kicked, = to(out, device)
            self.assertEqual((kicked["type"], status_codes(kicked)),
                             ("unavailable", ["307", "110"]))
        out = self.f.say(WAYNE_PHONE, "still here?")
        self.assertEqual(error_condition(out[0]), ("cancel", "not-acceptable"))

    def test_a_bounce_removes_only_that_device(self):
        self.f.join(WAYNE_PHONE, "Wayne")
        out = self.f.receive("<presence type='error' from='%s' to='%s/Wayne'><error type='cancel'>"
                             "<gone xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error>"
                             "</presence>" % (WAYNE_PHONE, ROOM))
        self.assertFalse(to(out, KEVIN)[0].hasAttribute("type"))
        out = self.f.say(KEVIN, "after")
        self.assertEqual(sorted(s["to"] for s in out), sorted([KEVIN, WAYNE]))

    def test_another_user_taking_the_nick_is_still_a_conflict(self):
        out = self.f.join(KEITH, "Wayne")
        self.assertEqual(error_condition(out[0]), ("cancel", "conflict"))

    def test_every_device_told_when_the_service_stops(self):
        self.f.join(WAYNE_PHONE, "Wayne")
        before = len(self.f.sent)
        self.f.muc.shutdown()
        told = self.f.sent[before:]
        for device in (WAYNE, WAYNE_PHONE):
            self.assertIn("332", status_codes(to(told, device)[0]))
