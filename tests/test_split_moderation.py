"""
Moderation during a split (issue 13): a ban or kick the master made while
the link was down holds at the netjoin, the user is told which (301, 307),
and every site's history agrees on what the room kept.
"""

from twisted.trial import unittest

from tests.stanza_helpers import status_codes
from tests.test_dmuc_flows import KEITH, KEVIN, WAYNE, conversation, join, say
from tests.test_netsplit import _bodies, history_bodies
from tests.two_site_helpers import MROOM, ROOM, TwoSites

ADMIN = "http://jabber.org/protocol/muc#admin"


def removal(stanzas):
    """The unavailable self-presence (110) a removed user got."""
    gone = [s for s in stanzas if s.name == "presence" and s.getAttribute("type") == "unavailable"
            and "110" in status_codes(s)]
    return gone


def status_text(presence):
    return [str(c) for c in presence.elements() if c.name == "status"]


class SplitModerationTests(unittest.TestCase):

    def setUp(self):
        self.sites = conversation()
        say(self.sites, KEVIN, "before", ROOM)
        for user in (KEVIN, WAYNE, KEITH):
            self.sites.take(user)

    def split(self):
        self.sites.cut = True
        self.sites.advance(100)

    def heal(self):
        self.sites.cut = False
        self.sites.advance(60)

    def test_a_ban_during_the_split_is_a_ban_at_the_netjoin(self):
        self.split()
        say(self.sites, WAYNE, "wayne in the split", MROOM)
        self.sites.send(KEVIN, "<iq type='set' id='ban' to='%s'><query xmlns='%s'><item "
                        "affiliation='outcast' jid='wayne@raleigh.test'><reason>spam</reason>"
                        "</item></query></iq>" % (ROOM, ADMIN))
        self.sites.take(WAYNE)
        self.heal()
        (gone,) = removal(self.sites.take(WAYNE))
        self.assertIn("301", status_codes(gone))
        self.assertNotIn("333", status_codes(gone))
        self.assertEqual(status_text(gone), ["You were banned from the room during a "
                                             "network split"])
        keith_saw = [s for s in self.sites.take(KEITH) if s.name == "presence"
                     and s.getAttribute("from") == MROOM + "/Wayne"]
        self.assertIn("301", status_codes(keith_saw[-1]))
        master, mirror = self.sites.master.rooms[ROOM], self.sites.mirror.rooms[MROOM]
        self.assertNotIn("Wayne", master.occupants)
        self.assertNotIn("Wayne", mirror.roster)
        # The room kept nothing of a banned author's: neither does the mirror.
        self.assertEqual(history_bodies(master), ["before"])
        self.assertEqual(history_bodies(mirror), history_bodies(master))
        # And he cannot come back.
        self.assertEqual([s.getAttribute("type") for s in join(self.sites, WAYNE, "Wayne")],
                         ["error"])

    def test_a_kick_the_mirror_never_heard_of_holds_at_the_netjoin(self):
        # The link fails; before the master notices, a moderator kicks a
        # mirror user: the 307 is lost with the link.
        self.sites.cut = True
        self.sites.send(KEVIN, "<iq type='set' id='kick' to='%s'><query xmlns='%s'><item "
                        "nick='Wayne' role='none'><reason>calm down</reason></item></query>"
                        "</iq>" % (ROOM, ADMIN))
        self.sites.advance(100)
        self.assertIn("Wayne", self.sites.mirror.rooms[MROOM].roster)
        self.sites.take(WAYNE), self.sites.take(KEITH)
        self.heal()
        (gone,) = removal(self.sites.take(WAYNE))
        self.assertIn("307", status_codes(gone))
        self.assertIn("calm down", gone.toXml())
        self.assertNotIn("Wayne", self.sites.master.rooms[ROOM].occupants)
        self.assertNotIn("Wayne", self.sites.mirror.rooms[MROOM].roster)
        # A kick is no ban: he may join again, and a later split brings
        # him back as any other user.
        join(self.sites, WAYNE, "Wayne")
        self.assertIn("Wayne", self.sites.master.rooms[ROOM].occupants)
        self.split()
        self.heal()
        self.assertIn("Wayne", self.sites.master.rooms[ROOM].occupants)
        self.assertEqual(removal(self.sites.take(WAYNE)), [])


class SplitDuringFirstSyncTests(unittest.TestCase):
    """The link fails while the master syncs a mirror for its first user
    (issue 13: the master still counted the mirror as synced while the
    mirror had dropped its copy, and no join through it ever completed)."""

    def first_join_fails(self):
        """Wayne's join is the mirror's first: the link fails right as the
        master has sent the config and roster (lost)."""
        from tests.test_dmuc_flows import MUC_X
        sites = TwoSites()
        join(sites, KEVIN, "Kevin", ROOM)
        say(sites, KEVIN, "before", ROOM)
        room = sites.master.rooms[ROOM]
        sync = room._sync_mirror

        def sync_then_fail(*args, **kwargs):
            sync(*args, **kwargs)
            sites.cut = True
        room._sync_mirror = sync_then_fail
        sites.send(WAYNE, "<presence to='%s/Wayne'>%s</presence>" % (MROOM, MUC_X % ""))
        room._sync_mirror = sync
        return sites

    def assert_keith_joins(self, sites):
        joined = join(sites, KEITH, "Keith")
        self.assertIn("110", [c for s in joined if s.name == "presence" for c in status_codes(s)])
        self.assertIn("before", [str(b) for s in joined for b in s.elements(None, "body")])
        self.assertIn("Keith", sites.master.rooms[ROOM].occupants)

    def test_the_room_can_be_joined_through_the_mirror_after_the_netjoin(self):
        sites = self.first_join_fails()
        sites.advance(100)
        sites.take(WAYNE)
        sites.cut = False
        sites.advance(60)
        self.assert_keith_joins(sites)

    def test_and_after_a_mirror_restart_too(self):
        sites = self.first_join_fails()
        sites.advance(5)
        sites.send(WAYNE, "<presence to='%s/Wayne' type='unavailable'/>" % MROOM)
        sites.restart_mirror(crash=True)
        sites.advance(100)
        sites.cut = False
        sites.advance(60)
        sites.take(WAYNE)
        self.assert_keith_joins(sites)


class NickClashTests(unittest.TestCase):
    """Two users take the same nick, one at each site, during a split
    (issue 13: the master then showed the mirror user's split messages
    under the nick of its own occupant, one person's words as another's)."""

    def test_the_mirror_users_split_messages_keep_apart(self):
        sites = conversation()
        sites.cut = True
        sites.advance(100)
        say(sites, WAYNE, "wayne's own words", MROOM)
        join(sites, "carol@fairfax.test/x", "Wayne", ROOM)     # takes the nick
        say(sites, "carol@fairfax.test/x", "carol's words", ROOM)
        for user in (KEVIN, WAYNE, KEITH, "carol@fairfax.test/x"):
            sites.take(user)
        sites.cut = False
        sites.advance(60)

        def authors(room):
            return [(e.nick, b) for e in room.history for b in _bodies(e.xml)]
        master = authors(sites.master.rooms[ROOM])
        self.assertIn(("Wayne", "carol's words"), master)
        self.assertIn(("Wayne (split)", "wayne's own words"), master)
        self.assertEqual(sorted(authors(sites.mirror.rooms[MROOM])), sorted(master))
        # Kevin was shown who wrote it.
        shown = [s["from"] for s in sites.take(KEVIN) if s.name == "message"
                 and "wayne's own words" in s.toXml()]
        self.assertEqual(shown, [ROOM + "/Wayne (split)"])
