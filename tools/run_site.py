"""
`make run`: a ready two-site setup on this machine.

    fairfax.test  Prosody on 127.0.0.2:5222, dmuc master  conference.fairfax.test
    raleigh.test  Prosody on 127.0.0.3:5222, dmuc mirror  mirror.raleigh.test

The two Prosody servers federate over S2S through the project's relay,
which counts what crosses the link.  A few accounts are created; the script
prints how to connect an ordinary client to each site and stops everything
on Ctrl-C.  Files (configs, logs, databases) live in ./run/.
"""

import os
import shutil
import signal
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from tests.harness.sites import (  # noqa: E402
    FAIRFAX, FAIRFAX_IP, MASTER, MIRROR, RALEIGH, RALEIGH_IP, TwoSites)
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

  fairfax.test  XMPP server {FAIRFAX_IP} port 5222, accounts {accounts(FAIRFAX)}
                rooms on the master service {MASTER}, e.g. {room}
  raleigh.test  XMPP server {RALEIGH_IP} port 5222, accounts {accounts(RALEIGH)}
                the same room through the mirror: {mirror_room_jid(room, MIRROR)}

Log in with any XMPP client (password = user name; plain text, no TLS: set
the server address by hand, there is no DNS for these domains), join the room
from each site and chat.  The S2S link between the sites runs through a relay
that counts what crosses it.

Logs and configs: {sites.base_dir}
Press Ctrl-C to stop.""", flush=True)


def accounts(domain):
    return ", ".join("%s@%s" % (user, domain) for user in ACCOUNTS[domain])


def _interrupt(signum, frame):
    raise KeyboardInterrupt


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, _interrupt)
    main()
