"""
The mirror room's roster: its index of our users' occupants (found by a
stanza's sender without a scan of the room) kept right through every flow
that changes the roster, and its saves to storage (coalesced, flushed at
stop, restored the same after a restart).
"""

import json

from twisted.internet import defer
from twisted.logger import LogLevel
from twisted.trial import unittest

from dmuc.config import XMPPConfig
from dmuc.mirror.room import RemoteOccupant, Roster
from dmuc.storage import StorageError
from dmuc.storage.memory import MemoryRoomStore
from dmuc.xmpp.component import SAVE_DELAY
from dmuc.xmpp.service import ComponentService
from dmuc.xmpp import namespaces as ns
from dmuc.xmpp.stanzas import parse_jid, parse_xml
from tests.stanza_helpers import error_condition, logged
from tests.test_dmuc_flows import KEITH, KEVIN, WAYNE, bodies, join, say
from tests import test_netsplit
from tests.two_site_helpers import MIRROR, MROOM, ROOM, TwoSites

CAROL = "carol@raleigh.test/tablet"


def scan(room, user):
    """What the index must agree with: the occupant found by a scan."""
    return next((o for o in room.roster.values()
                 if o.user is not None and o.user.full() == user), None)


class RosterIndexTests(unittest.TestCase):
    """L{Roster} on its own: every dict operation keeps the index."""

    def occupant(self, nick, user=None):
        return RemoteOccupant(nick, "none", "participant",
                              user=parse_jid(user) if user else None)

    def test_every_change_keeps_the_index(self):
        roster = Roster()
        wayne, keith = self.occupant("Wayne", WAYNE), self.occupant("Keith", KEITH)
        roster["Wayne"] = wayne
        roster.setdefault("Keith", keith)
        roster.update({"Kevin": self.occupant("Kevin")})
        self.assertIs(roster.of_user(parse_jid(WAYNE)), wayne)
        self.assertIs(roster.of_user(parse_jid(KEITH)), keith)
        self.assertIsNone(roster.of_user(parse_jid(KEVIN)))
        del roster["Wayne"]
        self.assertIsNone(roster.of_user(parse_jid(WAYNE)))
        self.assertIs(roster.pop("Keith"), keith)
        self.assertIsNone(roster.pop("Keith", None))
        self.assertFalse(roster.has_users())
        roster["Carol"] = self.occupant("Carol", CAROL)
        roster["Carol"] = self.occupant("Carol")   # replaced by a remote occupant
        self.assertIsNone(roster.of_user(parse_jid(CAROL)))
        roster["Carol"] = carol = self.occupant("Carol", CAROL)
        roster.clear()
        self.assertIsNone(roster.of_user(parse_jid(CAROL)))
        roster["Carol"] = carol
        self.assertEqual(roster.popitem(), ("Carol", carol))
        self.assertFalse(roster.has_users())

    def test_assigned_roster_is_indexed(self):
        sites = TwoSites()
        join(sites, WAYNE, "Wayne")
        room = sites.mirror.rooms[MROOM]
        wayne = room.roster["Wayne"]
        room.roster = {"Wayne": wayne}
        self.assertIsInstance(room.roster, Roster)
        self.assertIs(room.occupant_of(parse_jid(WAYNE)), wayne)


