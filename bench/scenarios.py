"""
The benchmark scenarios, each run on the two sites of one mode
(L{bench.sites.BenchSites}); each returns plain figures for that mode.

What crossed the link is read from the relay: stanza bytes and counts per
direction, and apart from them the rest (stream set-up, dialback,
whitespace keepalives).  Waits are on what users receive, never on time,
except where a scenario is about time (idle) or must let the servers
notice something they have no way to report (a stock server's bounces).
"""

import math
import statistics
import time
import uuid

from bench.counting_client import CountingClient
from bench.sites import (MONITOR, PASSWORD, STOCK_RALEIGH, STOCK_RALEIGH_MAM, BenchError,
                         cpu_seconds)
from dmuc.xmpp.addressing import mirror_room_jid
from tests.harness.sites import MASTER, MIRROR

OWNER = "http://jabber.org/protocol/muc#owner"


# -- the link


#: The wire estimate's constants (see L{wire_estimate}).
TLS_RECORD_OVERHEAD = 22    # TLS 1.3 AEAD: 5 header + 1 content type + 16 tag
TCP_IP_HEADERS = 52         # IPv4 20 + TCP 20 + timestamps option 12
MSS = 1448                  # a 1500-byte Ethernet MTU less those headers


def traffic(relay, direct=False):
    """
    What crossed since the last reset: stanzas (without the harness's own
    barrier round trips) apart from everything else, per direction and in
    total.

        bytes          the stanzas' bytes before any compression
        link_bytes     the bytes the stanzas took on the link: the same
                       on a plain stream; on dmuc's compressed direct
                       stream their share of its compressed bytes
        wire_bytes     every payload byte the relay forwarded
        other_bytes    wire_bytes less link_bytes: stream set-up,
                       dialback, whitespace, the barriers
        wire_estimate  wire_bytes with TLS records and TCP/IP headers, as
                       a real site's link would carry them (an estimate)

    @param direct: the sites run dmuc's direct link, whose stream the
        relay counts in stanzas at their size before compression.
    """
    crossings = relay.crossings(stanzas_only=False, include_barriers=True)
    figures = {"bytes": 0, "stanzas": 0, "link_bytes": 0, "wire_bytes": 0, "other_bytes": 0,
               "wire_estimate": {"records": 0, "segments": 0, "bytes": 0}, "by_direction": {}}
    for direction in relay.directions:
        mine = [c for c in crossings if c.direction == direction]
        one = _direction_traffic(mine, relay.bytes(direction), direct)
        figures["by_direction"][direction] = one
        for key in ("bytes", "stanzas", "link_bytes", "wire_bytes", "other_bytes"):
            figures[key] += one[key]
        for key in ("records", "segments", "bytes"):
            figures["wire_estimate"][key] += one["wire_estimate"][key]
    return figures


def _direction_traffic(crossings, wire, direct):
    """L{traffic} for one direction's crossings and relay bytes."""
    def counted(c):
        return c.is_stanza and not c.is_barrier
    stanzas = [c for c in crossings if counted(c)]
    stanza_bytes = sum(c.size for c in stanzas)
    compressed = [c for c in crossings if direct and _on_direct_stream(c)]
    plain = [c for c in crossings if not (direct and _on_direct_stream(c))]
    # Plain elements cross at their own size.  What is left of the wire
    # bytes is the compressed stream's (plus the plain streams' headers
    # and whitespace, nothing while they are up): shared among its
    # elements in proportion to their size before compression, as one
    # zlib context has no per-stanza size.
    link = sum(c.size for c in plain if counted(c))
    left = max(0, wire - sum(c.size for c in plain))
    compressed_size = sum(c.size for c in compressed)
    if compressed_size:
        link += round(left * sum(c.size for c in compressed if counted(c)) / compressed_size)
    link = min(link, wire)
    return {"bytes": stanza_bytes, "stanzas": len(stanzas), "link_bytes": link,
            "wire_bytes": wire, "other_bytes": wire - link,
            "wire_estimate": wire_estimate(wire, len(crossings))}


