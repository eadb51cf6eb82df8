"""
XEP-0033 multicast to the mirror's local server (dmuc/xmpp/multicast.py):
one stanza for all of a room's local users where the server lets the
mirror, one per user where it does not; users see the same either way.
The module's side runs at a real Prosody in tests/test_multicast_sites.py.
"""

from twisted.logger import LogLevel
from twisted.trial import unittest

from dmuc.xmpp import namespaces as ns
from dmuc.xmpp.multicast import MAX_ADDRESSES, Multicast
from dmuc.xmpp.stanzas import Prepared, child, parse_xml
from tests.stanza_helpers import logged
from tests import test_dmuc_flows
from tests.test_dmuc_flows import KEITH, KEVIN, WAYNE, bodies, join, say
from tests.two_site_helpers import MROOM, ROOM, TwoSites


def conversation(multicast):
    # The mirror asks its server as its stream comes up.
    sites = test_dmuc_flows.conversation(multicast=multicast)
    del sites.multicasts[:]
    return sites


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
        for multicast in (None, True):
            sites = conversation(multicast)
            say(sites, KEVIN, "hello", ROOM)
            sites.send(KEVIN, "<presence to='%s/Kevin'><show>away</show></presence>" % ROOM)
            say(sites, WAYNE, "back", MROOM)
            seen[multicast] = [(s.name, s["from"], s["to"], bodies([s]))
                               for user in (WAYNE, KEITH) for s in sites.take(user)]
        self.assertEqual(seen[True], seen[None])
        self.assertEqual(len(seen[True]), 6)

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

    def test_the_text_is_the_stanza_with_the_addresses(self):
        self.multicast.send(self.prepared, ["a@raleigh.test/x", "b'q@raleigh.test/y"])
        stanza = parse_xml(self.sent[0].toXml())
        self.assertEqual((stanza["to"], stanza["from"], bodies([stanza])),
                         ("raleigh.test", "r@mirror.raleigh.test/a", ["b & c"]))
        self.assertEqual([a["jid"] for a in child(stanza, "addresses", ns.ADDRESS).elements()],
                         ["a@raleigh.test/x", "b'q@raleigh.test/y"])
