"""
The configuration fields Prosody 0.12 offers that clients set: the room's
language (shown as muc#roominfo_lang) and Prosody's own field for member
invitations, at the master and, through the config push, at a mirror.
"""

from twisted.trial import unittest
from twisted.words.protocols.jabber.jid import JID

from dmuc.muc.forms import ALLOW_MEMBER_INVITES
from dmuc.xmpp import namespaces as ns
from tests.test_dmuc_flows import KEVIN, WAYNE, join
from tests.two_site_helpers import MROOM, ROOM, TwoSites


def form_values(stanza):
    """var -> [values] of the first data form anywhere in C{stanza}."""
    for element in _walk(stanza):
        if element.uri == ns.DATA_FORMS and element.name == "x":
            return {f["var"]: [str(v) for v in f.elements(ns.DATA_FORMS, "value")]
                    for f in element.elements(ns.DATA_FORMS, "field")}
    return {}


def _walk(element):
    yield element
    for child in element.elements():
        yield from _walk(child)


class ConfigFieldTests(unittest.TestCase):

    def setUp(self):
        self.sites = TwoSites()
        join(self.sites, KEVIN, "Kevin", ROOM)
        join(self.sites, WAYNE, "Wayne")

    def ask(self, user, text):
        self.sites.send(user, text)
        return [s for s in self.sites.take(user) if s.name == "iq"][-1]

    def test_language_and_member_invites(self):
        form = form_values(self.ask(KEVIN, "<iq type='get' id='c' to='%s'><query xmlns='%s'/>"
                                           "</iq>" % (ROOM, ns.MUC_OWNER)))
        self.assertEqual((form["muc#roomconfig_lang"], form[ALLOW_MEMBER_INVITES]), ([""], ["false"]))
        reply = self.ask(KEVIN, "<iq type='set' id='s' to='%s'><query xmlns='%s'><x xmlns="
                         "'jabber:x:data' type='submit'><field var='muc#roomconfig_lang'><value>"
                         "de</value></field><field var='%s'><value>1</value></field>"
                         "</x></query></iq>" % (ROOM, ns.MUC_OWNER, ALLOW_MEMBER_INVITES))
        self.assertEqual(reply["type"], "result")
        for user, room in ((KEVIN, ROOM), (WAYNE, MROOM)):
            info = form_values(self.ask(user, "<iq type='get' id='d' to='%s'><query xmlns='%s'/>"
                                              "</iq>" % (room, ns.DISCO_INFO)))
            self.assertEqual(info["muc#roominfo_lang"], ["de"], room)
            self.assertIn(info[ALLOW_MEMBER_INVITES], (["1"], ["true"]), room)
            self.assertIn(info["muc#roomconfig_allowinvites"], (["1"], ["true"]), room)

    def test_member_invites_decide_who_may_invite(self):
        self.sites.send(KEVIN, "<iq type='set' id='m' to='%s'><query xmlns='%s'><item "
                        "jid='wayne@raleigh.test' affiliation='member'/></query></iq>"
                        % (ROOM, ns.MUC_ADMIN))
        self.ask(KEVIN, "<iq type='set' id='s' to='%s'><query xmlns='%s'><x xmlns='jabber:x:data' "
                 "type='submit'><field var='muc#roomconfig_membersonly'><value>1</value></field>"
                 "</x></query></iq>" % (ROOM, ns.MUC_OWNER))
        invite = ("<message to='%s'><x xmlns='%s'><invite to='dave@raleigh.test'/></x></message>"
                  % (MROOM, ns.MUC_USER))
        self.sites.take(WAYNE)
        self.sites.send(WAYNE, invite)
        refused, = self.sites.take(WAYNE)
        self.assertEqual(refused["type"], "error")
        self.ask(KEVIN, "<iq type='set' id='s' to='%s'><query xmlns='%s'><x xmlns='jabber:x:data' "
                 "type='submit'><field var='%s'><value>1</value></field></x></query></iq>"
                 % (ROOM, ns.MUC_OWNER, ALLOW_MEMBER_INVITES))
        self.sites.take(WAYNE)
        self.sites.send(WAYNE, invite)
        self.assertEqual(self.sites.take(WAYNE), [])
        room = self.sites.master.rooms[ROOM]
        self.assertEqual(room.get_affiliation(JID("dave@raleigh.test")), "member")


