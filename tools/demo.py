"""
`make demo`: a scripted conversation across two sites, and what each step
cost on the link between them, with dmuc and with stock Prosody.

Starts the two sites of `make run` (in a temporary directory) and plays
the same steps twice: once in a dmuc room (fairfax users in the master
room, raleigh users through the mirror), once in a room of fairfax's own
Prosody mod_muc that raleigh users join directly over S2S, as they would
without dmuc.  For each step it prints the bytes of the stanzas that
crossed the S2S link in each direction, as the project's relay counted
them, and how many stanzas that was.
"""

import os
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from tests.harness.client import Client  # noqa: E402
from tests.harness.sites import MASTER, MIRROR, TwoSites, free_addresses  # noqa: E402
from tests.harness.xml import status_codes  # noqa: E402
from dmuc.xmpp.addressing import mirror_room_jid  # noqa: E402

ROOM = "chat@" + MASTER
MROOM = mirror_room_jid(ROOM, MIRROR)
STOCK_MUC = "rooms.fairfax.test"
STOCK_ROOM = "chat@" + STOCK_MUC
MUC = "http://jabber.org/protocol/muc"

LEGEND = """\
Each step is played in a dmuc room and again in a room of fairfax's stock Prosody
(mod_muc) that raleigh users join directly. Columns: bytes of the stanzas that
crossed the link from fairfax to raleigh (f>r) and from raleigh to fairfax (r>f),
and how many stanzas that was (n)."""


def main():
    sites = TwoSites(tempfile.mkdtemp(prefix="dmuc-demo-"), addresses=free_addresses(),
                     muc_domains=((STOCK_MUC,), ()))
    try:
        sites.start()
        run(sites)
    finally:
        sites.stop()


def run(sites, out=sys.stdout):
    users = {}
    for name, server in (("kevin", sites.fairfax), ("wayne", sites.raleigh),
                         ("keith", sites.raleigh)):
        server.register(name, name)
        users[name] = Client.connect("%s@%s/demo" % (name, server.domain), name,
                                     server.ip, server.c2s_port)
    dmuc = play(sites, users, fairfax_room=ROOM, raleigh_room=MROOM)
    stock = play(sites, users, fairfax_room=STOCK_ROOM, raleigh_room=STOCK_ROOM)
    for client in users.values():
        client.disconnect()
    print(LEGEND, file=out)
    print("", file=out)
    print("%-42s %s   %s" % ("", "-------- dmuc --------", "------- stock -------"), file=out)
    print("%-42s %7s %7s %4s  %7s %7s %4s" % ("step", "f>r", "r>f", "n", "f>r", "r>f", "n"),
          file=out)
    totals = [0, 0]
    for (title, mine), (_, theirs) in zip(dmuc, stock):
        print("%-42s %7d %7d %4d  %7d %7d %4d" % ((title,) + mine + theirs), file=out)
        totals[0] += mine[0] + mine[1]
        totals[1] += theirs[0] + theirs[1]
    print("", file=out)
    print("In all: dmuc %d bytes, stock %d bytes (%.1fx)." % (
        totals[0], totals[1], totals[1] / float(totals[0] or 1)), file=out)
    print("Stream set-up and dialback (once per connection) and the demo's own round\n"
          "trips to wait for each step are left out.", file=out)
    return dmuc, stock


def play(sites, users, fairfax_room, raleigh_room):
    """The steps in one room: [(title, (f>r bytes, r>f bytes, stanzas))]."""
    kevin, wayne, keith = users["kevin"], users["wayne"], users["keith"]
    service = fairfax_room.partition("@")[2]
    mirror = MIRROR if raleigh_room != fairfax_room else None

    def join(client, room, nick):
        client.send("<presence to='%s/%s'><x xmlns='%s'/></presence>" % (room, nick, MUC))
        client.wait_for(lambda s: 110 in status_codes(s)
                        and s.get("from") == "%s/%s" % (room, nick), timeout=10)

    def say(client, room, text):
        client.send("<message to='%s' type='groupchat'><body>%s</body></message>" % (room, text))

    def private(client, room, nick, text):
        client.send("<message to='%s/%s' type='chat'><body>%s</body></message>"
                    % (room, nick, text))

    def status(client, room, nick):
        client.send("<presence to='%s/%s'><show>away</show></presence>" % (room, nick))

    def leave(client, room, nick):
        client.send("<presence type='unavailable' to='%s/%s'/>" % (room, nick))

    steps = [
        ("kevin (fairfax) opens the room", lambda: join(kevin, fairfax_room, "Kevin")),
        ("kevin speaks, nobody remote there", lambda: say(kevin, fairfax_room, "morning")),
        ("wayne (raleigh) joins", lambda: join(wayne, raleigh_room, "Wayne")),
        ("keith (raleigh) joins", lambda: join(keith, raleigh_room, "Keith")),
        ("kevin says hello to both", lambda: say(kevin, fairfax_room, "hello raleigh")),
        ("wayne says hi", lambda: say(wayne, raleigh_room, "hi fairfax")),
        ("wayne goes away (status)", lambda: status(wayne, raleigh_room, "Wayne")),
        ("wayne to keith, privately", lambda: private(wayne, raleigh_room, "Keith", "lunch?")),
        ("wayne to kevin, privately", lambda: private(wayne, raleigh_room, "Kevin", "psst")),
        ("keith leaves", lambda: leave(keith, raleigh_room, "Keith")),
        ("wayne leaves, the last raleigh user", lambda: leave(wayne, raleigh_room, "Wayne")),
        ("kevin speaks, nobody remote there", lambda: say(kevin, fairfax_room, "anyone?")),
    ]
    results = []
    for title, action in steps:
        sites.relay.reset()
        action()
        for client in users.values():
            client.barrier(service, timeout=10)
            if mirror:
                client.barrier(mirror, timeout=10)
        crossed = sites.relay.crossings()
        results.append((title, (sites.relay.stanza_bytes("fairfax>raleigh"),
                                sites.relay.stanza_bytes("raleigh>fairfax"), len(crossed))))
    leave(kevin, fairfax_room, "Kevin")
    return results


if __name__ == "__main__":
    main()
