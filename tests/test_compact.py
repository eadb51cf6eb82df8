"""
The compact profile (dmuc/muc/compact.py, issue 11): between a master and
a mirror that both speak it, room messages, their acknowledgements and
uploads cross in fewer bytes, users see exactly what they saw before,
and a peer without it still gets the full profile.
"""

from twisted.logger import LogLevel
from twisted.trial import unittest

from dmuc.muc import compact, room_copy
from dmuc.xmpp import namespaces as ns
from dmuc.xmpp.stanzas import child, parse_xml
from tests.stanza_helpers import error_condition, logged
from tests.test_ack import view
from tests.test_dmuc_flows import KEITH, KEVIN, WAYNE, bodies, conversation, join, say
from tests.two_site_helpers import MASTER, MIRROR, MROOM, ROOM

WAYNE_PHONE = "wayne@raleigh.test/phone"


def exchange(sites):
    """Wayne (raleigh) writes, then Kevin (fairfax): the bytes each way,
    and what Kevin and Keith saw."""
    sites.link_count()
    say(sites, WAYNE, "hello from raleigh, how is the weather?", MROOM)
    say(sites, KEVIN, "sunny here, see you at 5", ROOM)
    sizes = {}
    for direction, stanza in sites.link:
        sizes.setdefault(direction, []).append(len(stanza.toXml().encode()))
    return sizes, sites.take(KEVIN), sites.take(KEITH)


class StampTests(unittest.TestCase):

    def test_milliseconds_round_trip(self):
        for seconds in (0, 1700000000, 1700000000.123, 1764547200.999):
            self.assertEqual(compact.parse_stamp(compact.stamp(seconds)), round(seconds, 3))
        self.assertEqual(len(compact.stamp(1764547200.5)), 8)

    def test_anything_else_is_refused(self):
        for text in ("", "LP0L1QTC", "-1", "+1", " 1", "1 ", "a.b", "1" * 13, "lp0l_1qtc"):
            self.assertRaises(ValueError, compact.parse_stamp, text)


class BytesTests(unittest.TestCase):

    def test_the_same_exchange_costs_fewer_bytes(self):
        full, _, _ = exchange(conversation(compact=False))
        small, _, _ = exchange(conversation(compact=True))
        # Up: Wayne's message.  Down: its acknowledgement and Kevin's copy.
        self.assertEqual((len(small["raleigh>fairfax"]), len(small["fairfax>raleigh"])),
                         (1, 2))
        self.assertLessEqual(small["raleigh>fairfax"][0], full["raleigh>fairfax"][0] - 70)
        ack, copy = small["fairfax>raleigh"]
        full_ack, full_copy = full["fairfax>raleigh"]
        self.assertLessEqual(ack, full_ack - 50)
        self.assertLessEqual(copy, full_copy - 200)

    def test_broadcasts_go_to_the_mirror_service(self):
        sites = conversation()
        sites.link_count()
        say(sites, WAYNE, "up", MROOM)
        say(sites, KEVIN, "down", ROOM)
        sites.send(KEVIN, "<presence to='%s/Kevin'><show>away</show></presence>" % ROOM)
        self.assertEqual([s["to"] for d, s in sites.link if d == "fairfax>raleigh"],
                         [MIRROR] * 3)
        self.assertEqual(len(sites.take(KEITH)), 3)

    def test_the_origin_id_travels_in_the_envelope(self):
        sites = conversation()
        sites.link_count()
        sites.send(WAYNE, "<message to='%s' type='groupchat' id='w1'><body>mine</body>"
                   "<origin-id xmlns='%s' id='client-chose-this'/></message>"
                   % (MROOM, ns.STANZA_ID))
        up, = [s for d, s in sites.link if d == "raleigh>fairfax"]
        self.assertIsNone(child(up, "origin-id", ns.STANZA_ID))
        self.assertEqual(child(up, "u", ns.DMUC_COMPACT)["o"], "client-chose-this")
        for user in (KEVIN, KEITH, WAYNE):
            message, = sites.take(user)
            self.assertEqual(child(message, "origin-id", ns.STANZA_ID)["id"],
                             "client-chose-this")

    def test_an_origin_id_equal_to_the_id_is_not_repeated(self):
        # Conversations, Gajim and Dino give a message one id, as its id
        # and as its origin-id: the envelope says so in five bytes.
        sites = conversation()
        sites.link_count()
        sites.send(WAYNE, "<message to='%s' type='groupchat' id='c0ffee-1'><body>mine</body>"
                   "<origin-id xmlns='%s' id='c0ffee-1'/></message>" % (MROOM, ns.STANZA_ID))
        up, = [s for d, s in sites.link if d == "raleigh>fairfax"]
        self.assertEqual(up.toXml().count("c0ffee-1"), 1)
        self.assertEqual(child(up, "u", ns.DMUC_COMPACT)["o"], "")
        for user in (KEVIN, KEITH, WAYNE):
            message, = sites.take(user)
            self.assertEqual(message["id"], "c0ffee-1")
            self.assertEqual(child(message, "origin-id", ns.STANZA_ID)["id"], "c0ffee-1")

    def test_a_message_without_an_id_gets_one_for_both(self):
        sites = conversation()
        sites.link_count()
        sites.send(WAYNE, "<message to='%s' type='groupchat'><body>bare</body></message>"
                   % MROOM)
        up, = [s for d, s in sites.link if d == "raleigh>fairfax"]
        self.assertTrue(up.getAttribute("id"))
        self.assertEqual(child(up, "u", ns.DMUC_COMPACT)["o"], "")
        for user in (KEVIN, KEITH):
            message, = sites.take(user)
            self.assertEqual(child(message, "origin-id", ns.STANZA_ID)["id"], up["id"])

    def test_a_client_id_without_an_origin_id_keeps_a_minted_one(self):
        # A client's ids need not be unique (some count from 1 at every
        # start): the origin-id that keeps a message from being stored
        # twice after a split is the mirror's own.
        sites = conversation()
        sites.link_count()
        sites.send(WAYNE, "<message to='%s' type='groupchat' id='1'><body>one</body></message>"
                   % MROOM)
        up, = [s for d, s in sites.link if d == "raleigh>fairfax"]
        origin = child(up, "u", ns.DMUC_COMPACT)["o"]
        self.assertNotIn(origin, ("", "1"))
        message, = sites.take(KEVIN)
        self.assertEqual((message["id"], child(message, "origin-id", ns.STANZA_ID)["id"]),
                         ("1", origin))

    def test_a_copy_folds_the_origin_id_too(self):
        sites = conversation()
        sites.link_count()
        sites.send(KEVIN, "<message to='%s' type='groupchat' id='c0ffee-2'><body>down</body>"
                   "<origin-id xmlns='%s' id='c0ffee-2'/></message>" % (ROOM, ns.STANZA_ID))
        copy, = [s for d, s in sites.link if d == "fairfax>raleigh"]
        self.assertEqual(copy.toXml().count("c0ffee-2"), 1)
        self.assertEqual(child(copy, "t", ns.DMUC_COMPACT)["o"], "")
        for user in (WAYNE, KEITH):
            message, = sites.take(user)
            self.assertEqual(child(message, "origin-id", ns.STANZA_ID)["id"], "c0ffee-2")

    def test_users_see_the_same_in_both_profiles(self):
        seen = {}
        for profile in (False, True):
            _, kevin, keith = exchange(conversation(compact=profile))
            views = [view(m) for m in kevin + keith]
            for one in views:
                # Ids, and the room's salt for occupant-ids, are its own.
                one.pop("id"), one.pop("stanza-id"), one.pop("occupant-id")
            seen[profile] = views
            # Keith's copy of Kevin's message names the mirror room, with
            # the occupant-id the master gave Kevin.
            self.assertEqual(child(keith[1], "stanza-id", ns.STANZA_ID)["by"], MROOM)
            self.assertEqual(view(keith[1])["occupant-id"], view(kevin[1])["occupant-id"])
        self.assertEqual(seen[True], seen[False])
        self.assertEqual([v["body"] for v in seen[True]],
                         [["hello from raleigh, how is the weather?"],
                          ["sunny here, see you at 5"]] * 2)


