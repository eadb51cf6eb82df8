"""
The per-stanza hot paths of dmuc, measured in-process (issue 5).

    python -m bench.hotpaths [--quick] [--profile]

prints one JSON object.  Nothing touches the network.  Each service runs
on a real L{XmlStream} (so inbound stanzas are parsed and outbound ones
serialised and encoded exactly as in production) whose transport keeps or
just counts the bytes written; time is a L{Clock}.

  - C{master_groupchat}: a groupchat message from one occupant of a master
    room with C{--occupants} local occupants and one mirror occupant: the
    master parses it, stores it in history, sends it to every local
    occupant and one copy to the mirror.
  - C{master_presence}: a status change of one of those occupants.
  - C{master_groupchat_limited}, C{master_presence_limited}: the same with
    the operator's limits checked on every stanza (dmuc/muc/limits.py),
    none refusing: what the limits cost at normal rates.
  - C{mirror_groupchat}: a groupchat message from the master to a mirror
    room with C{--occupants} local users: the mirror parses it, keeps it
    in its copy of the history and sends it to each of them.
  - C{mirror_presence}: a remote occupant's status change, pushed by the
    master to that mirror room.
  - C{mirror_user_groupchat_N}: a groupchat message from one of the N
    local users of a mirror room: the mirror finds its occupant, keeps it
    in flight and sends it up to the master (one stanza out).
  - C{mirror_user_presence_N}: a status change of one of the N local
    users: the mirror sends it up and shows it here itself (the master
    sends nothing back in the compact profile): roster updated, room copy
    saved, sent to the user (110) and the N-1 others.  N is 50 and 500
    (C{sizes}), to show what grows with the room.
  - C{sqlite_appends_burst}: history appends with the SQLite store, all
    asked for at once, timed until the last one is written.
  - C{sqlite_appends_trickle}: the same, one append per reactor turn, as
    messages arriving one by one would ask for them.
  - C{master_persistent_burst}, C{master_persistent_trickle}: groupchat
    messages in a persistent master room of C{--occupants} with the SQLite
    store, timed until every occupant has each (all at once; one at a
    time); the C{_uncommitted} figures are the same without the wait for
    the commit before the echo: the cost of crash safety.

The two-site rooms are built through both services (joins, sync, history
request), stanzas between them crossing as bytes; then each measurement
feeds one service alone, its output counted and dropped.  Messages carry a
body and an origin-id, as current clients send them.

Each figure is taken C{repeats} times; the JSON gives min, median and max
(times in microseconds per stanza, appends per second for storage).
L{measure} returns the same dict.  C{--profile} prints the top cProfile
entries of each measurement to stderr.
"""

import argparse
import cProfile
import gc
import io
import json
import os
import platform
import pstats
import queue
import shutil
import statistics
import sys
import tempfile
import time

from twisted.internet.task import Clock
from twisted.words.protocols.jabber.xmlstream import STREAM_AUTHD_EVENT
from twisted.words.xish.xmlstream import BootstrapMixin, XmlStream

from dmuc.master.handler import MasterMUC
from dmuc.mirror.handler import MirrorMUC
from dmuc.muc.limits import Limits
from dmuc.storage import HistoryEntry
from dmuc.storage.memory import MemoryRoomStore
from dmuc.storage.sqlite import SQLiteRoomStore
from dmuc.xmpp import namespaces as ns
from dmuc.xmpp.addressing import mirror_room_jid
from dmuc.xmpp.stanzas import parse_xml
from dmuc.xmpp.timestamps import format_timestamp
from wokkel.subprotocols import StreamManager  # after dmuc: its wokkel shim

MASTER = "conference.fairfax.test"
MIRROR = "mirror.raleigh.test"
ROOM = "chat@" + MASTER
MROOM = mirror_room_jid(ROOM, MIRROR)
START = 1_700_000_000
# Time between two measured stanzas: messages a millisecond apart, so
# history appends in time order, as it mostly does in a live room.
TICK = 0.001

