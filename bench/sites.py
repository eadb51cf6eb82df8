"""
The benchmark's two sites, in one of eight modes, with their users.

    stock    the room on fairfax's Prosody mod_muc (rooms.fairfax.test);
             raleigh users join it directly over S2S; no dmuc runs
    dmuc     the room on the dmuc master; raleigh users join through the
             mirror
    dmuc_ff  the same with the mirror's fire_and_forget on
    direct   as dmuc, but master and mirror talk over dmuc's own S2S
             stream, compressed (XEP-0138 zlib), not through the two
             Prosodies' S2S
    direct_ff  the same with fire_and_forget on
    dmuc_mc  as dmuc, with raleigh's Prosody taking XEP-0033 multicast from
             the mirror (etc/prosody-modules/mod_dmuc_multicast.lua); only
             the throughput benchmark runs in it
    dmuc_mc_ff  the same with the mirror's fire_and_forget on (throughput only)
    direct_mc  direct with multicast at raleigh (throughput only)

Every mode also has stock mod_muc at raleigh, the baselines of the
throughput benchmark: rooms.raleigh.test, and archived.raleigh.test with
mod_muc_mam (a mirror room archives too).
"""

import json
import os
import threading
import time
import uuid
from collections import Counter
from xml.sax.saxutils import escape

from bench.chat import Chat

from dmuc.xmpp.addressing import mirror_room_jid
from tests.harness.client import Client, call_on_loop
from tests.harness.sites import MASTER, MIRROR, TwoSites, free_addresses

MODES = ("stock", "dmuc", "dmuc_ff", "direct", "direct_ff", "dmuc_mc", "dmuc_mc_ff", "direct_mc")
#: Modes with raleigh's Prosody taking multicast from the mirror.
MULTICAST_MODES = ("dmuc_mc", "dmuc_mc_ff", "direct_mc")
#: Modes that run only some scenarios (the others would repeat dmuc's).
MODE_SCENARIOS = {mode: ("throughput",) for mode in MULTICAST_MODES}
#: Stock's throughput is measured in every dmuc mode, on the same servers
#: and turn about with the mirror room's (both stock rooms): a run of its
#: own would only add a figure from other servers at another moment.
MODE_SCENARIOS["stock"] = ("rooms", "idle", "resync", "constrained")
#: The smoke run's (make test): the other multicast modes differ from
#: dmuc_mc only in settings other modes try.
SMOKE_MODES = tuple(m for m in MODES if m not in ("dmuc_mc_ff", "direct_mc"))
STOCK_FAIRFAX, STOCK_RALEIGH = "rooms.fairfax.test", "rooms.raleigh.test"
STOCK_RALEIGH_MAM = "archived.raleigh.test"
PASSWORD = "bench"
MUC = "http://jabber.org/protocol/muc"
CLIENT = "{jabber:client}"

#: Short enough that the idle and netsplit runs see the monitor at work
#: within seconds; the timeout long enough that a link throttled to
#: 9600 bit/s, queueing a burst, is not taken for a split.
MONITOR = {"ping_interval": "5", "ping_timeout": "15", "split_ping_interval": "1"}


class BenchError(Exception):
    """A scenario did not do what it should: its figures would be wrong."""


class Recorder:
    """
    Watches one client's incoming stanzas (on the client loop) and keeps
    what the benchmarks wait for and time: the first arrival of each
    message body, subjects (the end of a join) per room, and presences
    carrying a benchmark status.
    """

    def __init__(self):
        self.changed = threading.Condition()
        self.bodies = {}
        self.subjects = Counter()
        self.subject_times = {}
        self.statuses = Counter()

    def __call__(self, stanza):
        now = time.monotonic()
        tag = stanza.tag
        with self.changed:
            if tag == CLIENT + "message":
                if stanza.find(CLIENT + "subject") is not None:
                    room = stanza.get("from", "").split("/")[0]
                    self.subjects[room] += 1
                    self.subject_times.setdefault(room, now)
                else:
                    body = stanza.find(CLIENT + "body")
                    if body is not None and body.text:
                        self.bodies.setdefault(body.text, now)
            elif tag == CLIENT + "presence":
                status = stanza.find(CLIENT + "status")
                if status is not None and (status.text or "").startswith("bench-"):
                    self.statuses[status.text] += 1
            else:
                return
            self.changed.notify_all()

    def wait(self, predicate, timeout):
        """Block until C{predicate(self)} holds; return whether it did."""
        deadline = time.monotonic() + timeout
        with self.changed:
            while not predicate(self):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self.changed.wait(remaining)
        return True