class RestartTests(unittest.TestCase):

    def test_a_restarted_mirror_asks_again_and_writes_compactly(self):
        # The features it learnt die with the process; the rooms it holds
        # name the masters to ask at once, not at the next join.
        sites = conversation()
        sites.restart_mirror()
        sites._run()   # what the new process says as it connects, answered
        sites.link_count()
        say(sites, KEITH, "after the restart", MROOM)
        up = [s for d, s in sites.link if d == "raleigh>fairfax" and s.name == "message"]
        self.assertEqual(len(up), 1)
        self.assertIsNotNone(child(up[0], "u", ns.DMUC_COMPACT))
        self.assertEqual(bodies(sites.take(KEVIN)), ["after the restart"])

    def test_a_malformed_history_item_is_dropped_and_the_rest_kept(self):
        sites = conversation()
        lines = logged(self, LogLevel.warn)
        room = sites.mirror.rooms[MROOM]
        items = parse_xml("<history xmlns='http://jabber.org/protocol/muc'>"
                          "<message xmlns='jabber:client' id='a'><body>good</body>"
                          "<t xmlns='%s' s='mx4dn000' i='A1' n='Kevin'/></message>"
                          "<message xmlns='jabber:client' id='b'><body>bad</body>"
                          "<t xmlns='%s' s='NOT A TIME' i='B1' n='Kevin'/></message>"
                          "</history>" % (ns.DMUC_COMPACT, ns.DMUC_COMPACT))
        kept = sites.mirror._history_items(room, [items])
        self.assertEqual([str(child(k, "body", "jabber:client")) for k in kept], ["good"])
        self.assertTrue(any("malformed history item" in line for line in lines), lines)