class IndexThroughFlowsTests(unittest.TestCase):
    """
    After each flow, a stanza from each user of this site still in the
    room reaches the master as from its occupant, and one from a user who
    left is refused; the index agrees with a scan of the roster.
    """

    users = (WAYNE, KEITH, CAROL)

    def setUp(self):
        self.sites = TwoSites()
        join(self.sites, KEVIN, "Kevin", ROOM)
        join(self.sites, WAYNE, "Wayne")
        join(self.sites, KEITH, "Keith")
        join(self.sites, CAROL, "Carol")

    @property
    def room(self):
        return self.sites.mirror.rooms[MROOM]

    def assert_index(self, present, gone=()):
        for user in self.users:
            found = self.room.occupant_of(parse_jid(user))
            self.assertIs(found, scan(self.room, user))
            self.assertEqual(found is not None, user in present, user)
        for user, nick in present.items():
            self.sites.take(user)
            self.sites.link = []
            self.sites.send(user, "<message to='%s' type='groupchat'><body>hi</body></message>"
                            % MROOM)
            if self.room.split:
                sent = [s for s in self.sites.take(user) if s.name == "message"]
                self.assertEqual(sent[-1]["from"], MROOM + "/" + nick)
                self.assertNotEqual(sent[-1].getAttribute("type"), "error")
            else:
                up, = [s for d, s in self.sites.link
                       if d == "raleigh>fairfax" and s.name == "message"]
                # From the mirror service's JID where the master said it
                # reads that (docs/protocol.md 12), from the occupant JID
                # otherwise (a restarted mirror that has not asked yet).
                self.assertIn(up["from"], (MIRROR + "/" + nick, MROOM + "/" + nick))
        for user in gone:
            self.sites.take(user)
            say(self.sites, user, "still here?", MROOM)
            self.assertEqual(error_condition(self.sites.take(user)[0]),
                             ("cancel", "not-acceptable"))

    def test_joins(self):
        self.assert_index({WAYNE: "Wayne", KEITH: "Keith", CAROL: "Carol"})

    def test_leave(self):
        self.sites.send(KEITH, "<presence type='unavailable' to='%s/Keith'/>" % MROOM)
        self.assert_index({WAYNE: "Wayne", CAROL: "Carol"}, gone=[KEITH])

    def test_nick_change_and_status(self):
        self.sites.send(WAYNE, "<presence to='%s/Bruce'/>" % MROOM)
        self.assertEqual(self.sites.take(WAYNE)[-1]["from"], MROOM + "/Bruce")
        self.sites.send(KEITH, "<presence to='%s/Keith'><show>away</show></presence>" % MROOM)
        self.assert_index({WAYNE: "Bruce", KEITH: "Keith", CAROL: "Carol"})

    def test_refused_nick_change(self):
        self.sites.send(WAYNE, "<presence to='%s/Keith'/>" % MROOM)
        self.assertEqual(error_condition(self.sites.take(WAYNE)[-1]), ("cancel", "conflict"))
        self.assert_index({WAYNE: "Wayne", KEITH: "Keith", CAROL: "Carol"})

    def test_leave_and_join_again_with_another_nick(self):
        self.sites.send(WAYNE, "<presence type='unavailable' to='%s/Wayne'/>" % MROOM)
        join(self.sites, WAYNE, "Bruce")
        self.assert_index({WAYNE: "Bruce", KEITH: "Keith", CAROL: "Carol"})

    def test_kick(self):
        self.sites.send(KEVIN, "<iq type='set' id='k' to='%s'><query xmlns='%s'><item nick='Wayne' "
                        "role='none'/></query></iq>" % (ROOM, ns.MUC_ADMIN))
        self.assert_index({KEITH: "Keith", CAROL: "Carol"}, gone=[WAYNE])

    def test_split_leave_join_and_resync(self):
        test_netsplit.NetsplitTests.split(self)
        self.assert_index({WAYNE: "Wayne", KEITH: "Keith", CAROL: "Carol"})
        self.sites.send(KEITH, "<presence type='unavailable' to='%s/Keith'/>" % MROOM)
        join(self.sites, KEITH, "Keithy")                       # served by the mirror
        self.sites.send(CAROL, "<presence type='unavailable' to='%s/Carol'/>" % MROOM)
        join(self.sites, "carol@fairfax.test/x", "Wayne", ROOM)  # takes Wayne's nick
        self.assert_index({WAYNE: "Wayne", KEITH: "Keithy"}, gone=[CAROL])
        test_netsplit.NetsplitTests.heal(self)
        # Wayne lost his nick to the master's occupant at the netjoin.
        self.assert_index({KEITH: "Keithy"}, gone=[WAYNE, CAROL])

    def test_one_way_loss_roster_push(self):
        self.sites.stall("raleigh>fairfax")
        self.sites.advance(100)
        self.sites.heal()
        self.sites.advance(30)
        self.assert_index({WAYNE: "Wayne", KEITH: "Keith", CAROL: "Carol"})

    def test_restart(self):
        self.sites.send(CAROL, "<presence type='unavailable' to='%s/Carol'/>" % MROOM)
        self.sites.restart_mirror()
        self.assert_index({WAYNE: "Wayne", KEITH: "Keith"}, gone=[CAROL])


