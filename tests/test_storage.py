"""
Tests for L{dmuc.storage}: one behaviour suite, run against every backend.
"""

import os
import shutil
import sqlite3

from twisted.internet import defer, reactor, task
from twisted.internet.task import Clock
from twisted.logger import LogLevel
from twisted.trial import unittest
from zope.interface.verify import verifyObject

from dmuc.master.handler import MasterMUC
from dmuc.master.room import Room
from dmuc.storage import (
    HistoryEntry, IRoomStore, RoomRecord, SplitMessage, StorageError, Tombstone)
from dmuc.storage.memory import MemoryRoomStore
from dmuc.storage import sqlite as sqlite_store
from dmuc.storage.sqlite import SQLiteRoomStore
from dmuc.xmpp.stanzas import parse_xml
from tests.stanza_helpers import logged

ROOM = "chat@conference.fairfax.test"
OTHER_ROOM = "lobby@conference.fairfax.test"


def make_record(jid=ROOM):
    """
    A room with something of every kind a room config holds.
    """
    return RoomRecord(
        jid=jid,
        config={
            "name": "Chat",
            "persistent": True,
            "moderated": False,
            "max_users": 30,
            "password": None,
            "history": {"max_stanzas": 20, "enabled": True},
            "whois": ["moderator", "participant"],
        },
        affiliations={
            "owner@fairfax.test": "owner",
            "admin@fairfax.test": "admin",
            "member@fairfax.test": "member",
            "spammer.test": "outcast",
        },
        subject="Welcome",
        subject_nick="alice",
        subject_time=1700000000.5,
    )


def make_entry(n, nick="alice"):
    return HistoryEntry(
        stanza_id=f"id-{n}",
        timestamp=1700000000.0 + n,
        nick=nick,
        real_jid=f"{nick}@fairfax.test/home",
        xml=f"<message type='groupchat'><body>message {n}</body></message>",
    )


def make_tombstone(jid=ROOM):
    return Tombstone(jid, 1700002678.5, alternate="new@conference.fairfax.test",
                     reason="Moved")


def stanza_ids(entries):
    return [entry.stanza_id for entry in entries]


