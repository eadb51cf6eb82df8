"""
docs/protocol.md 6 on a master and a mirror wired in memory: splits detected by
bounces and by missed pings, what users see, and the resync at netjoin:
every message exactly once, in timestamp order, everywhere.
"""

from twisted.trial import unittest

from dmuc.monitor.monitor import SPLIT, UP
from dmuc.muc import history
from tests.stanza_helpers import status_codes
from tests.test_dmuc_flows import KEITH, KEVIN, WAYNE, bodies, join, say
from tests.two_site_helpers import MASTER, MIRROR, MROOM, ROOM, TwoSites


def history_bodies(room):
    return [b for e in room.history for b in _bodies(e.xml)]


def occupant_bodies(stanzas):
    """What occupants wrote, without the room's own notices."""
    return bodies(s for s in stanzas if "/" in s.getAttribute("from", ""))


def _bodies(xml):
    from dmuc.xmpp.stanzas import parse_xml
    return bodies([parse_xml(xml)])


class NetsplitTests(unittest.TestCase):

    def setUp(self):
        self.sites = TwoSites()
        join(self.sites, KEVIN, "Kevin", ROOM)
        join(self.sites, WAYNE, "Wayne")
        join(self.sites, KEITH, "Keith")
        say(self.sites, KEVIN, "before", ROOM)
        for user in (KEVIN, WAYNE, KEITH):
            self.sites.take(user)

    def split(self):
        self.sites.cut = True
        self.sites.clock.advance(1)
        say(self.sites, KEVIN, "kevin alone", ROOM)       # bounces: master splits
        self.sites.clock.advance(1)
        say(self.sites, WAYNE, "wayne alone", MROOM)      # bounces: mirror splits
        self.assertEqual(self.sites.master.monitors.monitors[MIRROR].state, SPLIT)
        self.assertEqual(self.sites.mirror.monitors.monitors[MASTER].state, SPLIT)

    def heal(self):
        self.sites.cut = False
        self.sites.advance(30)
        self.assertEqual(self.sites.master.monitors.monitors[MIRROR].state, UP)
        self.assertEqual(self.sites.mirror.monitors.monitors[MASTER].state, UP)

    def test_users_see_the_split(self):
        self.split()
        gone = [s for s in self.sites.take(KEVIN) if s.name == "presence"]
        self.assertEqual(sorted(s["from"] for s in gone), [ROOM + "/Keith", ROOM + "/Wayne"])
        self.assertTrue(all(status_codes(s) == ["333"] for s in gone))
        seen = self.sites.take(KEITH)
        kevin_gone = [s for s in seen if s.name == "presence"]
        self.assertEqual([(s["from"], status_codes(s)) for s in kevin_gone],
                         [(MROOM + "/Kevin", ["333"])])
        # local conversation goes on (split_mode local)
        self.assertIn("wayne alone", bodies(seen))

    def test_resync_delivers_every_message_exactly_once_in_order(self):
        self.split()
        self.sites.clock.advance(1)
        say(self.sites, KEITH, "keith alone", MROOM)
        self.sites.clock.advance(1)
        say(self.sites, KEVIN, "kevin again", ROOM)
        for user in (KEVIN, WAYNE, KEITH):
            self.sites.take(user)
        self.heal()
        expected = ["before", "kevin alone", "wayne alone", "keith alone", "kevin again"]
        master = self.sites.master.rooms[ROOM]
        mirror = self.sites.mirror.rooms[MROOM]
        self.assertEqual(history_bodies(master), expected)
        self.assertEqual(history_bodies(mirror), expected)
        self.assertEqual([history.order_key(e)[0] for e in master.history],
                         [history.order_key(e)[0] for e in mirror.history])
        # users learnt what they missed
        self.assertEqual(sorted(occupant_bodies(self.sites.take(KEVIN))),
                         ["keith alone", "wayne alone"])
        self.assertEqual(sorted(occupant_bodies(self.sites.take(WAYNE))),
                         ["kevin again", "kevin alone"])
        # and everyone is back in everyone's room
        self.assertEqual(sorted(master.occupants), ["Keith", "Kevin", "Wayne"])
        self.assertEqual(sorted(mirror.roster), ["Keith", "Kevin", "Wayne"])
        # a newcomer at each site gets the same history
        fresh = join(self.sites, "carol@fairfax.test/x", "Carol", ROOM)
        self.assertEqual(bodies(fresh), expected)
        fresh = join(self.sites, "dave@raleigh.test/x", "Dave")
        self.assertEqual(bodies(fresh), expected)

    def test_split_detected_by_missed_ping_and_resync_costs_what_changed(self):
        for n in range(30):
            say(self.sites, KEVIN, "old %d" % n, ROOM)
        self.sites.take(WAYNE)
        self.sites.cut = True
        self.sites.advance(100)    # no traffic: the pings go unanswered
        self.assertEqual(self.sites.mirror.monitors.monitors[MASTER].state, SPLIT)
        say(self.sites, KEVIN, "missed", ROOM)
        self.sites.link = []
        self.heal()
        sync = [s for _, s in self.sites.link if s.name == "iq" and s.getAttribute("type") == "result"
                and "history" in s.toXml()]
        self.assertEqual(len(sync), 1)
        answer = next(sync[0].elements())
        messages = list(next(answer.elements("http://jabber.org/protocol/muc", "history")).elements())
        self.assertEqual([str(b) for m in messages for b in m.elements() if b.name == "body"],
                         ["missed"])

    def test_nick_taken_during_the_split(self):
        self.split()
        self.sites.send(KEITH, "<presence type='unavailable' to='%s/Keith'/>" % MROOM)
        join(self.sites, "carol@fairfax.test/x", "Wayne", ROOM)   # takes Wayne's nick
        self.sites.take(WAYNE)
        self.heal()
        removed = [s for s in self.sites.take(WAYNE) if s.name == "presence"
                   and s.getAttribute("type") == "unavailable" and "110" in status_codes(s)]
        self.assertEqual(len(removed), 1)
        self.assertIn("333", status_codes(removed[0]))
        self.assertEqual(self.sites.master.rooms[ROOM].occupants["Wayne"].real_jid.full(),
                         "carol@fairfax.test/x")

    def test_readonly_mode_refuses_groupchat(self):
        self.sites.mirror.split_mode = "readonly"
        self.split()
        self.sites.take(KEITH)
        say(self.sites, KEITH, "can I?", MROOM)
        error, = self.sites.take(KEITH)
        self.assertEqual(error["type"], "error")
        self.assertEqual(next(next(error.elements(None, "error")).elements()).name,
                         "recipient-unavailable")

    def test_one_way_loss_only_the_master_notices(self):
        """The master's pings go unanswered (raleigh>fairfax held), so the
        master drops the mirror's users; the mirror hears the pings and
        notices nothing.  At the netjoin the master pushes the roster
        again, and the mirror joins its users again."""
        self.sites.stall("raleigh>fairfax")
        self.sites.advance(100)
        self.assertEqual(self.sites.master.monitors.monitors[MIRROR].state, SPLIT)
        self.assertEqual(self.sites.mirror.monitors.monitors[MASTER].state, UP)
        say(self.sites, WAYNE, "held back", MROOM)
        self.sites.heal()
        self.sites.advance(30)
        master = self.sites.master.rooms[ROOM]
        self.assertEqual(sorted(master.occupants), ["Keith", "Kevin", "Wayne"])
        self.assertEqual(history_bodies(master), ["before", "held back"])
        self.assertEqual(history_bodies(self.sites.mirror.rooms[MROOM]), ["before", "held back"])
        self.assertEqual(bodies(self.sites.take(KEVIN)).count("held back"), 1)
        self.assertEqual(bodies(self.sites.take(KEITH)).count("held back"), 1)


