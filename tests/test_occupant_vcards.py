"""
Occupant vCards and avatars through a mirror (issue, defect 7), the master
and the mirror wired in memory (tests/two_site_helpers.py).

As Prosody 0.12's mod_muc does, a vCard request to an occupant goes to the
occupant's bare JID (the user's server answers it) and the answer, from
that bare JID, reaches the requester from the occupant JID with the
requester's id; nobody else may answer in its place.
"""

from twisted.trial import unittest

from dmuc.xmpp import namespaces as ns
from tests.stanza_helpers import error_condition
from tests.test_dmuc_flows import KEITH, KEVIN, WAYNE, join
from tests.two_site_helpers import MROOM, ROOM, TwoSites

MALLORY = "mallory@raleigh.test/pc"
CAROL = "carol@fairfax.test/desk"
PHOTO = "01b87fcd030b72895ff8e88db57ec525450f000d"
AVATAR = "<x xmlns='vcard-temp:x:update'><photo>%s</photo></x>" % PHOTO


def ask_vcard(sites, user, occupant_jid, iq_id="v1"):
    sites.send(user, "<iq type='get' id='%s' to='%s'><vCard xmlns='vcard-temp'/></iq>"
               % (iq_id, occupant_jid))


def answer_vcard(sites, responder, request, name):
    """The responder (a user's server, at the bare JID) answers with a
    vCard holding C{name}."""
    sites.send(responder, "<iq type='result' id='%s' to='%s'><vCard xmlns='vcard-temp'>"
               "<FN>%s</FN></vCard></iq>" % (request["id"], request["from"], name))


def refuse_vcard(sites, responder, request):
    sites.send(responder, "<iq type='error' id='%s' to='%s'><error type='cancel'>"
               "<item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>"
               % (request["id"], request["from"]))


def full_name(iq):
    return [str(fn) for card in iq.elements("vcard-temp", "vCard")
            for fn in card.elements("vcard-temp", "FN")]


def photo_hash(presence):
    return [str(p) for x in presence.elements("vcard-temp:x:update", "x")
            for p in x.elements("vcard-temp:x:update", "photo")]


