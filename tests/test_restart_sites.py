"""
The master service, or the mirror service, killed (SIGKILL) during a
conversation and started again, on two real sites: the mirror's users
stay in the room without doing anything, nobody sees a false error, and
every message is in both histories and reaches every user exactly once.
"""

import sqlite3

from twisted.trial import unittest

from tests.harness.xml import find, status_codes
from tests.harness.sites import MASTER
from tests.test_netsplit_sites import (
    MROOM, ROOM, TwoSitesInAConversation, body, eventually, stored_bodies)

SELF_PING = "<iq type='get' to='%s'><ping xmlns='urn:xmpp:ping'/></iq>"


def stored_room(database, room):
    """The room copy as stored (its JSON text), or ''."""
    connection = sqlite3.connect(database)
    try:
        row = connection.execute("select config from rooms where jid = ?", (room,)).fetchone()
    except sqlite3.OperationalError:
        return ""
    finally:
        connection.close()
    return row[0] if row else ""


def errors(stanzas):
    return [s for s in stanzas if s.get("type") == "error"]


class MasterRestartSitesTests(TwoSitesInAConversation, unittest.TestCase):

    def setUp(self):
        TwoSitesInAConversation.setUp(self)
        self.seen = {}
        for name in ("kevin", "wayne", "keith"):
            received = self.seen[name] = []
            getattr(self, name).listen(received.append)

    def test_master_stopped_cleanly(self):
        """SIGTERM: Kevin is told (332); for the mirror it is a split, and
        its users stay."""
        self.sites.master.stop()
        own = self.kevin.wait_for(lambda s: s.get("from") == ROOM + "/Kevin"
                                  and s.get("type") == "unavailable", timeout=10)
        self.assertEqual(sorted(status_codes(own)), [110, 332])
        self.keith.wait_for(lambda s: s.get("from") == MROOM + "/Kevin"
                            and 333 in status_codes(s), timeout=10)
        self.say(self.wayne, MROOM, "while stopped")
        self.keith.wait_for(lambda s: body(s) == "while stopped", timeout=10)
        self.sites.master.start()
        master_db = self.sites.master.directory + "/master.sqlite"
        self.assertEqual(eventually(lambda: stored_bodies(master_db, ROOM) ==
                                    ["before", "while stopped"]), True,
                         stored_bodies(master_db, ROOM))
        for name in ("wayne", "keith"):
            self.assertEqual(errors(self.seen[name]), [], name)
            self.assertFalse([s for s in self.seen[name] if 332 in status_codes(s)], name)

    def test_master_killed_and_started_between_two_messages(self):
        """Nothing bounces while it is down: only the master's word tells
        the mirror that its users are out (the issue's stuck users)."""
        self.sites.master.kill()
        self.sites.master.start()
        self.say(self.wayne, MROOM, "w1")
        self.keith.wait_for(lambda s: body(s) == "w1", timeout=10)
        self.say(self.keith, MROOM, "x1")
        self.wayne.wait_for(lambda s: body(s) == "x1", timeout=10)
        for client, occupant in ((self.wayne, MROOM + "/Wayne"), (self.keith, MROOM + "/Keith")):
            self.assertEqual(client.iq(SELF_PING % occupant).get("type"), "result")
        expected = ["before", "w1", "x1"]
        master_db = self.sites.master.directory + "/master.sqlite"
        self.assertEqual(eventually(lambda: stored_bodies(master_db, ROOM) == expected),
                         True, stored_bodies(master_db, ROOM))
        mirror_db = self.sites.mirror.directory + "/mirror.sqlite"
        self.assertEqual(eventually(lambda: stored_bodies(mirror_db, MROOM) == expected),
                         True, stored_bodies(mirror_db, MROOM))
        for name in ("wayne", "keith"):
            self.assertEqual(errors(self.seen[name]), [], name)

    def test_master_killed_during_a_conversation(self):
        self.say(self.kevin, ROOM, "k0")
        # k0 has its place before Wayne writes: sent at once, w0 could
        # reach the master first (seen once in CI), and both sites would
        # rightly order it first.
        self.kevin.wait_for(lambda s: body(s) == "k0", timeout=10)
        self.say(self.wayne, MROOM, "w0")
        self.wayne.wait_for(lambda s: body(s) == "k0", timeout=10)
        self.kevin.wait_for(lambda s: body(s) == "w0", timeout=10)

        self.sites.master.kill()
        self.say(self.wayne, MROOM, "w1")
        self.keith.wait_for(lambda s: body(s) == "w1", timeout=10)
        self.say(self.keith, MROOM, "x1")
        self.wayne.wait_for(lambda s: body(s) == "x1", timeout=10)

        self.sites.master.start()
        expected = ["before", "k0", "w0", "w1", "x1"]
        master_db = self.sites.master.directory + "/master.sqlite"
        self.assertEqual(eventually(lambda: stored_bodies(master_db, ROOM) == expected),
                         True, stored_bodies(master_db, ROOM))

        # Kevin's client learns by self-ping that the restart dropped him,
        # and joins again (XEP-0410); he finds the mirror's users in.
        answer = self.kevin.iq(SELF_PING % (ROOM + "/Kevin"))
        self.assertEqual(answer.get("type"), "error")
        self.kevin.send("<presence to='%s/Kevin'><x xmlns='http://jabber.org/protocol/muc'/>"
                        "</presence>" % ROOM)
        others = set()
        while True:
            presence = self.kevin.wait_for(
                lambda s: s.tag.endswith("presence") and s.get("from", "").startswith(ROOM),
                timeout=10)
            if 110 in status_codes(presence):
                break
            others.add(presence.get("from"))
        self.assertEqual(others, {ROOM + "/Wayne", ROOM + "/Keith"})

        # The mirror's users never did a thing, and are in the room.
        for client, occupant in ((self.wayne, MROOM + "/Wayne"), (self.keith, MROOM + "/Keith")):
            self.assertEqual(client.iq(SELF_PING % occupant).get("type"), "result")
        self.say(self.wayne, MROOM, "w2")
        self.kevin.wait_for(lambda s: body(s) == "w2", timeout=10)
        self.say(self.kevin, ROOM, "k2")
        self.keith.wait_for(lambda s: body(s) == "k2", timeout=10)

        expected += ["w2", "k2"]
        self.assertEqual(eventually(lambda: stored_bodies(master_db, ROOM) == expected),
                         True, stored_bodies(master_db, ROOM))
        mirror_db = self.sites.mirror.directory + "/mirror.sqlite"
        self.assertEqual(eventually(lambda: stored_bodies(mirror_db, MROOM) == expected),
                         True, stored_bodies(mirror_db, MROOM))
        self.assertEqual(eventually(lambda: self.status("mirror") == {MASTER: "up"}), True)
        for name in ("wayne", "keith"):
            self.assertEqual(errors(self.seen[name]), [], name)
            # Each message reached each mirror user exactly once.
            said = [body(s) for s in self.seen[name] if body(s) and find(s, "delay:delay") is None]
            self.assertEqual(sorted(said), sorted(set(said)), name)
        kevin_errors = [e for e in errors(self.seen["kevin"])
                        if e.tag.endswith("message") or e.tag.endswith("presence")]
        self.assertEqual(kevin_errors, [])