class OlderPeerTests(unittest.TestCase):

    def test_a_master_without_the_profile_gets_the_full_envelope(self):
        sites = conversation(compact=False)
        sites.link_count()
        say(sites, WAYNE, "to an older master", MROOM)
        up, = [s for d, s in sites.link if d == "raleigh>fairfax"]
        self.assertEqual(child(up, "fmuc", ns.FMUC)["from"], WAYNE)
        self.assertIsNone(child(up, "u", ns.DMUC_COMPACT))
        for user in (KEVIN, KEITH):
            self.assertEqual(bodies(sites.take(user)), ["to an older master"])

    def test_a_mirror_without_the_profile_gets_full_copies(self):
        sites = conversation()
        # An older mirror: it reads no compact feature and writes the full
        # envelope, so the master answers it in the full profile.
        sites.mirror.master_speaks_compact = lambda host: False
        sites.master._compact_mirrors.clear()
        sites.link_count()
        say(sites, WAYNE, "from an older mirror", MROOM)
        say(sites, KEVIN, "to an older mirror", ROOM)
        up, = [s for d, s in sites.link if d == "raleigh>fairfax"]
        ack, copy = [s for d, s in sites.link if d == "fairfax>raleigh"]
        self.assertIsNotNone(child(up, "fmuc", ns.FMUC))
        self.assertTrue(room_copy.is_ack(ack), ack.toXml())
        self.assertIsNotNone(child(copy, "time", ns.DMUC_SYNC))
        self.assertIsNone(child(copy, "t", ns.DMUC_COMPACT))
        self.assertEqual(bodies(sites.take(KEITH)),
                         ["from an older mirror", "to an older mirror"])

    def test_a_master_that_does_not_read_the_service_jid(self):
        # A master of the compact profile from before the service JID
        # (docs/protocol.md 12): room messages go up from the occupant JID.
        sites = conversation()
        features = sites.mirror._masters["conference.fairfax.test"]
        sites.mirror._masters["conference.fairfax.test"] = features - {ns.DMUC_SERVICE_FROM}
        sites.link_count()
        say(sites, WAYNE, "to a master of the first compact profile", MROOM)
        up, = [s for d, s in sites.link if d == "raleigh>fairfax"]
        self.assertEqual(up["from"], MROOM + "/Wayne")
        self.assertIsNotNone(child(up, "u", ns.DMUC_COMPACT))
        for user in (KEVIN, KEITH):
            self.assertEqual(bodies(sites.take(user)), ["to a master of the first compact profile"])

    def test_the_master_follows_a_mirror_that_goes_back_to_the_full_profile(self):
        sites = conversation()
        say(sites, WAYNE, "compact", MROOM)
        self.assertTrue(sites.master.speaks_compact(MROOM))
        sites.mirror.master_speaks_compact = lambda host: False   # downgraded
        say(sites, WAYNE, "full", MROOM)
        self.assertFalse(sites.master.speaks_compact(MROOM))
        sites.link_count()
        say(sites, KEVIN, "for an older mirror", ROOM)
        copy, = [s for d, s in sites.link if d == "fairfax>raleigh"]
        self.assertIsNone(child(copy, "t", ns.DMUC_COMPACT))


class EnvelopeTests(unittest.TestCase):

    def setUp(self):
        self.sites = conversation()
        self.sites.link_count()

    def test_a_room_message_from_the_known_device_names_nobody(self):
        say(self.sites, WAYNE, "just me", MROOM)
        up, = [s for d, s in self.sites.link if d == "raleigh>fairfax"]
        envelope = child(up, "u", ns.DMUC_COMPACT)
        self.assertIsNone(envelope.getAttribute("f"))
        self.assertIsNone(child(up, "fmuc", ns.FMUC))
        entry = self.sites.master.rooms[ROOM].history[-1]
        self.assertEqual(entry.real_jid, WAYNE)

    def test_a_room_message_goes_up_from_the_service_jid(self):
        say(self.sites, WAYNE, "short", MROOM)
        up, = [s for d, s in self.sites.link if d == "raleigh>fairfax"]
        self.assertEqual(up["from"], MIRROR + "/Wayne")
        seen, = self.sites.take(KEVIN)
        self.assertEqual((seen["from"], bodies([seen])), (ROOM + "/Wayne", ["short"]))
        self.assertEqual(bodies(self.sites.take(KEITH)), ["short"])
        entry = self.sites.master.rooms[ROOM].history[-1]
        self.assertEqual((entry.nick, entry.real_jid), ("Wayne", WAYNE))

    def test_a_request_to_the_room_keeps_the_occupant_jid(self):
        # Only messages go up from the service's JID: an IQ's errors must
        # find the occupant without the room.
        self.sites.send(WAYNE, "<iq type='get' id='d1' to='%s'><query xmlns='%s#owner'/></iq>"
                        % (MROOM, ns.MUC))
        up, = [s for d, s in self.sites.link if d == "raleigh>fairfax" and s.name == "iq"]
        self.assertEqual(up["from"], MROOM + "/Wayne")
        answer, = self.sites.take(WAYNE)
        self.assertEqual((answer["id"], answer["from"]), ("d1", MROOM))

    def test_an_error_for_it_reaches_the_user(self):
        # The master's server answers what went up from the service's JID
        # to that JID: the mirror finds its occupant by the nick.
        self.sites.take(WAYNE)
        self.sites.send(ROOM, "<message type='error' to='%s/Wayne' id='e1'><error "
                        "type='cancel'><service-unavailable xmlns='urn:ietf:params:xml:ns:"
                        "xmpp-stanzas'/></error></message>" % MIRROR)
        error, = self.sites.take(WAYNE)
        self.assertEqual((error["from"], error["id"]), (MROOM, "e1"))
        self.assertEqual(error_condition(error), ("cancel", "service-unavailable"))

    def test_a_bounce_of_it_keeps_the_message_for_the_netjoin(self):
        self.sites.stop_master(crash=True)
        self.sites.take(WAYNE)
        say(self.sites, WAYNE, "anyone?", MROOM)
        room = self.sites.mirror.rooms[MROOM]
        self.assertTrue(room.split)
        self.assertEqual([(m.nick, "anyone?" in m.xml) for m in room.split_messages],
                         [("Wayne", True)])

    def test_another_device_is_named(self):
        join(self.sites, WAYNE_PHONE, "Wayne")
        self.sites.link_count()
        say(self.sites, WAYNE_PHONE, "from my phone", MROOM)
        up, = [s for d, s in self.sites.link if d == "raleigh>fairfax"]
        self.assertEqual(child(up, "u", ns.DMUC_COMPACT)["f"], WAYNE_PHONE)
        self.assertEqual(bodies(self.sites.take(KEVIN)), ["from my phone"])

    def test_a_presence_names_the_user(self):
        # The master may have forgotten the user (a restart): a presence
        # must be able to join it again.
        self.sites.send(WAYNE, "<presence to='%s/Wayne'><show>away</show></presence>" % MROOM)
        up, = [s for d, s in self.sites.link if d == "raleigh>fairfax"]
        self.assertEqual(child(up, "u", ns.DMUC_COMPACT)["f"], WAYNE)


