"""
`make run`: a ready two-site setup on this machine.

    fairfax.test  Prosody on 127.0.0.2:5222, dmuc master  conference.fairfax.test
    raleigh.test  Prosody on 127.0.0.3:5222, dmuc mirror  mirror.raleigh.test

The two Prosody servers federate over S2S through the project's relay,
which counts what crosses the link.  A few accounts are created; the script
prints how to connect an ordinary client to each site, then reads commands
on its standard input to show the counts and to cut, stall, slow and heal
the link (COMMANDS); Ctrl-C stops everything.  Files (configs, logs,
databases) live in ./run/.
"""

import os
import shutil
import signal
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from tests.harness.sites import FAIRFAX, MASTER, MIRROR, RALEIGH, TwoSites  # noqa: E402
from dmuc.xmpp.addressing import mirror_room_jid  # noqa: E402

ACCOUNTS = {FAIRFAX: ("kevin", "carol"), RALEIGH: ("wayne", "keith")}


def main():
    base = os.path.join(ROOT, "run")
    shutil.rmtree(base, ignore_errors=True)
    sites = TwoSites(base, c2s_ports=(5222, 5222))
    try:
        sites.start()
        for server in (sites.fairfax, sites.raleigh):
            for user in ACCOUNTS[server.domain]:
                server.register(user, user)
        print_instructions(sites)
        if sys.stdin.isatty():
            command_loop(sites)
        else:
            while True:
                signal.pause()
    except KeyboardInterrupt:
        pass
    finally:
        sites.stop()
        print("\nStopped both sites.")


def print_instructions(sites):
    room = "chat@" + MASTER
    print(f"""
Two dmuc sites are running.

  fairfax.test  XMPP server {sites.fairfax_ip} port 5222, accounts {accounts(FAIRFAX)}
                rooms on the master service {MASTER}, e.g. {room}
  raleigh.test  XMPP server {sites.raleigh_ip} port 5222, accounts {accounts(RALEIGH)}
                the same room through the mirror: {mirror_room_jid(room, MIRROR)}

Log in with any XMPP client (password = user name; plain text, no TLS: set
the server address by hand, there is no DNS for these domains), join the room
from each site and chat.  The S2S link between the sites runs through a relay
that counts what crosses it; type a command below to see the counts or to
break the link and watch both sites carry on and resynchronise.

Logs and configs: {sites.base_dir}
{COMMANDS}
Press Ctrl-C to stop.""", flush=True)


COMMANDS = """Commands (type one and press Enter):
  counts          stanzas and bytes that crossed the link each way since the last reset
  reset           start counting afresh
  cut             break the link (connections reset, new ones refused): a netsplit
  stall [f>r|r>f] hold back what crosses (one way, or both): the link hangs
  slow BITS MS    shape the link to BITS bit/s with MS ms of delay each way
  heal            mend the link (cut, stall and slow undone)
  help            this list"""

DIRECTIONS = {"f>r": "fairfax>raleigh", "r>f": "raleigh>fairfax"}


def command_loop(sites, read=input, out=print):
    """Read commands until end of input; each answers in a line or two."""
    relay = sites.relay
    while True:
        try:
            words = read("link> ").split()
        except EOFError:
            return
        if not words:
            continue
        name, args = words[0], words[1:]
        try:
            if name == "counts":
                out(counts(relay))
            elif name == "reset":
                relay.reset()
                out("counting afresh")
            elif name == "cut":
                relay.cut()
                out("link cut: the monitors declare a split within a ping timeout")
            elif name == "stall":
                direction = DIRECTIONS[args[0]] if args else None
                relay.stall(direction)
                out("link stalled (%s)" % (args[0] if args else "both ways"))
            elif name == "slow":
                bits, delay = int(args[0]), float(args[1]) / 1000
                relay.shape(delay=delay, bandwidth=bits)
                out("link shaped: %d bit/s, %g ms each way" % (bits, delay * 1000))
            elif name == "heal":
                relay.heal()
                relay.shape()
                out("link healed: the sites resynchronise at the next ping")
            elif name == "help":
                out(COMMANDS)
            else:
                out("unknown command %r; type help" % (name,))
        except (IndexError, KeyError, ValueError):
            out("usage: see help")


def counts(relay):
    lines = []
    for short, direction in sorted(DIRECTIONS.items()):
        stanzas = [c for c in relay.crossings() if c.direction == direction]
        lines.append("%s  %5d stanzas %9d bytes (all bytes, stream set-up included: %d)"
                     % (short, len(stanzas), sum(c.size for c in stanzas),
                        relay.bytes(direction)))
    return "\n".join(lines)


def accounts(domain):
    return ", ".join("%s@%s" % (user, domain) for user in ACCOUNTS[domain])


def _interrupt(signum, frame):
    raise KeyboardInterrupt


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, _interrupt)
    main()
