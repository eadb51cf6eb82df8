"""
`make bench`: every scenario on two real sites, once per mode (stock
Prosody mod_muc, dmuc, dmuc with fire-and-forget, both again on dmuc's
own compressed direct link), then the in-process
figures (memory, hot paths); writes bench/results/latest.json and
docs/benchmarks.md with its charts.

    python -m bench.run [--quick] [--out DIR] [--docs DIR] [--only SCENARIO ...]

--quick is the smoke run of `make test`: every scenario, tiny sizes.
"""

import argparse
import datetime
import json
import math
import os
import platform
import statistics
import sys
import tempfile
import time

from bench import scenarios
from bench.sites import MODE_SCENARIOS, MODES, BenchSites

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

FULL = {
    "remote_users": (1, 5, 20, 50), "messages": 200, "history": 50,
    "idle_rooms": 100, "idle_period": 20.0,
    "resync_missed": (10, 100), "resync_history": (20, 200),
    "constrained": {"messages": 20, "remote": 5, "fill": 20, "delay": 0.3, "bandwidth": 9600},
    "throughput": {"receivers": 50, "burst": 200, "repeats": 3},
    "memory": {"rooms": 1000, "occupants": 10},
}
QUICK = {
    "remote_users": (1, 2), "messages": 6, "history": 3,
    "idle_rooms": 3, "idle_period": 1.0,
    "resync_missed": (2,), "resync_history": (2,),
    "constrained": {"messages": 2, "remote": 2, "fill": 2, "delay": 0.05, "bandwidth": 96000},
    "throughput": {"receivers": 3, "burst": 10, "repeats": 1},
    "memory": {"rooms": 5, "occupants": 3},
}
SCENARIOS = ("rooms", "idle", "resync", "constrained", "throughput", "memory", "hotpaths")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes (the smoke run)")
    parser.add_argument("--out", help="directory for latest.json (default bench/results)")
    parser.add_argument("--docs", help="directory for benchmarks.md and charts (default docs)")
    parser.add_argument("--only", nargs="+", choices=SCENARIOS, help="run only these")
    parser.add_argument("--modes", nargs="+", choices=MODES, default=MODES)
    args = parser.parse_args(argv)
    plan = QUICK if args.quick else FULL
    out = args.out or os.path.join(ROOT, "bench", "results")
    docs = args.docs or os.path.join(ROOT, "docs")
    results = run(plan, args.only or SCENARIOS, args.modes, quick=args.quick)
    write(results, out, docs)
    print("wrote %s and %s" % (os.path.join(out, "latest.json"),
                               os.path.join(docs, "benchmarks.md")))
    return results


def run(plan, chosen, modes, quick=False, log=print):
    started = time.monotonic()
    per_mode = {}
    for mode in modes:
        if not set(chosen) & {"rooms", "idle", "resync", "constrained", "throughput"}:
            break
        if not set(chosen) & set(MODE_SCENARIOS.get(mode, chosen)):
            continue
        log("== %s" % mode)
        per_mode[mode] = run_mode(mode, plan, chosen, log)
    results = {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
               "machine": machine(), "commit": commit(), "quick": quick, "plan": plan, "modes": list(modes),
               "scenarios": merge(per_mode, plan)}
    if "memory" in chosen:
        log("== memory")
        from bench import memory
        results["scenarios"]["memory"] = memory.measure(**plan["memory"])
    if "hotpaths" in chosen:
        log("== hot paths")
        from bench import hotpaths
        results["scenarios"]["hotpaths"] = hotpaths.measure(quick=quick)
    results["targets"] = targets(results["scenarios"])
    results["duration_s"] = round(time.monotonic() - started, 1)
    return results


