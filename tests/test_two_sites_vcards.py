"""
Occupant vCards and avatars on two real sites (issue, defect 7): each user
publishes a vCard on its own server (Prosody's mod_vcard), and users of
both sites fetch each other's through the room, as with Prosody's mod_muc;
avatar hashes (XEP-0153) in presence reach the other site.
"""

from tests.harness.xml import find
from tests.test_two_sites import MROOM, ROOM, TwoSiteTestCase

VCARD = "vcard-temp"
UPDATE = "vcard-temp:x:update"
PHOTO = "01b87fcd030b72895ff8e88db57ec525450f000d"


def full_name(iq):
    card = iq.find("{%s}vCard" % VCARD)
    fn = card.find("{%s}FN" % VCARD) if card is not None else None
    return fn.text if fn is not None else None


class OccupantVcardTwoSiteTests(TwoSiteTestCase):

    def publish_vcard(self, client, name):
        # No 'to': the user's own account, on its own server.
        reply = client.iq("<iq type='set'><vCard xmlns='%s'><FN>%s</FN></vCard></iq>"
                          % (VCARD, name), timeout=10)
        self.assertEqual(reply.get("type"), "result")

    def fetch_vcard(self, client, occupant_jid):
        reply = client.iq("<iq type='get' to='%s'><vCard xmlns='%s'/></iq>"
                          % (occupant_jid, VCARD), timeout=10)
        return reply.get("type"), reply.get("from"), full_name(reply)

    def test_users_of_both_sites_fetch_occupant_vcards(self):
        kevin, wayne, keith = self.three_in_the_room()
        names = {"Kevin": "Kevin of Fairfax", "Wayne": "Wayne of Raleigh",
                 "Keith": "Keith of Raleigh"}
        for client, nick in ((kevin, "Kevin"), (wayne, "Wayne"), (keith, "Keith")):
            self.publish_vcard(client, names[nick])
        for nick in ("Kevin", "Keith"):
            self.assertEqual(self.fetch_vcard(wayne, "%s/%s" % (MROOM, nick)),
                             ("result", "%s/%s" % (MROOM, nick), names[nick]))
        self.assertEqual(self.fetch_vcard(kevin, ROOM + "/Wayne"),
                         ("result", ROOM + "/Wayne", names["Wayne"]))

    def test_avatar_hashes_reach_the_other_site(self):
        kevin, wayne, keith = self.three_in_the_room()
        avatar = "<x xmlns='%s'><photo>%s</photo></x>" % (UPDATE, PHOTO)
        for client, room, nick, viewer, seen_as in (
                (wayne, MROOM, "Wayne", kevin, ROOM + "/Wayne"),
                (kevin, ROOM, "Kevin", keith, MROOM + "/Kevin")):
            client.send("<presence to='%s/%s'><show>away</show>%s</presence>"
                        % (room, nick, avatar))
            presence = viewer.wait_for(
                lambda s: (s.tag.endswith("presence") and s.get("from") == seen_as
                           and find(s, "show") is not None), timeout=10)
            photo = presence.find("{%s}x/{%s}photo" % (UPDATE, UPDATE))
            self.assertEqual(photo.text if photo is not None else None, PHOTO)
