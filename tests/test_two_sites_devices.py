"""
Two devices of one raleigh user in a room, through the mirror, over real
Prosody S2S: both share the occupant as at Prosody, neither knocks the
other out, and the second device costs the link nothing
(docs/decisions.md, "Several devices of one user, one nick").
"""

from tests.harness.client import connect
from tests.harness.xml import NS, find, matcher, status_codes
from tests.test_two_sites import MROOM, ROOM, TwoSiteTestCase, body


def unavailable(stanzas):
    return [s for s in stanzas if s.get("type") == "unavailable"]


class TwoDevicesThroughTheMirrorTests(TwoSiteTestCase):

    def test_two_devices_share_the_occupant(self):
        kevin = self.fairfax_user("kevin")
        laptop = self.raleigh_user("wayne")
        phone = connect(self, self.sites.raleigh, "wayne", resource="phone")
        self.join(kevin, ROOM, "Kevin")
        self.join(laptop, MROOM, "Wayne")
        self.settle(kevin, laptop, phone)
        kevin.take_all()
        laptop.take_all()
        self.sites.relay.reset()

        own = self.join(phone, MROOM, "Wayne")
        self.assertEqual(find(own, "muc_user:x/muc_user:item").get("jid"),
                         "wayne@raleigh.test/phone")
        self.settle(kevin, laptop, phone)
        self.assertEqual(unavailable(laptop.take_all() + kevin.take_all()), [])
        self.assertEqual(self.link(), [])   # the master need not know

        kevin.send("<message to='%s' type='groupchat'><body>to both</body></message>" % ROOM)
        for device in (laptop, phone):
            self.assertEqual(body(device.wait_for(matcher("message", type="groupchat"),
                                                  timeout=10)), "to both")
        phone.send("<message to='%s' type='groupchat'><body>from the phone</body></message>"
                   % MROOM)
        message = kevin.wait_for(matcher("message", from_=ROOM + "/Wayne"), timeout=10)
        self.assertEqual(body(message), "from the phone")
        for device in (laptop, phone):
            echo = device.wait_for(matcher("message", from_=MROOM + "/Wayne"), timeout=10)
            self.assertEqual(body(echo), "from the phone")
        kevin.send("<message to='%s/Wayne' type='chat'><body>psst</body></message>" % ROOM)
        for device in (laptop, phone):
            pm = device.wait_for(matcher("message", type="chat"), timeout=10)
            self.assertEqual((pm.get("from"), body(pm)), (MROOM + "/Kevin", "psst"))

        # Dino's self-ping from either device: still joined.
        for device in (laptop, phone):
            answer = device.iq("<iq type='get' to='%s/Wayne'><ping xmlns='%s'/></iq>"
                               % (MROOM, NS.PING), timeout=10)
            self.assertEqual(answer.get("type"), "result")

        # The laptop leaves: the phone stays, and fairfax now sees the phone.
        laptop.send("<presence type='unavailable' to='%s/Wayne'/>" % MROOM)
        gone = laptop.wait_for(lambda s: 110 in status_codes(s), timeout=10)
        self.assertEqual(gone.get("type"), "unavailable")
        seen = kevin.wait_for(matcher("presence", from_=ROOM + "/Wayne"), timeout=10)
        self.assertIsNone(seen.get("type"))
        self.assertEqual(find(seen, "muc_user:x/muc_user:item").get("jid"),
                         "wayne@raleigh.test/phone")
        self.settle(kevin, laptop, phone)
        self.assertEqual(unavailable(phone.take_all() + kevin.take_all()), [])
        kevin.send("<message to='%s' type='groupchat'><body>still there?</body></message>" % ROOM)
        self.assertEqual(body(phone.wait_for(matcher("message", type="groupchat"), timeout=10)),
                         "still there?")