STREAM_OPEN = ("<stream:stream xmlns='%s' xmlns:stream='http://etherx.jabber.org/streams'>"
               % ns.COMPONENT).encode()
BODY = ("Did anyone look at the release notes yet? The storage section changed "
        "& the <config> example needs a fix.")

FULL = {"occupants": 50, "messages": 300, "repeats": 7, "appends": 2000,
        "storage_repeats": 5, "sizes": (50, 500), "persistent": 500}
QUICK = {"occupants": 50, "messages": 40, "repeats": 3, "appends": 200,
         "storage_repeats": 3, "sizes": (50, 200), "persistent": 50}


class Sink:
    """A transport that keeps what is written (to route it) or only
    counts it."""

    def __init__(self):
        self.keep = True
        self.chunks = []
        self.writes = 0
        self.bytes = 0

    def write(self, data):
        self.writes += 1
        self.bytes += len(data)
        if self.keep:
            self.chunks.append(data)

    def writeSequence(self, data):
        for chunk in data:
            self.write(chunk)

    def loseConnection(self):
        pass


def connect(handler, clock):
    """Attach C{handler} to a new, initialised component stream; return
    the stream (its C{transport} is a L{Sink})."""
    factory = BootstrapMixin()
    manager = StreamManager(factory, clock)
    handler.setHandlerParent(manager)
    stream = XmlStream()
    factory.installBootstraps(stream)
    stream.makeConnection(Sink())
    stream.dataReceived(STREAM_OPEN)
    stream.dispatch(stream, STREAM_AUTHD_EVENT)
    return stream


class TwoSites:
    """
    A master and a mirror service, each on its own stream; L{route}
    carries what one writes for the other as bytes, and drops what is for
    users.
    """

    def __init__(self, limits=None):
        self.clock = Clock()
        self.clock.advance(START)
        self.master = MasterMUC(MASTER, MemoryRoomStore(), self.clock,
                                trusted_mirrors={MIRROR: ("raleigh.test",)}, limits=limits)
        self.mirror = MirrorMUC(MIRROR, ("raleigh.test",), MemoryRoomStore(), self.clock)
        self.streams = {MASTER: connect(self.master, self.clock),
                        MIRROR: connect(self.mirror, self.clock)}

    def deliver(self, domain, text):
        self.streams[domain].dataReceived(text.encode("utf-8"))
        self.route()

    def route(self):
        moved = True
        while moved:
            moved = False
            for stream in self.streams.values():
                chunks, stream.transport.chunks = stream.transport.chunks, []
                for chunk in chunks:
                    host = parse_xml(chunk).getAttribute("to", "").split("/")[0]
                    host = host.split("@")[-1]
                    if host in self.streams:
                        self.streams[host].dataReceived(chunk)
                        moved = True

    def counting(self):
        """From now on the streams only count what is written."""
        for stream in self.streams.values():
            stream.transport.keep = False
            stream.transport.chunks = []


def build_sites(local, remote, limits=None):
    """A master room with C{local} users of the master's site and
    C{remote} users joined through the mirror."""
    sites = TwoSites(limits)
    for n in range(local):
        sites.deliver(MASTER, "<presence from='u%02d@fairfax.test/r' to='%s/u%02d'>"
                              "<x xmlns='%s'/></presence>" % (n, ROOM, n, ns.MUC))
    for n in range(remote):
        sites.deliver(MIRROR, "<presence from='m%02d@raleigh.test/r' to='%s/m%02d'>"
                              "<x xmlns='%s'/></presence>" % (n, MROOM, n, ns.MUC))
    room = sites.master.rooms[ROOM]
    assert len(room.occupants) == local + remote, len(room.occupants)
    if remote:
        assert len(sites.mirror.rooms[MROOM].local_users()) == remote
    sites.counting()
    return sites