class BadInputTests(unittest.TestCase):

    def setUp(self):
        self.sites = conversation()
        self.lines = logged(self, LogLevel.warn)
        self.sites.link_count()

    def from_mirror(self, nick, xml):
        """A stanza as the mirror service would send it up."""
        self.sites.send(MROOM + "/" + nick, xml)
        return [s for d, s in self.sites.link if d == "fairfax>raleigh"]

    def assertStillWorks(self):
        say(self.sites, WAYNE, "still here", MROOM)
        self.assertEqual(bodies(self.sites.take(KEVIN)), ["still here"])

    def test_no_user_and_no_occupant_is_not_in_the_room(self):
        answer, = self.from_mirror("Nobody", "<message to='%s' type='groupchat' id='x1'>"
                                   "<body>who?</body><u xmlns='%s'/></message>"
                                   % (ROOM, ns.DMUC_COMPACT))
        self.assertEqual(error_condition(answer), ("cancel", "not-acceptable"))
        self.assertEqual(self.sites.take(KEVIN), [])
        self.assertStillWorks()

    def test_a_malformed_time_is_refused_and_logged(self):
        answer, = self.from_mirror("Wayne", "<message to='%s' type='groupchat' id='x2'>"
                                   "<body>when?</body><u xmlns='%s' s='yesterday!'/></message>"
                                   % (ROOM, ns.DMUC_COMPACT))
        self.assertEqual(error_condition(answer), ("modify", "bad-request"))
        self.assertEqual(self.sites.take(KEVIN), [])
        self.assertTrue(any("Wayne" in line and "not a compact time" in line
                            for line in self.lines), self.lines)
        self.assertStillWorks()

    def test_the_service_jid_of_a_server_not_trusted(self):
        self.sites.send("mirror.evil.test/Wayne", "<message to='%s' type='groupchat' id='x3'>"
                        "<body>let me in</body><u xmlns='%s'/></message>"
                        % (ROOM, ns.DMUC_COMPACT))
        answer, = self.sites.take("mirror.evil.test/Wayne")
        self.assertEqual(error_condition(answer), ("cancel", "not-allowed"))
        self.assertEqual(self.sites.take(KEVIN), [])
        self.assertStillWorks()

    def test_the_service_jid_with_a_nick_not_in_the_room(self):
        answer, = self.from_mirror_service("Nobody", "<message to='%s' type='groupchat' "
                                           "id='x4'><body>who?</body><u xmlns='%s'/></message>"
                                           % (ROOM, ns.DMUC_COMPACT))
        self.assertEqual(error_condition(answer), ("cancel", "not-acceptable"))
        self.assertEqual(self.sites.take(KEVIN), [])
        self.assertStillWorks()

    def from_mirror_service(self, nick, xml):
        """A stanza as the mirror service sends a room message up."""
        self.sites.send(MIRROR + "/" + nick, xml)
        return [s for d, s in self.sites.link if d == "fairfax>raleigh"]

    def test_a_client_cannot_use_the_envelope_at_the_master(self):
        eve = "eve@fairfax.test/x"
        self.sites.send(eve, "<presence to='%s/Eve'><x xmlns='%s'/><u xmlns='%s' f='%s'/>"
                        "</presence>" % (ROOM, ns.MUC, ns.DMUC_COMPACT, KEVIN))
        answer, = self.sites.take(eve)
        self.assertEqual(error_condition(answer), ("cancel", "not-allowed"))
        self.assertNotIn("Eve", self.sites.master.rooms[ROOM].occupants)
        self.assertTrue(any("refused" in line and eve in line for line in self.lines))

    def test_a_room_we_do_not_mirror_writing_to_the_service(self):
        self.sites.send("other@conference.fairfax.test/Eve", "<message to='%s' "
                        "type='groupchat'><body>hi</body></message>" % MIRROR)
        for user in (WAYNE, KEITH):
            self.assertEqual(self.sites.take(user), [])
        self.assertStillWorks()

    def test_a_malformed_copy_at_the_mirror_is_logged_and_dropped(self):
        self.sites.send(ROOM + "/Kevin", "<message to='%s' type='groupchat'><body>odd</body>"
                        "<t xmlns='%s' s='NOW' i='z'/></message>" % (MROOM, ns.DMUC_COMPACT))
        self.assertEqual(self.sites.take(KEITH), [])
        self.assertTrue(any("malformed message from the master" in line
                            for line in self.lines), self.lines)
        self.assertStillWorks()