def run_mode(mode, plan, chosen, log):
    chosen = [c for c in chosen if c in MODE_SCENARIOS.get(mode, chosen)]
    base = tempfile.mkdtemp(prefix="dmuc-bench-")
    raleigh = max(max(plan["remote_users"]),
                  plan["constrained"]["remote"] + plan["constrained"]["fill"])
    bench = BenchSites(base, mode, raleigh_users=raleigh,
                       counting_users=plan["throughput"]["receivers"])
    figures = {}
    try:
        bench.start()
        if "rooms" in chosen:
            for remote in plan["remote_users"]:
                log("  room with %d raleigh users" % remote)
                figures["room-%d" % remote] = scenarios.room_life(
                    bench, remote, plan["messages"], plan["history"])
        if "idle" in chosen:
            log("  idle")
            figures["idle"] = scenarios.idle(bench, plan["idle_rooms"], plan["idle_period"])
        if "resync" in chosen:
            for missed in plan["resync_missed"]:
                for history in plan["resync_history"]:
                    log("  resync: %d missed, %d history" % (missed, history))
                    figures["resync-%d-%d" % (missed, history)] = scenarios.resync(
                        bench, missed, history)
        if "constrained" in chosen:
            log("  constrained link")
            figures["constrained"] = scenarios.constrained(bench, **plan["constrained"])
        if "throughput" in chosen:
            log("  throughput")
            figures["throughput"] = scenarios.throughput(bench, **plan["throughput"])
    finally:
        bench.stop()
    return figures


def merge(per_mode, plan):
    """Per-mode figures into the scenarios' rows: one row per size, one
    column per mode."""
    merged = {}
    for kind in ("joins", "messages", "paced", "presence"):
        rows = []
        for remote in plan["remote_users"]:
            row = {"remote_users": remote}
            for mode, figures in per_mode.items():
                if "room-%d" % remote in figures:
                    _columns(row, mode, figures["room-%d" % remote][kind])
            if len(row) > 1:
                rows.append(_ratios(row))
        if rows:
            merged[kind] = rows
    rows = []
    for missed in plan["resync_missed"]:
        for history in plan["resync_history"]:
            key = "resync-%d-%d" % (missed, history)
            row = {"missed_messages": missed, "history": history}
            for mode, figures in per_mode.items():
                if key in figures:
                    _columns(row, mode, figures[key])
            if len(row) > 2:
                rows.append(_ratios(row))
    if rows:
        merged["resync"] = rows
    for kind in ("idle", "constrained", "throughput"):
        by_mode = {mode: figures[kind] for mode, figures in per_mode.items() if kind in figures}
        if by_mode:
            merged[kind] = by_mode
    return merged


DMUC_MODES = tuple(m for m in MODES if m != "stock")


def round_trip(figures):
    """
    The constrained link's round trip for a message: the delay both ways
    and its bytes on the link (up, and acknowledged) at the link's speed.

    @return: the round trip of the mean message in ms, and how much later
        than its own round trip a message reached the other raleigh users
        (p50, ms; each message against its own bytes, as bodies vary).
    """
    trip = 1000 * (2 * figures["delay_s"]
                   + 8.0 * figures["link_bytes_per_message"] / figures["bandwidth_bps"])
    over = figures.get("raleigh_over_round_trip_ms", {}).get("p50")
    if over is None:   # results from before each message had its own
        over = figures["latency_raleigh_ms"]["p50"] - trip
    return trip, over


def throughput_shares(figures):
    """A dmuc mode's throughput as shares of its baselines' (measured on
    the same servers): mod_muc with mod_muc_mam, and without."""
    rate = figures["messages_per_s"]["median"]
    return (rate / figures["baseline"]["messages_per_s"]["median"],
            rate / figures["plain"]["messages_per_s"]["median"])


def _columns(row, mode, figures):
    row["%s_bytes" % mode] = figures["bytes"]
    row["%s_stanzas" % mode] = figures["stanzas"]
    row["%s_other_bytes" % mode] = figures["other_bytes"]
    row["%s_by_direction" % mode] = figures["by_direction"]
    row["%s_link_bytes" % mode] = figures["link_bytes"]
    row["%s_wire_bytes" % mode] = figures["wire_bytes"]
    row["%s_wire_estimate_bytes" % mode] = figures["wire_estimate"]["bytes"]