def groupchat_from_user(n, serial):
    return ("<message from='u%02d@fairfax.test/r' to='%s' type='groupchat' id='b%d'>"
            "<body>%s %d</body><origin-id xmlns='%s' id='o-%d'/></message>"
            % (n, ROOM, serial, _xml(BODY), serial, ns.STANZA_ID, serial))


def groupchat_from_master(serial):
    """What the master sends a mirror room for a message of a master
    user: its stanza-id, occupant-id and the time it gave it."""
    return ("<message from='%s/u00' to='%s' type='groupchat' id='b%d'>"
            "<body>%s %d</body><origin-id xmlns='%s' id='o-%d'/>"
            "<occupant-id xmlns='%s' id='cHViGxzt3mHnCGQNy3Y0r+Fa1mVc5g3RJb4ipKU5vNs='/>"
            "<stanza-id xmlns='%s' id='bench-%012d' by='%s'/>"
            "<time xmlns='%s' stamp='%s'/></message>"
            % (ROOM, MROOM, serial, _xml(BODY), serial, ns.STANZA_ID, serial,
               ns.OCCUPANT_ID, ns.STANZA_ID, serial, ROOM, ns.DMUC_SYNC,
               format_timestamp(START + 60 + serial * TICK)))


def presence_from_user(n, serial):
    show = ("away", "chat", "dnd", "xa")[serial % 4]
    return ("<presence from='u%02d@fairfax.test/r' to='%s/u%02d'><show>%s</show>"
            "<status>%d</status></presence>" % (n, ROOM, n, show, serial))


def presence_from_master(serial):
    """A master user's status change, as the master pushes it to a mirror."""
    show = ("away", "chat", "dnd", "xa")[serial % 4]
    return ("<presence from='%s/u00' to='%s'><show>%s</show><status>%d</status>"
            "<occupant-id xmlns='%s' id='cHViGxzt3mHnCGQNy3Y0r+Fa1mVc5g3RJb4ipKU5vNs='/>"
            "<x xmlns='%s'><item affiliation='owner' role='moderator'/></x></presence>"
            % (ROOM, MROOM, show, serial, ns.OCCUPANT_ID, ns.MUC_USER))


def groupchat_from_mirror_user(n, serial):
    return ("<message from='m%02d@raleigh.test/r' to='%s' type='groupchat' id='b%d'>"
            "<body>%s %d</body><origin-id xmlns='%s' id='o-%d'/></message>"
            % (n, MROOM, serial, _xml(BODY), serial, ns.STANZA_ID, serial))


def status_of_mirror_user(n, serial):
    """A local user's status change: the mirror sends it up and shows it
    to its users itself (the master answers nothing: compact profile)."""
    show = ("away", "chat", "dnd", "xa")[serial % 4]
    return ("<presence from='m%02d@raleigh.test/r' to='%s/m%02d'><show>%s</show>"
            "<status>%d</status></presence>" % (n, MROOM, n, show, serial))


def _xml(text):
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def time_stanzas(stream, clock, stanzas, repeats, profile=None):
    """
    Feed C{stanzas} (bytes) to C{stream}, C{repeats} times over fresh
    slices, C{clock} a L{TICK} further for each; @return: (microseconds per
    stanza of each repeat, writes per stanza).
    """
    per_repeat = len(stanzas) // repeats
    results = []
    writes = 0
    for r in range(repeats):
        batch = stanzas[r * per_repeat:(r + 1) * per_repeat]
        sink = stream.transport
        before = sink.writes
        gc.collect()
        if profile is not None:
            profile.enable()
        started = time.perf_counter()
        for data in batch:
            clock.advance(TICK)
            stream.dataReceived(data)
        elapsed = time.perf_counter() - started
        if profile is not None:
            profile.disable()
        results.append(elapsed / len(batch) * 1e6)
        writes = (sink.writes - before) / len(batch)
    return results, writes