class User:
    """A benchmark user: a slixmpp client and its L{Recorder}."""

    def __init__(self, name, site, client):
        self.name, self.site, self.client = name, site, client
        self.recorder = Recorder()
        client.listen(self.recorder)

    def send(self, text):
        self.client.send(text)

    def send_raw(self, text):
        """Send stanzas as they are written, all at once."""
        call_on_loop(self.client.xmpp.send_raw, text)

    def join(self, room, nick=None, history=""):
        self.send("<presence to='%s/%s'><x xmlns='%s'>%s</x></presence>"
                  % (room, nick or self.name, MUC, history))

    def leave(self, room, nick=None):
        self.send("<presence type='unavailable' to='%s/%s'/>" % (room, nick or self.name))

    def say(self, room, body):
        """A room message as Conversations, Gajim and Dino write one: a
        random id, and the same as its origin-id (XEP-0359)."""
        message_id = uuid.uuid4().hex
        self.send("<message to='%s' type='groupchat' id='%s'><body>%s</body>"
                  "<origin-id xmlns='urn:xmpp:sid:0' id='%s'/></message>"
                  % (room, message_id, escape(body), message_id))

    def wait_joined(self, room, timeout=30):
        """Wait for the subject that ends a join of C{room}."""
        if not self.recorder.wait(lambda r: r.subjects[room] >= 1, timeout):
            raise BenchError("%s did not finish joining %s in %s s" % (self.name, room, timeout))

    def wait_bodies(self, bodies, timeout):
        bodies = list(bodies)
        if not self.recorder.wait(lambda r: all(b in r.bodies for b in bodies), timeout):
            missing = [b for b in bodies if b not in self.recorder.bodies]
            raise BenchError("%s is missing %d of %d messages after %s s (e.g. %s)"
                             % (self.name, len(missing), len(bodies), timeout, missing[:3]))

    def forget(self):
        """Drop the harness inbox: the recorder keeps what we need."""
        self.client.take_all()


class BenchSites:
    """Two sites in one mode, with 5 fairfax users and raleigh users."""

    def __init__(self, base_dir, mode, raleigh_users=50, counting_users=0):
        assert mode in MODES, mode
        self.mode = mode
        # Explicit, so that DMUC_DEPLOYMENT never changes the benchmark.
        self.sites = TwoSites(
            os.path.join(base_dir, mode), fire_and_forget=mode.endswith("_ff"),
            deployment="direct" if self.direct else "prosody",
            addresses=free_addresses(), monitor=MONITOR,
            muc_domains=((STOCK_FAIRFAX,), (STOCK_RALEIGH, STOCK_RALEIGH_MAM)),
            muc_modules={STOCK_RALEIGH_MAM: ("muc_mam",)}, log_level="info",
            multicast_senders=(MIRROR,) if mode in MULTICAST_MODES else None,
            # One client stands for many users' traffic (a burst of 200 in
            # the throughput run), and stock mod_muc has no rate limit.
            limits={"messages_per_second": "0"})
        self.relay = self.sites.relay
        self.fairfax_names = ["f%d" % n for n in range(1, 6)]
        self.raleigh_names = ["r%d" % n for n in range(1, raleigh_users + 1)]
        self.counting_names = ["c%d" % n for n in range(1, counting_users + 1)]
        self.fairfax_users, self.raleigh_users = [], []
        #: The conversation: the same bodies in every mode of a run.
        self.chat = Chat()

    @property
    def dmuc(self):
        return self.mode != "stock"

    @property
    def direct(self):
        """Master and mirror on their own compressed S2S stream."""
        return self.mode in ("direct", "direct_ff", "direct_mc")

    def start(self):
        self.sites.fairfax.create_accounts(self.fairfax_names, PASSWORD)
        self.sites.raleigh.create_accounts(self.raleigh_names + self.counting_names, PASSWORD)
        self.sites.start(dmuc=self.dmuc)
        self.fairfax_users = self._connect(self.sites.fairfax, self.fairfax_names)
        self.raleigh_users = self._connect(self.sites.raleigh, self.raleigh_names)
        return self

    def stop(self):
        for user in self.fairfax_users + self.raleigh_users:
            try:
                user.client.disconnect()
            except Exception:
                pass
        self.sites.stop()

    def _connect(self, server, names):
        clients = Client.connect_many(["%s@%s/bench" % (name, server.domain) for name in names],
                                      PASSWORD, server.ip, server.c2s_port)
        return [User(name, server.domain, client) for name, client in zip(names, clients)]

    # -- rooms: where each site's users find a room of this mode

    def fairfax_room(self, name):
        return "%s@%s" % (name, STOCK_FAIRFAX if self.mode == "stock" else MASTER)

    def raleigh_room(self, name):
        room = self.fairfax_room(name)
        return room if self.mode == "stock" else mirror_room_jid(room, MIRROR)

    def room_for(self, user, name):
        return self.fairfax_room(name) if user.site == self.sites.fairfax.domain \
            else self.raleigh_room(name)

    # -- process figures

    def server_pids(self):
        """The processes that do the room's work, by role."""
        pids = {"prosody_fairfax": self.sites.fairfax.pid,
                "prosody_raleigh": self.sites.raleigh.pid}
        if self.dmuc:
            pids["dmuc_master"] = self.sites.master.process.pid
            pids["dmuc_mirror"] = self.sites.mirror.process.pid
        return pids

    def link_state(self, which):
        """The monitor's state for its one peer ('split', 'up', or None)."""
        process = self.sites.master if which == "master" else self.sites.mirror
        path = os.path.join(process.directory, "status.json")
        try:
            with open(path) as f:
                peers = json.load(f)["peers"]
        except (OSError, ValueError, KeyError):
            return None
        return peers[0]["state"] if peers else None


def cpu_seconds(pid):
    """User plus system CPU time of a process so far."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks
