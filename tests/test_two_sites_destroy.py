"""
Room destruction on two real sites (issue, defect 8): an owner at the
mirror site destroys a persistent room; as with Prosody's mod_muc, each
user at either site gets exactly its own destroy presence, the owner gets
the result, and the room answers later joins at both sites with C{gone}.
"""

from tests.harness.xml import NS, error_condition, find, matcher, status_codes
from tests.test_two_sites import MROOM, ROOM, TwoSiteTestCase, join_xml

ALTERNATE = "new@" + ROOM.split("@")[1]


def persistent_form():
    return ("<x xmlns='%s' type='submit'><field var='FORM_TYPE'><value>%s</value></field>"
            "<field var='muc#roomconfig_persistentroom'><value>1</value></field></x>"
            % (NS.DATA_FORMS, "http://jabber.org/protocol/muc#roomconfig"))


class DestroyTwoSiteTests(TwoSiteTestCase):

    def assertOwnDestroyPresence(self, client, occupant_jid, real_jid):
        own = client.wait_for(matcher("presence", type="unavailable"), timeout=10)
        self.assertEqual(own.get("from"), occupant_jid)
        self.assertEqual(status_codes(own), {110})
        destroy = find(own, "muc_user:x/muc_user:destroy")
        self.assertEqual(destroy.get("jid"), ALTERNATE)
        self.assertEqual(find(destroy, "muc_user:reason").text, "Moved")
        item = find(own, "muc_user:x/muc_user:item")
        self.assertEqual((item.get("role"), item.get("jid")), ("none", real_jid))

    def assertNoMorePresence(self, client):
        left = [s for s in client.take_all() if s.tag.endswith("}presence")]
        self.assertEqual(left, [])

    def test_mirror_owner_destroys_the_room(self):
        kevin = self.fairfax_user("kevin")
        wayne, keith = self.raleigh_user("wayne"), self.raleigh_user("keith")
        self.join(kevin, ROOM, "Kevin")
        reply = kevin.iq("<iq type='set' to='%s'><query xmlns='%s'>%s</query></iq>"
                         % (ROOM, NS.MUC_OWNER, persistent_form()), timeout=10)
        self.assertEqual(reply.get("type"), "result")
        reply = kevin.iq("<iq type='set' to='%s'><query xmlns='%s'><item affiliation='owner' "
                         "jid='wayne@raleigh.test'/></query></iq>" % (ROOM, NS.MUC_ADMIN),
                         timeout=10)
        self.assertEqual(reply.get("type"), "result")
        self.join(wayne, MROOM, "Wayne")
        self.join(keith, MROOM, "Keith")
        self.settle(kevin, wayne, keith)
        for client in (kevin, wayne, keith):
            client.take_all()

        reply = wayne.iq("<iq type='set' to='%s'><query xmlns='%s'><destroy jid='%s'>"
                         "<reason>Moved</reason></destroy></query></iq>"
                         % (MROOM, NS.MUC_OWNER, ALTERNATE), timeout=10)
        self.assertEqual((reply.get("type"), reply.get("from")), ("result", MROOM))
        self.assertOwnDestroyPresence(wayne, MROOM + "/Wayne", "wayne@raleigh.test/laptop")
        self.assertOwnDestroyPresence(keith, MROOM + "/Keith", "keith@raleigh.test/laptop")
        self.assertOwnDestroyPresence(kevin, ROOM + "/Kevin", "kevin@fairfax.test/desk")
        self.settle(kevin, wayne, keith)
        for client in (kevin, wayne, keith):
            self.assertNoMorePresence(client)

        for client, room, nick in ((kevin, ROOM, "Kevin"), (keith, MROOM, "Keith")):
            client.send(join_xml(room, nick))
            error = client.wait_for(matcher("presence", type="error"), timeout=10)
            self.assertEqual(error.get("from"), "%s/%s" % (room, nick))
            self.assertEqual(error_condition(error), ("cancel", "gone"))
            self.assertEqual(find(error, "error/stanzas:gone").text,
                             "xmpp:%s?join" % ALTERNATE)
            self.assertEqual(find(error, "error/stanzas:text").text, "Moved")