class OccupantIdTests(unittest.TestCase):

    def test_kept_for_an_occupant_whose_presence_the_mirror_never_got(self):
        sites = conversation()
        sites.master.rooms[ROOM].config.presence_broadcast = ["moderator"]
        fred = "fred@fairfax.test/desk"
        join(sites, fred, "Fred", ROOM)
        sites.link_count()
        say(sites, fred, "you cannot see me join", ROOM)
        copy, = [s for d, s in sites.link if d == "fairfax>raleigh"]
        self.assertIsNotNone(child(copy, "t", ns.DMUC_COMPACT))
        self.assertIsNotNone(child(copy, "occupant-id", ns.OCCUPANT_ID))
        keith, = sites.take(KEITH)
        fred_sees, = sites.take(fred)
        self.assertEqual(view(keith)["occupant-id"], view(fred_sees)["occupant-id"])

    def test_left_out_for_an_occupant_the_mirror_knows(self):
        sites = conversation()
        sites.link_count()
        say(sites, KEVIN, "you know me", ROOM)
        copy, = [s for d, s in sites.link if d == "fairfax>raleigh"]
        self.assertIsNone(child(copy, "occupant-id", ns.OCCUPANT_ID))
        keith, = sites.take(KEITH)
        kevin, = sites.take(KEVIN)
        self.assertEqual(view(keith)["occupant-id"], view(kevin)["occupant-id"])


def occupant_ids(stanzas):
    return [e["id"] for s in stanzas for e in s.elements(ns.OCCUPANT_ID, "occupant-id")]


def configure(sites, fields):
    values = {}
    for var, value in fields:
        values.setdefault(var, []).append(value)
    form = "".join("<field var='%s'>%s</field>" % (var, "".join(
        "<value>%s</value>" % v for v in vs)) for var, vs in values.items())
    sites.send(KEVIN, "<iq type='set' id='cfg' to='%s'><query xmlns='%s'><x xmlns='%s' "
               "type='submit'>%s</x></query></iq>" % (ROOM, ns.MUC_OWNER, ns.DATA_FORMS, form))
    sites.take(KEVIN)


