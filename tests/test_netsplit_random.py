"""
A randomised run of cuts, stalls and heals during a scripted conversation
on two real sites (seeded and bounded).  Afterwards every user's view of
history and occupants must be the same at both sites, with no message
lost and none duplicated.  Assertions are on what the clients received
and on the services' stores.

DMUC_RANDOM_SEEDS (comma separated) and DMUC_RANDOM_CYCLES override the
defaults, for longer runs by hand.
"""

import os
import random
import time

from twisted.trial import unittest

from tests.harness.client import connect
from tests.harness.prosody import temp_directory
from tests.harness.sites import start_two_sites
from tests.harness.xml import find, status_codes
from tests.test_netsplit_sites import FAST, MROOM, ROOM, eventually, stored_bodies

SEEDS = [int(s) for s in os.environ.get("DMUC_RANDOM_SEEDS", "7,1234,2026").split(",")]
CYCLES = int(os.environ.get("DMUC_RANDOM_CYCLES", "50"))
FAULTS = ("cut", "stall fairfax>raleigh", "stall raleigh>fairfax", "stall both")


def bodies(stanzas):
    """What occupants wrote (the room's own split notices aside)."""
    return [find(s, "body").text for s in stanzas
            if s.get("type") == "groupchat" and find(s, "body") is not None
            and "/" in s.get("from", "")]


class RandomCutAndHealTests(unittest.TestCase):

    def run_seed(self, seed):
        rng = random.Random(seed)
        sites = start_two_sites(self, temp_directory(self), monitor=FAST)
        users = {"Kevin": (connect(self, sites.fairfax, "kevin", resource="r"), ROOM),
                 "Carol": (connect(self, sites.fairfax, "carol", resource="r"), ROOM),
                 "Wayne": (connect(self, sites.raleigh, "wayne", resource="r"), MROOM),
                 "Keith": (connect(self, sites.raleigh, "keith", resource="r"), MROOM)}
        for nick, (client, room) in users.items():
            client.send("<presence to='%s/%s'><x xmlns='http://jabber.org/protocol/muc'>"
                        "<history maxstanzas='0'/></x></presence>" % (room, nick))
            client.wait_for(lambda s: 110 in status_codes(s), timeout=10)
        users["Kevin"][0].iq(
            "<iq type='set' to='%s'><query xmlns='http://jabber.org/protocol/muc#owner'>"
            "<x xmlns='jabber:x:data' type='submit'><field var='muc#roomconfig_persistentroom'>"
            "<value>1</value></field><field var='muc#roomconfig_historylength'><value>1000"
            "</value></field></x></query></iq>" % ROOM)
        received = {nick: [] for nick in users}
        sent = []

        def say():
            nick = rng.choice(sorted(users))
            client, room = users[nick]
            text = "m%d from %s" % (len(sent), nick)
            sent.append(text)
            client.send("<message to='%s' type='groupchat'><body>%s</body></message>"
                        % (room, text))

        def collect():
            for nick, (client, _) in users.items():
                received[nick].extend(bodies(client.take_all()))

        for cycle in range(CYCLES):
            for _ in range(rng.randint(0, 2)):
                say()
            fault = rng.choice(FAULTS)
            if fault == "cut":
                sites.relay.cut()
            elif fault == "stall both":
                sites.relay.stall()
            else:
                sites.relay.stall(fault.split()[1])
            for _ in range(rng.randint(1, 3)):
                say()
                time.sleep(rng.uniform(0, 0.4))
            time.sleep(rng.uniform(0, 2.5))     # detected, or not yet
            sites.relay.heal()
            time.sleep(rng.uniform(0, 1.0))     # next fault may hit a resync
            collect()

        master_db = sites.master.directory + "/master.sqlite"
        mirror_db = sites.mirror.directory + "/mirror.sqlite"

        def converged():
            collect()
            master, mirror = stored_bodies(master_db, ROOM), stored_bodies(mirror_db, MROOM)
            return (sorted(master) == sorted(sent) and master == mirror
                    and all(sorted(r) == sorted(sent) for r in received.values()))

        ok = eventually(converged, timeout=90, interval=0.5)
        master, mirror = stored_bodies(master_db, ROOM), stored_bodies(mirror_db, MROOM)
        report = "seed %d: sent %d; master %d, mirror %d; %s" % (
            seed, len(sent), len(master), len(mirror),
            {n: (len(r), len(set(r))) for n, r in received.items()})
        self.assertEqual(sorted(master), sorted(sent), "master store lost or doubled: " + report)
        self.assertEqual(mirror, master, "mirror history differs from master's: " + report)
        for nick, got in received.items():
            self.assertEqual(sorted(got), sorted(sent), "%s's view: %s" % (nick, report))
        self.assertTrue(ok, report)
        # the same occupants at both sites: a fresh joiner at each sees all four
        four = sorted(users)
        self.assertEqual(self.occupants(sites, "dave", "fairfax", ROOM), four)
        self.assertEqual(self.occupants(sites, "eve", "raleigh", MROOM), four + ["dave"])

    def occupants(self, sites, user, site, room):
        client = connect(self, getattr(sites, site), user, resource="r")
        client.send("<presence to='%s/%s'><x xmlns='http://jabber.org/protocol/muc'>"
                    "<history maxstanzas='0'/></x></presence>" % (room, user))
        client.wait_for(lambda s: 110 in status_codes(s), timeout=10)
        client.barrier(room.split("@")[-1])
        return sorted(s.get("from").split("/")[-1] for s in client.take_all()
                      if s.tag.endswith("presence") and s.get("type") is None)


def _seed_test(seed):
    def test(self):
        self.run_seed(seed)
    test.__name__ = "test_seed_%d" % seed
    test.__doc__ = "%d cuts and heals with seed %d: nothing lost, nothing doubled." % (CYCLES, seed)
    return test


for _seed in SEEDS:
    setattr(RandomCutAndHealTests, "test_seed_%d" % _seed, _seed_test(_seed))
