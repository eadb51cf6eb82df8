"""
Sync traffic larger than one stanza may be (issue 13): a long split, a
history of long messages.  The master's history answer and the mirror's
split upload come in pages, each under the services' stanza limit, so a
split of any length heals and any history reaches a mirror's users.
"""

from collections import deque

from twisted.trial import unittest

from dmuc.xmpp.component import MAX_STANZA_SIZE
from tests.test_compact import configure
from tests.test_dmuc_flows import KEITH, KEVIN, WAYNE, bodies, conversation, join, say
from tests.test_netsplit import history_bodies, occupant_bodies
from tests.two_site_helpers import MASTER, MROOM, ROOM, TwoSites


def split(sites):
    sites.cut = True
    sites.advance(100)   # the pings go unanswered: both ends split


def heal(sites):
    sites.cut = False
    sites.advance(60)


def wayne_wrote_during_a_split(count):
    """A persistent room of history 1000, split, and Wayne's C{count}
    messages written at the mirror meanwhile; @return: sites, the texts."""
    sites = conversation()
    configure(sites, [("muc#roomconfig_persistentroom", "1"),
                      ("muc#roomconfig_historylength", "1000")])
    split(sites)
    written = ["written in the split %d" % n for n in range(count)]
    for text in written:
        say(sites, WAYNE, text, MROOM)
    return sites, written


class LongSplitTests(unittest.TestCase):

    def long_split(self, per_side, history_length):
        sites = conversation()
        sites.master.max_history_messages = history_length
        configure(sites, [("muc#roomconfig_historylength", str(history_length))])
        split(sites)
        for n in range(per_side):
            say(sites, KEVIN, "fairfax %d: the quick brown fox jumps over the lazy dog" % n, ROOM)
            say(sites, WAYNE, "raleigh %d: pack my box with five dozen liquor jugs" % n, MROOM)
        for user in (KEVIN, WAYNE, KEITH):
            sites.take(user)
        sites.link = []
        heal(sites)
        return sites

    def assert_healed(self, sites, per_side):
        fairfax = ["fairfax %d: the quick brown fox jumps over the lazy dog" % n
                   for n in range(per_side)]
        raleigh = ["raleigh %d: pack my box with five dozen liquor jugs" % n
                   for n in range(per_side)]
        # Each side's users got every message the other side wrote, once, in order.
        self.assertEqual(occupant_bodies(sites.take(KEVIN)), raleigh)
        self.assertEqual(occupant_bodies(sites.take(KEITH)), fairfax)
        master = history_bodies(sites.master.rooms[ROOM])
        self.assertEqual(sorted(master), sorted(fairfax + raleigh))
        self.assertEqual(history_bodies(sites.mirror.rooms[MROOM]), master)
        self.assertEqual(sites.mirror.rooms[MROOM].split_messages, [])
        # Nothing that crossed was larger than a service accepts.
        largest = max(len(s.toXml().encode("utf-8")) for _, s in sites.link)
        self.assertLess(largest, MAX_STANZA_SIZE)
        # A newcomer at the mirror who asks for the whole history gets it.
        self.assertEqual(bodies(join(sites, "dave@raleigh.test/x", "Dave",
                                     extra="<history maxstanzas='100000'/>")), master)

    def test_500_messages_per_side(self):
        self.assert_healed(self.long_split(500, 1000), 500)

    def test_5000_messages_per_side(self):
        self.assert_healed(self.long_split(5000, 10000), 5000)


class LargeHistoryTests(unittest.TestCase):

    def test_a_history_over_64_kib_reaches_a_mirror_user(self):
        # No mirror user yet: the mirror's first sync carries it all.
        sites = TwoSites()
        join(sites, KEVIN, "Kevin", ROOM)
        long_text = ["%d %s" % (n, "x" * 5000) for n in range(20)]
        for text in long_text:
            say(sites, KEVIN, text, ROOM)
        sites.take(KEVIN)
        self.assertEqual(bodies(join(sites, "dave@raleigh.test/x", "Dave")), long_text)