class CountingStore(MemoryRoomStore):
    """A memory store that counts room saves, and fails them on demand."""

    fail = False

    def __init__(self):
        MemoryRoomStore.__init__(self)
        self.saves = 0

    def save_room(self, record):
        self.saves += 1
        if self.fail:
            return defer.fail(StorageError("disk full"))
        return MemoryRoomStore.save_room(self, record)


def stored_roster(store):
    records = []
    store.load_rooms().addCallback(records.extend)
    record, = [r for r in records if r.jid == MROOM]
    return record.config["roster"]


class SaveTests(unittest.TestCase):
    """The room copy is saved once per room and SAVE_DELAY, and nothing
    is lost at a stop or a restart."""

    def setUp(self):
        self.sites = TwoSites()
        self.store = self.sites.mirror.store = CountingStore()
        join(self.sites, KEVIN, "Kevin", ROOM)
        join(self.sites, WAYNE, "Wayne")
        join(self.sites, KEITH, "Keith")
        self.sites.clock.advance(SAVE_DELAY)

    @property
    def room(self):
        return self.sites.mirror.rooms[MROOM]

    def status_changes(self, count):
        for n in range(count):
            user, nick = ((WAYNE, "Wayne"), (KEITH, "Keith"), (KEVIN, "Kevin"))[n % 3]
            room = MROOM if user != KEVIN else ROOM
            self.sites.send(user, "<presence to='%s/%s'><status>%d</status></presence>"
                            % (room, nick, n))

    def test_saves_of_a_burst_are_one_with_the_final_state(self):
        saves = self.store.saves
        self.status_changes(30)
        self.assertEqual(self.store.saves, saves)   # none yet
        self.sites.clock.advance(SAVE_DELAY)
        self.assertEqual(self.store.saves, saves + 1)
        self.assertEqual(stored_roster(self.store), self.room.to_record().config["roster"])
        statuses = {item["nick"]: item["presence"] for item in stored_roster(self.store)}
        self.assertIn("<status>27</status>", statuses["Wayne"])
        self.assertIn("<status>28</status>", statuses["Keith"])
        self.assertIn("<status>29</status>", statuses["Kevin"])
        self.sites.clock.advance(10 * SAVE_DELAY)
        self.assertEqual(self.store.saves, saves + 1)   # nothing new: no save

    def test_restart_restores_the_same_roster(self):
        self.status_changes(10)
        self.sites.send(KEITH, "<presence type='unavailable' to='%s/Keith'/>" % MROOM)
        join(self.sites, CAROL, "Carol")
        before = self.room.to_record().config
        self.sites.restart_mirror()   # stops the old one first, without time passing
        after = self.room.to_record().config
        self.assertEqual(after["roster"], before["roster"])
        self.assertEqual(after, before)
        self.assertEqual(self.room.occupant_of(parse_jid(CAROL)).nick, "Carol")
        self.assertIsNone(self.room.occupant_of(parse_jid(KEITH)))

    def test_service_stop_flushes(self):
        """ComponentService.stopService writes pending saves before it
        closes the store."""
        mirror = self.sites.mirror
        service = ComponentService("mirror", XMPPConfig(), MIRROR, "s",
                                   ":memory:", lambda _: mirror, self.sites.clock)
        service.store = self.store
        self.status_changes(4)
        saves = self.store.saves
        service.stopService()
        self.assertEqual(self.store.saves, saves + 1)
        self.assertEqual(stored_roster(self.store), self.room.to_record().config["roster"])

    def test_deleted_room_stays_deleted(self):
        """The last user leaves (the copy is deleted): a save pending for
        it does not bring it back."""
        self.status_changes(2)
        for user, nick in ((WAYNE, "Wayne"), (KEITH, "Keith")):
            self.sites.send(user, "<presence type='unavailable' to='%s/%s'/>" % (MROOM, nick))
        self.assertNotIn(MROOM, self.sites.mirror.rooms)
        self.sites.clock.advance(SAVE_DELAY)
        self.sites.mirror.flush()
        records = []
        self.store.load_rooms().addCallback(records.extend)
        self.assertEqual(records, [])

    def test_failed_save_is_logged_with_the_room(self):
        errors = logged(self, LogLevel.critical)
        self.store.fail = True
        self.status_changes(3)
        self.sites.clock.advance(SAVE_DELAY)
        self.assertEqual(errors, [MROOM + ": could not save the room copy in storage"])
        self.assertEqual(len(self.flushLoggedErrors(StorageError)), 1)