class PresenceTests(unittest.TestCase):

    def setUp(self):
        self.sites = conversation()
        self.sites.link_count()

    def down(self):
        return [s for d, s in self.sites.link if d == "fairfax>raleigh"]

    def test_a_status_change_leaves_the_known_occupant_id_out(self):
        self.sites.send(KEVIN, "<presence to='%s/Kevin'><show>away</show></presence>" % ROOM)
        copy, = self.down()
        self.assertIsNone(child(copy, "occupant-id", ns.OCCUPANT_ID))
        self.assertIsNotNone(child(copy, "o", ns.DMUC_COMPACT))
        kevin, = self.sites.take(KEVIN)
        keith, = self.sites.take(KEITH)
        self.assertEqual(occupant_ids([keith]), occupant_ids([kevin]))
        self.assertEqual(len(occupant_ids([keith])), 1)
        self.assertIsNone(child(keith, "o", ns.DMUC_COMPACT))

    def test_a_mirror_users_status_change_crosses_once(self):
        # Up to the master, which tells the other sites; the mirror shows
        # its own users, so nothing comes back (issue 11).
        self.sites.send(WAYNE, "<presence to='%s/Wayne'><show>dnd</show></presence>" % MROOM)
        up, = [s for d, s in self.sites.link if d == "raleigh>fairfax"]
        self.assertEqual(child(up, "u", ns.DMUC_COMPACT)["n"], "1")
        self.assertEqual(self.down(), [])
        wayne, = self.sites.take(WAYNE)
        keith, = self.sites.take(KEITH)
        kevin, = self.sites.take(KEVIN)
        self.assertEqual(occupant_ids([wayne]), occupant_ids([kevin]))
        self.assertEqual(occupant_ids([keith]), occupant_ids([kevin]))
        self.assertEqual(len(occupant_ids([wayne])), 1)
        for presence in (wayne, keith, kevin):
            self.assertEqual(str(child(presence, "show", presence.uri)), "dnd")
        self.assertEqual(codes(wayne), ["110"])
        self.assertEqual(codes(keith), [])

    def test_users_see_the_same_status_change_in_both_profiles(self):
        seen = {}
        for profile in (False, True):
            sites = conversation(compact=profile)
            sites.send(WAYNE, "<presence to='%s/Wayne'><show>away</show>"
                       "<status>lunch</status></presence>" % MROOM)
            seen[profile] = [presence_view(p) for user in (WAYNE, KEITH, KEVIN)
                             for p in sites.take(user)]
        self.assertEqual(len(seen[True]), 3)
        self.assertEqual(seen[True], seen[False])

    def test_a_role_the_room_hides_is_shown_to_its_user_only(self):
        configure(self.sites, [("muc#roomconfig_presencebroadcast", "moderator")])
        for user in (KEVIN, WAYNE, KEITH):
            self.sites.take(user)
        self.sites.link_count()
        self.sites.send(WAYNE, "<presence to='%s/Wayne'><show>xa</show></presence>" % MROOM)
        self.assertEqual(self.down(), [])
        wayne, = self.sites.take(WAYNE)
        self.assertEqual(codes(wayne), ["110"])
        self.assertEqual(self.sites.take(KEITH), [])
        self.assertEqual(self.sites.take(KEVIN), [])

    def test_after_the_users_own_message_once_the_master_placed_it(self):
        # Ordered mode shows Wayne's message when the master places it:
        # his status change right after it must not overtake it here,
        # as it does not at the other sites.
        self.sites.stall("fairfax>raleigh")
        say(self.sites, WAYNE, "brb", MROOM)
        self.sites.send(WAYNE, "<presence to='%s/Wayne'><show>away</show></presence>" % MROOM)
        self.assertEqual(self.sites.take(KEITH), [])
        self.sites.heal()
        seen = [s.name for s in self.sites.take(KEITH)]
        self.assertEqual(seen, ["message", "presence"])
        self.assertEqual([s.name for s in self.sites.take(KEVIN)], ["message", "presence"])

    def test_a_master_without_the_profile_answers_as_before(self):
        sites = conversation(compact=False)
        sites.link_count()
        sites.send(WAYNE, "<presence to='%s/Wayne'><show>dnd</show></presence>" % MROOM)
        self.assertEqual(len([s for d, s in sites.link if d == "fairfax>raleigh"]), 1)
        self.assertEqual(len(sites.take(WAYNE)), 1)
        self.assertEqual(len(sites.take(KEITH)), 1)

    def test_a_join_carries_the_occupant_id(self):
        join(self.sites, "fred@fairfax.test/desk", "Fred", ROOM)
        copy, = self.down()
        self.assertEqual(len(occupant_ids([copy])), 1)
        self.assertIsNone(child(copy, "o", ns.DMUC_COMPACT))

    def test_a_new_nick_carries_it_and_the_own_303_has_none(self):
        # Kevin renames: the mirror has not seen the new nick.
        self.sites.send(KEVIN, "<presence to='%s/Kev'/>" % ROOM)
        gone, new = self.down()
        self.assertIsNotNone(child(gone, "o", ns.DMUC_COMPACT))
        self.assertEqual(len(occupant_ids([new])), 1)
        keith = self.sites.take(KEITH)
        self.assertEqual(len(occupant_ids(keith)), 2)
        # Wayne renames: its own 303 has no occupant-id (as Prosody's).
        self.sites.link_count()
        self.sites.take(WAYNE)
        self.sites.send(WAYNE, "<presence to='%s/Bruce'/>" % MROOM)
        own_303 = [s for s in self.sites.take(WAYNE)
                   if s.getAttribute("type") == "unavailable"]
        self.assertEqual(len(own_303), 1)
        self.assertEqual(occupant_ids(own_303), [])

    def test_shown_again_after_being_hidden(self):
        # Fred (fairfax, a participant) is hidden from the mirror's users,
        # which forgets him, then shown again: his presence is a new one.
        fred = "fred@fairfax.test/desk"
        join(self.sites, fred, "Fred", ROOM)
        configure(self.sites, [("muc#roomconfig_presencebroadcast", "moderator")])
        self.assertNotIn("Fred", self.sites.mirror.rooms[MROOM].roster)
        self.sites.take(KEITH)
        configure(self.sites, [("muc#roomconfig_presencebroadcast", "participant"),
                               ("muc#roomconfig_presencebroadcast", "moderator")])
        came, = [s for s in self.sites.take(KEITH) if s.name == "presence"
                 and s["from"] == MROOM + "/Fred"]
        self.assertEqual(len(occupant_ids([came])), 1, came.toXml())

    def test_same_view_in_both_profiles(self):
        seen = {}
        for profile in (False, True):
            sites = conversation(compact=profile)
            sites.send(KEVIN, "<presence to='%s/Kevin'><show>away</show></presence>" % ROOM)
            sites.send(WAYNE, "<presence to='%s/Wayne'><show>dnd</show></presence>" % MROOM)
            keith = sites.take(KEITH)
            seen[profile] = [(s["from"], len(occupant_ids([s])), s.toXml().count("dmuc"))
                             for s in keith]
        self.assertEqual(seen[True], seen[False])
        self.assertEqual([n for _, n, _ in seen[True]], [1, 1])


