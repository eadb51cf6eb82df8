"""
Ordered mode without the echo (issue 11): the master answers the mirror a
message came from with a short acknowledgement, and that mirror builds the
room's copy itself.  Users at every site see exactly what they saw when
the master sent the full copy; a mirror that does not ask for
acknowledgements (an older one) still gets the full copy.  Every test
runs in both profiles: the compact one (dmuc/muc/compact.py) and the
full one an older peer speaks.
"""

from twisted.logger import LogLevel
from twisted.trial import unittest

from dmuc.muc import compact, room_copy
from dmuc.xmpp import namespaces as ns
from dmuc.xmpp.stanzas import child, parse_xml
from tests.stanza_helpers import logged
from tests.test_dmuc_flows import KEITH, KEVIN, WAYNE, bodies, conversation, say
from tests.two_site_helpers import MROOM, ROOM


def view(message):
    """What a user sees of a room message, with the ids."""
    stanza_id = child(message, "stanza-id", ns.STANZA_ID)
    occupant = child(message, "occupant-id", ns.OCCUPANT_ID)
    return {"from": message.getAttribute("from"), "type": message.getAttribute("type"),
            "id": message.getAttribute("id"), "body": bodies([message]),
            "stanza-id": (stanza_id["id"], stanza_id["by"]) if stanza_id is not None else None,
            "occupant-id": occupant["id"] if occupant is not None else None,
            "dmuc": any(ns.DMUC_SYNC in e.toXml() or ns.FMUC in e.toXml()
                        for e in message.elements())}


def is_ack(message):
    """An acknowledgement on the wire, in either profile."""
    return room_copy.is_ack(message) or compact.is_compact_ack(message)


def asks_for_ack(upload):
    envelope = child(upload, "u", ns.DMUC_COMPACT)
    if envelope is not None:
        return envelope.getAttribute("c") != "1"
    return child(upload, "fmuc", ns.FMUC).getAttribute("ack") == "1"