def _on_direct_stream(crossing):
    """Whether a stanza went between master and mirror, compressed, on the
    direct link's own stream.  The two Prosodies' S2S carries everything
    else; dialback and the compression request come before compression.
    A stream's headers are no element: on a reconnection the compressed
    stream's share takes in the plain headers too, which errs against
    the direct link."""
    ends = [(crossing.get(key) or "").split("/")[0].split("@")[-1] for key in ("from", "to")]
    return crossing.is_stanza and all(end in (MASTER, MIRROR) for end in ends)


def wire_estimate(wire, elements):
    """
    What C{wire} payload bytes in C{elements} top-level elements cost on a
    real site's link, TLS and TCP/IP included.  An estimate: the relay
    sees neither records nor segments.  Each element is taken to be
    written on its own, so one TLS record; segments are one per record
    unless the bytes need more full-size ones.  Both writers may put
    several stanzas in one record and segment (Prosody buffers a burst),
    so this counts the overhead high where stanzas are many and small.
    """
    records = elements if wire else 0
    payload = wire + TLS_RECORD_OVERHEAD * records
    segments = max(records, -(-payload // MSS))
    return {"records": records, "segments": segments,
            "bytes": payload + TCP_IP_HEADERS * segments}


def wait_quiet(relay, quiet=0.5, timeout=60):
    """Wait until nothing has crossed the link for C{quiet} seconds: the
    tail of a flow (leaves, storage pushes) is counted with it."""
    deadline = time.monotonic() + timeout
    last, since = None, time.monotonic()
    while time.monotonic() < deadline:
        now_total = sum(relay.bytes(d) for d in relay.directions)
        if now_total != last:
            last, since = now_total, time.monotonic()
        elif time.monotonic() - since >= quiet:
            return
        time.sleep(0.05)


def measured(bench, action):
    """Run C{action} from a quiet, freshly counted link to a quiet link;
    return what crossed."""
    wait_quiet(bench.relay)
    bench.relay.reset()
    action()
    wait_quiet(bench.relay)
    figures = traffic(bench.relay, bench.direct)
    for user in bench.fairfax_users + bench.raleigh_users:
        user.forget()
    return figures


# -- rooms


def enter(bench, users, name, timeout=60):
    """Users join room C{name} one after another, each fully."""
    for user in users:
        room = bench.room_for(user, name)
        user.join(room)
        user.wait_joined(room, timeout)


def leave_all(bench, users, name):
    for user in users:
        user.leave(bench.room_for(user, name))
    wait_quiet(bench.relay)


def set_history_length(bench, owner, name, length):
    """The owner lets the room keep C{length} messages of history."""
    reply = owner.client.iq(
        "<iq type='set' to='%s'><query xmlns='%s'><x xmlns='jabber:x:data' type='submit'>"
        "<field var='FORM_TYPE'><value>http://jabber.org/protocol/muc#roomconfig</value></field>"
        "<field var='muc#roomconfig_historylength'><value>%d</value></field>"
        "</x></query></iq>" % (bench.fairfax_room(name), OWNER, length), timeout=10)
    if reply.get("type") != "result":
        raise BenchError("could not set the history length of %s" % name)


def talk(bench, senders, name, bodies):
    for index, body in enumerate(bodies):
        sender = senders[index % len(senders)]
        sender.say(bench.room_for(sender, name), body)


# -- joins, messages, presence


def room_life(bench, remote, messages=200, history=50):
    """
    The life of one room with 5 fairfax users and C{remote} raleigh
    users: its history written, raleigh users joining one after another
    (joins), a conversation of mixed senders (messages), a shorter one
    at a human pace (paced), every user changing status twice
    (presence).
    """
    name = "room-%d" % remote
    local, raleigh = bench.fairfax_users, bench.raleigh_users[:remote]
    everyone = local + raleigh
    enter(bench, local, name)
    history_bodies = bench.chat.bodies(history)
    talk(bench, local, name, history_bodies)
    local[0].wait_bodies(history_bodies, 60)

    figures = {"joins": measured(bench, lambda: enter(bench, raleigh, name))}

    # Senders in turn over everyone: mostly raleigh users when they are many.
    bodies = bench.chat.bodies(messages)

    def converse():
        talk(bench, everyone, name, bodies)
        for user in everyone:
            user.wait_bodies(bodies, 120)
    figures["messages"] = measured(bench, converse)

    # The same at a human pace: each message reaches everyone before the
    # next is written, so nothing the sites send can share a stanza.
    paced = bench.chat.bodies(max(1, messages // 4))

    def converse_paced():
        for index, body in enumerate(paced):
            sender = everyone[index % len(everyone)]
            sender.say(bench.room_for(sender, name), body)
            for user in everyone:
                user.wait_bodies([body], 60)
    figures["paced"] = measured(bench, converse_paced)

    statuses = ["bench-%s-%s-%d" % (name, user.name, n) for user in everyone for n in (1, 2)]

    def change_status():
        for turn, show in ((1, "away"), (2, "dnd")):
            for user in everyone:
                user.send("<presence to='%s/%s'><show>%s</show><status>bench-%s-%s-%d</status>"
                          "</presence>" % (bench.room_for(user, name), user.name, show, name,
                                           user.name, turn))
        for user in everyone:
            if not user.recorder.wait(lambda r: all(s in r.statuses for s in statuses), 60):
                raise BenchError("%s did not see every status change in %s" % (user.name, name))
    figures["presence"] = measured(bench, change_status)
    leave_all(bench, everyone, name)
    return figures


# -- idle


def idle(bench, rooms=100, period=20.0):
    """
    C{rooms} rooms, each with a fairfax user, none with raleigh users
    (one visited each and left, so the sites know each other), and
    C{period} seconds of nothing: what crosses is keepalives or waste.
    """
    host, visitor = bench.fairfax_users[0], bench.raleigh_users[0]
    names = ["idle-%d" % n for n in range(rooms)]
    for name in names:
        host.join(bench.fairfax_room(name))
    for name in names:
        host.wait_joined(bench.fairfax_room(name))
    for name in names:
        visitor.join(bench.raleigh_room(name))
    for name in names:
        visitor.wait_joined(bench.raleigh_room(name))
    for name in names:
        visitor.leave(bench.raleigh_room(name))

    def nothing():
        time.sleep(period)
    figures = measured(bench, nothing)
    crossed = bench.relay.crossings()
    pings = [c for c in crossed if c.name == "iq" and _service(c.get("from")) and
             _service(c.get("to"))]
    figures.update(period_s=period, rooms=rooms, keepalive_stanzas=len(pings),
                   keepalive_pings=len([c for c in pings if c.get("type") == "get"]),
                   room_stanzas=len(crossed) - len(pings),
                   ping_interval_s=float(MONITOR["ping_interval"]))
    for name in names:
        host.leave(bench.fairfax_room(name))
    return figures


def _service(jid):
    """A service JID (no node, no resource): the monitors' own pings."""
    return bool(jid) and "@" not in jid and "/" not in jid


# -- resync


def resync(bench, missed, history, remote=5):
    """
    A room with C{history} messages, 5 fairfax and C{remote} raleigh
    users; the link is cut, fairfax users write C{missed} messages, the
    link heals.  dmuc: the netjoin resync.  Stock: the full rejoin a
    client does to recover, leaving and joining again with
    C{<history since=.../>} from the split.
    """
    name = "resync-%d-%d" % (missed, history)
    local, raleigh = bench.fairfax_users, bench.raleigh_users[:remote]
    enter(bench, local[:1], name)
    set_history_length(bench, local[0], name, 1000)
    enter(bench, local[1:] + raleigh, name)
    old = bench.chat.bodies(history)
    talk(bench, local, name, old)
    for user in raleigh:
        user.wait_bodies(old, 120)
    wait_quiet(bench.relay)
    since = _next_second()

    bench.relay.cut()
    if bench.dmuc:
        _wait_for(lambda: bench.link_state("master") == "split" and
                  bench.link_state("mirror") == "split", 60, "both sites to see the split")
    new = bench.chat.bodies(missed)
    talk(bench, local, name, new)
    local[0].wait_bodies(new, 60)
    # A stock server has nothing to report once it has bounced and
    # kicked the unreachable occupants; give it the time to do so.
    time.sleep(1.0)
    bench.relay.reset()
    bench.relay.heal()

    def recover():
        if not bench.dmuc:
            for user in raleigh:
                room = bench.raleigh_room(name)
                user.leave(room)
                user.join(room, history="<history since='%s'/>" % since)
        for user in raleigh:
            user.wait_bodies(new, 120)
    recover()
    wait_quiet(bench.relay)
    figures = traffic(bench.relay, bench.direct)
    figures.update(missed_messages=missed, history=history, remote_users=remote)
    leave_all(bench, local + raleigh, name)
    for user in local + raleigh:
        user.forget()
    return figures


def _next_second():
    """Wait for the next whole second and return it, XEP-0082 style: the
    messages before it are older than C{since}."""
    now = time.time()
    second = math.floor(now) + 1
    time.sleep(second - now + 0.05)
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(second))


def _wait_for(condition, timeout, what):
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise BenchError("timed out waiting for %s" % what)
        time.sleep(0.1)


# -- the constrained link


def constrained(bench, messages=20, remote=5, fill=20, delay=0.3, bandwidth=9600):
    """
    The link throttled to C{bandwidth} bit/s with C{delay} s one way:
    how long a raleigh user's message takes to reach the other raleigh
    users and the fairfax users, and how long C{fill} raleigh users take
    to fill a room.
    """
    name = "slow"
    local, raleigh = bench.fairfax_users, bench.raleigh_users[:remote]
    enter(bench, local + raleigh, name)
    wait_quiet(bench.relay)
    bench.relay.shape(delay=delay, bandwidth=bandwidth)
    bench.relay.reset()
    to_raleigh, to_fairfax, over_trip = [], [], []

    def on_link():
        return sum(bench.relay.bytes(d) for d in bench.relay.directions)
    try:
        for n in range(messages):
            sender = raleigh[n % remote]
            body = bench.chat.body()
            before = on_link()
            sent = time.monotonic()
            sender.say(bench.room_for(sender, name), body)
            for user in local + raleigh:
                user.wait_bodies([body], 120)
            # This message's own round trip: the delay both ways and its
            # bytes (up, and back) at the link's speed.  Bodies vary, so
            # each message is set against its own.
            trip = 2 * delay + 8.0 * (on_link() - before) / bandwidth
            mine = [u.recorder.bodies[body] - sent for u in raleigh if u is not sender]
            to_raleigh += mine
            over_trip += [t - trip for t in mine]
            to_fairfax += [u.recorder.bodies[body] - sent for u in local]
        # What one message cost the link, both ways: the time to carry it
        # is part of a round trip (see run.targets).
        wait_quiet(bench.relay)
        crossed = sum(bench.relay.bytes(d) for d in bench.relay.directions)
        fill_s = _fill(bench, bench.raleigh_users[remote:remote + fill], "fill")
    finally:
        bench.relay.shape()
    wait_quiet(bench.relay)
    leave_all(bench, local + raleigh, name)
    leave_all(bench, local[:1] + bench.raleigh_users[remote:remote + fill], "fill")
    return {"delay_s": delay, "bandwidth_bps": bandwidth, "messages": messages,
            "remote_users": remote,
            "latency_raleigh_ms": spread(to_raleigh, 1000),
            "raleigh_over_round_trip_ms": spread(over_trip, 1000),
            "latency_fairfax_ms": spread(to_fairfax, 1000),
            "link_bytes_per_message": round(crossed / float(messages)),
            "fill_users": fill, "fill_s": round(fill_s, 2)}


def _fill(bench, joiners, name):
    """A fairfax user opens the room; C{joiners} all join at once; the
    seconds until the last has the whole room."""
    host = bench.fairfax_users[0]
    host.join(bench.fairfax_room(name))
    host.wait_joined(bench.fairfax_room(name))
    room = bench.raleigh_room(name)
    start = time.monotonic()
    for user in joiners:
        user.join(room)
    for user in joiners:
        user.wait_joined(room, 600)
    return max(user.recorder.subject_times[room] for user in joiners) - start


def spread(samples, scale=1.0):
    """p50, p95, min, max of timing samples."""
    ordered = sorted(samples)
    if not ordered:
        return {}

    def at(fraction):
        return ordered[min(len(ordered) - 1, int(math.ceil(fraction * len(ordered))) - 1)]
    return {"p50": round(statistics.median(ordered) * scale, 1),
            "p95": round(at(0.95) * scale, 1),
            "min": round(ordered[0] * scale, 1), "max": round(ordered[-1] * scale, 1),
            "samples": len(ordered)}


# -- throughput


def throughput(bench, receivers=50, burst=200, repeats=3):
    """
    The fastest rate at which a mirror room delivers every message to all
    C{receivers} local users: a raleigh user sends C{burst} messages at
    once, and the rate is the burst over the time until the last
    receiver has the last message (nothing may be lost).

    The baselines, the same users in a room of raleigh's mod_muc with
    mod_muc_mam and in one without, are measured too, their bursts taking
    turns with the mirror room's on the same servers: this machine's
    speed drifts between runs by more than the difference looked for.
    """
    name = "throughput"
    host = bench.fairfax_users[0]
    host.join(bench.fairfax_room(name))
    host.wait_joined(bench.fairfax_room(name))
    rooms = [("room", mirror_room_jid("%s@%s" % (name, MASTER), MIRROR)),
             ("baseline", "%s@%s" % (name, STOCK_RALEIGH_MAM)),
             ("plain", "%s@%s" % (name, STOCK_RALEIGH))]
    sender = bench.raleigh_users[0]
    for _, room in rooms:
        sender.join(room)
        sender.wait_joined(room)
    server = bench.sites.raleigh
    counters = [CountingClient(cname, server.domain, PASSWORD, server.ip, server.c2s_port)
                for cname in bench.counting_names[:receivers]]
    runs = {kind: [] for kind, _ in rooms}
    try:
        for counter in counters:
            counter.connect()
            for _, room in rooms:
                counter.send("<presence to='%s/%s'><x xmlns='http://jabber.org/protocol/muc'>"
                             "<history maxstanzas='0'/></x></presence>" % (room, counter.user))
        for counter in counters:
            if not counter.wait_joined(60, rooms=len(rooms)):
                raise BenchError("%s could not join %s" % (counter.user,
                                                           " and ".join(r for _, r in rooms)))
        expected = 0
        for run in range(repeats + 1):
            for kind, room in rooms:
                # The first burst only warms up (every receiver is in).
                size = 1 if run == 0 else burst
                expected += size
                figures = _burst(bench, sender, room, counters, run, size, expected)
                if run:
                    runs[kind].append(figures)
    finally:
        for counter in counters:
            counter.close()
    result = dict(_rates(runs["room"], receivers, burst), receivers=receivers, burst=burst)
    for kind in ("baseline", "plain"):
        result[kind] = _rates(runs[kind], receivers, burst)
    return result


def _rates(runs, receivers, burst):
    rates = [r["messages_per_s"] for r in runs]
    return {"messages_per_s": {"min": min(rates), "median": statistics.median(rates),
                               "max": max(rates)},
            "stanzas_per_s": statistics.median(rates) * receivers,
            "cpu_s_per_stanza": {role: statistics.median(r["cpu_s"][role] for r in runs)
                                 / (burst * receivers) for role in runs[0]["cpu_s"]},
            "runs": runs}


def _burst(bench, sender, room, counters, run, size, expected):
    pids = bench.server_pids()
    cpu_before = {role: cpu_seconds(pid) for role, pid in pids.items()}
    # With an id and origin-id, as Conversations, Gajim and Dino send them.
    text = "".join("<message to='%s' type='groupchat' id='%s'><body>t-%d-%d</body>"
                   "<origin-id xmlns='urn:xmpp:sid:0' id='%s'/></message>"
                   % (room, tag, run, n, tag)
                   for n, tag in ((n, uuid.uuid4().hex) for n in range(size)))
    start = time.monotonic()
    sender.send_raw(text)
    for counter in counters:
        if not counter.wait_count(expected, 300):
            raise BenchError("%s received %d of %d messages" % (counter.user, counter.count,
                                                                 expected))
    elapsed = max(counter.last_arrival for counter in counters) - start
    cpu = {role: round(cpu_seconds(pid) - cpu_before[role], 3) for role, pid in pids.items()}
    sender.forget()
    return {"messages": size, "seconds": round(elapsed, 3),
            "messages_per_s": round(size / elapsed, 1), "cpu_s": cpu}