class SyncTests(unittest.TestCase):

    def test_history_items_are_compact_and_read_the_same(self):
        seen = {}
        for profile in (False, True):
            sites = conversation(compact=profile)
            say(sites, KEVIN, "before you came", ROOM)
            fred = "fred@fairfax.test/desk"
            join(sites, fred, "Fred", ROOM)
            say(sites, fred, "from someone who left", ROOM)
            sites.send(fred, "<presence type='unavailable' to='%s/Fred'/>" % ROOM)
            sites.link_count()
            history = [s for s in join(sites, "rita@raleigh.test/x", "Rita")
                       if s.name == "message" and bodies([s])]
            self.assertEqual(bodies(history), ["before you came", "from someone who left"])
            seen[profile] = [(view(m)["from"], child(m, "delay", ns.DELAY)["from"],
                              child(m, "stanza-id", ns.STANZA_ID)["by"],
                              bool(view(m)["occupant-id"])) for m in history]
        self.assertEqual(seen[True], seen[False])
        self.assertEqual([s[3] for s in seen[True]], [True, True])

    def test_a_history_item_folds_the_origin_id(self):
        sites = conversation()
        sites.send(KEVIN, "<message to='%s' type='groupchat' id='c0ffee-3'><body>kept</body>"
                   "<origin-id xmlns='%s' id='c0ffee-3'/></message>" % (ROOM, ns.STANZA_ID))
        sites.cut = True
        sites.mirror.split("conference.fairfax.test", "test")
        sites.master.split("mirror.raleigh.test", "test")
        sites.send(KEVIN, "<message to='%s' type='groupchat' id='c0ffee-4'><body>missed</body>"
                   "<origin-id xmlns='%s' id='c0ffee-4'/></message>" % (ROOM, ns.STANZA_ID))
        sites.cut = False
        sites.link_count()
        sites.master.netjoin("mirror.raleigh.test")
        sites.mirror.netjoin("conference.fairfax.test")
        sites._run()
        answer = [s for d, s in sites.link if d == "fairfax>raleigh" and "c0ffee-4" in s.toXml()]
        self.assertEqual(len(answer), 1)
        self.assertEqual(answer[0].toXml().count("c0ffee-4"), 1)
        missed, = [m for m in sites.take(KEITH) if bodies([m]) == ["missed"]]
        self.assertEqual(child(missed, "origin-id", ns.STANZA_ID)["id"], "c0ffee-4")
        history = [s for s in join(sites, "rita@raleigh.test/x", "Rita")
                   if s.name == "message" and bodies([s])]
        self.assertEqual([child(m, "origin-id", ns.STANZA_ID)["id"] for m in history],
                         ["c0ffee-3", "c0ffee-4"])

    def test_a_resync_item_costs_about_the_message(self):
        sizes = {}
        for profile in (False, True):
            sites = conversation(compact=profile)
            sites.cut = True
            sites.mirror.split("conference.fairfax.test", "test")
            sites.master.split("mirror.raleigh.test", "test")
            for n in range(10):
                say(sites, KEVIN, "missed %d" % n, ROOM)
            sites.cut = False
            sites.link_count()
            sites.master.netjoin("mirror.raleigh.test")
            sites.mirror.netjoin("conference.fairfax.test")
            sites._run()
            self.assertEqual([b for b in bodies(sites.take(KEITH)) if b.startswith("missed")],
                             ["missed %d" % n for n in range(10)])
            answer = max((s for d, s in sites.link if d == "fairfax>raleigh"),
                         key=lambda s: len(s.toXml()))
            sizes[profile] = len(answer.toXml().encode())
        self.assertLess(sizes[True], sizes[False] - 10 * 200)

    def test_config_push_of_the_defaults_is_empty(self):
        sites = conversation()
        room = sites.master.rooms[ROOM]
        push = room.config_push(MROOM)
        self.assertEqual(list(child(push, "config", ns.DMUC_COMPACT).elements()), [])

    def test_a_field_set_back_to_its_default_is_set_back_at_the_mirror(self):
        sites = conversation()
        configure(sites, [("muc#roomconfig_historylength", "50")])
        self.assertEqual(sites.mirror.rooms[MROOM].config.history_length, 50)
        configure(sites, [("muc#roomconfig_historylength", "20")])
        self.assertEqual(sites.mirror.rooms[MROOM].config.history_length, 20)
        sites.master.rooms[ROOM].config.history_length = 50
        sites.link_count()
        # A push (as at a netjoin) of a config with everything default but
        # one: the mirror's copy is that, not what it held before.
        configure(sites, [("muc#roomconfig_moderatedroom", "1"),
                          ("muc#roomconfig_historylength", "20")])
        config = sites.mirror.rooms[MROOM].config
        self.assertEqual((config.moderated, config.history_length), (True, 20))


