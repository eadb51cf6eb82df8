"""
XEP-0307 unique room names at the master service, and XEP-0317 hats,
which only the room gives (as at Prosody 0.12): a client's own hats never
reach anyone, at the master or through a mirror.
"""

from twisted.trial import unittest

from dmuc.xmpp import namespaces as ns
from tests.test_dmuc_flows import KEVIN, WAYNE, join
from tests.two_site_helpers import MASTER, MROOM, ROOM, TwoSites

HAT = ("<hats xmlns='xmpp:prosody.im/protocol/hats:1'><hat title='Admin' "
       "uri='urn:example:admin'/></hats>")


class UniqueNameTests(unittest.TestCase):

    def test_service_gives_fresh_names(self):
        sites = TwoSites()
        names = []
        for n in range(2):
            sites.send(KEVIN, "<iq type='get' id='u%d' to='%s'><unique xmlns='%s'/></iq>"
                       % (n, MASTER, ns.MUC_UNIQUE))
            reply, = sites.take(KEVIN)
            self.assertEqual(reply["type"], "result")
            names.append(str(next(reply.elements(ns.MUC_UNIQUE, "unique"))))
        self.assertNotEqual(names[0], names[1])
        self.assertTrue(all(len(n) >= 16 and n == n.lower() for n in names), names)
        sites.send(KEVIN, "<iq type='get' id='d' to='%s'><query xmlns='%s'/></iq>"
                   % (MASTER, ns.DISCO_INFO))
        info, = sites.take(KEVIN)
        self.assertIn(ns.MUC_UNIQUE, info.toXml())


class ClientHatsTests(unittest.TestCase):

    def test_a_client_cannot_wear_a_hat(self):
        sites = TwoSites()
        join(sites, KEVIN, "Kevin", ROOM)
        sites.send(WAYNE, "<presence to='%s/Wayne'><x xmlns='%s'/>%s</presence>"
                   % (MROOM, ns.MUC, HAT))
        sites.send(KEVIN, "<presence to='%s/Kevin'>%s</presence>" % (ROOM, HAT))
        join(sites, "keith@raleigh.test/x", "Keith")
        for user in (KEVIN, WAYNE, "keith@raleigh.test/x"):
            for stanza in sites.take(user):
                self.assertNotIn(ns.HATS, stanza.toXml(), user)