class PresenceBroadcastTests(unittest.TestCase):
    """muc#roomconfig_presencebroadcast: occupants of a hidden role are
    not shown to the others, at either site, until their role is shown."""

    def setUp(self):
        self.sites = TwoSites()
        join(self.sites, KEVIN, "Kevin", ROOM)
        self.sites.send(KEVIN, "<iq type='set' id='c' to='%s'><query xmlns='%s'><x xmlns="
                        "'jabber:x:data' type='submit'><field var='muc#roomconfig_moderatedroom'>"
                        "<value>1</value></field><field var='muc#roomconfig_presencebroadcast'>"
                        "<value>moderator</value><value>participant</value></field></x></query>"
                        "</iq>" % (ROOM, ns.MUC_OWNER))
        self.sites.take(KEVIN)

    def seen(self, user, nick_jid):
        return [(s.getAttribute("type"), s["from"]) for s in self.sites.take(user)
                if s.name == "presence" and s["from"] == nick_jid]

    def test_hidden_visitors_at_both_sites(self):
        own = join(self.sites, WAYNE, "Wayne")          # a visitor, through the mirror
        self.assertIn(MROOM + "/Wayne", [s["from"] for s in own if s.name == "presence"])
        self.assertEqual(self.seen(KEVIN, ROOM + "/Wayne"), [])
        keith = join(self.sites, "keith@raleigh.test/x", "Keith")
        self.assertNotIn(MROOM + "/Wayne", [s["from"] for s in keith if s.name == "presence"])
        self.sites.send(KEVIN, "<iq type='set' id='v' to='%s'><query xmlns='%s'><item "
                        "nick='Wayne' role='participant'/></query></iq>" % (ROOM, ns.MUC_ADMIN))
        self.assertEqual(self.seen(KEVIN, ROOM + "/Wayne"), [(None, ROOM + "/Wayne")])
        self.assertEqual(self.seen("keith@raleigh.test/x", MROOM + "/Wayne"),
                         [(None, MROOM + "/Wayne")])
        self.sites.send(KEVIN, "<iq type='set' id='v' to='%s'><query xmlns='%s'><item "
                        "nick='Wayne' role='visitor'/></query></iq>" % (ROOM, ns.MUC_ADMIN))
        self.assertEqual(self.seen(KEVIN, ROOM + "/Wayne"), [("unavailable", ROOM + "/Wayne")])

    def test_hidden_mirror_users_among_themselves(self):
        join(self.sites, WAYNE, "Wayne")               # a hidden visitor
        keith = "keith@raleigh.test/x"
        join(self.sites, keith, "Keith")               # another, at the same mirror
        self.assertEqual(self.seen(WAYNE, MROOM + "/Keith"), [])
        self.sites.send(KEVIN, "<iq type='set' id='v' to='%s'><query xmlns='%s'><item "
                        "nick='Keith' role='participant'/></query></iq>" % (ROOM, ns.MUC_ADMIN))
        self.assertEqual(self.seen(WAYNE, MROOM + "/Keith"), [(None, MROOM + "/Keith")])
        self.sites.send(KEVIN, "<iq type='set' id='v' to='%s'><query xmlns='%s'><item "
                        "nick='Keith' role='visitor'/></query></iq>" % (ROOM, ns.MUC_ADMIN))
        self.assertEqual(self.seen(WAYNE, MROOM + "/Keith"),
                         [("unavailable", MROOM + "/Keith")])


class MirrorModeratorTests(unittest.TestCase):
    """DMUC2: a mirror gets real JIDs while one of its users moderates; its
    first moderator joining later still sees them, as at the master."""

    def test_first_moderator_through_the_mirror_sees_real_jids(self):
        sites = TwoSites()
        join(sites, KEVIN, "Kevin", ROOM)
        sites.send(KEVIN, "<iq type='set' id='a' to='%s'><query xmlns='%s'><item "
                   "jid='keith@raleigh.test' affiliation='admin'/></query></iq>"
                   % (ROOM, ns.MUC_ADMIN))
        join(sites, WAYNE, "Wayne")                    # no moderator here yet
        seen = join(sites, "keith@raleigh.test/x", "Keith")
        kevin, = [s for s in seen if s.name == "presence" and s["from"] == MROOM + "/Kevin"]
        items = [i for x in kevin.elements(ns.MUC_USER, "x") for i in x.elements(ns.MUC_USER,
                                                                                  "item")]
        self.assertEqual(items[0].getAttribute("jid"), KEVIN)


class MirrorDiscoTests(unittest.TestCase):
    """A room the mirror holds no copy of yet (nobody of ours joined) is
    described by the master, as clients ask before they join."""

    def test_disco_before_the_first_join(self):
        sites = TwoSites()
        join(sites, KEVIN, "Kevin", ROOM)
        sites.send(WAYNE, "<iq type='get' id='d' to='%s'><query xmlns='%s'/></iq>"
                   % (MROOM, ns.DISCO_INFO))
        reply, = sites.take(WAYNE)
        self.assertEqual((reply["type"], reply["from"]), ("result", MROOM))
        self.assertIn(ns.MUC, reply.toXml())
        sites.send(WAYNE, "<iq type='get' id='n' to='%s'><query xmlns='%s'/></iq>"
                   % (MROOM.replace("chat", "nothere"), ns.DISCO_INFO))
        missing, = sites.take(WAYNE)
        self.assertEqual(missing["type"], "error")
        self.assertNotIn("conference.fairfax.test", next(missing.elements(None, "error"))
                         .getAttribute("by") or "")