class RoomStoreTestsMixin:
    """
    What every L{IRoomStore} does.  Subclasses define C{make_store}, which
    returns a Deferred firing with an open, empty store.
    """

    @defer.inlineCallbacks
    def setUp(self):
        self.store = yield self.make_store()
        self.addCleanup(self.store.close)

    @defer.inlineCallbacks
    def append(self, room_jid, numbers, max_length=100):
        for n in numbers:
            yield self.store.append_history(room_jid, make_entry(n),
                                            max_length)

    def test_provides_interface(self):
        self.assertTrue(verifyObject(IRoomStore, self.store))

    @defer.inlineCallbacks
    def test_empty_store_has_no_rooms(self):
        rooms = yield self.store.load_rooms()
        self.assertEqual(rooms, [])

    @defer.inlineCallbacks
    def test_empty_room_has_no_history(self):
        history = yield self.store.load_history(ROOM, 10)
        self.assertEqual(history, [])

    @defer.inlineCallbacks
    def test_save_and_load_round_trip(self):
        yield self.store.save_room(make_record())
        rooms = yield self.store.load_rooms()
        self.assertEqual(rooms, [make_record()])

    @defer.inlineCallbacks
    def test_room_without_subject(self):
        record = RoomRecord(jid=ROOM)
        yield self.store.save_room(record)
        rooms = yield self.store.load_rooms()
        self.assertEqual(rooms, [RoomRecord(jid=ROOM)])

    @defer.inlineCallbacks
    def test_save_replaces(self):
        yield self.store.save_room(make_record())
        changed = make_record()
        del changed.affiliations["admin@fairfax.test"]
        changed.config["max_users"] = 5
        changed.subject = None
        yield self.store.save_room(changed)
        rooms = yield self.store.load_rooms()
        self.assertEqual(rooms, [changed])
        self.assertNotIn("admin@fairfax.test", rooms[0].affiliations)

    @defer.inlineCallbacks
    def test_save_keeps_history(self):
        yield self.store.save_room(make_record())
        yield self.append(ROOM, [1, 2])
        yield self.store.save_room(make_record())
        history = yield self.store.load_history(ROOM, 10)
        self.assertEqual(stanza_ids(history), ["id-1", "id-2"])

    @defer.inlineCallbacks
    def test_several_rooms(self):
        yield self.store.save_room(make_record(ROOM))
        yield self.store.save_room(make_record(OTHER_ROOM))
        rooms = yield self.store.load_rooms()
        self.assertEqual(sorted(room.jid for room in rooms),
                         sorted([ROOM, OTHER_ROOM]))

    @defer.inlineCallbacks
    def test_delete_removes_room_and_history(self):
        yield self.store.save_room(make_record(ROOM))
        yield self.store.save_room(make_record(OTHER_ROOM))
        yield self.append(ROOM, [1, 2])
        yield self.append(OTHER_ROOM, [3])
        yield self.store.delete_room(ROOM)
        rooms = yield self.store.load_rooms()
        self.assertEqual([room.jid for room in rooms], [OTHER_ROOM])
        history = yield self.store.load_history(ROOM, 10)
        self.assertEqual(history, [])
        other = yield self.store.load_history(OTHER_ROOM, 10)
        self.assertEqual(stanza_ids(other), ["id-3"])

    @defer.inlineCallbacks
    def test_delete_one_history_entry(self):
        yield self.append(ROOM, [1, 2, 3])
        yield self.append(OTHER_ROOM, [2])
        yield self.store.delete_history_entry(ROOM, "id-2")
        yield self.store.delete_history_entry(ROOM, "id-unknown")
        history = yield self.store.load_history(ROOM, 10)
        self.assertEqual(stanza_ids(history), ["id-1", "id-3"])
        other = yield self.store.load_history(OTHER_ROOM, 10)
        self.assertEqual(stanza_ids(other), ["id-2"])

    @defer.inlineCallbacks
    def test_delete_then_recreate_starts_clean(self):
        yield self.store.save_room(make_record())
        yield self.append(ROOM, [1])
        yield self.store.delete_room(ROOM)
        yield self.store.save_room(RoomRecord(jid=ROOM))
        rooms = yield self.store.load_rooms()
        self.assertEqual(rooms, [RoomRecord(jid=ROOM)])
        history = yield self.store.load_history(ROOM, 10)
        self.assertEqual(history, [])

    def test_delete_unknown_room(self):
        return self.store.delete_room("nowhere@conference.fairfax.test")

    @defer.inlineCallbacks
    def test_history_round_trip(self):
        yield self.append(ROOM, [1])
        history = yield self.store.load_history(ROOM, 10)
        self.assertEqual(history, [make_entry(1)])

    @defer.inlineCallbacks
    def test_history_oldest_first(self):
        yield self.append(ROOM, [1, 2, 3])
        history = yield self.store.load_history(ROOM, 10)
        self.assertEqual(stanza_ids(history), ["id-1", "id-2", "id-3"])

    @defer.inlineCallbacks
    def test_history_limit_gives_newest(self):
        yield self.append(ROOM, [1, 2, 3, 4])
        history = yield self.store.load_history(ROOM, 2)
        self.assertEqual(stanza_ids(history), ["id-3", "id-4"])

    @defer.inlineCallbacks
    def test_history_limit_zero(self):
        yield self.append(ROOM, [1, 2])
        history = yield self.store.load_history(ROOM, 0)
        self.assertEqual(history, [])

    @defer.inlineCallbacks
    def test_history_trimmed_to_max_length(self):
        yield self.append(ROOM, range(1, 6), max_length=3)
        history = yield self.store.load_history(ROOM, 10)
        self.assertEqual(stanza_ids(history), ["id-3", "id-4", "id-5"])

    @defer.inlineCallbacks
    def test_history_trim_follows_latest_max_length(self):
        yield self.append(ROOM, range(1, 6), max_length=10)
        yield self.append(ROOM, [6], max_length=2)
        history = yield self.store.load_history(ROOM, 10)
        self.assertEqual(stanza_ids(history), ["id-5", "id-6"])

    @defer.inlineCallbacks
    def test_history_max_length_zero_keeps_none(self):
        yield self.append(ROOM, [1, 2], max_length=0)
        history = yield self.store.load_history(ROOM, 10)
        self.assertEqual(history, [])

    @defer.inlineCallbacks
    def test_histories_are_independent(self):
        yield self.append(ROOM, [1, 2, 3], max_length=2)
        yield self.append(OTHER_ROOM, [4, 5, 6], max_length=3)
        history = yield self.store.load_history(ROOM, 10)
        other = yield self.store.load_history(OTHER_ROOM, 10)
        self.assertEqual(stanza_ids(history), ["id-2", "id-3"])
        self.assertEqual(stanza_ids(other), ["id-4", "id-5", "id-6"])

    @defer.inlineCallbacks
    def test_same_stanza_id_in_two_rooms(self):
        yield self.append(ROOM, [1])
        yield self.append(OTHER_ROOM, [1])
        other = yield self.store.load_history(OTHER_ROOM, 10)
        self.assertEqual(stanza_ids(other), ["id-1"])

    @defer.inlineCallbacks
    def test_duplicate_stanza_id_rejected(self):
        yield self.append(ROOM, [1])
        yield self.assertFailure(
            self.store.append_history(ROOM, make_entry(1), 10), StorageError)
        history = yield self.store.load_history(ROOM, 10)
        self.assertEqual(history, [make_entry(1)])

    # -- tombstones of destroyed rooms

    @defer.inlineCallbacks
    def test_empty_store_has_no_tombstones(self):
        tombstones = yield self.store.load_tombstones()
        self.assertEqual(tombstones, [])

    @defer.inlineCallbacks
    def test_tombstone_round_trip(self):
        yield self.store.save_tombstone(make_tombstone())
        yield self.store.save_tombstone(Tombstone(OTHER_ROOM, 1700000500.0))
        tombstones = yield self.store.load_tombstones()
        self.assertEqual(sorted(tombstones, key=lambda t: t.jid),
                         sorted([make_tombstone(), Tombstone(OTHER_ROOM, 1700000500.0)],
                                key=lambda t: t.jid))

    @defer.inlineCallbacks
    def test_tombstone_replaced(self):
        yield self.store.save_tombstone(make_tombstone())
        later = Tombstone(ROOM, 1800000000.0, reason="again")
        yield self.store.save_tombstone(later)
        tombstones = yield self.store.load_tombstones()
        self.assertEqual(tombstones, [later])

    @defer.inlineCallbacks
    def test_tombstone_deleted(self):
        yield self.store.save_tombstone(make_tombstone())
        yield self.store.delete_tombstone(ROOM)
        yield self.store.delete_tombstone(OTHER_ROOM)   # unknown: no error
        tombstones = yield self.store.load_tombstones()
        self.assertEqual(tombstones, [])

    @defer.inlineCallbacks
    def test_tombstone_independent_of_room(self):
        # A room of that name may be stored (recreated after expiry)
        # while its old tombstone is being deleted, and vice versa.
        yield self.store.save_room(make_record())
        yield self.store.save_tombstone(make_tombstone())
        yield self.store.delete_room(ROOM)
        tombstones = yield self.store.load_tombstones()
        self.assertEqual(tombstones, [make_tombstone()])
        yield self.store.save_room(make_record())
        yield self.store.delete_tombstone(ROOM)
        rooms = yield self.store.load_rooms()
        self.assertEqual(rooms, [make_record()])

    # -- a mirror's outbox (what its users wrote during a split)

    @defer.inlineCallbacks
    def test_outbox_keeps_order_until_the_master_has_them(self):
        written = [SplitMessage("Wayne", "wayne@raleigh.test/x", 10.0 + n, "<m n='%d'/>" % n)
                   for n in range(5)]
        for message in written:
            yield self.store.append_outbox(ROOM, message)
        yield self.store.append_outbox(OTHER_ROOM, written[0])
        self.assertEqual((yield self.store.load_outbox(ROOM)), written)
        yield self.store.delete_outbox(ROOM, 2)
        self.assertEqual((yield self.store.load_outbox(ROOM)), written[2:])
        yield self.store.delete_room(ROOM)
        self.assertEqual((yield self.store.load_outbox(ROOM)), [])
        self.assertEqual((yield self.store.load_outbox(OTHER_ROOM)), written[:1])

    # -- what a service waits for before it acknowledges

    @defer.inlineCallbacks
    def test_written_fires_once_the_writes_asked_before_have_ended(self):
        self.assertTrue(self.store.written().called)    # nothing asked
        yield self.store.save_room(make_record(ROOM))
        appends = [self.store.append_history(ROOM, make_entry(n), 10) for n in (1, 2)]
        ended = []
        for d in appends:
            d.addCallback(ended.append)
        yield self.store.written()
        self.assertEqual(len(ended), 2)
        self.assertEqual(stanza_ids((yield self.store.load_history(ROOM, 10))), ["id-1", "id-2"])
        self.assertTrue(self.store.written().called)

    # -- room archives (XEP-0313)

    @defer.inlineCallbacks
    def archive(self, room_jid, numbers):
        for n in numbers:
            yield self.store.append_archive(room_jid, make_entry(n))

    @defer.inlineCallbacks
    def test_archive_beyond_history_length(self):
        yield self.archive(ROOM, range(1, 121))
        archived = yield self.store.load_archive(ROOM)
        self.assertEqual(stanza_ids(archived), ["id-%d" % n for n in range(1, 121)])
        self.assertEqual(archived[0], make_entry(1))

    @defer.inlineCallbacks
    def test_archive_in_time_order(self):
        # A mirror fetches older pages after it archived newer messages.
        yield self.archive(ROOM, [5, 6, 2, 3])
        archived = yield self.store.load_archive(ROOM)
        self.assertEqual(stanza_ids(archived), ["id-2", "id-3", "id-5", "id-6"])

    @defer.inlineCallbacks
    def test_archive_ignores_a_known_id(self):
        yield self.archive(ROOM, [1, 2, 2, 1])
        archived = yield self.store.load_archive(ROOM)
        self.assertEqual(stanza_ids(archived), ["id-1", "id-2"])

    @defer.inlineCallbacks
    def test_archive_apart_from_history_and_rooms(self):
        yield self.archive(ROOM, [1, 2])
        yield self.archive(OTHER_ROOM, [3])
        yield self.store.delete_room(ROOM)
        history = yield self.store.load_history(ROOM, 10)
        self.assertEqual(history, [])
        archived = yield self.store.load_archive(ROOM)
        self.assertEqual(stanza_ids(archived), ["id-1", "id-2"])
        yield self.store.delete_archive(ROOM)
        yield self.store.delete_archive("nowhere@conference.fairfax.test")
        self.assertEqual((yield self.store.load_archive(ROOM)), [])
        self.assertEqual(stanza_ids((yield self.store.load_archive(OTHER_ROOM))), ["id-3"])

    @defer.inlineCallbacks
    def test_archive_entry_deleted(self):
        yield self.archive(ROOM, [1, 2, 3])
        yield self.store.delete_archive_entry(ROOM, "id-2")
        yield self.store.delete_archive_entry(ROOM, "id-9")
        archived = yield self.store.load_archive(ROOM)
        self.assertEqual(stanza_ids(archived), ["id-1", "id-3"])

    @defer.inlineCallbacks
    def test_archive_expiry(self):
        yield self.archive(ROOM, [1, 2, 3])
        yield self.archive(OTHER_ROOM, [1, 4])
        deleted = yield self.store.expire_archive(make_entry(3).timestamp)
        self.assertEqual(deleted, 3)
        self.assertEqual(stanza_ids((yield self.store.load_archive(ROOM))), ["id-3"])
        self.assertEqual(stanza_ids((yield self.store.load_archive(OTHER_ROOM))), ["id-4"])


