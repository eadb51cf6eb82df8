"""
What the master tells is written (issue 13): a message's echo, its copy to
the mirrors and a configuration's result leave only once the write they
follow has ended.  Before, the master stored in the same turn as it sent,
and the SQLite commit came milliseconds later: a `kill -9` in between lost
a message its sender had been shown (seen once in CI's direct run).

The store here ends its writes when the test says, as SQLite's thread does
a little later; a crash forgets what had not ended.
"""

from twisted.internet import defer
from twisted.trial import unittest

from dmuc.storage.memory import MemoryRoomStore
from tests.stanza_helpers import status_codes
from tests.test_compact import configure
from tests.test_dmuc_flows import KEITH, KEVIN, WAYNE, bodies, conversation, say
from tests.test_netsplit import history_bodies, occupant_bodies
from tests.two_site_helpers import MROOM, ROOM


class SlowDisk(MemoryRoomStore):
    """
    A L{MemoryRoomStore} whose writes wait for L{commit}; L{lose} drops
    them, as a crash before the commit does.  Reads see what is committed.
    """

    WRITES = ("save_room", "delete_room", "append_history", "delete_history_entry",
              "append_outbox", "delete_outbox", "save_tombstone", "delete_tombstone",
              "append_archive", "delete_archive_entry", "delete_archive")

    def __init__(self, committed=None):
        MemoryRoomStore.__init__(self)
        if committed is not None:
            self.__dict__.update({k: v for k, v in committed.__dict__.items()
                                  if k.startswith("_") and k != "_pending"})
        self._pending = []      # (method name, args, Deferred)
        for name in self.WRITES:
            setattr(self, name, self._later(name))

    def _later(self, name):
        def write(*args):
            d = defer.Deferred()
            self._pending.append((name, args, d))
            return d
        return write

    def written(self):
        if not self._pending:
            return defer.succeed(None)
        d = defer.Deferred()
        self._pending[-1][2].addBoth(lambda result: (d.callback(None), result)[1])
        return d

    def commit(self):
        pending, self._pending = self._pending, []
        for name, args, d in pending:
            getattr(MemoryRoomStore, name)(self, *args).chainDeferred(d)

    def lose(self):
        self._pending = []


def persistent_conversation():
    sites = conversation()
    sites.master.store = SlowDisk()
    configure(sites, [("muc#roomconfig_persistentroom", "1")])
    settle(sites)
    for user in (KEVIN, WAYNE, KEITH):
        sites.take(user)
    return sites


def settle(sites):
    """Every write ends, and what waited for it is delivered."""
    sites.master.store.commit()
    sites._run()


