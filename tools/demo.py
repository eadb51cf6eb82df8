"""
`make demo`: a scripted conversation across two sites, and what each step
cost on the link between them.

Starts the two sites of `make run` (in a temporary directory), plays users
of both sites through one room, and prints per flow the stanzas and bytes
that crossed the S2S link in each direction, as the project's relay
counted them.
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
MUC = "http://jabber.org/protocol/muc"


def main():
    sites = TwoSites(tempfile.mkdtemp(prefix="dmuc-demo-"), addresses=free_addresses())
    try:
        sites.start()
        run(sites)
    finally:
        sites.stop()


def run(sites):
    users = {}
    for name, server in (("kevin", sites.fairfax), ("wayne", sites.raleigh),
                         ("keith", sites.raleigh)):
        server.register(name, name)
        users[name] = Client.connect("%s@%s/demo" % (name, server.domain), name,
                                     server.ip, server.c2s_port)
    kevin, wayne, keith = users["kevin"], users["wayne"], users["keith"]

    def join(client, room, nick):
        client.send("<presence to='%s/%s'><x xmlns='%s'/></presence>" % (room, nick, MUC))
        client.wait_for(lambda s: 110 in status_codes(s), timeout=10)

    def say(client, room, text):
        client.send("<message to='%s' type='groupchat'><body>%s</body></message>" % (room, text))

    flows = [
        ("kevin (fairfax) creates the room", lambda: join(kevin, ROOM, "Kevin")),
        ("kevin says something before anyone remote is there",
         lambda: say(kevin, ROOM, "good morning")),
        ("wayne (raleigh) joins through the mirror: first mirror user, full sync",
         lambda: join(wayne, MROOM, "Wayne")),
        ("keith (raleigh) joins: second mirror user", lambda: join(keith, MROOM, "Keith")),
        ("kevin says hello (reaches 2 raleigh users)", lambda: say(kevin, ROOM, "hello raleigh")),
        ("wayne says hi", lambda: say(wayne, MROOM, "hi fairfax")),
        ("wayne goes away (status change)",
         lambda: wayne.send("<presence to='%s/Wayne'><show>away</show></presence>" % MROOM)),
        ("wayne -> keith private message (same mirror)",
         lambda: wayne.send("<message to='%s/Keith' type='chat'><body>lunch?</body></message>"
                            % MROOM)),
        ("wayne -> kevin private message",
         lambda: wayne.send("<message to='%s/Kevin' type='chat'><body>psst</body></message>"
                            % MROOM)),
        ("keith leaves", lambda: keith.send("<presence type='unavailable' to='%s/Keith'/>" % MROOM)),
        ("wayne leaves: the mirror's last user", lambda: wayne.send(
            "<presence type='unavailable' to='%s/Wayne'/>" % MROOM)),
        ("kevin talks to a room with no mirror users", lambda: say(kevin, ROOM, "anyone?")),
    ]
    print("%-72s %9s %9s   %s" % ("flow", "f>r", "r>f", "stanzas that crossed"))
    print("%-72s %9s %9s" % ("", "(bytes)", "(bytes)"))
    for title, action in flows:
        sites.relay.reset()
        action()
        for client in users.values():
            client.barrier(MASTER, timeout=10)
            client.barrier(MIRROR, timeout=10)
        crossed = sites.relay.crossings()
        summary = ", ".join("%s %s" % (c.direction.replace("fairfax", "f").replace("raleigh", "r"),
                                       c.name + ("/" + c.get("type") if c.get("type") else ""))
                            for c in crossed) or "nothing"
        print("%-72s %9d %9d   %d: %s" % (title, sites.relay.stanza_bytes("fairfax>raleigh"),
                                           sites.relay.stanza_bytes("raleigh>fairfax"),
                                           len(crossed), summary))
    for client in users.values():
        client.disconnect()
    print("\nBytes are those of the stanzas listed; stream set-up and dialback (once per"
          "\nconnection) and the demo's own round trips to wait for each flow are left out.")


if __name__ == "__main__":
    main()