class MemoryRoomStoreTests(RoomStoreTestsMixin, unittest.TestCase):
    """
    L{MemoryRoomStore} passes the shared suite and keeps its own copies.
    """

    def make_store(self):
        return defer.succeed(MemoryRoomStore())

    @defer.inlineCallbacks
    def test_saved_record_isolated_from_caller(self):
        record = make_record()
        yield self.store.save_room(record)
        record.config["history"]["max_stanzas"] = 0
        record.affiliations["eve@fairfax.test"] = "owner"
        record.subject = "changed"
        rooms = yield self.store.load_rooms()
        self.assertEqual(rooms, [make_record()])

    @defer.inlineCallbacks
    def test_loaded_record_isolated_from_store(self):
        yield self.store.save_room(make_record())
        rooms = yield self.store.load_rooms()
        rooms[0].config["history"]["max_stanzas"] = 0
        rooms[0].affiliations.clear()
        again = yield self.store.load_rooms()
        self.assertEqual(again, [make_record()])

    @defer.inlineCallbacks
    def test_history_isolated_from_caller(self):
        entry = make_entry(1)
        yield self.store.append_history(ROOM, entry, 10)
        entry.nick = "mallory"
        history = yield self.store.load_history(ROOM, 10)
        history[0].xml = "<changed/>"
        again = yield self.store.load_history(ROOM, 10)
        self.assertEqual(again, [make_entry(1)])