class MirrorRestartSitesTests(TwoSitesInAConversation, unittest.TestCase):
    """The mirror service killed (SIGKILL) while fairfax talks, and started
    again: its users are in the room again without doing anything, get what
    was said meanwhile once, and both histories are the same."""

    def setUp(self):
        TwoSitesInAConversation.setUp(self)
        self.seen = {}
        for name in ("wayne", "keith"):
            received = self.seen[name] = []
            getattr(self, name).listen(received.append)

    def test_mirror_killed_during_a_conversation(self):
        # The mirror writes its room copy at most 0.5 s late (a crash in
        # that window loses it: not solved yet); here it is written.
        mirror_db = self.sites.mirror.directory + "/mirror.sqlite"
        self.assertEqual(eventually(lambda: "Keith" in stored_room(mirror_db, MROOM)), True)
        self.sites.mirror.kill()
        self.say(self.kevin, ROOM, "k1")
        self.say(self.kevin, ROOM, "k2")
        self.sites.mirror.start()
        for client in (self.wayne, self.keith):
            client.wait_for(lambda s: body(s) == "k2", timeout=20)
        self.say(self.wayne, MROOM, "w1")
        self.kevin.wait_for(lambda s: body(s) == "w1", timeout=10)
        self.keith.wait_for(lambda s: body(s) == "w1", timeout=10)
        for client, occupant in ((self.wayne, MROOM + "/Wayne"), (self.keith, MROOM + "/Keith")):
            self.assertEqual(client.iq(SELF_PING % occupant).get("type"), "result")
        expected = ["before", "k1", "k2", "w1"]
        master_db = self.sites.master.directory + "/master.sqlite"
        self.assertEqual(eventually(lambda: stored_bodies(master_db, ROOM) == expected),
                         True, stored_bodies(master_db, ROOM))
        self.assertEqual(eventually(lambda: stored_bodies(mirror_db, MROOM) == expected),
                         True, stored_bodies(mirror_db, MROOM))
        for name in ("wayne", "keith"):
            said = [body(s) for s in self.seen[name] if body(s) in ("k1", "k2")]
            self.assertEqual(said, ["k1", "k2"], name)
