"""XEP-0106 addressing of mirror rooms, strict on the way in."""

from twisted.trial import unittest

from dmuc.xmpp.addressing import (
    MalformedAddress, escape_node, master_room_jid, mirror_room_jid, unescape_node)


class AddressingTests(unittest.TestCase):

    def test_protocol_example(self):
        self.assertEqual(mirror_room_jid("chat@conference.fairfax.test", "mirror.raleigh.test"),
                         "chat\\40conference.fairfax.test@mirror.raleigh.test")
        self.assertEqual(master_room_jid("chat\\40conference.fairfax.test"),
                         "chat@conference.fairfax.test")

    def test_round_trip_of_every_escape(self):
        text = "a b\"c&d'e/f:g<h>i@j\\k\\40"
        self.assertEqual(unescape_node(escape_node(text)), text)
        self.assertEqual(escape_node("\\40"), "\\5c40")

    def test_malformed(self):
        for node in ("chat\\4", "chat\\zz\\40c.example", "chat\\",
                     "chat",                       # no '@': not a room JID
                     "chat\\40c.example\\2fres",   # a full JID
                     "\\40conference.example",     # no node
                     "a\\40b\\40c.example"):       # two '@'
            self.assertRaises(MalformedAddress, master_room_jid, node)

    def test_uppercase_hex_accepted(self):
        self.assertEqual(unescape_node("a\\2Fb"), "a/b")
