"""
Two devices, one nick, through a mirror: both devices of a user of the
mirror's site share the occupant, as at Prosody (multi-session occupants).
The mirror holds the sessions; the master knows one occupant
(docs/decisions.md, "Several devices of one user behind a mirror").
"""

from twisted.trial import unittest

from dmuc.xmpp import namespaces as ns
from tests.stanza_helpers import error_condition, item, status_codes
from tests.two_site_helpers import MROOM, ROOM, TwoSites

KEVIN = "kevin@fairfax.test/desk"
WAYNE = "wayne@raleigh.test/laptop"
WAYNE_PHONE = "wayne@raleigh.test/phone"
KEITH = "keith@raleigh.test/phone"
MUC_X = "<x xmlns='http://jabber.org/protocol/muc'/>"


def join(sites, user, nick, room=MROOM):
    sites.send(user, "<presence to='%s/%s'>%s</presence>" % (room, nick, MUC_X))
    return sites.take(user)


def leave(sites, user, nick, room=MROOM):
    sites.send(user, "<presence type='unavailable' to='%s/%s'/>" % (room, nick))
    return sites.take(user)


def say(sites, user, body, room=MROOM):
    sites.send(user, "<message to='%s' type='groupchat'><body>%s</body></message>"
               % (room, body))


def chat(sites, user, to, body):
    sites.send(user, "<message to='%s' type='chat'><body>%s</body></message>" % (to, body))


def bodies(stanzas):
    return [str(b) for s in stanzas for b in s.elements(None, "body")]


def unavailable(stanzas):
    return [s for s in stanzas if s.name == "presence" and s.getAttribute("type") == "unavailable"]


