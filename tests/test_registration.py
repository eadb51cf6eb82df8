"""
Nick registration (XEP-0045 7.10, 7.12) at the master and through a
mirror, in memory (tests/two_site_helpers.py): who may register, the
reserved nick as clients discover it, the nick kept from others, the
removal (status 321 in a members-only room), probes for an absent
member, and the registration kept over a restart.
"""

from twisted.trial import unittest

from dmuc.master.room import Room
from dmuc.muc.registration import FORM_TYPE, REGISTER
from dmuc.xmpp import namespaces as ns
from tests.stanza_helpers import error_condition, item, status_codes
from tests.test_dmuc_flows import KEVIN, WAYNE, join
from tests.two_site_helpers import MROOM, ROOM, TwoSites

CAROL = "carol@fairfax.test/desk"
DAVE = "dave@fairfax.test/x"


def register(nick, room):
    return ("<iq type='set' id='r1' to='%s'><query xmlns='%s'><x xmlns='jabber:x:data' "
            "type='submit'><field var='FORM_TYPE'><value>%s</value></field>"
            "<field var='muc#register_roomnick'><value>%s</value></field></x></query></iq>"
            % (room, REGISTER, FORM_TYPE, nick))


def reserved_nick_query(room):
    return ("<iq type='get' id='n1' to='%s'><query xmlns='%s' node='x-roomuser-item'/></iq>"
            % (room, ns.DISCO_INFO))