class EchoAfterTheWriteTests(unittest.TestCase):

    def test_nobody_is_shown_a_message_before_the_master_wrote_it(self):
        sites = persistent_conversation()
        say(sites, KEVIN, "written first", ROOM)
        for user in (KEVIN, WAYNE, KEITH):
            self.assertEqual(bodies(sites.take(user)), [], user)
        settle(sites)
        for user in (KEVIN, WAYNE, KEITH):
            self.assertEqual(bodies(sites.take(user)), ["written first"], user)

    def test_a_mirror_users_echo_waits_for_the_masters_write(self):
        sites = persistent_conversation()
        say(sites, WAYNE, "from raleigh", MROOM)
        for user in (KEVIN, WAYNE, KEITH):
            self.assertEqual(bodies(sites.take(user)), [], user)
        settle(sites)
        for user in (KEVIN, WAYNE, KEITH):
            self.assertEqual(bodies(sites.take(user)), ["from raleigh"], user)

    def test_a_crash_before_the_write_takes_back_nothing_anyone_saw(self):
        sites = persistent_conversation()
        say(sites, KEVIN, "kept", ROOM)
        settle(sites)
        for user in (KEVIN, WAYNE, KEITH):
            self.assertEqual(bodies(sites.take(user)), ["kept"], user)
        sites.advance(1)
        say(sites, KEVIN, "lost in the crash", ROOM)
        say(sites, WAYNE, "sent again by the mirror", MROOM)
        seen = {user: bodies(sites.take(user)) for user in (KEVIN, WAYNE, KEITH)}
        self.assertEqual(seen, {KEVIN: [], WAYNE: [], KEITH: []})
        sites.master.store.lose()
        sites.restart_master(crash=True)
        settle(sites)
        # Kevin's message is gone, and he was never shown it (his client
        # sends it again once it knows it is out: XEP-0410).  Wayne's was
        # still the mirror's to deliver: it sends it to the new master.
        self.assertEqual(history_bodies(sites.master.rooms[ROOM]),
                         ["kept", "sent again by the mirror"])
        for user in (WAYNE, KEITH):
            self.assertEqual(occupant_bodies(sites.take(user)), ["sent again by the mirror"],
                             user)

    def test_what_follows_a_message_waits_behind_it(self):
        """The room's one order: a status change sent after a message
        (no write of its own) does not overtake it."""
        sites = persistent_conversation()
        say(sites, KEVIN, "first", ROOM)
        sites.send(KEVIN, "<presence to='%s/Kevin'><show>away</show></presence>" % ROOM)
        self.assertEqual(sites.take(WAYNE), [])
        settle(sites)
        kinds = [s.name for s in sites.take(WAYNE)]
        self.assertEqual(kinds, ["message", "presence"])

    def test_a_ping_is_answered_while_the_echoes_wait(self):
        """A slow disk must not look like a dead link: the service answers
        pings (the link monitor's) ahead of what waits for a write."""
        sites = persistent_conversation()
        say(sites, KEVIN, "waiting", ROOM)
        sites.send(KEVIN, "<iq type='get' id='p1' to='%s'><ping xmlns='urn:xmpp:ping'/></iq>"
                   % sites.master.domain)
        answer, = sites.take(KEVIN)
        self.assertEqual((answer.name, answer["type"], answer["id"]), ("iq", "result", "p1"))
        settle(sites)
        self.assertEqual(bodies(sites.take(KEVIN)), ["waiting"])

    def test_a_clean_stop_sends_what_waits(self):
        """At a stop the service sends what waits for writes before its
        connection goes (the store finishes the writes as it closes):
        the echo, then the 332 leave, in that order."""
        sites = persistent_conversation()
        say(sites, KEVIN, "said as it stops", ROOM)
        sites.master.shutdown()
        self.assertEqual(sites.take(KEVIN), [])
        sites.master.release_output()
        sites._run()
        seen = sites.take(KEVIN)
        self.assertEqual(bodies(seen), ["said as it stops"])
        self.assertEqual([s.name for s in seen], ["message", "presence"])
        self.assertIn("332", status_codes(seen[1]))

    def test_the_configuration_result_waits_for_the_save(self):
        sites = persistent_conversation()
        sites.send(KEVIN, "<iq type='set' id='cfg2' to='%s'><query "
                   "xmlns='http://jabber.org/protocol/muc#owner'><x xmlns='jabber:x:data' "
                   "type='submit'><field var='muc#roomconfig_roomname'><value>Renamed</value>"
                   "</field></x></query></iq>" % ROOM)
        self.assertEqual([s for s in sites.take(KEVIN) if s.name == "iq"], [])
        settle(sites)
        result, = [s for s in sites.take(KEVIN) if s.name == "iq"]
        self.assertEqual(result["type"], "result")
        saved, = self.successResultOf(sites.master.store.load_rooms())
        self.assertEqual(saved.config["name"], "Renamed")


KIM = "kim@raleigh.test/tablet"


def slow_mirror_disk(sites):
    """The mirror's store from now on: what it holds, writes that wait."""
    sites.mirror.store = SlowDisk(committed=sites.mirror.store)
    return sites.mirror.store


class MirrorTellsAfterItsWriteTests(unittest.TestCase):
    """
    Which of its users are in is what a mirror may not lose in a crash
    (it would bring back a user who left, or lose one who joined): the
    join's sequence and a leave's presence leave once the copy is written.
    """

    def test_a_join_is_confirmed_once_the_copy_is_written(self):
        sites = conversation()
        disk = slow_mirror_disk(sites)
        sites.send(KIM, "<presence to='%s/Kim'><x xmlns='http://jabber.org/protocol/muc'/>"
                   "</presence>" % MROOM)
        self.assertEqual(sites.take(KIM), [])
        disk.commit()
        sites._run()
        own = [s for s in sites.take(KIM) if s.name == "presence"
               and s.getAttribute("from") == MROOM + "/Kim"]
        self.assertEqual(len(own), 1)
        record, = self.successResultOf(disk.load_rooms())
        self.assertIn("Kim", str(record.config))

    def test_a_leave_is_told_once_the_copy_is_written(self):
        sites = conversation()
        disk = slow_mirror_disk(sites)
        sites.send(KEITH, "<presence type='unavailable' to='%s/Keith'/>" % MROOM)
        self.assertEqual(sites.take(KEITH), [])
        self.assertEqual(sites.take(WAYNE), [])
        disk.commit()
        sites._run()
        gone, = sites.take(KEITH)
        self.assertEqual(gone.getAttribute("type"), "unavailable")
        self.assertEqual([s.getAttribute("type") for s in sites.take(WAYNE)], ["unavailable"])
        record, = self.successResultOf(disk.load_rooms())
        self.assertNotIn("Keith", str(record.config))
