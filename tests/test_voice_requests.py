"""
Voice requests (XEP-0045 8.6) in a moderated room, at the master and
through a mirror (in memory, tests/two_site_helpers.py): moderators and
only moderators get the approval form, wherever they are, and an approval
gives the visitor voice.
"""

from twisted.trial import unittest

from dmuc.xmpp import namespaces as ns
from tests.stanza_helpers import error_condition, item
from tests.test_dmuc_flows import KEITH, KEVIN, WAYNE, join
from tests.two_site_helpers import MROOM, ROOM, TwoSites

CAROL = "carol@fairfax.test/desk"
REQUEST = ("<message to='%s'><x xmlns='jabber:x:data' type='submit'>"
           "<field var='FORM_TYPE'><value>http://jabber.org/protocol/muc#request</value></field>"
           "<field var='muc#role' type='list-single'><value>participant</value></field>"
           "</x></message>")


def approval(room, real_jid, nick, allow="true"):
    return ("<message to='%s'><x xmlns='jabber:x:data' type='submit'>"
            "<field var='FORM_TYPE'><value>http://jabber.org/protocol/muc#request</value></field>"
            "<field var='muc#role'><value>participant</value></field>"
            "<field var='muc#jid'><value>%s</value></field>"
            "<field var='muc#roomnick'><value>%s</value></field>"
            "<field var='muc#request_allow'><value>%s</value></field>"
            "</x></message>" % (room, real_jid, nick, allow))


def forms_in(stanzas):
    """var -> value of each approval form received."""
    found = []
    for stanza in stanzas:
        for form in stanza.elements(ns.DATA_FORMS, "x"):
            found.append({f["var"]: str(next(f.elements(ns.DATA_FORMS, "value")))
                          for f in form.elements(ns.DATA_FORMS, "field")})
    return found


def roles(stanzas, occupant_jid):
    return [item(s)["role"] for s in stanzas
            if s.name == "presence" and s.getAttribute("from") == occupant_jid]


class VoiceRequestTests(unittest.TestCase):

    def setUp(self):
        self.sites = TwoSites()
        join(self.sites, KEVIN, "Kevin", ROOM)
        self.sites.send(KEVIN, "<iq type='set' id='c' to='%s'><query xmlns='%s'><x xmlns="
                        "'jabber:x:data' type='submit'><field var='muc#roomconfig_moderatedroom'>"
                        "<value>1</value></field></x></query></iq>" % (ROOM, ns.MUC_OWNER))
        join(self.sites, CAROL, "Carol", ROOM)
        join(self.sites, WAYNE, "Wayne")
        join(self.sites, KEITH, "Keith")
        for user in (KEVIN, CAROL, WAYNE, KEITH):
            self.sites.take(user)

    def test_master_visitor_asks_and_is_given_voice(self):
        self.sites.send(CAROL, REQUEST % ROOM)
        self.assertEqual(self.sites.take(CAROL), [])
        form, = forms_in(self.sites.take(KEVIN))
        self.assertEqual((form["muc#jid"], form["muc#roomnick"], form["muc#request_allow"]),
                         (CAROL, "Carol", "0"))
        for user in (WAYNE, KEITH):   # visitors, not moderators
            self.assertEqual(self.sites.take(user), [])
        self.sites.send(KEVIN, approval(ROOM, CAROL, "Carol"))
        self.assertEqual(roles(self.sites.take(CAROL), ROOM + "/Carol"), ["participant"])
        self.assertEqual(roles(self.sites.take(WAYNE), MROOM + "/Carol"), ["participant"])

    def test_mirror_visitor_asks_and_is_given_voice(self):
        self.sites.send(WAYNE, REQUEST % MROOM)
        form, = forms_in(self.sites.take(KEVIN))
        self.assertEqual((form["muc#jid"], form["muc#roomnick"]), (WAYNE, "Wayne"))
        self.assertEqual(self.sites.take(KEITH), [])
        self.sites.send(KEVIN, approval(ROOM, WAYNE, "Wayne"))
        self.assertEqual(roles(self.sites.take(WAYNE), MROOM + "/Wayne"), ["participant"])
        self.assertEqual(roles(self.sites.take(KEITH), MROOM + "/Wayne"), ["participant"])

    def test_a_moderator_behind_the_mirror_gets_and_answers_the_request(self):
        self.sites.send(KEVIN, "<iq type='set' id='m' to='%s'><query xmlns='%s'><item "
                        "jid='keith@raleigh.test' affiliation='admin'/></query></iq>"
                        % (ROOM, ns.MUC_ADMIN))
        for user in (KEVIN, CAROL, WAYNE, KEITH):
            self.sites.take(user)
        self.sites.send(CAROL, REQUEST % ROOM)
        self.assertEqual(len(forms_in(self.sites.take(KEVIN))), 1)
        form, = forms_in(self.sites.take(KEITH))
        self.assertEqual(form["muc#jid"], CAROL)
        self.assertEqual(self.sites.take(WAYNE), [])   # a visitor at the same mirror
        self.sites.send(KEITH, approval(MROOM, CAROL, "Carol"))
        self.assertEqual(roles(self.sites.take(CAROL), ROOM + "/Carol"), ["participant"])

    def test_declined_or_not_a_moderator_changes_nothing(self):
        self.sites.send(KEVIN, approval(ROOM, CAROL, "Carol", allow="false"))
        self.sites.send(WAYNE, approval(MROOM, CAROL, "Carol"))
        self.assertEqual(roles(self.sites.take(CAROL), ROOM + "/Carol"), [])

    def test_outsider_is_told_it_is_not_in_the_room(self):
        outsider = "dave@fairfax.test/x"
        self.sites.send(outsider, REQUEST % ROOM)
        error, = self.sites.take(outsider)
        self.assertEqual(error_condition(error), ("cancel", "not-acceptable"))