class BatchedAcknowledgementTests(unittest.TestCase):
    """Acknowledgements made in one turn of the reactor (a burst read from
    the link) share a stanza, and never overtake the room's order."""

    def setUp(self):
        self.sites = conversation()
        self.sites.link_count()

    def burst(self, *said, turn=True):
        """Messages whose uploads reach the master together; with C{turn}
        false the reactor does not turn after them."""
        for user, room, text in said:
            stanza = parse_xml("<message to='%s' type='groupchat'><body>%s</body></message>"
                               % (room, text))
            stanza["from"] = user
            self.sites._queue.append((user, stanza))
        if turn:
            self.sites._run()
        else:
            self.sites._deliver_queue()

    def test_a_burst_is_acknowledged_in_one_stanza(self):
        self.burst((WAYNE, MROOM, "one"), (KEITH, MROOM, "two"), (WAYNE, MROOM, "three"))
        down = [s for d, s in self.sites.link if d == "fairfax>raleigh"]
        self.assertEqual(len(down), 1, [s.toXml() for s in down])
        self.assertEqual(len(list(down[0].elements(ns.DMUC_COMPACT, "a"))), 3)
        for user in (WAYNE, KEITH, KEVIN):
            self.assertEqual(bodies(self.sites.take(user)), ["one", "two", "three"])
        master = [e.stanza_id for e in self.sites.master.rooms[ROOM].history[-3:]]
        mirror = [e.stanza_id for e in self.sites.mirror.rooms[MROOM].history[-3:]]
        self.assertEqual(mirror, master)

    def test_nothing_overtakes_an_acknowledgement(self):
        # Wayne's upload reaches the master, then Kevin's message comes,
        # then Keith's upload, all before the reactor turns.
        self.burst((WAYNE, MROOM, "first"), turn=False)
        self.burst((KEVIN, ROOM, "second"), (KEITH, MROOM, "third"))
        down = [s for d, s in self.sites.link if d == "fairfax>raleigh"]
        self.assertEqual([len(list(s.elements(ns.DMUC_COMPACT, "a"))) or bodies([s])
                          for s in down], [1, ["second"], 1])
        for user in (WAYNE, KEITH, KEVIN):
            self.assertEqual(bodies(self.sites.take(user)), ["first", "second", "third"])

    def test_the_acknowledgement_leaves_before_our_own_users_copies(self):
        # The origin mirror's users are a link away from their message;
        # the master's own users are not: theirs wait the turn.
        sent = []
        route = self.sites._route

        def record(domain, element):
            if domain == MASTER:
                sent.append(element.getAttribute("to"))
            route(domain, element)
        self.sites._route = record
        self.burst((WAYNE, MROOM, "first"))
        self.assertEqual(sent[0], MIRROR, sent)
        self.assertIn(KEVIN, sent[1:])
        for user in (WAYNE, KEITH, KEVIN):
            self.assertEqual(bodies(self.sites.take(user)), ["first"])

    def test_our_users_keep_their_order_behind_an_acknowledgement(self):
        # Kevin's copy of his first message is held behind Wayne's
        # acknowledgement; his next comes before the reactor turns.
        self.burst((WAYNE, MROOM, "first"), turn=False)
        self.burst((KEVIN, ROOM, "second"), turn=False)
        self.burst((KEVIN, ROOM, "third"))
        for user in (WAYNE, KEITH, KEVIN):
            self.assertEqual(bodies(self.sites.take(user)), ["first", "second", "third"])

    def test_a_stopping_master_sends_what_waits_for_the_turn(self):
        self.burst((WAYNE, MROOM, "last words"), turn=False)
        self.sites.master.release_output()   # as its service stops
        self.sites._deliver_queue()
        for user in (WAYNE, KEITH, KEVIN):
            self.assertEqual(bodies(self.sites.take(user)), ["last words"])

    def test_one_malformed_acknowledgement_spoils_not_the_others(self):
        lines = logged(self, LogLevel.warn)
        room = self.sites.mirror.rooms[MROOM]
        self.sites.stall("fairfax>raleigh")
        self.burst((WAYNE, MROOM, "kept"), (KEITH, MROOM, "also kept"))
        (frm, batch), = self.sites._held
        bad = batch.addElement((ns.DMUC_SYNC, "ack"))
        bad["origin"], bad["id"], bad["stamp"] = "x", "y", "not a time"
        self.sites.heal()
        self.assertEqual(bodies(self.sites.take(KEITH)), ["kept", "also kept"])
        self.assertEqual(room.in_flight, {})
        self.assertTrue(any("malformed acknowledgement" in line for line in lines), lines)


    def test_a_compact_one_with_a_bad_time_spoils_not_the_others(self):
        lines = logged(self, LogLevel.warn)
        room = self.sites.mirror.rooms[MROOM]
        self.sites.stall("fairfax>raleigh")
        self.burst((WAYNE, MROOM, "kept"), (KEITH, MROOM, "also kept"))
        (frm, batch), = self.sites._held
        bad = batch.addElement((ns.DMUC_COMPACT, "a"))
        bad["o"], bad["i"], bad["s"] = "x", "y", "NOT-A-TIME"
        self.sites.heal()
        self.assertEqual(bodies(self.sites.take(KEITH)), ["kept", "also kept"])
        self.assertEqual(room.in_flight, {})
        self.assertTrue(any("malformed acknowledgement" in line for line in lines), lines)

def codes(presence):
    x = child(presence, "x", ns.MUC_USER)
    return sorted(s["code"] for s in x.elements(ns.MUC_USER, "status"))


def presence_view(presence):
    """What a user sees of a presence, without the room's own ids."""
    copy = parse_xml(presence.toXml())
    for element in list(copy.elements()):
        if element.uri == ns.OCCUPANT_ID:
            copy.children.remove(element)
    return copy["to"], copy.toXml()