class CrashTests(unittest.TestCase):
    """What a crash of the mirror may not lose: who of its users is in
    which room (else they are left out of the room without knowing), and
    what they wrote during a split.  Status changes may wait."""

    def setUp(self):
        self.sites = TwoSites()
        self.join = join
        join(self.sites, KEVIN, "Kevin", ROOM)

    def copy(self):
        room = self.sites.mirror.rooms.get(MROOM)
        return sorted(room.roster) if room is not None else None

    def test_a_join_survives_a_crash_at_once(self):
        self.join(self.sites, WAYNE, "Wayne")
        self.sites.restart_mirror(crash=True)
        self.assertEqual(self.copy(), ["Kevin", "Wayne"])

    def test_a_leave_survives_a_crash_at_once(self):
        self.join(self.sites, WAYNE, "Wayne")
        self.join(self.sites, KEITH, "Keith")
        self.sites.send(KEITH, "<presence type='unavailable' to='%s/Keith'/>" % MROOM)
        self.sites.restart_mirror(crash=True)
        self.assertEqual(self.copy(), ["Kevin", "Wayne"])

    def test_split_messages_survive_a_crash_at_once(self):
        self.join(self.sites, WAYNE, "Wayne")
        self.sites.cut = True
        say(self.sites, WAYNE, "during", MROOM)     # bounces: the mirror splits
        say(self.sites, WAYNE, "still during", MROOM)
        self.sites.restart_mirror(crash=True)
        room = self.sites.mirror.rooms[MROOM]
        self.assertTrue(room.split)
        self.assertEqual(len(room.split_messages), 2)

    def test_split_messages_an_older_dmuc_kept_in_the_record_move_to_the_outbox(self):
        self.join(self.sites, WAYNE, "Wayne")
        self.sites.cut = True
        say(self.sites, WAYNE, "during", MROOM)
        self.sites.mirror.flush()
        store = self.sites.mirror.store
        # What an older dmuc wrote: the message in the record, no outbox.
        record = store._rooms[MROOM]
        config = json.loads(record.config)
        config["split_messages"] = [vars(m) for m in store._outbox.pop(MROOM)]
        record.config = json.dumps(config)
        self.sites.restart_mirror(crash=True)
        self.sites.mirror.flush()
        self.assertEqual([m.nick for m in store._outbox[MROOM]], ["Wayne"])
        self.assertNotIn("split_messages", json.loads(store._rooms[MROOM].config))
        self.sites.cut = False
        self.sites.advance(100)
        self.assertIn("during", [b for e in self.sites.master.rooms[ROOM].history
                                 for b in bodies([parse_xml(e.xml)])])
        self.assertEqual(store._outbox[MROOM], [])
