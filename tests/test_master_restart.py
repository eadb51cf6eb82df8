"""
A master that stops or crashes and starts again, on a master and a mirror
wired in memory: the mirror's users never see a false error, stay in the
room without doing anything, and every message they wrote meanwhile
reaches the master exactly once.  Also what a stopping service tells its
own users (status 332) and XEP-0410 self-pings answered by the room.
"""

from twisted.trial import unittest

from dmuc.monitor.monitor import SPLIT, UP
from dmuc.xmpp import namespaces as ns
from tests.stanza_helpers import status_codes
from tests.test_dmuc_flows import KEITH, KEVIN, WAYNE, bodies, join, say
from tests.test_netsplit import history_bodies, occupant_bodies
from tests.two_site_helpers import MASTER, MROOM, ROOM, TwoSites

PERSISTENT = ("<iq type='set' to='%s' id='cfg'><query xmlns='http://jabber.org/protocol/"
              "muc#owner'><x xmlns='jabber:x:data' type='submit'><field var='muc#roomconfig_"
              "persistentroom'><value>1</value></field></x></query></iq>" % ROOM)


def errors(stanzas):
    return [s for s in stanzas if s.getAttribute("type") == "error"]


def self_ping(sites, user, occupant, id="sp"):
    sites.send(user, "<iq type='get' to='%s' id='%s'><ping xmlns='urn:xmpp:ping'/></iq>"
               % (occupant, id))
    return [s for s in sites.take(user) if s.name == "iq"]


