"""
Two real sites: Prosody for fairfax.test with the dmuc master, Prosody for
raleigh.test with the dmuc mirror, federating over S2S through the
counting relay; slixmpp users on both sides.  Assertions are on what the
users see and on what crossed the link.
"""

from twisted.trial import unittest

from tests.harness.client import connect
from tests.harness.prosody import temp_directory
from tests.harness.sites import MASTER, MIRROR, start_two_sites
from tests.harness.xml import NS, error_condition, find, matcher, status_codes

ROOM = "chat@" + MASTER
MROOM = "chat\\40%s@%s" % (MASTER, MIRROR)


def join_xml(room, nick, extra=""):
    return "<presence to='%s/%s'><x xmlns='%s'>%s</x></presence>" % (room, nick, NS.MUC, extra)


def body(stanza):
    element = find(stanza, "body")
    return element.text if element is not None else None


class TwoSiteTestCase(unittest.TestCase):

    fire_and_forget = False

    def setUp(self):
        self.sites = start_two_sites(self, temp_directory(self),
                                     fire_and_forget=self.fire_and_forget)

    def fairfax_user(self, name):
        return connect(self, self.sites.fairfax, name, resource="desk")

    def raleigh_user(self, name):
        return connect(self, self.sites.raleigh, name, resource="laptop")

    def join(self, client, room, nick, extra=""):
        client.send(join_xml(room, nick, extra))
        own = client.wait_for(lambda s: 110 in status_codes(s), timeout=10)
        # the join sequence ends with the subject
        client.wait_for(lambda s: find(s, "subject") is not None, timeout=10)
        return own

    def settle(self, *clients):
        """Everything the master and the mirror sent has arrived: a round
        trip from each client to both services (over the link for
        raleigh's users, so the link is drained too)."""
        for client in clients:
            client.barrier(MASTER, timeout=10)
            client.barrier(MIRROR, timeout=10)

    def three_in_the_room(self):
        """Kevin at fairfax, Wayne and Keith through the mirror; the link
        counts start afresh."""
        kevin = self.fairfax_user("kevin")
        wayne, keith = self.raleigh_user("wayne"), self.raleigh_user("keith")
        self.join(kevin, ROOM, "Kevin")
        self.join(wayne, MROOM, "Wayne")
        self.join(keith, MROOM, "Keith")
        self.settle(kevin, wayne, keith)
        self.sites.relay.reset()
        return kevin, wayne, keith

    def link(self, direction=None):
        return [c for c in self.sites.relay.crossings()
                if direction is None or c.direction == direction]


