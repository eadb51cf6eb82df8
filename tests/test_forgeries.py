"""
What a client could forge that the rooms rely on (issue 13, XEP-0359 and
XEP-0421): a stanza-id or delay claiming to be the room's, a DMUC time, an
occupant-id, an origin-id deciding exactly-once.  Each is stripped (or the
room's own put in its place) at the master and at the mirror, so that
every user at both sites sees what the room says, and both sites'
histories agree.
"""

from twisted.logger import LogLevel
from twisted.trial import unittest
from twisted.words.xish import domish

from dmuc.xmpp import namespaces as ns
from tests.stanza_helpers import error_condition, logged
from tests.test_dmuc_flows import KEITH, KEVIN, WAYNE, bodies, conversation, say
from tests.test_netsplit import history_bodies
from tests.two_site_helpers import MASTER, MIRROR, MROOM, ROOM

FORGED = ("<stanza-id xmlns='urn:xmpp:sid:0' id='FAKE' by='{room}'/>"
          "<stanza-id xmlns='urn:xmpp:sid:0' id='FAKE2' by='{other}'/>"
          "<delay xmlns='urn:xmpp:delay' from='{room}' stamp='2001-01-01T00:00:00Z'/>"
          "<delay xmlns='urn:xmpp:delay' from='{other}' stamp='2001-01-01T00:00:00Z'/>"
          "<time xmlns='urn:xmpp:dmuc:0' stamp='2001-01-01T00:00:00Z'/>"
          "<occupant-id xmlns='urn:xmpp:occupant-id:0' id='SOMEONE-ELSE'/>")


def groupchat(room, body, other):
    return ("<message to='%s' type='groupchat' id='c1'><body>%s</body>%s</message>"
            % (room, body, FORGED.format(room=room, other=other)))


def claims(message):
    """What in C{message} speaks for a room: (stanza-ids, delays, DMUC
    times, occupant-ids)."""
    return ([(e["by"], e["id"]) for e in message.elements(ns.STANZA_ID, "stanza-id")],
            [e.getAttribute("from") for e in message.elements(ns.DELAY, "delay")],
            list(message.elements(ns.DMUC_SYNC, "time")),
            [e["id"] for e in message.elements(ns.OCCUPANT_ID, "occupant-id")])


def messages(stanzas):
    return [s for s in stanzas if s.name == "message" and s.getAttribute("type") != "error"]


class ForgeryTests(unittest.TestCase):

    def setUp(self):
        self.sites = conversation()
        self.master = self.sites.master.rooms[ROOM]
        self.mirror = self.sites.mirror.rooms[MROOM]

    def assert_room_speaks(self, message, room, author_occupant_id):
        ids, delays, times, occupant_ids = claims(message)
        self.assertEqual(len(ids), 1, ids)
        self.assertEqual(ids[0][0], room)
        self.assertNotIn(ids[0][1], ("FAKE", "FAKE2"))
        self.assertEqual(delays, [])
        self.assertEqual(times, [])
        self.assertEqual(occupant_ids, [author_occupant_id])

    def test_a_master_users_forgeries_reach_no_one(self):
        kevin_id = self.master.occupant_id(self.master.occupants["Kevin"])
        self.sites.send(KEVIN, groupchat(ROOM, "from kevin", MROOM))
        for user, room in ((KEVIN, ROOM), (WAYNE, MROOM), (KEITH, MROOM)):
            (message,) = messages(self.sites.take(user))
            self.assert_room_speaks(message, room, kevin_id)
        self.assertEqual(history_bodies(self.master), history_bodies(self.mirror))
        self.assertEqual([e.stanza_id for e in self.master.history],
                         [e.stanza_id for e in self.mirror.history])

    def test_a_mirror_users_forgeries_reach_no_one(self):
        wayne_id = self.master.occupant_id(self.master.occupants["Wayne"])
        self.sites.send(WAYNE, groupchat(MROOM, "from wayne", ROOM))
        for user, room in ((KEVIN, ROOM), (WAYNE, MROOM), (KEITH, MROOM)):
            (message,) = messages(self.sites.take(user))
            self.assert_room_speaks(message, room, wayne_id)
        self.assertEqual([e.stanza_id for e in self.master.history],
                         [e.stanza_id for e in self.mirror.history])
        self.assertEqual([e.timestamp for e in self.master.history],
                         [e.timestamp for e in self.mirror.history])

    def test_a_private_message_carries_only_its_senders_occupant_id(self):
        wayne_id = self.master.occupant_id(self.master.occupants["Wayne"])
        kevin_id = self.master.occupant_id(self.master.occupants["Kevin"])
        forged = "<occupant-id xmlns='urn:xmpp:occupant-id:0' id='%s'/>"
        self.sites.send(WAYNE, "<message to='%s/Kevin' type='chat'><body>psst</body>%s"
                        "</message>" % (MROOM, forged % kevin_id))
        (message,) = messages(self.sites.take(KEVIN))
        self.assertEqual(claims(message)[3], [wayne_id])
        self.sites.send(WAYNE, "<message to='%s/Keith' type='chat'><body>psst</body>%s"
                        "</message>" % (MROOM, forged % kevin_id))
        (message,) = messages(self.sites.take(KEITH))
        self.assertNotIn(kevin_id, claims(message)[3])
        self.sites.send(KEVIN, "<message to='%s/Wayne' type='chat'><body>psst</body>%s"
                        "</message>" % (ROOM, forged % wayne_id))
        (message,) = messages(self.sites.take(WAYNE))
        self.assertEqual(claims(message)[3], [kevin_id])

    def test_another_users_origin_id_does_not_suppress_a_message(self):
        # Exactly-once after a split is decided by origin-id: one user's
        # forgery of another's must not make the room drop it as a repeat.
        say_with_origin = ("<message to='%s' type='groupchat' id='{0}'><body>{1}</body>"
                           "<origin-id xmlns='urn:xmpp:sid:0' id='{0}'/></message>")
        self.sites.send(KEVIN, (say_with_origin % ROOM).format("o-1", "kevin's"))
        self.sites.cut = True
        self.sites.advance(100)
        self.sites.send(KEITH, (say_with_origin % MROOM).format("o-1", "keith's"))
        self.sites.cut = False
        self.sites.advance(60)
        self.assertEqual(history_bodies(self.master), ["kevin's", "keith's"])
        self.assertEqual(history_bodies(self.mirror), ["kevin's", "keith's"])


class DeepStanzaTests(unittest.TestCase):

    def test_a_message_nested_1000_deep_gets_an_error_and_the_room_goes_on(self):
        lines = logged(self, LogLevel.critical, LogLevel.error)
        sites = conversation()
        for user, room, service in ((KEVIN, ROOM, MASTER), (WAYNE, MROOM, MIRROR)):
            # Built as the stream's parser builds it (no recursion): the
            # text would not even parse with the helpers' parser.
            message = domish.Element((ns.CLIENT, "message"))
            message["from"], message["to"], message["type"] = user, room, "groupchat"
            message.addElement("body", content="deep")
            node = message
            for _ in range(1000):
                node = node.addElement(("urn:example", "a"))
            sites._managers[service].stub.send(message)
            sites._run()
            (error,) = sites.take(user)
            self.assertEqual(error_condition(error), ("modify", "policy-violation"))
        self.assertEqual(lines, [])
        say(sites, WAYNE, "still here", MROOM)
        self.assertEqual(bodies(sites.take(KEVIN)), ["still here"])
