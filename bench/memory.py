"""
Resident memory of the master and mirror services, per room and per
occupant (issue 5).

    python -m bench.memory [--rooms 1000] [--occupants 10] [--top 0]
                           [--presence caps|rich] [--no-tracemalloc]

prints one JSON object.  Nothing touches the network: each scenario runs
in its own fresh child process (C{--child SCENARIO}), which builds the
services in-process on wokkel's stub streams, a
L{twisted.internet.task.Clock}, and the memory store (L{MemoryRoomStore});
stanzas between services cross as serialised XML, stanzas for users are
counted and dropped.  The clock moves only a few seconds at each stage,
for what the services put off (coalesced saves), never as far as a link
ping.  The child measures its RSS
(C{/proc/self/statm}, after C{gc.collect()}) at three points: the services
built and no room (C{baseline}), every room created by one join
(C{rooms}), every room filled to C{--occupants} (C{full}).  Then, with
the RSS figures taken, it starts C{tracemalloc} and runs the scenario again
on new services for the Python-level sizes at the same points: a
cross-check that RSS is not mostly allocator slack.

Scenarios:
  - C{master}: the master alone, its own domain's users joining.
  - C{master-remote}: the master alone, users joining through a mirror
    (the join presences the mirror would send up, from mirror occupant
    JIDs with the envelope; nobody answers the sync pushes).
  - C{two-site}: the master and the mirror, the mirror's users joining
    mirror rooms, every join completed through the master.

The mirror's share is C{two-site} minus C{master-remote}, point by point:
the same master work, once with the mirror there and once without.

Per room is (rooms - baseline) / rooms: one room with its first
occupant.  Per occupant is (full - rooms) / (rooms * (occupants - 1)).
RSS moves in pages and arenas, so its figures mean something at scale
(hundreds of rooms); small runs check that the scenarios do what they say.
"""

import argparse
import gc
import json
import os
import subprocess
import sys
import sysconfig
import time
import tracemalloc
from collections import deque

from twisted.internet.task import Clock
from wokkel.test.helpers import TestableStreamManager

import dmuc  # noqa: F401  (the wokkel shim first)
from dmuc.master.handler import MasterMUC
from dmuc.mirror.handler import MirrorMUC
from dmuc.storage.memory import MemoryRoomStore
from dmuc.xmpp import namespaces as ns
from dmuc.xmpp.addressing import mirror_room_jid
from dmuc.xmpp.stanzas import parse_xml

MASTER = "conference.fairfax.test"
MIRROR = "mirror.raleigh.test"
SCENARIOS = ("master", "master-remote", "two-site")
STAGES = ("baseline", "rooms", "full")
# Seconds of clock at each stage: more than the services delay their
# saves, far less than the link monitor waits before a ping.
SETTLE = 2
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# What clients put in a join besides the MUC <x/>: entity capabilities
# (what most send), or also a status, a show and an avatar hash.
CAPS = ("<c xmlns='http://jabber.org/protocol/caps' hash='sha-1' "
        "node='https://dmuc.example/bench' ver='q07IKJEyjvHSyhy//CH0CxmKi8w='/>")
PRESENCES = {
    "caps": CAPS,
    "rich": CAPS + ("<show>away</show><status>In a meeting until three</status>"
                    "<x xmlns='vcard-temp:x:update'>"
                    "<photo>01b87fcd030b72895ff8e88db57ec525450f000d</photo></x>"),
}
JOIN = "<presence from='%s' to='%s'>%s<x xmlns='" + ns.MUC + "'/>%s</presence>"


class InMemorySites:
    """
    The services of a scenario on stub streams.  What one service sends
    to another is serialised at once (rooms reuse an element for several
    recipients) and delivered in order; what goes to users is counted.

    @ivar delivered: stanzas sent to users.
    @ivar errors: how many of them were errors.
    """

    def __init__(self, with_mirror):
        self.clock = Clock()
        self.clock.advance(1_700_000_000)
        self.master = MasterMUC(MASTER, MemoryRoomStore(), self.clock,
                                trusted_mirrors={MIRROR: ("raleigh.test",)})
        self.mirror = None
        self._managers = {}
        self._queue = deque()
        self.delivered = self.errors = 0
        self._attach(MASTER, self.master)
        if with_mirror:
            self.mirror = MirrorMUC(MIRROR, ("raleigh.test",), MemoryRoomStore(), self.clock)
            self._attach(MIRROR, self.mirror)

    def _attach(self, domain, handler):
        manager = TestableStreamManager(reactor=self.clock)
        manager.stub.xmlstream.send = self._sent
        handler.setHandlerParent(manager)
        self._managers[domain] = manager

    def _sent(self, element):
        host = _host(element.getAttribute("to"))
        if host in self._managers:
            self._queue.append((host, element.toXml()))
        else:
            self.delivered += 1
            self.errors += element.getAttribute("type") == "error"

    def receive(self, text):
        """A stanza for a service (from a user's server); run what follows."""
        self._queue.append((_host(parse_xml(text)["to"]), text))
        self._run()

    def settle(self):
        """Let the services finish what they put off for a moment (a
        mirror's coalesced saves), well before any link ping is due."""
        self.clock.advance(SETTLE)
        self._run()

    def _run(self):
        while self._queue:
            host, text = self._queue.popleft()
            self._managers[host].stub.send(parse_xml(text))