class ChatAcrossSitesTests(TwoSiteTestCase):

    def test_users_of_both_sites_chat_as_in_a_plain_room(self):
        kevin = self.fairfax_user("kevin")
        wayne = self.raleigh_user("wayne")
        self.join(kevin, ROOM, "Kevin")
        kevin.send("<message to='%s' type='groupchat'><body>before you came</body></message>"
                   % ROOM)
        kevin.wait_for(matcher("message", type="groupchat"))

        wayne.send(join_xml(MROOM, "Wayne"))
        kevin_seen = wayne.wait_for(matcher("presence", from_=MROOM + "/Kevin"), timeout=10)
        self.assertEqual(find(kevin_seen, "muc_user:x/muc_user:item").get("role"), "moderator")
        own = wayne.wait_for(lambda s: 110 in status_codes(s), timeout=10)
        self.assertEqual(own.get("from"), MROOM + "/Wayne")
        history = wayne.wait_for(matcher("message", type="groupchat"))
        self.assertEqual(body(history), "before you came")
        self.assertIsNotNone(find(history, "delay:delay"))
        wayne.wait_for(lambda s: find(s, "subject") is not None)

        seen = kevin.wait_for(matcher("presence", from_=ROOM + "/Wayne"))
        self.assertEqual(find(seen, "muc_user:x/muc_user:item").get("jid"),
                         "wayne@raleigh.test/laptop")

        # talk, both ways
        wayne.send("<message to='%s' type='groupchat'><body>hello fairfax</body></message>" % MROOM)
        self.assertEqual(body(kevin.wait_for(matcher("message", from_=ROOM + "/Wayne"))),
                         "hello fairfax")
        self.assertEqual(body(wayne.wait_for(matcher("message", from_=MROOM + "/Wayne"))),
                         "hello fairfax")
        kevin.send("<message to='%s' type='groupchat'><body>hello raleigh</body></message>" % ROOM)
        self.assertEqual(body(wayne.wait_for(matcher("message", from_=MROOM + "/Kevin"))),
                         "hello raleigh")

        # status changes
        wayne.send("<presence to='%s/Wayne'><show>away</show></presence>" % MROOM)
        away = kevin.wait_for(matcher("presence", from_=ROOM + "/Wayne"))
        self.assertEqual(find(away, "show").text, "away")
        wayne.wait_for(lambda s: 110 in status_codes(s) and find(s, "show") is not None)

        # private messages
        wayne.send("<message to='%s/Kevin' type='chat'><body>psst</body></message>" % MROOM)
        pm = kevin.wait_for(matcher("message", type="chat"))
        self.assertEqual((pm.get("from"), body(pm)), (ROOM + "/Wayne", "psst"))
        kevin.send("<message to='%s/Wayne' type='chat'><body>yes?</body></message>" % ROOM)
        pm = wayne.wait_for(matcher("message", type="chat"))
        self.assertEqual((pm.get("from"), body(pm)), (MROOM + "/Kevin", "yes?"))

        # leave
        wayne.send("<presence type='unavailable' to='%s/Wayne'/>" % MROOM)
        gone = wayne.wait_for(matcher("presence", type="unavailable"))
        self.assertEqual(status_codes(gone), {110})
        kevin.wait_for(matcher("presence", type="unavailable", from_=ROOM + "/Wayne"))

    def test_two_mirror_users_talk_privately_without_the_link(self):
        kevin, wayne, keith = self.three_in_the_room()
        wayne.send("<message to='%s/Keith' type='chat'><body>local</body></message>" % MROOM)
        self.assertEqual(body(keith.wait_for(matcher("message", type="chat"))), "local")
        self.settle(wayne, keith)
        self.assertEqual(self.link(), [])

    def test_join_error_reaches_only_the_user(self):
        kevin = self.fairfax_user("kevin")
        wayne, keith = self.raleigh_user("wayne"), self.raleigh_user("keith")
        self.join(kevin, ROOM, "Kevin", "<password>sesame</password>")
        self.join(keith, MROOM, "Keith", "<password>sesame</password>")
        wayne.send(join_xml(MROOM, "Wayne"))
        error = wayne.wait_for(matcher("presence", type="error"), timeout=10)
        self.assertEqual(error_condition(error), ("auth", "not-authorized"))
        self.assertEqual(error.get("from"), MROOM + "/Wayne")
        self.settle(keith)
        self.assertEqual([s for s in keith.take_all() if s.get("from", "").endswith("/Wayne")], [])


class LinkCostTests(TwoSiteTestCase):

    def test_link_carries_one_copy_per_site(self):
        kevin = self.fairfax_user("kevin")
        self.join(kevin, ROOM, "Kevin")
        users = [self.raleigh_user("user%d" % n) for n in range(10)]
        self.join(users[0], MROOM, "User0")
        self.settle(users[0])
        for n, user in enumerate(users[1:], start=1):
            self.sites.relay.reset()
            self.join(user, MROOM, "User%d" % n)
            self.settle(user)
            crossed = [(c.direction, c.name) for c in self.link()]
            self.assertEqual(sorted(crossed), [("fairfax>raleigh", "presence"),
                                               ("raleigh>fairfax", "presence")],
                             "join %d" % (n + 1))
        self.settle(*users)
        self.sites.relay.reset()
        kevin.send("<message to='%s' type='groupchat'><body>one for all</body></message>" % ROOM)
        for user in users:
            self.assertEqual(body(user.wait_for(matcher("message", type="groupchat"))),
                             "one for all")
        self.settle(users[0])
        crossed = self.link()
        self.assertEqual([(c.direction, c.name, c.get("type")) for c in crossed],
                         [("fairfax>raleigh", "message", "groupchat")])

    def test_room_without_mirror_users_costs_nothing(self):
        kevin = self.fairfax_user("kevin")
        wayne = self.raleigh_user("wayne")
        self.join(kevin, ROOM, "Kevin")
        self.join(wayne, MROOM, "Wayne")
        wayne.send("<presence type='unavailable' to='%s/Wayne'/>" % MROOM)
        wayne.wait_for(matcher("presence", type="unavailable"))
        self.settle(wayne)
        self.sites.relay.reset()
        for n in range(5):
            kevin.send("<message to='%s' type='groupchat'><body>%d</body></message>" % (ROOM, n))
        kevin.send("<presence to='%s/Kevin'><show>dnd</show></presence>" % ROOM)
        self.settle(kevin, wayne)
        self.assertEqual(self.link(), [])