class RestartTests(unittest.TestCase):

    def setUp(self):
        self.sites = TwoSites()
        join(self.sites, KEVIN, "Kevin", ROOM)
        self.sites.send(KEVIN, PERSISTENT)
        join(self.sites, WAYNE, "Wayne")
        join(self.sites, KEITH, "Keith")
        say(self.sites, KEVIN, "before", ROOM)
        for user in (KEVIN, WAYNE, KEITH):
            self.sites.take(user)

    def master_room(self):
        return self.sites.master.rooms[ROOM]

    def mirror_room(self):
        return self.sites.mirror.rooms[MROOM]

    def kevin_back(self):
        """Kevin's client rejoins (the master forgot him: he got 332, or
        his self-ping says he is out)."""
        join(self.sites, KEVIN, "Kevin", ROOM)

    def assert_histories(self, expected):
        self.assertEqual(history_bodies(self.master_room()), expected)
        self.assertEqual(history_bodies(self.mirror_room()), expected)

    # -- a clean stop

    def test_clean_stop_tells_the_masters_users_332(self):
        self.sites.stop_master()
        own = [s for s in self.sites.take(KEVIN) if s.name == "presence"]
        self.assertEqual([(s["from"], s.getAttribute("type")) for s in own],
                         [(ROOM + "/Kevin", "unavailable")])
        self.assertEqual(status_codes(own[0]), ["332", "110"])

    def test_clean_stop_is_a_split_for_the_mirror(self):
        self.sites.stop_master()
        self.assertEqual(self.sites.mirror.monitors.monitors[MASTER].state, SPLIT)
        seen = [s for s in self.sites.take(WAYNE) if s.name == "presence"]
        self.assertEqual([(s["from"], status_codes(s)) for s in seen],
                         [(MROOM + "/Kevin", ["333"])])
        # The mirror's users stay, and talk among themselves.
        say(self.sites, WAYNE, "while it is down", MROOM)
        self.assertEqual(occupant_bodies(self.sites.take(KEITH)), ["while it is down"])
        self.assertEqual(errors(self.sites.take(WAYNE)), [])

    def test_clean_restart_brings_the_mirror_users_back(self):
        self.sites.stop_master()
        self.sites.clock.advance(1)
        say(self.sites, WAYNE, "while it is down", MROOM)
        self.sites.start_master()
        self.sites.advance(30)
        self.assertEqual(self.sites.mirror.monitors.monitors[MASTER].state, UP)
        self.assertEqual(sorted(self.master_room().occupants), ["Keith", "Wayne"])
        self.kevin_back()
        self.assertEqual(sorted(self.master_room().occupants), ["Keith", "Kevin", "Wayne"])
        self.sites.clock.advance(1)
        say(self.sites, WAYNE, "after", MROOM)
        self.assertEqual(occupant_bodies(self.sites.take(KEVIN)), ["after"])
        self.assert_histories(["before", "while it is down", "after"])
        self.assertEqual(errors(self.sites.take(WAYNE) + self.sites.take(KEITH)), [])

    # -- a crash

    def test_messages_during_a_crash_are_kept_and_sent_once(self):
        self.sites.stop_master(crash=True)
        self.sites.clock.advance(1)
        say(self.sites, WAYNE, "into the void", MROOM)   # bounced: component not connected
        self.assertEqual(self.sites.mirror.monitors.monitors[MASTER].state, SPLIT)
        self.assertEqual(errors(self.sites.take(WAYNE)), [])
        self.assertIn("into the void", bodies(self.sites.take(KEITH)))
        self.sites.start_master()
        self.sites.advance(30)
        self.assertEqual(sorted(self.master_room().occupants), ["Keith", "Wayne"])
        self.assert_histories(["before", "into the void"])
        self.assertEqual(errors(self.sites.take(WAYNE) + self.sites.take(KEITH)), [])

    def test_449_messages_during_a_crash_all_reach_the_restarted_master(self):
        # Issue 13: they stayed "waiting for upload" for good (one upload
        # over the stanza limit, refused); they now go up in pages.
        self.sites.send(KEVIN, PERSISTENT.replace(
            "</x>", "<field var='muc#roomconfig_historylength'><value>1000</value></field></x>"))
        self.sites.take(KEVIN)
        self.sites.stop_master(crash=True)
        self.sites.clock.advance(1)
        written = ["while it is down %d" % n for n in range(449)]
        for text in written:
            say(self.sites, (WAYNE, KEITH)[len(text) % 2], text, MROOM)
        self.sites.start_master()
        self.sites.advance(30)
        self.assert_histories(["before"] + written)
        self.assertEqual(self.mirror_room().split_messages, [])
        self.assertEqual(self.sites.mirror.store._outbox.get(MROOM, []), [])

    def test_crash_and_restart_unnoticed_then_announced(self):
        """Killed and started again between two stanzas: the master's
        start notice tells the mirror it counts nobody any more."""
        self.sites.restart_master(crash=True)
        self.assertEqual(sorted(self.master_room().occupants), ["Keith", "Wayne"])
        self.sites.clock.advance(1)
        say(self.sites, WAYNE, "after", MROOM)
        self.assertEqual(errors(self.sites.take(WAYNE)), [])
        self.assertIn("after", bodies(self.sites.take(KEITH)))
        self.assert_histories(["before", "after"])

    def test_unannounced_restart_first_message_bounces_not_acceptable(self):
        """An older master, or its notice lost: the first message of a
        mirror user comes back 'not in room'.  The user does not see it;
        the mirror joins its users again and sends the message once."""
        self.sites.restart_master(crash=True, announce=False)
        self.assertEqual(self.master_room().occupants, {})
        self.sites.clock.advance(1)
        say(self.sites, WAYNE, "first after", MROOM)
        self.sites.clock.advance(1)
        say(self.sites, KEITH, "second after", MROOM)
        self.assertEqual(errors(self.sites.take(WAYNE) + self.sites.take(KEITH)), [])
        self.assertEqual(sorted(self.master_room().occupants), ["Keith", "Wayne"])
        self.assert_histories(["before", "first after", "second after"])
        self.kevin_back()
        say(self.sites, KEITH, "third", MROOM)
        self.assertEqual(occupant_bodies(self.sites.take(KEVIN)), ["third"])

    def test_unannounced_restart_status_change_rejoins(self):
        self.sites.restart_master(crash=True, announce=False)
        self.sites.send(WAYNE, "<presence to='%s/Wayne'><show>away</show></presence>" % MROOM)
        self.assertEqual(errors(self.sites.take(WAYNE)), [])
        self.assertEqual(sorted(self.master_room().occupants), ["Keith", "Wayne"])
        self.assertEqual(str(self.master_room().occupants["Wayne"].presence.show), "away")

    def test_unannounced_restart_several_messages_in_flight(self):
        """Messages sent before the first 'not in room' came back: each
        is sent up once, none is shown as an error."""
        self.sites.restart_master(crash=True, announce=False)
        self.sites.stall("raleigh>fairfax")
        for n in range(3):
            self.sites.clock.advance(1)
            say(self.sites, WAYNE, "m%d" % n, MROOM)
        self.sites.heal()
        self.assertEqual(errors(self.sites.take(WAYNE)), [])
        self.assert_histories(["before", "m0", "m1", "m2"])

    # -- self-ping (XEP-0410)

    def test_mirror_answers_self_ping_itself(self):
        self.sites.link_count()
        answer, = self_ping(self.sites, WAYNE, MROOM + "/Wayne")
        self.assertEqual((answer["type"], answer["from"], answer["id"]),
                         ("result", MROOM + "/Wayne", "sp"))
        self.assertEqual(self.sites.link_count(), 0)

    def test_mirror_self_ping_when_not_in_room(self):
        answer, = self_ping(self.sites, "dave@raleigh.test/x", MROOM + "/Dave")
        self.assertEqual(answer["type"], "error")
        condition = next(next(answer.elements(None, "error")).elements())
        self.assertEqual(condition.name, "not-acceptable")

    def test_mirror_self_ping_during_a_split_answers_from_its_state(self):
        self.sites.stop_master(crash=True)
        say(self.sites, WAYNE, "x", MROOM)
        answer, = self_ping(self.sites, WAYNE, MROOM + "/Wayne")
        self.assertEqual(answer["type"], "result")

    def test_mirror_self_ping_waits_for_the_rejoin(self):
        """While the master has not confirmed the user again, "joined"
        would be a guess: the answer comes with the confirmation."""
        self.sites.stall("raleigh>fairfax")   # the rejoins will wait
        self.sites.restart_master(crash=True)
        self.assertEqual(self_ping(self.sites, WAYNE, MROOM + "/Wayne"), [])
        self.sites.heal()
        answers = [s for s in self.sites.take(WAYNE) if s.name == "iq"]
        self.assertEqual([a["type"] for a in answers], ["result"])

    def test_master_self_ping(self):
        answer, = self_ping(self.sites, KEVIN, ROOM + "/Kevin")
        self.assertEqual(answer["type"], "result")
        self.sites.restart_master(crash=True)
        answer, = self_ping(self.sites, KEVIN, ROOM + "/Kevin")
        self.assertEqual(answer["type"], "error")

    def test_rooms_advertise_self_ping(self):
        for user, room in ((KEVIN, ROOM), (WAYNE, MROOM)):
            self.sites.send(user, "<iq type='get' to='%s' id='d'><query xmlns='%s'/></iq>"
                            % (room, ns.DISCO_INFO))
            info, = self.sites.take(user)
            query = next(info.elements(ns.DISCO_INFO, "query"))
            features = [f["var"] for f in query.elements(ns.DISCO_INFO, "feature")]
            self.assertIn(ns.MUC_SELF_PING, features)

    # -- a mirror that stops

    def test_clean_mirror_stop_tells_its_users_332(self):
        self.sites.mirror.shutdown()
        self.sites.advance(1)
        for user, nick in ((WAYNE, "Wayne"), (KEITH, "Keith")):
            own, = self.sites.take(user)
            self.assertEqual((own["from"], own.getAttribute("type")),
                             (MROOM + "/" + nick, "unavailable"))
            self.assertEqual(status_codes(own), ["332", "110"])
        self.assertEqual(self.sites.take(KEVIN), [])
