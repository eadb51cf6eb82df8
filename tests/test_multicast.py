"""
XEP-0033 multicast to the mirror's local server (dmuc/xmpp/multicast.py):
one stanza for all of a room's local users where the server lets the
mirror, one per user where it does not; users see the same either way.
The module's side runs at a real Prosody in tests/test_multicast_sites.py.
"""

from twisted.logger import LogLevel
from twisted.trial import unittest

from dmuc.xmpp import namespaces as ns
from dmuc.xmpp.multicast import MAX_ADDRESSES, MAX_LISTS, Multicast
from dmuc.xmpp.stanzas import Prepared, child, parse_xml
from tests.stanza_helpers import logged
from tests import test_dmuc_flows
from tests.test_dmuc_flows import KEITH, KEVIN, WAYNE, bodies, join, say
from tests.two_site_helpers import MROOM, ROOM, TwoSites


def conversation(multicast, lists=False):
    # The mirror asks its server as its stream comes up.
    sites = test_dmuc_flows.conversation(multicast=multicast, multicast_lists=lists)
    del sites.multicasts[:]
    return sites


def addressing(stanza):
    """What a multicast stanza names: its list's number (or None) and its
    addresses."""
    addresses = child(stanza, "addresses", ns.ADDRESS)
    named = child(addresses, "list", ns.MULTICAST)
    return (int(named["id"]) if named is not None else None,
            sorted(a["jid"] for a in addresses.elements(ns.ADDRESS, "address")))


class MirrorTests(unittest.TestCase):

    def test_one_stanza_for_all_local_users(self):
        sites = conversation(multicast=True)
        say(sites, KEVIN, "to all of you", ROOM)
        multicast, = sites.multicasts
        self.assertEqual(multicast["to"], "raleigh.test")
        addresses = child(multicast, "addresses", ns.ADDRESS)
        self.assertEqual(sorted((a["type"], a["jid"]) for a in addresses.elements()),
                         [("bcc", KEITH), ("bcc", WAYNE)])
        for user in (WAYNE, KEITH):
            message, = sites.take(user)
            self.assertEqual((message["from"], message["to"], bodies([message])),
                             (MROOM + "/Kevin", user, ["to all of you"]))
            self.assertIsNone(child(message, "addresses", ns.ADDRESS))

    def test_users_see_the_same_with_and_without(self):
        seen = {}
        for multicast, lists in ((None, False), (True, False), (True, True)):
            sites = conversation(multicast, lists)
            say(sites, KEVIN, "hello", ROOM)
            sites.send(KEVIN, "<presence to='%s/Kevin'><show>away</show></presence>" % ROOM)
            say(sites, WAYNE, "back", MROOM)
            say(sites, KEVIN, "and again", ROOM)
            seen[multicast, lists] = [(s.name, s["from"], s["to"], bodies([s]))
                                      for user in (WAYNE, KEITH) for s in sites.take(user)]
        self.assertEqual(seen[True, False], seen[None, False])
        self.assertEqual(seen[True, True], seen[None, False])
        self.assertEqual(len(seen[True, True]), 8)

    def test_a_list_of_recipients_goes_once(self):
        sites = conversation(multicast=True, lists=True)
        for text in ("one", "two", "three"):
            say(sites, KEVIN, text, ROOM)
        self.assertEqual([addressing(s) for s in sites.multicasts],
                         [(0, sorted([WAYNE, KEITH])), (0, []), (0, [])])
        for user in (WAYNE, KEITH):
            self.assertEqual(bodies(sites.take(user)), ["one", "two", "three"])

    def test_other_recipients_get_a_list_of_their_own(self):
        sites = conversation(multicast=True, lists=True)
        say(sites, KEVIN, "to both", ROOM)
        join(sites, "kate@raleigh.test/phone", "Kate")
        say(sites, KEVIN, "to all three", ROOM)
        say(sites, KEVIN, "again to all three", ROOM)
        numbers = [addressing(s)[0] for s in sites.multicasts]
        self.assertEqual(numbers[0], 0)
        self.assertEqual(addressing(sites.multicasts[-1]), (numbers[-2], []))
        self.assertEqual(addressing(sites.multicasts[-2]),
                         (numbers[-2], sorted([WAYNE, KEITH, "kate@raleigh.test/phone"])))
        self.assertNotEqual(numbers[-2], 0)
        self.assertEqual(bodies(sites.take("kate@raleigh.test/phone")),
                         ["to all three", "again to all three"])

    def test_an_older_module_gets_every_address_each_time(self):
        sites = conversation(multicast=True, lists=False)
        say(sites, KEVIN, "one", ROOM)
        say(sites, KEVIN, "two", ROOM)
        self.assertEqual([addressing(s) for s in sites.multicasts],
                         [(None, sorted([WAYNE, KEITH]))] * 2)

    def test_a_server_that_lost_the_lists(self):
        # The module was unloaded and loaded again: it refuses the stanza
        # that names a list it does not have; the mirror says so and names
        # the recipients again from the next stanza on.
        lines = logged(self, LogLevel.warn)
        sites = conversation(multicast=True, lists=True)
        say(sites, KEVIN, "kept", ROOM)
        sites.kept_lists.clear()
        say(sites, KEVIN, "lost", ROOM)
        say(sites, KEVIN, "named again", ROOM)
        self.assertEqual([addressing(s) for s in sites.multicasts],
                         [(0, sorted([WAYNE, KEITH])), (0, []), (0, sorted([WAYNE, KEITH]))])
        for user in (WAYNE, KEITH):
            self.assertEqual(bodies(sites.take(user)), ["kept", "named again"])
        self.assertTrue(any("raleigh.test refused a multicast stanza from mirror.raleigh.test "
                            "(item-not-found)" in line for line in lines), lines)

    def test_a_server_that_refuses_gets_one_stanza_per_user(self):
        lines = logged(self, LogLevel.info, LogLevel.warn)
        sites = conversation(multicast=False)
        say(sites, KEVIN, "one each", ROOM)
        self.assertEqual(sites.multicasts, [])
        self.assertEqual(sites.inbox["raleigh.test"], [])
        for user in (WAYNE, KEITH):
            self.assertEqual(bodies(sites.take(user)), ["one each"])
        self.assertTrue(any("offers multicast but not to mirror.raleigh.test" in line
                            for line in lines), lines)

    def test_a_server_without_multicast(self):
        sites = conversation(multicast=None)
        say(sites, KEVIN, "one each", ROOM)
        for user in (WAYNE, KEITH):
            self.assertEqual(bodies(sites.take(user)), ["one each"])

    def test_a_single_user_gets_a_plain_stanza(self):
        sites = TwoSites(multicast=True)
        join(sites, KEVIN, "Kevin", ROOM)
        join(sites, WAYNE, "Wayne")
        sites.take(WAYNE)
        say(sites, KEVIN, "just you", ROOM)
        self.assertEqual(sites.multicasts, [])
        self.assertEqual(bodies(sites.take(WAYNE)), ["just you"])