def spread(values):
    return {"min": round(min(values), 2), "median": round(statistics.median(values), 2),
            "max": round(max(values), 2)}


def fan_out_figures(name, sites, domain, make, settings, profiles):
    count = settings["messages"] * settings["repeats"]
    stanzas = [make(i).encode("utf-8") for i in range(count)]
    profile = cProfile.Profile() if profiles is not None else None
    times, writes = time_stanzas(sites.streams[domain], sites.clock, stanzas,
                                 settings["repeats"], profile)
    if profiles is not None:
        profiles[name] = profile
    return {"occupants": settings["occupants"], "stanzas": settings["messages"],
            "repeats": settings["repeats"], "sent_per_stanza": writes,
            "us_per_stanza": spread(times)}


def measure_master(settings, profiles=None):
    sites = build_sites(settings["occupants"], 1)
    speaker = 1
    return {
        "master_groupchat": dict(fan_out_figures(
            "master_groupchat", sites, MASTER, lambda i: groupchat_from_user(speaker, i),
            settings, profiles), mirrors=1),
        "master_presence": dict(fan_out_figures(
            "master_presence", sites, MASTER, lambda i: presence_from_user(speaker, i),
            settings, profiles), mirrors=1),
    }


#: The configuration's default limits (dmuc/config.py), but a bucket that
#: never empties: every message pays for the check, none is refused (the
#: cost of the limits at normal rates, issue 13).
CHECKED = Limits(messages_per_second=5, message_burst=10 ** 9, max_presence_size=8192,
                 max_occupants=10000, max_occupants_per_room=1000)


def measure_limits(settings, profiles=None):
    sites = build_sites(settings["occupants"], 1, limits=CHECKED)
    speaker = 1
    return {
        "master_groupchat_limited": dict(fan_out_figures(
            "master_groupchat_limited", sites, MASTER,
            lambda i: groupchat_from_user(speaker, i), settings, profiles), mirrors=1),
        "master_presence_limited": dict(fan_out_figures(
            "master_presence_limited", sites, MASTER,
            lambda i: presence_from_user(speaker, i), settings, profiles), mirrors=1),
    }


def measure_mirror(settings, profiles=None):
    sites = build_sites(1, settings["occupants"])
    return {
        "mirror_groupchat": fan_out_figures(
            "mirror_groupchat", sites, MIRROR, groupchat_from_master, settings, profiles),
        "mirror_presence": fan_out_figures(
            "mirror_presence", sites, MIRROR, presence_from_master, settings, profiles),
    }


def measure_mirror_users(settings, profiles=None):
    """The mirror's work for stanzas of its own users, in rooms of each
    of C{settings["sizes"]} local users."""
    figures = {}
    for size in settings["sizes"]:
        sites = build_sites(1, size)
        # The newest user: last in the roster, as a scan would find it.
        speaker = size - 1
        sized = dict(settings, occupants=size)
        for name, make in (("mirror_user_groupchat",
                            lambda i: groupchat_from_mirror_user(speaker, i)),
                           # Another user: the speaker's messages are never
                           # acknowledged here, and a user's status change
                           # waits for its messages (ordered mode).
                           ("mirror_user_presence",
                            lambda i: status_of_mirror_user(speaker - 1, i))):
            key = "%s_%d" % (name, size)
            figures[key] = fan_out_figures(key, sites, MIRROR, make, sized, profiles)
        # Pending saves are part of what the room costs: write them now,
        # outside the timing, so nothing is left for the next room.
        getattr(sites.mirror, "flush", lambda: None)()
    return figures


# -- storage