class CrashDuringASplitTests(unittest.TestCase):
    """
    What a mirror user wrote during a split was shown to the mirror's
    users: a crash of the mirror right after must not keep it from the
    master (issue 13: 0 of 5 arrived, killed 0.1 s after).
    """

    def test_mirror_killed_right_after_its_users_wrote(self):
        sites = conversation()
        split(sites)
        for n in range(5):
            say(sites, WAYNE, "written in the split %d" % n, MROOM)
        sites.restart_mirror(crash=True)   # no time passes: nothing coalesced
        for user in (KEVIN, WAYNE, KEITH):
            sites.take(user)
        heal(sites)
        written = ["written in the split %d" % n for n in range(5)]
        self.assertEqual(occupant_bodies(sites.take(KEVIN)), written)
        self.assertEqual(history_bodies(sites.master.rooms[ROOM]), written)
        self.assertEqual(history_bodies(sites.mirror.rooms[MROOM]), written)

    def test_mirror_killed_during_the_upload(self):
        sites = conversation()
        configure(sites, [("muc#roomconfig_historylength", "1000")])
        split(sites)
        for n in range(400):
            say(sites, WAYNE, "written in the split %d" % n, MROOM)
        # The netjoin: the first page goes up and is taken, and the
        # mirror dies before it sends the next.
        upload, pages = sites.mirror._upload_split_messages, []
        sites.mirror._upload_split_messages = lambda room: (
            pages.append(room) if pages else (pages.append(room), upload(room)))
        sites.cut = False
        sites.advance(30)
        self.assertEqual(len(pages), 2)
        self.assertLess(len(history_bodies(sites.master.rooms[ROOM])), 400)
        sites.restart_mirror(crash=True)
        sites.advance(60)
        written = ["written in the split %d" % n for n in range(400)]
        self.assertEqual(history_bodies(sites.master.rooms[ROOM])[-400:], written)
        self.assertEqual(sorted(occupant_bodies(sites.take(KEVIN))), sorted(written))
        self.assertEqual(history_bodies(sites.mirror.rooms[MROOM]),
                         history_bodies(sites.master.rooms[ROOM]))

    def test_master_killed_during_the_upload(self):
        """The master dies with a page of the upload unanswered (Prosody
        bounces it), after it took the first: its restart must not leave
        the rest in the mirror's outbox for good (seen on real sites)."""
        sites, written = wayne_wrote_during_a_split(400)
        upload, pages = sites.mirror._upload_split_messages, []

        def crash_at_the_second_page(room):
            before = len(sites.mirror._uploads)
            upload(room)
            if len(sites.mirror._uploads) > before:
                pages.append(room)
                if len(pages) == 2:
                    sites.stop_master(crash=True)
        sites.mirror._upload_split_messages = crash_at_the_second_page
        sites.cut = False
        sites.advance(30)
        self.assertEqual(len(pages), 2)
        self.assertLess(len(history_bodies(sites.master.rooms[ROOM])), 400)
        sites.start_master()
        sites.advance(60)
        self.assertEqual(history_bodies(sites.master.rooms[ROOM])[-400:], written)
        self.assertEqual(history_bodies(sites.mirror.rooms[MROOM]),
                         history_bodies(sites.master.rooms[ROOM]))
        self.assertEqual(sites.mirror.store._outbox.get(MROOM, []), [])

    def test_master_killed_as_the_resync_begins(self):
        """
        The master dies as the mirror's rejoins and history request go up,
        and is back before the mirror's monitor notices: what was on its
        way to it is lost with it (no bounce, no answer; seen on real
        sites).  At its start notice the mirror resyncs afresh, and what
        its users wrote reaches the master.
        """
        sites, written = wayne_wrote_during_a_split(100)
        request, asked = sites.mirror._request_history, []

        def crash_at_the_first_request(room):
            request(room)
            asked.append(room)
            if len(asked) == 1:
                sites.stop_master(crash=True)
                # In the dead process's socket: gone without a word.
                sites._queue = deque(
                    (frm, stanza) for frm, stanza in sites._queue
                    if stanza.getAttribute("to").split("/")[0].split("@")[-1] != MASTER)
                sites.start_master()
        sites.mirror._request_history = crash_at_the_first_request
        sites.cut = False
        for _ in range(60):
            if asked:
                break
            sites.advance(1)
        sites.advance(60)
        # The one lost with the old process, and the one after its start.
        self.assertEqual(len(asked), 2)
        self.assertEqual(history_bodies(sites.master.rooms[ROOM])[-100:], written)
        self.assertEqual(history_bodies(sites.mirror.rooms[MROOM]),
                         history_bodies(sites.master.rooms[ROOM]))
        self.assertEqual(sorted(sites.master.rooms[ROOM].occupants),
                         ["Keith", "Wayne"])


class LargeRosterTests(unittest.TestCase):
    """A room whose roster is larger than a stanza may be: 150 occupants
    with a status of 800 characters each (about 140 KiB of roster)."""

    def crowded(self):
        sites = TwoSites()
        status = "<status>%s</status>" % ("busy " * 160)
        for n in range(150):
            join(sites, "user%03d@fairfax.test/x" % n, "User%03d" % n, ROOM, extra="")
            sites.send("user%03d@fairfax.test/x" % n, "<presence to='%s/User%03d'>%s</presence>"
                       % (ROOM, n, status))
        sites.inbox.clear()
        sites.link = []
        return sites

    def test_the_first_join_through_the_mirror_sees_everyone(self):
        sites = self.crowded()
        joined = join(sites, WAYNE, "Wayne")
        others = {s["from"] for s in joined if s.name == "presence"
                  and s.getAttribute("type") is None}
        self.assertEqual(len(others), 151)    # 150 and Wayne himself
        self.assertLess(max(len(s.toXml().encode("utf-8")) for _, s in sites.link),
                        MAX_STANZA_SIZE)

    def test_a_resync_brings_the_whole_roster_back(self):
        sites = self.crowded()
        join(sites, WAYNE, "Wayne")
        join(sites, KEITH, "Keith")
        split(sites)
        sites.link = []
        heal(sites)
        self.assertEqual(len(sites.mirror.rooms[MROOM].roster), 152)
        self.assertLess(max(len(s.toXml().encode("utf-8")) for _, s in sites.link),
                        MAX_STANZA_SIZE)