class TrustOverS2STests(TwoSiteTestCase):

    def test_foreign_user_at_the_mirror_and_forged_envelope_at_the_master(self):
        kevin = self.fairfax_user("kevin")
        wayne = self.raleigh_user("wayne")
        self.join(kevin, ROOM, "Kevin")
        # a fairfax user may not use raleigh's mirror: sent to the master room
        eve = self.fairfax_user("eve")
        eve.send(join_xml(MROOM, "Eve"))
        error = eve.wait_for(matcher("presence", type="error"), timeout=10)
        self.assertEqual(error_condition(error), ("modify", "redirect"))
        self.assertIn(ROOM, find(error, "{%s}error/{%s}redirect" % (NS.CLIENT, NS.STANZAS)).text)
        # a raleigh user may not forge the envelope to the master directly
        wayne.send("<presence to='%s/Wayne'><x xmlns='%s'/><fmuc "
                   "xmlns='http://isode.com/protocol/fmuc' from='kevin@fairfax.test/desk'/>"
                   "</presence>" % (ROOM, NS.MUC))
        error = wayne.wait_for(matcher("presence", type="error"), timeout=10)
        self.assertEqual(error_condition(error), ("cancel", "not-allowed"))
        self.assertIn("a client sent the DMUC envelope, which only trusted mirror services may "
                      "use", self.sites.master.log_text())
        self.assertIn("eve@fairfax.test/desk", self.sites.mirror.log_text())
        # and the room works for everyone else
        self.join(wayne, MROOM, "Wayne")
        kevin.send("<message to='%s' type='groupchat'><body>still fine</body></message>" % ROOM)
        self.assertEqual(body(wayne.wait_for(matcher("message", type="groupchat", from_=MROOM + "/Kevin"))),
                         "still fine")


class FireAndForgetTwoSiteTests(TwoSiteTestCase):

    fire_and_forget = True

    def test_mirror_users_get_their_messages_without_the_round_trip(self):
        kevin, wayne, keith = self.three_in_the_room()
        wayne.send("<message to='%s' type='groupchat'><body>fast</body></message>" % MROOM)
        self.assertEqual(body(keith.wait_for(matcher("message", type="groupchat"))), "fast")
        self.assertEqual(body(kevin.wait_for(matcher("message", type="groupchat"))), "fast")
        self.settle(wayne)
        self.assertEqual([(c.direction, c.name) for c in self.link()],
                         [("raleigh>fairfax", "message")])