class SendTests(unittest.TestCase):
    """L{Multicast.send} on its own."""

    def setUp(self):
        self.sent = []
        handler = type("Handler", (), {"domain": "mirror.raleigh.test",
                                       "send": lambda _, s: self.sent.append(s),
                                       "new_id": lambda _: "1"})()
        self.multicast = Multicast(handler, ("raleigh.test", "other.test"))
        self.multicast.usable.add("raleigh.test")
        self.prepared = Prepared(parse_xml("<message from='r@mirror.raleigh.test/a' "
                                           "type='groupchat'><body>b &amp; c</body></message>"))

    def test_large_rooms_are_cut_in_parts(self):
        users = ["u%d@raleigh.test/x" % n for n in range(MAX_ADDRESSES + 3)]
        self.multicast.send(self.prepared, users)
        self.assertEqual([len(list(child(parse_xml(s.toXml()), "addresses", ns.ADDRESS)
                                   .elements())) for s in self.sent], [MAX_ADDRESSES, 3])

    def test_other_domains_get_one_stanza_each(self):
        self.multicast.send(self.prepared, ["a@raleigh.test/x", "b@raleigh.test/y",
                                            "c@other.test/z", "d@other.test/w"])
        self.assertEqual([s.getAttribute("to") for s in self.sent],
                         ["raleigh.test", "c@other.test/z", "d@other.test/w"])

    def test_the_least_recently_used_list_is_replaced(self):
        self.multicast.keeping.add("raleigh.test")
        groups = [["a%d@raleigh.test/x" % n, "b%d@raleigh.test/x" % n]
                  for n in range(MAX_LISTS + 1)]
        for group in groups[:MAX_LISTS]:
            self.multicast.send(self.prepared, group)
        self.multicast.send(self.prepared, groups[0])     # used again: kept
        self.multicast.send(self.prepared, groups[MAX_LISTS])
        self.multicast.send(self.prepared, groups[1])     # replaced: named again
        sent = [addressing(parse_xml(s.toXml())) for s in self.sent]
        self.assertEqual(sent[:2], [(0, groups[0]), (1, groups[1])])
        self.assertEqual(sent[MAX_LISTS:], [(0, []), (1, groups[MAX_LISTS]), (2, groups[1])])

    def test_a_new_connection_names_every_list_again(self):
        self.multicast.keeping.add("raleigh.test")
        group = ["a@raleigh.test/x", "b@raleigh.test/y"]
        self.multicast.send(self.prepared, group)
        self.multicast.probe()
        self.multicast.usable.add("raleigh.test")
        self.multicast.keeping.add("raleigh.test")
        self.multicast.send(self.prepared, group)
        self.assertEqual([addressing(parse_xml(s.toXml())) for s in self.sent
                          if s.name == "message"], [(0, group), (0, group)])

    def test_the_text_is_the_stanza_with_the_addresses(self):
        self.multicast.send(self.prepared, ["a@raleigh.test/x", "b'q@raleigh.test/y"])
        stanza = parse_xml(self.sent[0].toXml())
        self.assertEqual((stanza["to"], stanza["from"], bodies([stanza])),
                         ("raleigh.test", "r@mirror.raleigh.test/a", ["b & c"]))
        self.assertEqual([a["jid"] for a in child(stanza, "addresses", ns.ADDRESS).elements()],
                         ["a@raleigh.test/x", "b'q@raleigh.test/y"])
