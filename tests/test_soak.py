"""
A soak run on two real sites (issue 13): steady conversation from four
users, two per site, with periodic link cuts, `kill -9` and restarts of
the master and of the mirror, and floods that the rate limit bounds.  At
the end both sites' histories are the same, every message a sender saw
acknowledged (its echo) is in them once, nothing is in them that was not
sent, and the dmuc processes' memory is flat over the second half.

DMUC_SOAK_SECONDS sets the length (default 60, as `make test` runs it
under pytest; its direct-link and trial runs take 30, in which each kind
of event still happens once; `make soak` runs 20 minutes).
"""

import os
import random
import threading
import time

from twisted.trial import unittest

from tests.harness.client import connect
from tests.harness.prosody import temp_directory
from tests.harness.sites import start_two_sites
from tests.harness.xml import find, status_codes
from tests.test_netsplit_sites import FAST, MROOM, ROOM, eventually, stored_bodies

SECONDS = float(os.environ.get("DMUC_SOAK_SECONDS", "60"))
EVENTS = ("cut", "kill master", "flood", "kill mirror", "cut", "flood")


def rss_kib(process):
    with open("/proc/%d/statm" % process.pid) as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") // 1024


class SoakTests(unittest.TestCase):

    def setUp(self):
        self.sites = start_two_sites(self, temp_directory(self), monitor=FAST)
        self.users = {}
        self.received = {}
        self.lock = threading.Lock()
        for nick, site, room in (("Kevin", "fairfax", ROOM), ("Carol", "fairfax", ROOM),
                                 ("Wayne", "raleigh", MROOM), ("Keith", "raleigh", MROOM)):
            client = connect(self, getattr(self.sites, site), nick.lower(), resource="r")
            got = self.received[nick] = []
            client.listen(lambda s, got=got: self._note(got, s))
            self.users[nick] = (client, room)
            self.join(nick)
        self.users["Kevin"][0].iq(
            "<iq type='set' to='%s'><query xmlns='http://jabber.org/protocol/muc#owner'>"
            "<x xmlns='jabber:x:data' type='submit'><field var='muc#roomconfig_persistentroom'>"
            "<value>1</value></field><field var='muc#roomconfig_historylength'><value>1000"
            "</value></field></x></query></iq>" % ROOM)
        self.sent = []

    def _note(self, got, stanza):
        element = find(stanza, "body")
        if (element is not None and stanza.get("type") == "groupchat"
                and "/" in stanza.get("from", "") and find(stanza, "delay:delay") is None):
            with self.lock:
                got.append(element.text)

    def join(self, nick, retry_for=0):
        """Join (again, after the master's restart dropped a user of its
        site, as a client does on a failed self-ping), retrying after a
        `wait' error while the service comes back."""
        client, room = self.users[nick]
        deadline = time.monotonic() + retry_for
        while True:
            client.send("<presence to='%s/%s'><x xmlns='http://jabber.org/protocol/muc'>"
                        "<history maxstanzas='0'/></x></presence>" % (room, nick))
            answer = client.wait_for(lambda s: s.tag.endswith("presence") and (
                s.get("type") == "error" or 110 in status_codes(s)), timeout=30)
            if answer.get("type") != "error" or time.monotonic() > deadline:
                return answer.get("type") != "error"
            time.sleep(0.5)

    def say(self, nick):
        client, room = self.users[nick]
        text = "m%d from %s" % (len(self.sent), nick)
        self.sent.append(text)
        client.send("<message to='%s' type='groupchat'><body>%s</body></message>"
                    % (room, text))

    def chat_for(self, seconds, rng):
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self.say(rng.choice(sorted(self.users)))
            time.sleep(rng.uniform(0.1, 0.4))

    def event(self, name, rng):
        if name == "cut":
            self.sites.relay.cut()
            self.chat_for(4, rng)
            self.sites.relay.heal()
        elif name == "kill master":
            self.sites.master.kill()
            self.chat_for(2, rng)
            self.sites.master.start()
            for nick in ("Kevin", "Carol"):      # dropped by the restart
                self.assertTrue(self.join(nick, retry_for=30), nick)
        elif name == "kill mirror":
            self.sites.mirror.kill()
            self.chat_for(2, rng)
            self.sites.mirror.start()
        elif name == "flood":
            flooder = rng.choice(sorted(self.users))
            for _ in range(80):
                self.say(flooder)

    def test_soak(self):
        rng = random.Random(2026)
        start = time.monotonic()
        period = max(8.0, SECONDS / 8)
        samples = []
        index = 0
        while time.monotonic() - start < SECONDS:
            self.chat_for(period / 2, rng)
            self.event(EVENTS[index % len(EVENTS)], rng)
            index += 1
            if time.monotonic() - start > SECONDS / 2 and not samples:
                samples.append((rss_kib(self.sites.master.process),
                                rss_kib(self.sites.mirror.process), index))
        self.chat_for(2, rng)
        master_db = self.sites.master.directory + "/master.sqlite"
        mirror_db = self.sites.mirror.directory + "/mirror.sqlite"

        def acknowledged():
            with self.lock:
                return {text for nick, got in self.received.items() for text in got
                        if text.endswith("from " + nick)}

        def settled():
            master, mirror = stored_bodies(master_db, ROOM), stored_bodies(mirror_db, MROOM)
            return master == mirror and acknowledged() <= set(master)

        self.assertTrue(eventually(settled, timeout=90, interval=0.5), self.report())
        master = stored_bodies(master_db, ROOM)
        self.assertEqual(len(master), len(set(master)), "a message stored twice")
        self.assertLessEqual(set(master), set(self.sent))
        # Every user saw every stored message once (those written while
        # its site's service was down or the user rejoining aside, which
        # a client gets as history).
        for nick, got in self.received.items():
            self.assertEqual(len(got), len(set(got)), "%s got a message twice" % nick)
        master_rss, mirror_rss = (rss_kib(self.sites.master.process),
                                  rss_kib(self.sites.mirror.process))
        first_master, first_mirror, _ = samples[0]
        # Flat: the second half's growth is history (1,000 messages at
        # most, under 2 MiB), not a leak.
        self.assertLess(master_rss - first_master, 8 * 1024, (first_master, master_rss))
        self.assertLess(mirror_rss - first_mirror, 8 * 1024, (first_mirror, mirror_rss))
        print("soak: %.0f s, %d sent, %d stored, %d acknowledged; RSS master %d -> %d KiB, "
              "mirror %d -> %d KiB" % (time.monotonic() - start, len(self.sent), len(master),
                                       len(acknowledged()), first_master, master_rss,
                                       first_mirror, mirror_rss))

    def report(self):
        master_db = self.sites.master.directory + "/master.sqlite"
        mirror_db = self.sites.mirror.directory + "/mirror.sqlite"
        master, mirror = stored_bodies(master_db, ROOM), stored_bodies(mirror_db, MROOM)
        with self.lock:
            acked = {t for n, g in self.received.items() for t in g if t.endswith("from " + n)}
        return "sent %d, master %d, mirror %d, acknowledged %d, missing at master %s" % (
            len(self.sent), len(master), len(mirror), len(acked), sorted(acked - set(master))[:10])