class AcknowledgementTests(unittest.TestCase):
    """In the compact profile."""

    compact = True

    def setUp(self):
        self.sites = conversation(compact=self.compact)
        self.sites.link_count()

    def crossed(self, direction):
        return [s for d, s in self.sites.link if d == direction]

    def test_the_origin_mirror_gets_an_acknowledgement_not_the_copy(self):
        say(self.sites, WAYNE, "from raleigh", MROOM)
        up, = self.crossed("raleigh>fairfax")
        down, = self.crossed("fairfax>raleigh")
        self.assertTrue(asks_for_ack(up), up.toXml())
        self.assertTrue(is_ack(down), down.toXml())
        self.assertEqual(bodies([down]), [])
        # Its size does not depend on the message.
        self.assertLess(len(down.toXml()), 250)

        kevin, = self.sites.take(KEVIN)
        wayne, = self.sites.take(WAYNE)
        keith, = self.sites.take(KEITH)
        master_entry = self.sites.master.rooms[ROOM].history[-1]
        for message, room in ((kevin, ROOM), (wayne, MROOM), (keith, MROOM)):
            seen = view(message)
            self.assertEqual(
                (seen["from"], seen["type"], seen["body"], seen["stanza-id"], seen["dmuc"]),
                (room + "/Wayne", "groupchat", ["from raleigh"],
                 (master_entry.stanza_id, room), False))
        # One id and one occupant-id for the message at every site.
        self.assertEqual({view(m)["id"] for m in (kevin, wayne, keith)}, {kevin["id"]})
        self.assertEqual({view(m)["occupant-id"] for m in (kevin, wayne, keith)},
                         {view(kevin)["occupant-id"]})
        self.assertIsNotNone(view(kevin)["occupant-id"])
        # The mirror's history has the master's id and time for it.
        mirror_entry = self.sites.mirror.rooms[MROOM].history[-1]
        self.assertEqual((mirror_entry.stanza_id, mirror_entry.timestamp),
                         (master_entry.stanza_id, master_entry.timestamp))

    def test_a_long_message_is_acknowledged_in_as_few_bytes(self):
        say(self.sites, WAYNE, "long " * 200, MROOM)
        down, = self.crossed("fairfax>raleigh")
        self.assertTrue(is_ack(down))
        self.assertLess(len(down.toXml()), 250)
        self.assertEqual(bodies(self.sites.take(KEITH)), ["long " * 200])

    def test_same_view_as_with_the_full_copy(self):
        say(self.sites, WAYNE, "first", MROOM)
        acked = [view(m) for m in self.sites.take(KEITH)]
        self.sites.mirror.rooms[MROOM].wants_ack = lambda sender: False
        say(self.sites, WAYNE, "second", MROOM)
        copied = [view(m) for m in self.sites.take(KEITH)]
        for seen in acked + copied:
            seen.pop("id"), seen.pop("stanza-id"), seen.pop("body")
        self.assertEqual(acked, copied)

    def test_a_mirror_that_does_not_ask_gets_the_full_copy(self):
        # An older mirror: no ack='1' in the envelope.
        self.sites.mirror.rooms[MROOM].wants_ack = lambda sender: False
        say(self.sites, WAYNE, "old style", MROOM)
        up, = self.crossed("raleigh>fairfax")
        down, = self.crossed("fairfax>raleigh")
        self.assertFalse(asks_for_ack(up), up.toXml())
        self.assertFalse(is_ack(down))
        self.assertEqual(bodies([down]), ["old style"])
        for user in (WAYNE, KEITH, KEVIN):
            self.assertEqual(bodies(self.sites.take(user)), ["old style"])

    def test_an_older_master_sends_the_full_copy_and_the_mirror_takes_it(self):
        # A master that does not know the attribute ignores it.
        self.patch(room_copy, "may_ack", lambda upload: False)
        say(self.sites, WAYNE, "to an old master", MROOM)
        down, = self.crossed("fairfax>raleigh")
        self.assertFalse(is_ack(down))
        for user in (WAYNE, KEITH, KEVIN):
            self.assertEqual(bodies(self.sites.take(user)), ["to an old master"])
        self.assertEqual(self.sites.mirror.rooms[MROOM].in_flight, {})

    def test_a_last_word_before_leaving_reaches_the_others(self):
        # The acknowledgement and the leave's answer come back together.
        self.sites.stall("fairfax>raleigh")
        say(self.sites, WAYNE, "bye all", MROOM)
        self.sites.send(WAYNE, "<presence type='unavailable' to='%s/Wayne'/>" % MROOM)
        self.sites.heal()
        self.assertEqual(bodies(self.sites.take(KEITH)), ["bye all"])
        self.assertEqual(bodies(self.sites.take(KEVIN)), ["bye all"])
        self.assertNotIn("Wayne", self.sites.mirror.rooms[MROOM].roster)

    def test_one_order_at_both_sites(self):
        for n in range(3):
            say(self.sites, WAYNE, "w%d" % n, MROOM)
            say(self.sites, KEVIN, "k%d" % n, ROOM)
        expected = ["w0", "k0", "w1", "k1", "w2", "k2"]
        for user in (KEVIN, WAYNE, KEITH):
            self.assertEqual(bodies(self.sites.take(user)), expected)
        master = [e.stanza_id for e in self.sites.master.rooms[ROOM].history]
        mirror = [e.stanza_id for e in self.sites.mirror.rooms[MROOM].history]
        self.assertEqual(mirror[-6:], master[-6:])

    def test_a_message_without_id_gets_one_at_the_mirror(self):
        self.sites.send(WAYNE, "<message to='%s' type='groupchat'><body>no id</body></message>"
                        % MROOM)
        kevin, = self.sites.take(KEVIN)
        keith, = self.sites.take(KEITH)
        self.assertTrue(kevin.getAttribute("id"))
        self.assertEqual(keith["id"], kevin["id"])

    def test_unknown_or_malformed_acknowledgements_change_nothing(self):
        lines = logged(self, LogLevel.info, LogLevel.warn)
        room = self.sites.mirror.rooms[MROOM]
        before = list(room.history)
        for xml in ("<ack xmlns='urn:xmpp:dmuc:0' origin='nope' id='x' "
                    "stamp='2026-12-01T00:00:00Z'/>",
                    "<ack xmlns='urn:xmpp:dmuc:0' origin='o' id='x' stamp='yesterday'/>"):
            message = parse_xml("<message from='%s' to='%s'>%s</message>" % (ROOM, MROOM, xml))
            room.handle_ack(message)
        self.assertEqual(room.history, before)
        for user in (WAYNE, KEITH):
            self.assertEqual(self.sites.take(user), [])
        self.assertTrue(any("no longer wait for (nope)" in line for line in lines), lines)
        self.assertTrue(any("malformed acknowledgement" in line for line in lines), lines)
        # The room still works.
        say(self.sites, WAYNE, "still here", MROOM)
        self.assertEqual(bodies(self.sites.take(KEITH)), ["still here"])


class FullProfileAcknowledgementTests(AcknowledgementTests):
    """The same between a master and a mirror that speak the full profile
    (an older master offers no compact one)."""

    compact = False