class PushesAndDiscoveryTests(TwoSiteTestCase):
    """Changes made at the master reach mirror users; the mirror answers
    discovery from its copy."""

    def test_subject_config_roles_and_kick_reach_the_mirror(self):
        kevin, wayne, keith = self.three_in_the_room()
        kevin.send("<message to='%s' type='groupchat'><subject>Agenda</subject></message>" % ROOM)
        subject = wayne.wait_for(lambda s: find(s, "subject") is not None)
        self.assertEqual((subject.get("from"), find(subject, "subject").text),
                         (MROOM + "/Kevin", "Agenda"))
        reply = kevin.iq("<iq type='set' to='%s'><query xmlns='%s'><x xmlns='jabber:x:data' "
                         "type='submit'><field var='muc#roomconfig_roomname'><value>Plans</value>"
                         "</field></x></query></iq>" % (ROOM, NS.MUC_OWNER))
        self.assertEqual(reply.get("type"), "result")
        notice = wayne.wait_for(lambda s: s.get("from") == MROOM and status_codes(s))
        self.assertEqual(status_codes(notice), {104})
        info = wayne.iq("<iq type='get' to='%s'><query xmlns='%s'/></iq>" % (MROOM, NS.DISCO_INFO))
        self.assertEqual(find(info, "disco_info:query/disco_info:identity").get("name"), "Plans")
        fields = {f.get("var"): [v.text for v in f]
                  for f in info.findall("{%s}query/{%s}x/{%s}field"
                                        % (NS.DISCO_INFO, NS.DATA_FORMS, NS.DATA_FORMS))}
        self.assertEqual(fields["dmuc-source"], [ROOM])
        items = wayne.iq("<iq type='get' to='%s'><query xmlns='%s'/></iq>" % (MIRROR, NS.DISCO_ITEMS))
        self.assertEqual([i.get("jid") for i in items.iter("{%s}item" % NS.DISCO_ITEMS)], [MROOM])

        # voice revoked, then a kick: mirror users see it as in a plain room
        kevin.iq("<iq type='set' to='%s'><query xmlns='%s'><item nick='Wayne' role='visitor'/>"
                 "</query></iq>" % (ROOM, NS.MUC_ADMIN))
        keith.wait_for(lambda s: s.get("from") == MROOM + "/Wayne" and find(
            s, "muc_user:x/muc_user:item").get("role") == "visitor")
        wayne.send("<message to='%s' type='groupchat'><body>may I?</body></message>" % MROOM)
        self.assertEqual(error_condition(wayne.wait_for(matcher("message", type="error"))),
                         ("auth", "forbidden"))
        kevin.iq("<iq type='set' to='%s'><query xmlns='%s'><item nick='Wayne' role='none'>"
                 "<reason>bye</reason></item></query></iq>" % (ROOM, NS.MUC_ADMIN))
        kicked = wayne.wait_for(matcher("presence", type="unavailable"))
        self.assertEqual(status_codes(kicked), {307, 110})
        seen = keith.wait_for(matcher("presence", type="unavailable"))
        self.assertEqual(status_codes(seen), {307})


RICH_STATUS = ("<show>away</show><status>at lunch</status>"
               "<c xmlns='http://jabber.org/protocol/caps' hash='sha-1' node='https://poez.io' "
               "ver='q07IKJEyjvHSyhy//CH0CxmKi8w='/>"
               "<x xmlns='vcard-temp:x:update'><photo>01b87fcd030b72895ff8e88db57ec525450f000d"
               "</photo></x>")
OCCUPANT_ID = "{urn:xmpp:occupant-id:0}occupant-id"


def client_view(presence):
    """What a client reads in an occupant's presence, addressing aside:
    each child as text (the item without the real JID), sorted."""
    import xml.etree.ElementTree as ET
    texts = []
    for element in presence:
        element = ET.fromstring(ET.tostring(element))
        for item in element.iter("{%s}item" % NS.MUC_USER):
            item.attrib.pop("jid", None)
        texts.append(ET.canonicalize(ET.tostring(element, encoding="unicode")))
    return sorted(texts)