#: What each saving divides, stock's figure over the mode's.
SAVINGS = (
    # the stanzas as they crossed the link (compressed on a direct link)
    ("saving", "link_bytes"),
    # the stanzas before compression: the same as above without one
    ("saving_uncompressed", "bytes"),
    # every payload byte the relay forwarded
    ("wire_saving", "wire_bytes"),
    # with TLS records and TCP/IP headers (an estimate)
    ("wire_estimate_saving", "wire_estimate_bytes"),
)


def _ratios(row):
    for mode in DMUC_MODES:
        for name, column in SAVINGS:
            stock, mine = row.get("stock_%s" % column), row.get("%s_%s" % (mode, column))
            if stock and mine:
                row["%s_%s" % (mode, name)] = round(stock / mine, 1)
    return row


def targets(s):
    """The issue's targets against what was measured."""
    checks = []

    def check(name, target, measured, met):
        checks.append({"name": name, "target": target, "measured": measured, "met": bool(met)})

    for kind in ("messages", "joins", "presence"):
        for row in s.get(kind, []):
            if row["remote_users"] == 1:
                for mode in DMUC_MODES:
                    saving = row.get("%s_saving" % mode)
                    if saving is not None:
                        check("%s, R=1, %s" % (kind, mode), "never worse than stock (>= 1.0x)",
                              "%.1fx" % saving, saving >= 1.0)
    for kind, remote, factor in (("messages", 20, 15), ("messages", 50, 35),
                                 ("paced", 20, 15), ("paced", 50, 35), ("joins", 20, 10)):
        for row in s.get(kind, []):
            if row["remote_users"] == remote:
                for mode in ("dmuc", "dmuc_ff"):
                    saving = row.get("%s_saving" % mode)
                    if saving is not None:
                        check("%s, R=%d, %s" % (kind, remote, mode),
                              ">= %dx fewer bytes than stock" % factor, "%.1fx" % saving,
                              saving >= factor)
    # Issue 10: the direct compressed link, in the bytes the stanzas take
    # on the link (compressed); the wire figures are reported beside.
    for row in s.get("messages", []):
        if row["remote_users"] == 20:
            for mode, factor in (("direct", 50), ("direct_ff", 100)):
                saving = row.get("%s_saving" % mode)
                if saving is not None:
                    check("messages, R=20, %s" % mode,
                          ">= %dx fewer stanza bytes on the link than stock" % factor,
                          "%.1fx (before compression %.1fx; wire payload %.1fx; with TLS and "
                          "TCP/IP, estimated, %.1fx)" % (
                              saving, row.get("%s_saving_uncompressed" % mode, 0),
                              row.get("%s_wire_saving" % mode, 0),
                              row.get("%s_wire_estimate_saving" % mode, 0)),
                          saving >= factor)
    for mode, idle in s.get("idle", {}).items():
        if mode == "stock":
            continue
        allowed = idle["period_s"] / idle["ping_interval_s"]
        check("idle, %s" % mode, "no room traffic; <= 1 ping per peer per ping_interval",
              "%d room stanzas, %d pings in %d s (interval %d s)"
              % (idle["room_stanzas"], idle["keepalive_pings"], idle["period_s"],
                 idle["ping_interval_s"]),
              idle["room_stanzas"] == 0 and idle["keepalive_pings"] <= math.ceil(allowed))
    resync = s.get("resync", [])
    for mode in DMUC_MODES:
        by_missed = {}
        for row in resync:
            if "%s_bytes" % mode in row:
                by_missed.setdefault(row["missed_messages"], []).append(
                    (row["history"], row["%s_bytes" % mode]))
        if len(by_missed) > 1 and all(len(v) > 1 for v in by_missed.values()):
            spreads = [max(b for _, b in v) / min(b for _, b in v) for v in by_missed.values()]
            per_missed = sorted((m, statistics.median(b for _, b in v))
                                for m, v in by_missed.items())
            check("resync, %s" % mode, "bytes grow with N, not with history length",
                  "; ".join("N=%d: %d B" % (m, b) for m, b in per_missed) +
                  "; history changes bytes by at most %.2fx" % max(spreads),
                  per_missed[-1][1] > per_missed[0][1] and max(spreads) < 1.25)
            (low, low_bytes), (high, high_bytes) = per_missed[0], per_missed[-1]
            per = (high_bytes - low_bytes) / float(high - low)
            check("resync, %s, per missed message" % mode, "<= 250 bytes (uncompressed)",
                  "%.0f B ((%d - %d) / %d)" % (per, high_bytes, low_bytes, high - low),
                  per <= 250)
    constrained = s.get("constrained", {})
    for mode in ("dmuc_ff", "direct_ff"):
        if mode in constrained:
            p50 = constrained[mode]["latency_raleigh_ms"]["p50"]
            check("constrained link, %s, raleigh to raleigh" % mode, "p50 < 50 ms",
                  "%.1f ms" % p50, p50 < 50)
    for mode in ("dmuc", "direct"):
        figures = constrained.get(mode, {})
        if "link_bytes_per_message" in figures:
            trip, over = round_trip(figures)
            p50 = figures["latency_raleigh_ms"]["p50"]
            # Stock through the same servers and relay: what the ends'
            # hops cost a message that needs nothing of dmuc's.
            stock = ("; stock %+.1f ms against its own"
                     % round_trip(constrained["stock"])[1] if "stock" in constrained else "")
            check("constrained link, %s, raleigh to raleigh" % mode,
                  "p50 within one round trip", "%.0f ms; %+.1f ms against each message's own "
                  "round trip (p50; %.0f ms for %d bytes a message)%s"
                  % (p50, over, trip, figures["link_bytes_per_message"], stock), over <= 0)
    stock = constrained.get("stock")
    for mode in DMUC_MODES:
        if stock and mode in constrained:
            p50 = constrained[mode]["latency_fairfax_ms"]["p50"]
            check("constrained link, %s, raleigh to fairfax" % mode, "p50 no later than stock",
                  "%.0f ms against %.0f" % (p50, stock["latency_fairfax_ms"]["p50"]),
                  p50 <= stock["latency_fairfax_ms"]["p50"])
    tp = s.get("throughput", {})
    # Like for like: a mirror room archives, so the baseline is mod_muc
    # with mod_muc_mam, measured on the same servers, its bursts taking
    # turns with the mirror room's; plain mod_muc's share is given beside.
    for mode in DMUC_MODES:
        if mode in tp and "baseline" in tp[mode]:
            share, plain = throughput_shares(tp[mode])
            check("throughput, %s" % mode, ">= 80% of stock Prosody (mod_muc with mod_muc_mam, "
                  "same servers, turn about)", "%.0f%% (of mod_muc without an archive: %.0f%%)"
                  % (100 * share, 100 * plain), share >= 0.8)
    memory = s.get("memory")
    if memory:
        for side in ("master", "mirror"):
            if side in memory:
                per = memory[side]["kib_per_occupant"]
                check("memory, %s" % side, "< 20 KiB per occupant", "%.1f KiB" % per, per < 20)
    return checks



def commit():
    """The code measured: the checkout's commit, '+' if it has changes."""
    import subprocess
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, text=True,
                              capture_output=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               cwd=ROOT, text=True, capture_output=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return (head or "unknown") + ("+" if dirty.strip() else "")


def machine():
    cpu = "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(),
            "system": platform.platform(), "prosody": prosody_version()}


def prosody_version():
    """The Debian package's version (prosody itself has no version flag)."""
    import subprocess
    try:
        out = subprocess.run(["dpkg-query", "-W", "-f", "${Version}", "prosody"],
                             capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        out = ""
    return "Prosody " + (out or "(version unknown)")


def write(results, out, docs):
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "latest.json"), "w") as f:
        json.dump(results, f, indent=1, sort_keys=True)
    from bench import report
    report.write(results, docs)


if __name__ == "__main__":
    main(sys.argv[1:])