class SplitNoticeTests(unittest.TestCase):
    """How a user sees a split: told in the room what happened and when it
    is over, never an old status text as the reason for a leave."""

    def setUp(self):
        self.sites = TwoSites()
        join(self.sites, KEVIN, "Kevin", ROOM)
        join(self.sites, WAYNE, "Wayne")
        join(self.sites, KEITH, "Keith")
        self.sites.send(WAYNE, "<presence to='%s/Wayne'><status>at lunch</status></presence>"
                        % MROOM)
        for user in (KEVIN, WAYNE, KEITH):
            self.sites.take(user)
        self.sites.cut = True
        self.sites.clock.advance(1)
        say(self.sites, KEVIN, "kevin alone", ROOM)       # bounces: master splits
        self.sites.clock.advance(1)
        say(self.sites, WAYNE, "wayne alone", MROOM)      # bounces: mirror splits

    def notices(self, stanzas):
        return [bodies([s])[0] for s in stanzas
                if s.name == "message" and "/" not in s["from"] and bodies([s])]

    def test_each_side_is_told_once_who_is_on_the_other(self):
        seen = self.sites.take(KEVIN)
        self.assertEqual(self.notices(seen), [
            "Network split: the link to raleigh.test is down. Keith and Wayne are on the other "
            "side. You can go on talking here; what is written on each side reaches the other "
            "when the link is back."])
        leaves = [s for s in seen if s.name == "presence"]
        self.assertEqual({bodies_of_status(s) for s in leaves},
                         {"Network split: raleigh.test is unreachable"})
        for user in (WAYNE, KEITH):
            notices = self.notices(self.sites.take(user))
            self.assertEqual(len(notices), 1)
            self.assertTrue(notices[0].startswith(
                "Network split: the link to %s is down. Kevin is on the other side." % MASTER))

    def test_a_newcomer_during_the_split_is_told_why_the_room_looks_empty(self):
        seen = join(self.sites, "dave@raleigh.test/x", "Dave")
        self.assertEqual(seen[-2].name, "message")
        self.assertIsNotNone(next(seen[-2].elements(None, "subject"), None))
        self.assertEqual(len(self.notices(seen[-1:])), 1)

    def test_netjoin_is_told_once_and_notices_are_not_history(self):
        for user in (KEVIN, WAYNE, KEITH):
            self.sites.take(user)
        self.sites.cut = False
        self.sites.advance(30)
        self.assertEqual(self.notices(self.sites.take(KEVIN)),
                         ["Netjoin: the link to raleigh.test is back; the room is whole again."])
        self.assertEqual(self.notices(self.sites.take(WAYNE)),
                         ["Netjoin: the link to %s is back; the room is whole again." % MASTER])
        for user, room in (("carol@fairfax.test/x", ROOM), ("dave@raleigh.test/x", MROOM)):
            self.assertEqual(self.notices(join(self.sites, user, user[0].upper(), room)), [])