class ThreadedClock(Clock):
    """
    A L{Clock} that also takes calls from threads, starts and stops the way
    L{adbapi.ConnectionPool} asks a reactor to, and runs until a condition
    holds: enough of a reactor for the SQLite store, in-process.
    """

    def __init__(self):
        Clock.__init__(self)
        self._from_threads = queue.SimpleQueue()

    def callFromThread(self, f, *args, **kwargs):
        self._from_threads.put((f, args, kwargs))

    def callWhenRunning(self, f, *args, **kwargs):
        f(*args, **kwargs)

    def addSystemEventTrigger(self, phase, event, f, *args, **kwargs):
        return (phase, event, f)

    def removeSystemEventTrigger(self, trigger):
        pass

    def turn(self, block):
        """One turn: due timers, then what threads sent back."""
        self.advance(0)
        try:
            f, args, kwargs = self._from_threads.get(timeout=0.01 if block else 0)
        except queue.Empty:
            return
        f(*args, **kwargs)

    def run_until(self, done, timeout=120):
        deadline = time.monotonic() + timeout
        while not done():
            if time.monotonic() > deadline:
                raise RuntimeError("storage did not finish in %ss" % timeout)
            self.turn(block=True)


def history_entry(serial):
    xml = groupchat_from_user(1, serial).replace(
        "from='u01@fairfax.test/r' to='%s'" % ROOM, "from='%s/u01'" % ROOM)
    return HistoryEntry(stanza_id="bench-%012d" % serial, timestamp=START + serial / 1000,
                        nick="u01", real_jid="u01@fairfax.test/r", xml=xml)


def append_rate(count, trickle, profile=None):
    """Appends per second to a fresh SQLite store, until all are written."""
    clock = ThreadedClock()
    directory = tempfile.mkdtemp(prefix="dmuc-bench-")
    store = SQLiteRoomStore(os.path.join(directory, "rooms.sqlite"), reactor=clock)
    try:
        opened = []
        store.open().addCallback(opened.append)
        clock.run_until(lambda: opened)
        entries = [history_entry(i) for i in range(count)]
        done, failed = [], []
        gc.collect()
        if profile is not None:
            profile.enable()
        started = time.perf_counter()
        for entry in entries:
            d = store.append_history(ROOM, entry, 20)
            d.addCallbacks(done.append, failed.append)
            if trickle:
                clock.turn(block=False)
        clock.run_until(lambda: len(done) + len(failed) == count)
        elapsed = time.perf_counter() - started
        if profile is not None:
            profile.disable()
        if failed:
            raise RuntimeError("append failed: %s" % failed[0].getErrorMessage())
        kept = []
        store.load_history(ROOM, 100).addCallback(kept.extend)
        clock.run_until(lambda: kept)
        assert [e.stanza_id for e in kept] == [e.stanza_id for e in entries[-20:]]
        return count / elapsed
    finally:
        store.close()
        shutil.rmtree(directory, ignore_errors=True)


def persistent_room_rate(occupants, count, trickle, committed):
    """
    Microseconds per message of a persistent master room with the SQLite
    store, until every occupant has it: C{committed} as dmuc runs (what a
    message makes the master send waits for its commit: docs/limits.md),
    or with that wait turned off (the cost of crash safety is the
    difference).  C{trickle}: one message at a time, each sent once the
    previous one reached everyone (a user's wait); else all at once.
    """
    clock = ThreadedClock()
    clock.advance(START)
    directory = tempfile.mkdtemp(prefix="dmuc-bench-")
    store = SQLiteRoomStore(os.path.join(directory, "rooms.sqlite"), reactor=clock)
    master = MasterMUC(MASTER, store, clock, trusted_mirrors={})
    if not committed:
        master.send_after_writes = lambda: None
    stream = connect(master, clock)
    try:
        for n in range(occupants):
            stream.dataReceived(("<presence from='u%02d@fairfax.test/r' to='%s/u%02d'>"
                                 "<x xmlns='%s'/></presence>" % (n, ROOM, n, ns.MUC)).encode())
        stream.dataReceived(("<iq from='u00@fairfax.test/r' to='%s' type='set' id='c'>"
                             "<query xmlns='%s'><x xmlns='jabber:x:data' type='submit'>"
                             "<field var='muc#roomconfig_persistentroom'><value>1</value>"
                             "</field></x></query></iq>" % (ROOM, ns.MUC_OWNER)).encode())
        clock.run_until(lambda: store.written().called)
        assert master.rooms[ROOM].config.persistent
        sink = stream.transport
        sink.keep = False
        messages = [groupchat_from_user(1, i).encode("utf-8") for i in range(count)]
        gc.collect()
        before = sink.writes
        started = time.perf_counter()
        for i, data in enumerate(messages):
            clock.advance(TICK)
            stream.dataReceived(data)
            if trickle:
                clock.run_until(lambda i=i: sink.writes >= before + (i + 1) * occupants)
        clock.run_until(lambda: sink.writes >= before + count * occupants)
        elapsed = time.perf_counter() - started
        return elapsed / count * 1e6
    finally:
        store.close()
        shutil.rmtree(directory, ignore_errors=True)


