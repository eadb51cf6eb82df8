"""
Invitations and joins across sites, on a master and a mirror wired in
memory: a mediated invitation to a user whose domain a trusted mirror
serves comes from that user's mirror room; a user of a mirror-served
domain joining the master room directly may be sent to the mirror room
(C{redirect_to_mirrors}); a user of another site joining a mirror room is
sent to the master room.
"""

from twisted.trial import unittest

from dmuc.xmpp import namespaces as ns
from dmuc.xmpp.stanzas import StanzaError
from tests.stanza_helpers import error_condition
from tests.two_site_helpers import MROOM, ROOM, TwoSites

KEVIN = "kevin@fairfax.test/desk"
FRANK = "frank@fairfax.test/home"
WAYNE = "wayne@raleigh.test/laptop"
MUC_X = "<x xmlns='http://jabber.org/protocol/muc'>%s</x>"
CONFERENCE = "jabber:x:conference"


def join(sites, user, nick, room=MROOM, extra=""):
    sites.send(user, "<presence to='%s/%s'>%s</presence>" % (room, nick, MUC_X % extra))
    return sites.take(user)


def invite(sites, user, room, invitee, reason=""):
    sites.send(user, "<message to='%s'><x xmlns='%s'><invite to='%s'>%s</invite></x></message>"
               % (room, ns.MUC_USER, invitee,
                  "<reason>%s</reason>" % reason if reason else ""))


def configure(sites, owner, **fields):
    values = "".join("<field var='muc#roomconfig_%s'><value>%s</value></field>" % item
                     for item in fields.items())
    sites.send(owner, "<iq type='set' id='c' to='%s'><query xmlns='%s'><x xmlns='jabber:x:data' "
               "type='submit'>%s</x></query></iq>" % (ROOM, ns.MUC_OWNER, values))
    sites.take(owner)


def invite_element(message):
    x = next(message.elements(ns.MUC_USER, "x"))
    return x, next(x.elements(ns.MUC_USER, "invite"))


def body(message):
    return str(next(message.elements(None, "body")))


def redirect_text(error):
    element = next(error.elements(None, "error"))
    return str(next(element.elements(ns.STANZAS, "redirect")))


class MediatedInvitationTests(unittest.TestCase):
    """XEP-0045 7.8.2 across sites: the invitation a mirror user gets
    comes from the mirror room, which is what every client joins."""

    def setUp(self):
        self.sites = TwoSites()
        join(self.sites, KEVIN, "Kevin", ROOM)

    def received(self, user="wayne@raleigh.test"):
        return self.sites.take(user)

    def test_invitation_comes_from_the_mirror_room(self):
        invite(self.sites, KEVIN, ROOM, "wayne@raleigh.test", "let us talk")
        message, = self.received()
        self.assertEqual(message["from"], MROOM)
        x, element = invite_element(message)
        # A semi-anonymous room (the default) shows the inviter's nick.
        self.assertEqual(element["from"], MROOM + "/Kevin")
        self.assertEqual(str(next(element.elements(ns.MUC_USER, "reason"))), "let us talk")
        conference = next(message.elements(CONFERENCE, "x"))
        self.assertEqual(conference["jid"], MROOM)
        self.assertIn(MROOM, body(message))
        self.assertNotIn(ROOM, body(message).replace(MROOM, ""))
        self.assertIn("let us talk", body(message))
        self.assertEqual(self.sites.take(KEVIN), [])

    def test_the_invitee_joins_what_the_invitation_names(self):
        invite(self.sites, KEVIN, ROOM, "wayne@raleigh.test")
        message, = self.received()
        seen = join(self.sites, WAYNE, "Wayne", room=message["from"])
        self.assertIn(MROOM + "/Wayne", [s["from"] for s in seen if s.name == "presence"])
        self.assertIsNotNone(self.sites.mirror.rooms[MROOM].occupant_of(
            self.sites.mirror.rooms[MROOM].local_users()[0].user))
        presence, = self.sites.take(KEVIN)
        self.assertEqual(presence["from"], ROOM + "/Wayne")

    def test_password_and_membership_as_before(self):
        configure(self.sites, KEVIN, membersonly="1", passwordprotectedroom="1",
                  roomsecret="sesame")
        invite(self.sites, KEVIN, ROOM, "wayne@raleigh.test")
        message, = self.received()
        x, element = invite_element(message)
        self.assertEqual(str(next(x.elements(ns.MUC_USER, "password"))), "sesame")
        self.assertEqual(message["from"], MROOM)
        seen = join(self.sites, WAYNE, "Wayne", room=message["from"],
                    extra="<password>sesame</password>")
        self.assertIn(MROOM + "/Wayne", [s["from"] for s in seen if s.name == "presence"])

    def test_non_anonymous_room_names_the_inviter(self):
        configure(self.sites, KEVIN, whois="anyone")
        invite(self.sites, KEVIN, ROOM, "wayne@raleigh.test")
        message, = self.received()
        self.assertEqual(message["from"], MROOM)
        x, element = invite_element(message)
        self.assertEqual(element["from"], KEVIN)

    def test_a_mirror_user_invites_another(self):
        join(self.sites, WAYNE, "Wayne")
        invite(self.sites, WAYNE, MROOM, "dave@raleigh.test")
        message, = self.received("dave@raleigh.test")
        self.assertEqual(message["from"], MROOM)
        self.assertEqual(invite_element(message)[1]["from"], MROOM + "/Wayne")

    def test_a_master_site_user_is_invited_to_the_master_room(self):
        invite(self.sites, KEVIN, ROOM, "frank@fairfax.test")
        message, = self.received("frank@fairfax.test")
        self.assertEqual(message["from"], ROOM)
        self.assertEqual(next(message.elements(CONFERENCE, "x"))["jid"], ROOM)

    def test_a_room_without_mirrors_invites_to_itself(self):
        configure(self.sites, KEVIN, distributed="0")
        invite(self.sites, KEVIN, ROOM, "wayne@raleigh.test")
        message, = self.received()
        self.assertEqual(message["from"], ROOM)
        self.assertEqual(self.sites.link_count(), 1)

    def test_an_older_mirror_gets_the_invitation_sent_direct(self):
        def older(stanza, name, sender):
            if name == "iq" and stanza.getAttribute("type") == "set":
                raise StanzaError("service-unavailable")
        self.sites.mirror._to_service = older
        invite(self.sites, KEVIN, ROOM, "wayne@raleigh.test", "hello")
        message, = self.received()
        self.assertEqual(message["from"], ROOM)
        self.assertEqual(invite_element(message)[1]["from"], ROOM + "/Kevin")
        self.assertEqual(next(message.elements(CONFERENCE, "x"))["jid"], ROOM)


class RedirectToMirrorTests(unittest.TestCase):
    """The master's C{redirect_to_mirrors}: a user of a mirror-served
    domain joining the master room directly is sent to the mirror room."""

    def setUp(self):
        self.sites = TwoSites()
        join(self.sites, KEVIN, "Kevin", ROOM)

    def test_off_by_default(self):
        seen = join(self.sites, WAYNE, "Wayne", ROOM)
        self.assertIn(ROOM + "/Wayne", [s["from"] for s in seen if s.name == "presence"])

    def test_redirect_and_direct_invitation(self):
        self.sites.master.redirect_to_mirrors = True
        seen = join(self.sites, WAYNE, "Wayne", ROOM)
        error, message = seen
        self.assertEqual((error.name, error["type"]), ("presence", "error"))
        self.assertEqual(error["from"], ROOM + "/Wayne")
        self.assertEqual(error_condition(error), ("modify", "redirect"))
        self.assertEqual(redirect_text(error), "xmpp:%s?join" % MROOM)
        self.assertEqual(message["from"], ROOM)
        self.assertEqual(next(message.elements(CONFERENCE, "x"))["jid"], MROOM)
        self.assertEqual(list(message.elements(ns.MUC_USER, "x")), [])
        self.assertEqual(self.sites.take(KEVIN), [])
        # Following the invitation lands in the mirror room.
        seen = join(self.sites, WAYNE, "Wayne", next(message.elements(CONFERENCE, "x"))["jid"])
        self.assertIn(MROOM + "/Wayne", [s["from"] for s in seen if s.name == "presence"])

    def test_password_goes_with_the_invitation(self):
        configure(self.sites, KEVIN, passwordprotectedroom="1", roomsecret="sesame")
        self.sites.master.redirect_to_mirrors = True
        error, message = join(self.sites, WAYNE, "Wayne", ROOM)
        self.assertEqual(next(message.elements(CONFERENCE, "x"))["password"], "sesame")

    def test_master_site_users_and_rooms_without_mirrors_join_as_before(self):
        self.sites.master.redirect_to_mirrors = True
        seen = join(self.sites, FRANK, "Frank", ROOM)
        self.assertIn(ROOM + "/Frank", [s["from"] for s in seen if s.name == "presence"])
        configure(self.sites, KEVIN, distributed="0")
        seen = join(self.sites, WAYNE, "Wayne", ROOM)
        self.assertIn(ROOM + "/Wayne", [s["from"] for s in seen if s.name == "presence"])

    def test_an_occupant_already_in_is_not_sent_away(self):
        join(self.sites, WAYNE, "Wayne", ROOM)
        self.sites.master.redirect_to_mirrors = True
        seen = join(self.sites, WAYNE, "Wayne", ROOM)
        self.assertNotIn("error", [s.getAttribute("type") for s in seen])


class RedirectToMasterTests(unittest.TestCase):
    """A user of another site joining a mirror room is sent to the master
    room, not refused with a bare C{not-allowed}."""

    def setUp(self):
        self.sites = TwoSites()
        join(self.sites, KEVIN, "Kevin", ROOM)

    def test_master_site_user_joining_the_mirror_room(self):
        error, = join(self.sites, FRANK, "Frank", MROOM)
        self.assertEqual(error["type"], "error")
        self.assertEqual(error_condition(error), ("modify", "redirect"))
        self.assertEqual(redirect_text(error), "xmpp:%s?join" % ROOM)

    def test_any_other_user_joining_the_mirror_room(self):
        error, = join(self.sites, "eve@elsewhere.test/x", "Eve", MROOM)
        self.assertEqual(error_condition(error), ("modify", "redirect"))
        self.assertEqual(redirect_text(error), "xmpp:%s?join" % ROOM)

    def test_other_stanzas_stay_not_allowed(self):
        self.sites.send(FRANK, "<message to='%s' type='groupchat'><body>hi</body></message>"
                        % MROOM)
        error, = self.sites.take(FRANK)
        self.assertEqual(error_condition(error), ("cancel", "not-allowed"))
        self.sites.send(FRANK, "<presence to='%s/Frank' type='unavailable'/>" % MROOM)
        error, = self.sites.take(FRANK)
        self.assertEqual(error_condition(error), ("cancel", "not-allowed"))


class OutsidersInviteAndDeclineTests(unittest.TestCase):
    """Anyone may invite or decline without being in the room (Prosody):
    a mirror's user not in the room too."""

    def setUp(self):
        self.sites = TwoSites()
        join(self.sites, KEVIN, "Kevin", ROOM)
        self.sites.take(KEVIN)

    def test_a_mirror_user_declines_an_invitation(self):
        self.sites.send(WAYNE, "<message to='%s'><x xmlns='%s'><decline to='%s'><reason>Busy"
                        "</reason></decline></x></message>" % (MROOM, ns.MUC_USER, KEVIN))
        self.assertEqual(self.sites.take(WAYNE), [])
        declined, = self.sites.take(KEVIN)
        decline = next(next(declined.elements(ns.MUC_USER, "x")).elements(ns.MUC_USER, "decline"))
        self.assertEqual((declined["from"], decline["from"]), (ROOM, WAYNE))

    def test_a_mirror_user_invites_from_outside(self):
        invite(self.sites, WAYNE, MROOM, "frank@fairfax.test", "join us")
        self.assertEqual(self.sites.take(WAYNE), [])
        invitation, = self.sites.take("frank@fairfax.test")
        self.assertEqual(invitation["from"], ROOM)