def bodies_of_status(presence):
    return "".join(str(s) for s in presence.elements(None, "status"))


class StopNoticeTests(unittest.TestCase):
    """A master that says it stops is not a broken link: mirror users are
    told the room's service stopped, and that it is back."""

    def test_told_the_service_stopped_and_is_back(self):
        sites = TwoSites()
        join(sites, KEVIN, "Kevin", ROOM)
        join(sites, WAYNE, "Wayne")
        sites.take(WAYNE)
        sites.stop_master()
        seen = sites.take(WAYNE)
        notices = [bodies([s])[0] for s in seen if s.name == "message" and "/" not in s["from"]]
        self.assertEqual(len(notices), 1)
        self.assertTrue(notices[0].startswith(
            "The room's service %s has stopped (a restart, most likely)." % MASTER), notices)
        kevin_gone, = [s for s in seen if s.name == "presence"]
        self.assertEqual(bodies_of_status(kevin_gone), "%s has stopped" % MASTER)
        sites.start_master()
        sites.advance(30)
        notices = [bodies([s])[0] for s in sites.take(WAYNE)
                   if s.name == "message" and "/" not in s["from"] and bodies([s])]
        self.assertEqual(notices, ["The room's service %s is back; the room is whole again."
                                   % MASTER])


class FireAndForgetSplitTests(unittest.TestCase):
    """A fire-and-forget message is shown at once and never answered: a
    split after it must not show it again, nor lose it."""

    def setUp(self):
        self.sites = TwoSites(fire_and_forget=True)
        join(self.sites, KEVIN, "Kevin", ROOM)
        join(self.sites, WAYNE, "Wayne")
        join(self.sites, KEITH, "Keith")
        say(self.sites, WAYNE, "said before the split", MROOM)
        for user in (KEVIN, WAYNE, KEITH):
            self.sites.take(user)

    def split_and_heal(self):
        self.sites.cut = True
        self.sites.advance(100)
        self.assertEqual(self.sites.mirror.monitors.monitors[MASTER].state, SPLIT)
        self.sites.cut = False
        self.sites.advance(30)
        self.assertEqual(self.sites.mirror.monitors.monitors[MASTER].state, UP)

    def test_not_shown_again_at_the_split(self):
        self.split_and_heal()
        for user in (WAYNE, KEITH, KEVIN):
            self.assertEqual(occupant_bodies(self.sites.take(user)), [])
        self.assertEqual(history_bodies(self.sites.master.rooms[ROOM]),
                         ["said before the split"])
        self.assertEqual(history_bodies(self.sites.mirror.rooms[MROOM]),
                         ["said before the split"])

    def test_readonly_mode_does_not_refuse_it_late(self):
        self.sites.mirror.split_mode = "readonly"
        self.split_and_heal()
        self.assertEqual([s for s in self.sites.take(WAYNE) if s.getAttribute("type") == "error"],
                         [])

    def test_lost_on_the_way_it_still_arrives(self):
        # The link drops the message itself: the mirror kept it and sends
        # it at the netjoin, once.
        self.sites.cut = True
        say(self.sites, WAYNE, "lost on the way", MROOM)
        self.sites.advance(100)
        self.sites.cut = False
        self.sites.advance(30)
        self.assertEqual(history_bodies(self.sites.master.rooms[ROOM]),
                         ["said before the split", "lost on the way"])
        self.assertEqual(occupant_bodies(self.sites.take(KEITH)).count("lost on the way"), 1)
        self.assertEqual(occupant_bodies(self.sites.take(KEVIN)), ["lost on the way"])

    def test_long_delivered_it_is_not_sent_again(self):
        # Minutes after it went up, a split costs the link nothing for it.
        self.sites.advance(200)
        self.sites.link_count()
        self.split_and_heal()
        self.assertFalse(any("said before the split" in s.toXml() for d, s in self.sites.link
                             if d == "raleigh>fairfax"))
        self.assertEqual(history_bodies(self.sites.master.rooms[ROOM]),
                         ["said before the split"])