class RegistrationTests(unittest.TestCase):

    def setUp(self):
        self.sites = TwoSites()
        join(self.sites, KEVIN, "Kevin", ROOM)
        for bare in ("carol@fairfax.test", "wayne@raleigh.test"):
            self.admin("<item jid='%s' affiliation='member'/>" % bare)
        self.sites.take(KEVIN)

    def admin(self, item_xml):
        self.sites.send(KEVIN, "<iq type='set' id='a' to='%s'><query xmlns='%s'>%s</query></iq>"
                        % (ROOM, ns.MUC_ADMIN, item_xml))

    def ask(self, user, text):
        self.sites.send(user, text)
        reply, = [s for s in self.sites.take(user) if s.name == "iq"]
        return reply

    def reserved_nick(self, user, room):
        reply = self.ask(user, reserved_nick_query(room))
        query = next(reply.elements(ns.DISCO_INFO, "query"))
        self.assertEqual(query["node"], "x-roomuser-item")
        return [i["name"] for i in query.elements(ns.DISCO_INFO, "identity")]

    def test_a_member_registers_and_the_nick_is_theirs(self):
        form = self.ask(CAROL, "<iq type='get' id='g' to='%s'><query xmlns='%s'/></iq>"
                        % (ROOM, REGISTER))
        fields = [f["var"] for f in next(form.elements(REGISTER, "query")).elements(
            ns.DATA_FORMS, "x").__next__().elements(ns.DATA_FORMS, "field")]
        self.assertEqual(fields, ["FORM_TYPE", "muc#register_roomnick"])
        self.assertEqual(self.reserved_nick(CAROL, ROOM), [])
        self.assertEqual(self.ask(CAROL, register("Caz", ROOM))["type"], "result")
        self.assertEqual(self.reserved_nick(CAROL, ROOM), ["Caz"])
        registered = self.ask(CAROL, "<iq type='get' id='g' to='%s'><query xmlns='%s'/></iq>"
                              % (ROOM, REGISTER))
        query = next(registered.elements(REGISTER, "query"))
        self.assertEqual(str(next(query.elements(REGISTER, "username"))), "Caz")
        # Somebody else cannot take it, Carol can.
        self.assertEqual(error_condition(join(self.sites, DAVE, "Caz", ROOM)[0]),
                         ("cancel", "conflict"))
        self.assertIn("110", status_codes(join(self.sites, CAROL, "Caz", ROOM)[-2]))

    def test_who_may_not_register(self):
        self.assertEqual(error_condition(self.ask(DAVE, register("D", ROOM))),
                         ("auth", "registration-required"))
        self.admin("<item jid='dave@fairfax.test' affiliation='outcast'/>")
        self.assertEqual(error_condition(self.ask(DAVE, register("D", ROOM))),
                         ("auth", "forbidden"))
        self.ask(CAROL, register("Caz", ROOM))
        self.assertEqual(error_condition(self.ask(WAYNE, register("Caz", MROOM))),
                         ("cancel", "conflict"))

    def test_removal_in_a_members_only_room(self):
        self.sites.send(KEVIN, "<iq type='set' id='c' to='%s'><query xmlns='%s'><x xmlns="
                        "'jabber:x:data' type='submit'><field var='muc#roomconfig_membersonly'>"
                        "<value>1</value></field></x></query></iq>" % (ROOM, ns.MUC_OWNER))
        self.ask(CAROL, register("Caz", ROOM))
        join(self.sites, CAROL, "Caz", ROOM)
        self.sites.take(KEVIN)
        self.sites.send(CAROL, "<iq type='set' id='u' to='%s'><query xmlns='%s'><remove/>"
                        "</query></iq>" % (ROOM, REGISTER))
        seen = self.sites.take(CAROL)
        gone = [s for s in seen if s.name == "presence"]
        self.assertEqual([status_codes(s) for s in gone], [["321", "110"]])
        self.assertEqual([s["type"] for s in seen if s.name == "iq"], ["result"])
        left, = self.sites.take(KEVIN)
        self.assertEqual((left["type"], status_codes(left)), ("unavailable", ["321"]))
        self.assertEqual(error_condition(join(self.sites, CAROL, "Caz", ROOM)[0]),
                         ("auth", "registration-required"))

    def test_probe_for_an_absent_member_and_the_member_list(self):
        self.ask(CAROL, register("Caz", ROOM))
        announced, = self.sites.take(KEVIN)   # the affiliation set again, as at Prosody
        self.assertEqual(item(announced)["jid"], "carol@fairfax.test")
        self.sites.send(KEVIN, "<presence type='probe' to='%s/Caz'/>" % ROOM)
        absent, = self.sites.take(KEVIN)
        self.assertEqual((absent["from"], absent["type"]), (ROOM + "/Caz", "unavailable"))
        self.assertEqual((item(absent)["nick"], item(absent)["affiliation"], item(absent)["jid"]),
                         ("Caz", "member", "carol@fairfax.test"))
        members = self.ask(KEVIN, "<iq type='get' id='m' to='%s'><query xmlns='%s'><item "
                           "affiliation='member'/></query></iq>" % (ROOM, ns.MUC_ADMIN))
        items = {i["jid"]: i.getAttribute("nick")
                 for i in next(members.elements(ns.MUC_ADMIN, "query")).elements()}
        self.assertEqual(items, {"carol@fairfax.test": "Caz", "wayne@raleigh.test": None})

    def test_registration_survives_a_restart(self):
        self.ask(CAROL, register("Caz", ROOM))
        room = self.sites.master.rooms[ROOM]
        again = Room.from_record(room.to_record(), self.sites.master)
        self.assertEqual(again.reserved_nicks, {"carol@fairfax.test": "Caz"})

    def test_through_the_mirror_whether_in_the_room_or_not(self):
        # Not in the room: the mirror asks the master for the user.
        self.assertEqual(self.reserved_nick(WAYNE, MROOM), [])
        reply = self.ask(WAYNE, register("Wayne", MROOM))
        self.assertEqual((reply["type"], reply["from"]), ("result", MROOM))
        self.assertEqual(self.reserved_nick(WAYNE, MROOM), ["Wayne"])
        self.assertEqual(self.sites.master.rooms[ROOM].reserved_nicks["wayne@raleigh.test"],
                         "Wayne")
        join(self.sites, WAYNE, "Wayne")
        self.assertEqual(self.reserved_nick(WAYNE, MROOM), ["Wayne"])
        # The master refuses a user without an affiliation, through the mirror too.
        refused = self.ask("eve@raleigh.test/x", register("Eve", MROOM))
        self.assertEqual(error_condition(refused), ("auth", "registration-required"))
        self.assertEqual(refused["from"], MROOM)