class SQLiteRoomStoreTests(RoomStoreTestsMixin, unittest.TestCase):
    """
    L{SQLiteRoomStore} passes the shared suite, keeps data across a restart
    and fails clearly on a path that cannot hold a database.
    """

    def temp_path(self):
        """
        A fresh path from C{mktemp}, removed after the test: trial runs in
        C{_trial_temp}, but pytest would leave it in the working tree.
        """
        path = self.mktemp()
        self.addCleanup(_remove_temp, path)
        return path

    def make_store(self):
        # A directory that does not exist yet: the store must create it.
        self.db_path = os.path.join(self.temp_path(), "db", "rooms.sqlite")
        return SQLiteRoomStore(self.db_path).open()

    @defer.inlineCallbacks
    def reopen(self):
        yield self.store.close()
        self.store = yield SQLiteRoomStore(self.db_path).open()
        self.addCleanup(self.store.close)

    @defer.inlineCallbacks
    def test_the_outbox_survives_a_restart(self):
        kept = SplitMessage("Wayne", "wayne@raleigh.test/x", 10.0, "<m/>")
        yield self.store.append_outbox(ROOM, kept)
        yield self.reopen()
        self.assertEqual((yield self.store.load_outbox(ROOM)), [kept])

    def set_fault(self, pragma):
        """Make the database refuse writes as a read-only file or a full
        disk would (root ignores file modes, so a chmod would not)."""
        return self.store._pool.runInteraction(lambda txn: txn.execute(pragma))

    @defer.inlineCallbacks
    def test_writes_refused_by_a_read_only_database_are_held_and_written_later(self):
        lines = logged(self, LogLevel.error, LogLevel.info)
        yield self.store.save_room(make_record(ROOM))
        yield self.set_fault("PRAGMA query_only = 1")
        self.store._retry_delay = 0.05
        appends = [self.store.append_history(ROOM, make_entry(n), 10) for n in (1, 2, 3)]
        outbox = self.store.append_outbox(ROOM, SplitMessage("W", "w@r.test/x", 1.0, "<m/>"))
        done = []
        for d in appends + [outbox]:
            d.addCallback(done.append)
        # What waits for the writes goes on once they are held: the
        # service keeps working from memory during the fault.
        yield self.store.written()
        self.assertTrue(self.store.fault)
        self.assertTrue(self.store.append_history(ROOM, make_entry(4), 10) is not None
                        and self.store.written().called)
        yield task.deferLater(reactor, 0.2, lambda: None)   # a few retries, all refused
        self.assertEqual(done, [])
        self.assertIn("readonly", self.store.fault)
        self.assertEqual(self.store.held_writes, 5)
        self.assertEqual(len([line for line in lines if "cannot write to" in line]), 1, lines)
        # The fault clears: everything held is written, in order, by itself.
        yield self.set_fault("PRAGMA query_only = 0")
        yield defer.gatherResults(appends + [outbox])
        self.assertIsNone(self.store.fault)
        self.assertEqual(stanza_ids((yield self.store.load_history(ROOM, 10))),
                         ["id-1", "id-2", "id-3", "id-4"])
        self.assertEqual(len((yield self.store.load_outbox(ROOM))), 1)
        self.assertEqual(len([line for line in lines if "takes writes again" in line]), 1)

    @defer.inlineCallbacks
    def test_a_locked_database_holds_the_whole_batch_after_one_wait(self):
        """Another process holds the write lock: the first write of a
        batch waits SQLite's busy timeout and fails; the others are not
        tried one by one (each would wait as long: 25 s for five at the
        default 5 s), the batch is held whole and written once the lock
        goes."""
        yield self.store.save_room(make_record(ROOM))
        yield self.set_fault("PRAGMA busy_timeout = 50")
        lock = sqlite3.connect(self.db_path, isolation_level=None)
        lock.execute("BEGIN IMMEDIATE")
        tried, append = [], sqlite_store._append_history

        def counting(txn, room_jid, entry, max_length):
            tried.append(entry.stanza_id)
            return append(txn, room_jid, entry, max_length)
        self.patch(sqlite_store, "_append_history", counting)
        self.store._retry_delay = 0.05
        appends = [self.store.append_history(ROOM, make_entry(n), 10) for n in range(1, 6)]
        yield self.store.written()
        self.assertIn("locked", self.store.fault)
        self.assertEqual(tried, ["id-1"])
        lock.rollback()
        lock.close()
        yield defer.gatherResults(appends)
        self.assertIsNone(self.store.fault)
        self.assertEqual(stanza_ids((yield self.store.load_history(ROOM, 10))),
                         ["id-%d" % n for n in range(1, 6)])

    @defer.inlineCallbacks
    def test_a_full_disk_holds_writes_the_same_way(self):
        yield self.store.save_room(make_record(ROOM))
        pages = yield self.store._pool.runInteraction(
            lambda txn: txn.execute("PRAGMA page_count").fetchone()[0])
        yield self.set_fault("PRAGMA max_page_count = %d" % pages)
        self.store._retry_delay = 0.05
        big = [self.store.append_history(ROOM, HistoryEntry("big-%d" % n, 1.0, "n", "j",
                                                            "x" * 20000), 100)
               for n in range(5)]
        yield task.deferLater(reactor, 0.2, lambda: None)
        self.assertIn("full", self.store.fault)
        yield self.set_fault("PRAGMA max_page_count = 1073741823")
        yield defer.gatherResults(big)
        self.assertEqual(len((yield self.store.load_history(ROOM, 100))), 5)

    @defer.inlineCallbacks
    def test_restart_loses_nothing(self):
        yield self.store.save_room(make_record(ROOM))
        yield self.store.save_room(make_record(OTHER_ROOM))
        yield self.store.delete_room(OTHER_ROOM)
        yield self.append(ROOM, range(1, 5), max_length=3)
        yield self.reopen()
        rooms = yield self.store.load_rooms()
        self.assertEqual(rooms, [make_record(ROOM)])
        history = yield self.store.load_history(ROOM, 10)
        self.assertEqual(history, [make_entry(n) for n in (2, 3, 4)])

    @defer.inlineCallbacks
    def test_tombstone_survives_restart(self):
        yield self.store.save_tombstone(make_tombstone())
        yield self.reopen()
        tombstones = yield self.store.load_tombstones()
        self.assertEqual(tombstones, [make_tombstone()])

    @defer.inlineCallbacks
    def test_history_order_survives_restart(self):
        yield self.append(ROOM, [1, 2])
        yield self.reopen()
        yield self.append(ROOM, [3])
        history = yield self.store.load_history(ROOM, 10)
        self.assertEqual(stanza_ids(history), ["id-1", "id-2", "id-3"])

    @defer.inlineCallbacks
    def test_used_without_open(self):
        yield self.store.save_room(make_record())
        yield self.store.close()
        self.store = SQLiteRoomStore(self.db_path)
        self.addCleanup(self.store.close)
        rooms = yield self.store.load_rooms()
        self.assertEqual(rooms, [make_record()])

    def count_transactions(self):
        """The interactions the store runs from now on, one per transaction."""
        pool = self.store._get_pool()
        started = []
        run = pool.runInteraction

        def counting(interaction, *args, **kwargs):
            started.append(interaction)
            return run(interaction, *args, **kwargs)
        pool.runInteraction = counting
        return started

    @defer.inlineCallbacks
    def test_writes_of_one_turn_in_one_transaction(self):
        started = self.count_transactions()
        yield defer.gatherResults([
            self.store.append_history(ROOM, make_entry(n), 100) for n in range(1, 51)])
        self.assertEqual(len(started), 1)
        history = yield self.store.load_history(ROOM, 100)
        self.assertEqual(stanza_ids(history), ["id-%d" % n for n in range(1, 51)])

    @defer.inlineCallbacks
    def test_failed_write_fails_alone(self):
        """A duplicate in a batch: its own Deferred fails, with the store's
        error; the writes around it are kept, in order."""
        yield self.append(ROOM, [2])
        results = yield defer.DeferredList(
            [self.store.append_history(ROOM, make_entry(n), 100) for n in (1, 2, 3)],
            consumeErrors=True)
        self.assertEqual([ok for ok, _ in results], [True, False, True])
        results[1][1].trap(StorageError)
        self.assertIn(self.db_path, results[1][1].getErrorMessage())
        history = yield self.store.load_history(ROOM, 10)
        self.assertEqual(stanza_ids(history), ["id-2", "id-1", "id-3"])

    @defer.inlineCallbacks
    def test_operations_of_one_turn_in_the_order_asked(self):
        asked = [
            self.store.save_room(make_record()),
            self.store.append_history(ROOM, make_entry(1), 10),
            self.store.delete_history_entry(ROOM, "id-1"),
            # A duplicate, but for the delete before it.
            self.store.append_history(ROOM, make_entry(1), 10),
            self.store.append_history(ROOM, make_entry(2), 10),
            self.store.load_history(ROOM, 10),
            self.store.delete_room(ROOM),
            self.store.load_rooms(),
            self.store.save_room(RoomRecord(jid=ROOM)),
            self.store.append_history(ROOM, make_entry(3), 10),
        ]
        results = yield defer.gatherResults(asked)
        self.assertEqual(stanza_ids(results[5]), ["id-1", "id-2"])
        self.assertEqual(results[7], [])
        rooms = yield self.store.load_rooms()
        self.assertEqual(rooms, [RoomRecord(jid=ROOM)])
        history = yield self.store.load_history(ROOM, 10)
        self.assertEqual(stanza_ids(history), ["id-3"])

    @defer.inlineCallbacks
    def test_room_saved_twice_in_a_batch(self):
        first, second = make_record(), make_record()
        second.subject = "Changed"
        saved = yield defer.gatherResults(
            [self.store.save_room(first), self.store.save_room(second)])
        self.assertEqual(saved, [None, None])
        rooms = yield self.store.load_rooms()
        self.assertEqual(rooms, [second])

    @defer.inlineCallbacks
    def test_close_finishes_what_was_asked(self):
        asked = [self.store.append_history(ROOM, make_entry(n), 10) for n in (1, 2)]
        yield self.reopen()
        yield defer.gatherResults(asked)
        history = yield self.store.load_history(ROOM, 10)
        self.assertEqual(stanza_ids(history), ["id-1", "id-2"])

    @defer.inlineCallbacks
    def test_failed_write_in_a_batch_is_logged_by_the_service(self):
        """The service still hears of each failed write, with its room."""
        errors = logged(self, LogLevel.critical)
        service = MasterMUC("conference.fairfax.test", self.store, Clock())
        room = Room(ROOM, service)
        asked = [self.store.append_history(ROOM, make_entry(n), 10) for n in (1, 1, 2)]
        for d in asked:
            service.stored(d, room, "store a message")
        yield defer.gatherResults(asked)
        self.assertEqual(errors, [ROOM + ": could not store a message in storage"])
        self.flushLoggedErrors(StorageError)
        history = yield self.store.load_history(ROOM, 10)
        self.assertEqual(stanza_ids(history), ["id-1", "id-2"])

    @defer.inlineCallbacks
    def test_one_unreadable_room_row_is_reported_not_fatal(self):
        import sqlite3
        yield self.store.save_room(make_record(ROOM))
        yield self.store.save_room(make_record(OTHER_ROOM))
        yield self.store.close()
        connection = sqlite3.connect(self.db_path)
        connection.execute("UPDATE rooms SET config = 'not a configuration' WHERE jid = ?",
                           (OTHER_ROOM,))
        connection.commit()
        connection.close()
        self.store = yield SQLiteRoomStore(self.db_path).open()
        self.addCleanup(self.store.close)
        rooms = yield self.store.load_rooms()
        readable = [r for r in rooms if r.unreadable is None]
        self.assertEqual(readable, [make_record(ROOM)])
        broken, = [r for r in rooms if r.unreadable is not None]
        self.assertEqual(broken.jid, OTHER_ROOM)
        self.assertIn("config", broken.unreadable)

    @defer.inlineCallbacks
    def test_the_master_serves_the_others_and_refuses_that_one(self):
        errors = logged(self, LogLevel.error, LogLevel.critical)
        yield self.store.save_room(make_record(OTHER_ROOM))
        bad = make_record(ROOM)
        bad.config = {"history_length": "twenty"}
        yield self.store.save_room(bad)
        service = MasterMUC("conference.fairfax.test", self.store, Clock())
        yield service.load()
        self.assertEqual(sorted(service.rooms), [OTHER_ROOM])
        self.assertEqual(len([e for e in errors if ROOM in e and "cannot load" in e]), 1, errors)
        sent = []
        service.send = sent.append
        service._receive(parse_xml("<presence from='kevin@fairfax.test/x' to='%s/Kevin'>"
                                   "<x xmlns='http://jabber.org/protocol/muc'/></presence>"
                                   % ROOM), "presence")
        error, = sent
        self.assertEqual(error.getAttribute("type"), "error")
        self.assertIn("internal-server-error", error.toXml())
        # Nothing was written over it.
        rooms = yield self.store.load_rooms()
        self.assertEqual([r.config for r in rooms if r.jid == ROOM], [bad.config])

    @defer.inlineCallbacks
    def test_a_mirror_loads_the_other_copies_and_refuses_that_one(self):
        from dmuc.mirror.handler import MirrorMUC
        from dmuc.xmpp.addressing import mirror_room_jid
        errors = logged(self, LogLevel.error)
        broken = mirror_room_jid(ROOM, "mirror.raleigh.test")
        yield self.store.save_room(RoomRecord(jid=broken, unreadable=None,
                                              config={"master_jid": ROOM}))
        service = MirrorMUC("mirror.raleigh.test", ("raleigh.test",), self.store, Clock())
        yield service.load()
        self.assertEqual(service.rooms, {})
        self.assertEqual(len([e for e in errors if broken in e and "cannot load" in e]), 1,
                         errors)
        sent = []
        service.send = sent.append
        service._receive(parse_xml("<presence from='wayne@raleigh.test/x' to='%s/Wayne'>"
                                   "<x xmlns='http://jabber.org/protocol/muc'/></presence>"
                                   % broken), "presence")
        error, = sent
        self.assertIn("internal-server-error", error.toXml())

    @defer.inlineCallbacks
    def assertOpenFails(self, path):
        store = SQLiteRoomStore(path)
        self.addCleanup(store.close)
        error = yield self.assertFailure(store.open(), StorageError)
        self.assertIn(path, str(error))

    def test_open_directory_fails(self):
        path = self.temp_path()
        os.makedirs(path)
        return self.assertOpenFails(path)

    def test_open_non_database_fails(self):
        path = self.temp_path()
        with open(path, "w") as f:
            f.write("this is not a SQLite database\n" * 100)
        return self.assertOpenFails(path)

    def test_open_under_a_file_fails(self):
        parent = self.temp_path()
        with open(parent, "w") as f:
            f.write("a file where a directory should be\n")
        return self.assertOpenFails(os.path.join(parent, "rooms.sqlite"))

    @defer.inlineCallbacks
    def test_failed_open_can_be_retried(self):
        path = self.temp_path()
        os.makedirs(path)
        store = SQLiteRoomStore(path)
        self.addCleanup(store.close)
        yield self.assertFailure(store.open(), StorageError)
        os.rmdir(path)
        opened = yield store.open()
        self.assertIs(opened, store)


def _remove_temp(path):
    """
    Remove C{path} and then the directories C{mktemp} made for it, as far up
    as they are empty.
    """
    if os.path.isdir(path):
        shutil.rmtree(path)
    elif os.path.exists(path):
        os.remove(path)
    try:
        os.removedirs(os.path.dirname(path))
    except OSError:
        pass
