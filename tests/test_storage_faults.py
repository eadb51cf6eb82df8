"""
A storage fault while rooms are active (issue 13): the master's database
turns read-only during a conversation.  Users keep chatting (the rooms live
in memory; the writes wait), the operator reads one line, and when the
fault clears everything acknowledged meanwhile is written: a restart then
has it all.
"""

import os
import shutil

from twisted.internet import defer, reactor, task
from twisted.logger import LogLevel
from twisted.trial import unittest

from dmuc.storage.sqlite import SQLiteRoomStore
from tests.stanza_helpers import logged
from tests.test_compact import configure
from tests.test_dmuc_flows import KEVIN, WAYNE, bodies, join, say
from tests.test_netsplit import history_bodies
from tests.two_site_helpers import ROOM, TwoSites


class ReadOnlyDatabaseTests(unittest.TestCase):

    @defer.inlineCallbacks
    def test_messages_and_a_config_change_survive_a_read_only_spell(self):
        directory = os.path.abspath(self.mktemp())
        self.addCleanup(shutil.rmtree, directory, True)
        store = yield SQLiteRoomStore(os.path.join(directory, "master.sqlite")).open()
        self.addCleanup(lambda: store.close())
        lines = logged(self, LogLevel.error, LogLevel.critical)
        sites = TwoSites()
        sites.master.store = store
        join(sites, KEVIN, "Kevin", ROOM)
        join(sites, WAYNE, "Wayne")
        configure(sites, [("muc#roomconfig_persistentroom", "1")])
        say(sites, KEVIN, "before", ROOM)
        sites.advance(1)   # the coalesced room save
        yield store._pool.runInteraction(lambda txn: txn.execute("PRAGMA query_only = 1"))
        store._retry_delay = 0.05
        texts = ["during %d" % n for n in range(15)]
        for text in texts:
            say(sites, KEVIN, text, ROOM)
        configure(sites, [("muc#roomconfig_roomname", "Renamed while read-only")])
        # The echoes wait for the writes to end (here: to be held), which
        # the store tells on the real reactor.
        yield task.deferLater(reactor, 0.2, lambda: None)
        sites.advance(1)
        # Users noticed nothing: every message reached the mirror's user.
        self.assertEqual(bodies(sites.take(WAYNE))[-15:], texts)
        self.assertTrue(store.fault)
        self.assertGreater(store.held_writes, 0)
        self.assertEqual([line for line in lines if "cannot write to" in line][:1],
                         [line for line in lines if "storage" in line])
        yield store._pool.runInteraction(lambda txn: txn.execute("PRAGMA query_only = 0"))
        for _ in range(100):
            if not store.fault and not store.held_writes:
                break
            yield task.deferLater(reactor, 0.05, lambda: None)
        self.assertIsNone(store.fault)
        # A crash now loses nothing: a new master reads it all back.
        sites.restart_master(crash=True)
        yield task.deferLater(reactor, 0.2, lambda: None)
        room = sites.master.rooms[ROOM]
        self.assertEqual(history_bodies(room), ["before"] + texts)
        self.assertEqual(room.config.name, "Renamed while read-only")