class OccupantVcardTests(unittest.TestCase):

    def setUp(self):
        self.sites = TwoSites()
        join(self.sites, KEVIN, "Kevin", ROOM)
        join(self.sites, WAYNE, "Wayne")
        join(self.sites, KEITH, "Keith")
        join(self.sites, MALLORY, "Mallory")
        for user in (KEVIN, WAYNE, KEITH, MALLORY):
            self.sites.take(user)
        self.sites.link_count()

    def assert_answer(self, user, occupant_jid, iq_id="v1", kind="result"):
        answer, = self.sites.take(user)
        self.assertEqual((answer.name, answer["type"], answer["id"], answer["from"]),
                         ("iq", kind, iq_id, occupant_jid))
        return answer

    # -- a mirror user asks for another mirror user's vCard

    def test_mirror_user_vcard_goes_to_the_bare_jid(self):
        ask_vcard(self.sites, WAYNE, MROOM + "/Keith")
        self.assertEqual(self.sites.take(KEITH), [])
        request, = self.sites.take("keith@raleigh.test")
        self.assertEqual(request["from"], MROOM + "/Wayne")
        answer_vcard(self.sites, "keith@raleigh.test", request, "Keith K")
        answer = self.assert_answer(WAYNE, MROOM + "/Keith")
        self.assertEqual(full_name(answer), ["Keith K"])
        self.assertEqual(self.sites.link_count(), 0)

    def test_mirror_user_vcard_error_reaches_the_asker(self):
        ask_vcard(self.sites, WAYNE, MROOM + "/Keith")
        request, = self.sites.take("keith@raleigh.test")
        refuse_vcard(self.sites, "keith@raleigh.test", request)
        answer = self.assert_answer(WAYNE, MROOM + "/Keith", kind="error")
        self.assertEqual(error_condition(answer), ("cancel", "item-not-found"))

    def test_mirror_user_vcard_answer_from_anyone_else_is_dropped(self):
        ask_vcard(self.sites, WAYNE, MROOM + "/Keith")
        request, = self.sites.take("keith@raleigh.test")
        for spoofer in (MALLORY, "mallory@raleigh.test", "keith@raleigh.test/other"):
            answer_vcard(self.sites, spoofer, request, "Not Keith")
            self.assertEqual(self.sites.take(WAYNE), [])
        answer_vcard(self.sites, "keith@raleigh.test", request, "Keith K")
        self.assertEqual(full_name(self.assert_answer(WAYNE, MROOM + "/Keith")), ["Keith K"])

    def test_other_iqs_between_mirror_users_still_go_to_the_full_jid(self):
        self.sites.send(WAYNE, "<iq type='get' id='t' to='%s/Keith'>"
                        "<time xmlns='urn:xmpp:time'/></iq>" % MROOM)
        request, = self.sites.take(KEITH)
        self.sites.send(KEITH, "<iq type='result' id='%s' to='%s'/>"
                        % (request["id"], request["from"]))
        self.assert_answer(WAYNE, MROOM + "/Keith", iq_id="t")

    # -- a master user asks for a mirror user's vCard

    def test_master_user_gets_a_mirror_user_vcard(self):
        ask_vcard(self.sites, KEVIN, ROOM + "/Wayne")
        self.assertEqual(self.sites.take(WAYNE), [])
        request, = self.sites.take("wayne@raleigh.test")
        self.assertEqual(request["from"], MROOM + "/Kevin")
        answer_vcard(self.sites, "wayne@raleigh.test", request, "Wayne W")
        answer = self.assert_answer(KEVIN, ROOM + "/Wayne")
        self.assertEqual(full_name(answer), ["Wayne W"])

    def test_master_user_gets_a_mirror_user_vcard_error(self):
        ask_vcard(self.sites, KEVIN, ROOM + "/Wayne")
        request, = self.sites.take("wayne@raleigh.test")
        refuse_vcard(self.sites, "wayne@raleigh.test", request)
        answer = self.assert_answer(KEVIN, ROOM + "/Wayne", kind="error")
        self.assertEqual(error_condition(answer), ("cancel", "item-not-found"))

    def test_master_user_vcard_answer_from_anyone_else_is_dropped(self):
        ask_vcard(self.sites, KEVIN, ROOM + "/Wayne")
        request, = self.sites.take("wayne@raleigh.test")
        for spoofer in (KEITH, "keith@raleigh.test", "wayne@raleigh.test/other"):
            answer_vcard(self.sites, spoofer, request, "Not Wayne")
            self.assertEqual(self.sites.take(KEVIN), [])
        answer_vcard(self.sites, "wayne@raleigh.test", request, "Wayne W")
        self.assertEqual(full_name(self.assert_answer(KEVIN, ROOM + "/Wayne")), ["Wayne W"])

    def test_answer_from_the_full_jid_is_accepted(self):
        # Prosody accepts the answer from the occupant's session too.
        ask_vcard(self.sites, KEVIN, ROOM + "/Wayne")
        request, = self.sites.take("wayne@raleigh.test")
        answer_vcard(self.sites, WAYNE, request, "Wayne W")
        self.assertEqual(full_name(self.assert_answer(KEVIN, ROOM + "/Wayne")), ["Wayne W"])

    # -- a mirror user asks for a master user's vCard

    def test_mirror_user_gets_a_master_user_vcard(self):
        ask_vcard(self.sites, WAYNE, MROOM + "/Kevin")
        self.assertEqual(self.sites.take(KEVIN), [])
        request, = self.sites.take("kevin@fairfax.test")
        self.assertEqual(request["from"], ROOM + "/Wayne")
        answer_vcard(self.sites, "kevin@fairfax.test", request, "Kevin K")
        answer = self.assert_answer(WAYNE, MROOM + "/Kevin")
        self.assertEqual(full_name(answer), ["Kevin K"])

    def test_mirror_user_master_vcard_answer_from_anyone_else_is_dropped(self):
        join(self.sites, CAROL, "Carol", ROOM)
        self.sites.take(WAYNE)
        ask_vcard(self.sites, WAYNE, MROOM + "/Kevin")
        request, = self.sites.take("kevin@fairfax.test")
        for spoofer in (CAROL, "carol@fairfax.test"):
            answer_vcard(self.sites, spoofer, request, "Not Kevin")
            self.assertEqual(self.sites.take(WAYNE), [])
        answer_vcard(self.sites, "kevin@fairfax.test", request, "Kevin K")
        self.assertEqual(full_name(self.assert_answer(WAYNE, MROOM + "/Kevin")), ["Kevin K"])