def _host(jid):
    return jid.split("/")[0].split("@")[-1]


def _join(sites, scenario, room, index, presence):
    """User C{index} of room number C{room} joins, as the scenario says,
    with the L{PRESENCES} entry C{presence}."""
    shown = PRESENCES[presence]
    master_room = "room%d@%s" % (room, MASTER)
    nick = "nick%d" % index
    if scenario == "master":
        user = "u%dx%d@fairfax.test/desk" % (room, index)
        sites.receive(JOIN % (user, master_room + "/" + nick, shown, ""))
        return
    user = "u%dx%d@raleigh.test/laptop" % (room, index)
    mirror_room = mirror_room_jid(master_room, MIRROR)
    if scenario == "two-site":
        sites.receive(JOIN % (user, mirror_room + "/" + nick, shown, ""))
        return
    envelope = "<fmuc xmlns='%s' from='%s'/>" % (ns.FMUC, user)
    sites.receive(JOIN % (mirror_room + "/" + nick, master_room + "/" + nick, shown,
                          envelope))


def held(sites):
    """What the services hold: rooms and occupants, as counted in them."""
    master_rooms = sites.master.rooms.values()
    counts = {"master_rooms": len(master_rooms),
              "master_occupants": sum(len(r.occupants) for r in master_rooms)}
    if sites.mirror is not None:
        mirror_rooms = sites.mirror.rooms.values()
        stored = []
        sites.mirror.store.load_rooms().addCallback(stored.extend)
        counts.update(
            mirror_rooms=len(mirror_rooms),
            mirror_synced_rooms=sum(r.synced for r in mirror_rooms),
            mirror_occupants=sum(len(r.local_users()) for r in mirror_rooms),
            mirror_stored_rooms=len(stored),
            mirror_stored_occupants=sum(len(r.config.get("roster", ())) for r in stored))
    counts.update(delivered=sites.delivered, errors=sites.errors)
    return counts


def run_scenario(scenario, rooms, occupants, probe, presence="caps"):
    """
    Build the scenario's services and fill them, calling C{probe()} (after
    a collection) at each stage.

    @return: (stage -> what C{probe} gave, stage -> L{held} counts).
    """
    figures, counts = {}, {}
    sites = InMemorySites(with_mirror=scenario == "two-site")

    def stage(name):
        sites.settle()
        counts[name] = held(sites)
        gc.collect()
        figures[name] = probe()

    stage("baseline")
    for room in range(rooms):
        _join(sites, scenario, room, 0, presence)
    stage("rooms")
    for index in range(1, occupants):
        for room in range(rooms):
            _join(sites, scenario, room, index, presence)
    stage("full")
    return figures, counts