def measure_persistent(settings, profiles=None):
    """What waiting for the commit costs a persistent room (issue 13)."""
    figures = {}
    for name, trickle in (("master_persistent_burst", False),
                          ("master_persistent_trickle", True)):
        for committed in (True, False):
            key = name if committed else name + "_uncommitted"
            times = [persistent_room_rate(settings["occupants"], settings["persistent"],
                                          trickle, committed)
                     for _ in range(settings["storage_repeats"])]
            figures[key] = {"occupants": settings["occupants"],
                            "stanzas": settings["persistent"],
                            "repeats": settings["storage_repeats"],
                            "us_per_stanza": spread(times)}
    return figures


def measure_storage(settings, profiles=None):
    figures = {}
    for name, trickle in (("sqlite_appends_burst", False), ("sqlite_appends_trickle", True)):
        profile = cProfile.Profile() if profiles is not None else None
        rates = [append_rate(settings["appends"], trickle, profile)
                 for _ in range(settings["storage_repeats"])]
        if profiles is not None:
            profiles[name] = profile
        figures[name] = {"appends": settings["appends"], "history_length": 20,
                         "repeats": settings["storage_repeats"],
                         "appends_per_s": spread(rates)}
    return figures


def machine():
    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            model = next((line.split(":", 1)[1].strip() for line in f
                          if line.startswith("model name")), model)
    except OSError:
        pass
    return {"nproc": os.cpu_count(), "cpu": model,
            "python": platform.python_version()}


def measure(quick=False, profiles=None):
    """
    Run every measurement.

    @param quick: a few seconds' run, for the smoke test (figures noisier).
    @param profiles: a dict to fill with one C{cProfile.Profile} per
        measurement, or C{None} not to profile.
    @return: the figures, as printed by C{python -m bench.hotpaths}.
    """
    settings = QUICK if quick else FULL
    result = {"benchmark": "hotpaths", "quick": quick, "machine": machine()}
    result.update(measure_master(settings, profiles))
    result.update(measure_limits(settings, profiles))
    result.update(measure_mirror(settings, profiles))
    result.update(measure_mirror_users(settings, profiles))
    result.update(measure_storage(settings, profiles))
    result.update(measure_persistent(settings, profiles))
    return result


def print_profiles(profiles, out, top=15):
    for name, profile in profiles.items():
        text = io.StringIO()
        stats = pstats.Stats(profile, stream=text)
        stats.sort_stats("tottime").print_stats(top)
        out.write("==== %s ====\n%s\n" % (name, text.getvalue()))


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m bench.hotpaths",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="a few seconds' run (noisier figures)")
    parser.add_argument("--profile", action="store_true",
                        help="print the top cProfile entries of each measurement to stderr")
    options = parser.parse_args(argv)
    profiles = {} if options.profile else None
    result = measure(quick=options.quick, profiles=profiles)
    if profiles:
        print_profiles(profiles, sys.stderr)
    json.dump(result, sys.stdout, indent=2)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
