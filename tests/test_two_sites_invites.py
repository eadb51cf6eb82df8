"""
Invitations and joins across two real sites: a fairfax owner invites a
raleigh user through the room; the raleigh user's client joins what the
invitation names (the room that sent it, as every client does) and is in
the mirror room.  A fairfax user joining the mirror room is redirected to
the master room.
"""

from tests.harness.xml import NS, error_condition, find, matcher
from tests.test_two_sites import MROOM, ROOM, TwoSiteTestCase, join_xml


def is_invitation(stanza):
    return find(stanza, "muc_user:x/muc_user:invite") is not None


class InvitationTwoSiteTests(TwoSiteTestCase):

    def test_invited_raleigh_user_joins_the_mirror_room(self):
        kevin = self.fairfax_user("kevin")
        wayne = self.raleigh_user("wayne")
        # Available, so that its server delivers a message to its bare JID.
        wayne.send_initial_presence()
        self.join(kevin, ROOM, "Kevin")
        kevin.send("<message to='%s'><x xmlns='%s'><invite to='wayne@raleigh.test'>"
                   "<reason>come in</reason></invite></x></message>" % (ROOM, NS.MUC_USER))
        invitation = wayne.wait_for(is_invitation, timeout=10)
        self.assertEqual(invitation.get("from"), MROOM)
        conference = find(invitation, "{jabber:x:conference}x")
        self.assertEqual(conference.get("jid"), MROOM)
        self.assertEqual(find(invitation, "muc_user:x/muc_user:invite/muc_user:reason").text,
                         "come in")
        # Wayne's client joins the room that sent the invitation.
        own = self.join(wayne, invitation.get("from"), "Wayne")
        self.assertEqual(own.get("from"), MROOM + "/Wayne")
        seen = kevin.wait_for(matcher("presence", from_=ROOM + "/Wayne"), timeout=10)
        self.assertIsNone(seen.get("type"))

    def test_fairfax_user_joining_the_mirror_room_is_redirected(self):
        kevin = self.fairfax_user("kevin")
        frank = self.fairfax_user("frank")
        self.join(kevin, ROOM, "Kevin")
        frank.send(join_xml(MROOM, "Frank"))
        error = frank.wait_for(matcher("presence", type="error"), timeout=10)
        self.assertEqual(error.get("from"), MROOM + "/Frank")
        self.assertEqual(error_condition(error), ("modify", "redirect"))
        self.assertEqual(find(error, "error/stanzas:redirect").text, "xmpp:%s?join" % ROOM)
        # Following it lands in the master room.
        own = self.join(frank, ROOM, "Frank")
        self.assertEqual(own.get("from"), ROOM + "/Frank")