class MirrorMultiSessionTests(unittest.TestCase):

    def setUp(self):
        self.sites = TwoSites()
        join(self.sites, KEVIN, "Kevin", ROOM)   # the owner: sees real JIDs
        say(self.sites, KEVIN, "before", ROOM)
        join(self.sites, WAYNE, "Wayne")
        join(self.sites, KEITH, "Keith")
        for user in (KEVIN, WAYNE, KEITH):
            self.sites.take(user)
        self.sites.link_count()

    def join_phone(self):
        seen = join(self.sites, WAYNE_PHONE, "Wayne")
        for user in (KEVIN, WAYNE, KEITH):
            self.sites.take(user)
        self.sites.link_count()
        return seen

    def test_the_master_dropping_the_known_device_keeps_the_other(self):
        """
        The device the master knows bounces a presence and the master drops
        the occupant (333), while the user's other device is in through the
        mirror: a client reconnecting at once after its server restarted,
        the mirror's resync having joined its dead session (seen in CI).
        As Prosody's mod_muc drops only the device that bounced, the other
        device is told nothing, joins at the master in its place and can
        talk.
        """
        self.join_phone()
        master_room = self.sites.master.rooms[ROOM]
        master_room._remove_after_error(master_room.occupants["Wayne"])
        self.sites._run()
        self.assertEqual(unavailable(self.sites.take(WAYNE_PHONE)), [])
        self.assertEqual(master_room.occupants["Wayne"].real_jid.full(), WAYNE_PHONE)
        say(self.sites, WAYNE_PHONE, "still here")
        self.assertEqual(bodies(self.sites.take(KEVIN))[-1:], ["still here"])
        self.assertEqual(bodies(self.sites.take(WAYNE_PHONE)), ["still here"])

    def test_second_device_joins_the_same_occupant(self):
        seen = join(self.sites, WAYNE_PHONE, "Wayne")
        self.assertEqual([s.name for s in seen],
                         ["presence", "presence", "presence", "message", "message"])
        self.assertEqual(sorted(s["from"] for s in seen[:2]),
                         [MROOM + "/Keith", MROOM + "/Kevin"])
        self.assertEqual((seen[2]["from"], status_codes(seen[2])), (MROOM + "/Wayne", ["110"]))
        self.assertEqual(item(seen[2])["jid"], WAYNE_PHONE)
        self.assertEqual(bodies([seen[3]]), ["before"])
        self.assertEqual(seen[4]["from"], MROOM)
        # The first device is not knocked out: it hears its occupant again.
        laptop = self.sites.take(WAYNE)
        self.assertEqual(unavailable(laptop), [])
        self.assertEqual([status_codes(s) for s in laptop], [["110"]])
        # Nobody sees Wayne leave; the master need not know.
        self.assertEqual(unavailable(self.sites.take(KEVIN) + self.sites.take(KEITH)), [])
        self.assertEqual(self.sites.link_count(), 0)

    def test_both_devices_get_the_room_and_private_messages(self):
        self.join_phone()
        say(self.sites, KEVIN, "to all", ROOM)
        for device in (WAYNE, WAYNE_PHONE):
            self.assertEqual(bodies(self.sites.take(device)), ["to all"])
        self.sites.take(KEVIN)
        say(self.sites, WAYNE_PHONE, "from the phone")
        self.assertEqual(bodies(self.sites.take(KEVIN)), ["from the phone"])
        for device in (WAYNE, WAYNE_PHONE):
            message, = self.sites.take(device)
            self.assertEqual((message["from"], bodies([message])),
                             (MROOM + "/Wayne", ["from the phone"]))
        chat(self.sites, KEVIN, ROOM + "/Wayne", "pm up")
        chat(self.sites, KEITH, MROOM + "/Wayne", "pm here")
        for device in (WAYNE, WAYNE_PHONE):
            self.assertEqual(bodies(self.sites.take(device)), ["pm up", "pm here"])
        chat(self.sites, WAYNE_PHONE, MROOM + "/Kevin", "pm back")
        message, = self.sites.take(KEVIN)
        self.assertEqual(message["from"], ROOM + "/Wayne")

    def test_self_ping_from_either_device(self):
        self.join_phone()
        for device in (WAYNE, WAYNE_PHONE):
            self.sites.send(device, "<iq type='get' id='p' to='%s/Wayne'><ping xmlns='%s'/></iq>"
                            % (MROOM, ns.PING))
            answer, = self.sites.take(device)
            self.assertEqual(answer["type"], "result")

    def test_the_second_device_leaves(self):
        self.join_phone()
        gone, = leave(self.sites, WAYNE_PHONE, "Wayne")
        self.assertEqual((gone["type"], status_codes(gone)), ("unavailable", ["110"]))
        self.assertEqual(unavailable(self.sites.take(WAYNE) + self.sites.take(KEVIN)
                                     + self.sites.take(KEITH)), [])
        say(self.sites, KEVIN, "after", ROOM)
        self.assertEqual(bodies(self.sites.take(WAYNE)), ["after"])
        self.assertEqual(self.sites.take(WAYNE_PHONE), [])

    def test_the_first_device_leaves_then_the_last(self):
        self.join_phone()
        gone, = leave(self.sites, WAYNE, "Wayne")
        self.assertEqual((gone["type"], status_codes(gone)), ("unavailable", ["110"]))
        self.assertEqual(unavailable(self.sites.take(WAYNE_PHONE) + self.sites.take(KEITH)), [])
        # The master's users still see Wayne, now as the phone.
        seen = self.sites.take(KEVIN)
        self.assertEqual(unavailable(seen), [])
        self.assertEqual(item(seen[-1])["jid"], WAYNE_PHONE)
        say(self.sites, WAYNE_PHONE, "still here")
        self.assertEqual(bodies(self.sites.take(KEVIN)), ["still here"])
        self.assertEqual(bodies(self.sites.take(WAYNE_PHONE)), ["still here"])
        self.assertEqual(self.sites.take(WAYNE), [])
        gone, = leave(self.sites, WAYNE_PHONE, "Wayne")
        self.assertEqual((gone["type"], status_codes(gone)), ("unavailable", ["110"]))
        left, = self.sites.take(KEVIN)
        self.assertEqual((left["from"], left["type"]), (ROOM + "/Wayne", "unavailable"))

    def test_kick_removes_both_devices(self):
        self.join_phone()
        self.sites.send(KEVIN, "<iq type='set' id='k' to='%s'><query xmlns='%s'><item nick='Wayne' "
                        "role='none'/></query></iq>" % (ROOM, ns.MUC_ADMIN))
        for device in (WAYNE, WAYNE_PHONE):
            kicked, = self.sites.take(device)
            self.assertEqual((kicked["type"], status_codes(kicked)),
                             ("unavailable", ["307", "110"]))
        say(self.sites, WAYNE_PHONE, "still here?")
        self.assertEqual(error_condition(self.sites.take(WAYNE_PHONE)[0]),
                         ("cancel", "not-acceptable"))

    def test_another_user_taking_the_nick_is_still_a_conflict(self):
        error, = join(self.sites, "waynette@raleigh.test/x", "Wayne")
        self.assertEqual(error_condition(error), ("cancel", "conflict"))
        self.assertEqual(unavailable(self.sites.take(WAYNE)), [])

    def test_both_devices_kept_over_a_mirror_restart(self):
        self.join_phone()
        self.sites.restart_mirror()
        say(self.sites, KEVIN, "after the restart", ROOM)
        for device in (WAYNE, WAYNE_PHONE):
            self.assertEqual(bodies(self.sites.take(device)), ["after the restart"])
        say(self.sites, WAYNE_PHONE, "phone again")
        self.assertIn("phone again", bodies(self.sites.take(KEVIN)))

    def test_a_split_keeps_both_devices_and_the_netjoin_joins_one(self):
        self.join_phone()
        self.sites.cut = True
        self.sites.advance(120)
        for user in (WAYNE, WAYNE_PHONE, KEITH, KEVIN):
            self.sites.take(user)
        say(self.sites, WAYNE_PHONE, "during")
        self.assertEqual(bodies(self.sites.take(WAYNE)), ["during"])
        self.sites.heal()
        self.sites.advance(120)
        self.assertIn("during", bodies(self.sites.take(KEVIN)))
        say(self.sites, KEVIN, "after", ROOM)
        for device in (WAYNE, WAYNE_PHONE):
            self.assertIn("after", bodies(self.sites.take(device)))

    def test_both_devices_told_when_the_mirror_stops(self):
        self.join_phone()
        self.sites.mirror.shutdown()
        self.sites._run()
        for device in (WAYNE, WAYNE_PHONE):
            told, = self.sites.take(device)
            self.assertIn("332", status_codes(told))