class OccupantAvatarTests(unittest.TestCase):
    """XEP-0153: the avatar hash in an occupant's presence reaches every
    viewer on both sites."""

    def setUp(self):
        self.sites = TwoSites()
        join(self.sites, KEVIN, "Kevin", ROOM)
        join(self.sites, WAYNE, "Wayne")
        join(self.sites, KEITH, "Keith")
        for user in (KEVIN, WAYNE, KEITH):
            self.sites.take(user)

    def change_status(self, user, room, nick):
        self.sites.send(user, "<presence to='%s/%s'><show>away</show>%s</presence>"
                        % (room, nick, AVATAR))

    def test_mirror_user_avatar_reaches_both_sites(self):
        self.change_status(WAYNE, MROOM, "Wayne")
        for user, room in ((KEVIN, ROOM), (WAYNE, MROOM), (KEITH, MROOM)):
            presence, = self.sites.take(user)
            self.assertEqual((presence["from"], photo_hash(presence)),
                             (room + "/Wayne", [PHOTO]))

    def test_master_user_avatar_reaches_both_sites(self):
        self.change_status(KEVIN, ROOM, "Kevin")
        for user, room in ((KEVIN, ROOM), (WAYNE, MROOM), (KEITH, MROOM)):
            presence, = self.sites.take(user)
            self.assertEqual((presence["from"], photo_hash(presence)),
                             (room + "/Kevin", [PHOTO]))

    def test_avatar_in_a_join_reaches_both_sites(self):
        for user, nick, room in ((CAROL, "Carol", ROOM), (MALLORY, "Mallory", MROOM)):
            self.sites.send(user, "<presence to='%s/%s'><x xmlns='%s'/>%s</presence>"
                            % (room, nick, ns.MUC, AVATAR))
        for user, room in ((KEVIN, ROOM), (WAYNE, MROOM)):
            seen = {p["from"]: photo_hash(p) for p in self.sites.take(user)}
            self.assertEqual((seen[room + "/Carol"], seen[room + "/Mallory"]), ([PHOTO], [PHOTO]))

    def test_later_joiner_sees_the_avatars(self):
        self.change_status(WAYNE, MROOM, "Wayne")
        self.change_status(KEVIN, ROOM, "Kevin")
        seen = {p["from"]: photo_hash(p) for p in join(self.sites, MALLORY, "Mallory")
                if p.name == "presence"}
        self.assertEqual((seen[MROOM + "/Kevin"], seen[MROOM + "/Wayne"]), ([PHOTO], [PHOTO]))
        seen = {p["from"]: photo_hash(p) for p in join(self.sites, CAROL, "Carol", ROOM)
                if p.name == "presence"}
        self.assertEqual((seen[ROOM + "/Kevin"], seen[ROOM + "/Wayne"]), ([PHOTO], [PHOTO]))


    def test_first_mirror_user_sees_the_avatars(self):
        # The mirror's first sync (roster push), not a live presence.
        sites = TwoSites()
        sites.send(KEVIN, "<presence to='%s/Kevin'><x xmlns='%s'/>%s</presence>"
                   % (ROOM, ns.MUC, AVATAR))
        seen = {p["from"]: photo_hash(p) for p in join(sites, WAYNE, "Wayne")
                if p.name == "presence"}
        self.assertEqual(seen[MROOM + "/Kevin"], [PHOTO])


class AccountPayloadTests(unittest.TestCase):
    """Prosody sends vCard 4 and PubSub (PEP avatar) requests to an
    occupant's bare JID too, at the master and at the mirror."""

    def setUp(self):
        self.sites = TwoSites()
        for user, nick, room in ((KEVIN, "Kevin", ROOM), (CAROL, "Carol", ROOM),
                                 (WAYNE, "Wayne", MROOM), (KEITH, "Keith", MROOM)):
            join(self.sites, user, nick, room)
        for user in (KEVIN, CAROL, WAYNE, KEITH):
            self.sites.take(user)

    def ask(self, user, occupant_jid, payload):
        self.sites.send(user, "<iq type='get' id='a1' to='%s'>%s</iq>" % (occupant_jid, payload))

    def test_at_the_master(self):
        for payload in ("<vcard xmlns='urn:ietf:params:xml:ns:vcard-4.0'/>",
                        "<pubsub xmlns='http://jabber.org/protocol/pubsub'><items "
                        "node='urn:xmpp:avatar:metadata'/></pubsub>"):
            self.ask(KEVIN, ROOM + "/Carol", payload)
            self.assertEqual(self.sites.take(CAROL), [])
            request, = self.sites.take("carol@fairfax.test")
            self.sites.send("carol@fairfax.test", "<iq type='result' id='%s' to='%s'/>"
                            % (request["id"], request["from"]))
            answer, = self.sites.take(KEVIN)
            self.assertEqual((answer["id"], answer["from"]), ("a1", ROOM + "/Carol"))

    def test_at_the_mirror(self):
        for payload in ("<vcard xmlns='urn:ietf:params:xml:ns:vcard-4.0'/>",
                        "<pubsub xmlns='http://jabber.org/protocol/pubsub'><items "
                        "node='urn:xmpp:avatar:metadata'/></pubsub>"):
            for asker, room in ((WAYNE, MROOM), (KEVIN, ROOM)):
                self.ask(asker, room + "/Keith", payload)
                self.assertEqual(self.sites.take(KEITH), [])
                request, = self.sites.take("keith@raleigh.test")
                self.sites.send("keith@raleigh.test", "<iq type='result' id='%s' to='%s'/>"
                                % (request["id"], request["from"]))
                answer, = self.sites.take(asker)
                self.assertEqual((answer["id"], answer["from"]), ("a1", room + "/Keith"))