def rss_kib():
    """This process's resident set, from /proc/self/statm."""
    with open("/proc/self/statm") as statm:
        pages = int(statm.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") // 1024


def child(scenario, rooms, occupants, traced=True, top=0, presence="caps"):
    """One scenario in this (fresh) process: RSS first, then tracemalloc."""
    started = time.monotonic()
    result = {"scenario": scenario}
    result["rss_kib"], result["counts"] = run_scenario(
        scenario, rooms, occupants, rss_kib, presence)
    gc.collect()
    if traced:
        tracemalloc.start()
        snapshots = {}

        def traced_kib():
            size = tracemalloc.get_traced_memory()[0] / 1024
            if top:
                snapshots[len(snapshots)] = tracemalloc.take_snapshot()
            return size

        result["traced_kib"], _ = run_scenario(
            scenario, rooms, occupants, traced_kib, presence)
        tracemalloc.stop()
        if top:
            result["top_per_occupant"] = _top(snapshots[2], snapshots[1], top,
                                              rooms * max(1, occupants - 1))
    result["seconds"] = round(time.monotonic() - started, 2)
    return result


def _top(full, rooms, count, occupants_added):
    """The source lines that grew most from the rooms to the full stage,
    in bytes per added occupant."""
    stats = full.compare_to(rooms, "lineno")
    return [{"where": "%s:%d" % (_short(s.traceback[0].filename), s.traceback[0].lineno),
             "bytes_per_occupant": round(s.size_diff / occupants_added, 1)}
            for s in stats[:count]]


def _short(filename):
    """A source path without this machine's prefixes."""
    for prefix in ("site-packages/", ROOT + "/", sysconfig.get_paths()["stdlib"] + "/"):
        if prefix in filename:
            return filename.partition(prefix)[2]
    return filename


# -- the parent: one child per scenario, and the figures

def spawn(scenario, rooms, occupants, traced=True, top=0, presence="caps"):
    """Run one scenario in a fresh interpreter; return what it reported."""
    command = [sys.executable, "-m", "bench.memory", "--child", scenario,
               "--rooms", str(rooms), "--occupants", str(occupants), "--top", str(top),
               "--presence", presence]
    if not traced:
        command.append("--no-tracemalloc")
    output = subprocess.run(command, cwd=ROOT, check=True, stdout=subprocess.PIPE,
                            text=True).stdout
    return json.loads(output)


def _per_unit(stages, rooms, occupants):
    """KiB per room (with its first occupant) and per further occupant."""
    per_room = (stages["rooms"] - stages["baseline"]) / rooms
    per_occupant = None
    if occupants > 1:
        per_occupant = (stages["full"] - stages["rooms"]) / (rooms * (occupants - 1))
    return per_room, per_occupant


def _figures(stages_by_kind, rooms, occupants):
    figures = {}
    for kind, stages in stages_by_kind.items():
        prefix = "" if kind == "rss_kib" else "traced_"
        per_room, per_occupant = _per_unit(stages, rooms, occupants)
        figures[prefix + "baseline_kib"] = round(stages["baseline"], 1)
        figures[prefix + "kib_per_room"] = round(per_room, 2)
        figures[prefix + "kib_per_occupant"] = (
            round(per_occupant, 2) if per_occupant is not None else None)
    return figures


def _report(child_result, rooms, occupants):
    kinds = {k: child_result[k] for k in ("rss_kib", "traced_kib") if k in child_result}
    report = {"rss_kib": child_result["rss_kib"]}
    report.update(_figures(kinds, rooms, occupants))
    report["counts"] = child_result["counts"]["full"]
    report["counts_after_rooms"] = child_result["counts"]["rooms"]
    report["seconds"] = child_result["seconds"]
    if "top_per_occupant" in child_result:
        report["top_per_occupant"] = child_result["top_per_occupant"]
    return report


def _difference(two_site, master_remote):
    """The mirror's share: the same master work with and without it."""
    kinds = {}
    for kind in ("rss_kib", "traced_kib"):
        if kind in two_site and kind in master_remote:
            kinds[kind] = {s: two_site[kind][s] - master_remote[kind][s] for s in STAGES}
    return kinds


def measure(rooms=1000, occupants=10, traced=True, top=0, presence="caps"):
    """
    Measure every scenario, each in its own fresh process.

    @param traced: also the Python-level sizes (tracemalloc), after RSS.
    @param top: list the source lines that grow most per occupant.
    @param presence: what the joins carry: a key of L{PRESENCES}.
    @return: the JSON-ready dict C{python -m bench.memory} prints.
    """
    results = {s: spawn(s, rooms, occupants, traced, top, presence) for s in SCENARIOS}
    two_site, remote = results["two-site"], results["master-remote"]
    mirror = _figures(_difference(two_site, remote), rooms, occupants)
    mirror["two_site"] = _report(two_site, rooms, occupants)
    mirror["counts"] = two_site["counts"]["full"]
    mirror["counts_after_rooms"] = two_site["counts"]["rooms"]
    return {
        "rooms": rooms, "occupants_per_room": occupants, "presence": presence,
        "method": "fresh process per scenario; in-memory stub streams, Clock, "
                  "MemoryRoomStore; RSS from /proc/self/statm after gc.collect(), "
                  "then tracemalloc in a second pass; per room = (rooms - baseline) "
                  "/ rooms with its first occupant, per occupant = (full - rooms) / "
                  "(rooms * (occupants - 1)); mirror = two-site - master-remote",
        "master": _report(results["master"], rooms, occupants),
        "master_remote": _report(remote, rooms, occupants),
        "mirror": mirror,
    }


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m bench.memory", description=__doc__.split(
        "\n\n")[0].strip(), formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rooms", type=int, default=1000)
    parser.add_argument("--occupants", type=int, default=10)
    parser.add_argument("--top", type=int, default=0,
                        help="list the N source lines that grow most per occupant")
    parser.add_argument("--presence", choices=sorted(PRESENCES), default="caps",
                        help="what the join presences carry (default: caps)")
    parser.add_argument("--no-tracemalloc", dest="traced", action="store_false",
                        help="RSS only")
    parser.add_argument("--child", choices=SCENARIOS, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.rooms < 1 or args.occupants < 1:
        parser.error("--rooms and --occupants must be at least 1")
    if args.child:
        result = child(args.child, args.rooms, args.occupants, args.traced, args.top,
                       args.presence)
    else:
        result = measure(args.rooms, args.occupants, args.traced, args.top,
                         args.presence)
    json.dump(result, sys.stdout, indent=1)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