class SubjectTests(unittest.TestCase):
    """The subject a mirror's users see is the master room's, from the
    first join on, and after a split in which it changed."""

    def subject_of(self, stanzas):
        return [(s["from"], str(s.subject)) for s in stanzas
                if s.name == "message" and s.subject is not None and s.body is None]

    def test_set_before_the_mirror_came(self):
        for compact in (True, False):
            sites = TwoSites(compact=compact)
            join(sites, KEVIN, "Kevin", ROOM)
            sites.send(KEVIN, "<message to='%s' type='groupchat'><subject>Weekly sync</subject>"
                       "</message>" % ROOM)
            sites.take(KEVIN)
            self.assertEqual(self.subject_of(join(sites, WAYNE, "Wayne")),
                             [(MROOM + "/Kevin", "Weekly sync")])

    def test_changed_during_a_split(self):
        sites = TwoSites()
        join(sites, KEVIN, "Kevin", ROOM)
        join(sites, WAYNE, "Wayne")
        sites.take(WAYNE)
        sites.cut = True
        sites.advance(100)
        sites.send(KEVIN, "<message to='%s' type='groupchat'><subject>Moved to Friday</subject>"
                   "</message>" % ROOM)
        sites.cut = False
        sites.advance(30)
        self.assertEqual(self.subject_of(sites.take(WAYNE)),
                         [(MROOM + "/Kevin", "Moved to Friday")])
        self.assertEqual(self.subject_of(join(sites, KEITH, "Keith")),
                         [(MROOM + "/Kevin", "Moved to Friday")])