class WhatMirrorUsersSeeTests(TwoSiteTestCase):
    """A raleigh user through the mirror sees the room as a fairfax user
    does: statuses and occupant-ids after every sync, the features clients
    decide by, the same backlog under XEP-0334 hints, and the whole join
    sequence again when the same session joins again."""

    def joined(self, client, room, nick, extra=""):
        """The whole join sequence, up to and with the subject."""
        client.send(join_xml(room, nick, extra))
        client.wait_for(lambda s: find(s, "subject") is not None, timeout=10)
        return client.take_all()

    def test_statuses_features_hints_and_rejoin(self):
        kevin, carol = self.fairfax_user("kevin"), self.fairfax_user("carol")
        wayne, keith = self.raleigh_user("wayne"), self.raleigh_user("keith")
        kevin.send("<presence to='%s/Kevin'><x xmlns='%s'/>%s</presence>"
                   % (ROOM, NS.MUC, RICH_STATUS))
        kevin.wait_for(lambda s: find(s, "subject") is not None, timeout=10)
        kevin.send("<message to='%s' type='groupchat'><body>kept</body></message>" % ROOM)
        kevin.send("<message to='%s' type='groupchat'><body>not kept</body>"
                   "<no-store xmlns='urn:xmpp:hints'/></message>" % ROOM)
        kevin.send("<message to='%s' type='groupchat'><reactions xmlns='urn:xmpp:reactions:0' "
                   "id='x1'><reaction>+1</reaction></reactions><store xmlns='urn:xmpp:hints'/>"
                   "</message>" % ROOM)
        self.settle(kevin)

        at_fairfax = self.joined(carol, ROOM, "Carol")
        kevin_there = [s for s in at_fairfax if s.get("from") == ROOM + "/Kevin"][0]
        self.joined(wayne, MROOM, "Wayne")          # the mirror's first sync
        at_raleigh = self.joined(keith, MROOM, "Keith")
        kevin_here = [s for s in at_raleigh if s.get("from") == MROOM + "/Kevin"][0]
        self.assertEqual(client_view(kevin_here), client_view(kevin_there))
        self.assertEqual(find(kevin_here, "show").text, "away")
        self.assertIsNotNone(kevin_here.find(OCCUPANT_ID))

        def backlog(seen):
            return [sorted(c.tag.split("}")[1] for c in s
                           if c.tag.split("}")[1] not in ("delay", "stanza-id", "occupant-id",
                                                            "origin-id"))
                    for s in seen if s.tag.endswith("message") and find(s, "subject") is None]
        self.assertEqual(backlog(at_raleigh), backlog(at_fairfax))
        self.assertEqual(backlog(at_raleigh), [["body"], ["reactions", "store"]])

        info = keith.iq("<iq type='get' to='%s'><query xmlns='%s'/></iq>" % (MROOM, NS.DISCO_INFO))
        features = {f.get("var") for f in info.iter("{%s}feature" % NS.DISCO_INFO)}
        self.assertLessEqual({NS.STANZA_ID, "urn:xmpp:occupant-id:0"}, features)

        # The same session joins again: the whole sequence, as at fairfax.
        again = self.joined(keith, MROOM, "Keith")
        presences = [s.get("from") for s in again if s.tag.endswith("presence")]
        self.assertEqual(sorted(presences[:-1]),
                         [MROOM + "/Carol", MROOM + "/Kevin", MROOM + "/Wayne"])
        self.assertEqual(presences[-1], MROOM + "/Keith")
        self.assertEqual(backlog(again), [["body"], ["reactions", "store"]])


class UnreachableMasterSitesTests(unittest.TestCase):
    """Raleigh's Prosody cannot reach fairfax when a user joins through
    the mirror for the first time: the user gets the server's error and
    the mirror's log says which server it cannot reach, not that the
    master lacks DMUC (what a failed S2S looked like before)."""

    def test_the_user_and_the_log_name_the_unreachable_server(self):
        sites = start_two_sites(self, temp_directory(self))
        sites.relay.cut()
        wayne = connect(self, sites.raleigh, "wayne", resource="laptop")
        room = "chat\\40%s@%s" % (MASTER, MIRROR)
        wayne.send(join_xml(room, "Wayne"))
        error = wayne.wait_for(matcher("presence", type="error"), timeout=60)
        self.assertIn(error_condition(error),
                      (("cancel", "remote-server-not-found"), ("wait", "remote-server-timeout")))
        text = find(error, "error/{urn:ietf:params:xml:ns:xmpp-stanzas}text").text
        self.assertIn("%s cannot be reached" % MASTER, text)
        with open(sites.mirror.log_path) as log:
            lines = log.read()
        self.assertIn("cannot reach %s" % MASTER, lines)
        self.assertNotIn("DMUC", lines.split("cannot reach", 1)[1].split("\n", 1)[0])
