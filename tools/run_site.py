"""
The main job of this repository for a newcomer: one site on this machine.

Starts a private Prosody 0.12 for fairfax.test (plain text, loopback only),
creates a few accounts, attaches the dmuc master service as
conference.fairfax.test, and prints how to connect an ordinary client.
Stop with Ctrl-C; everything started is stopped.  Files live in ./run/.
"""

import os
import shutil
import signal
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from tests.harness.dmuc_process import DmucProcess  # noqa: E402
from tests.harness.prosody import ProsodyServer, require_prosody  # noqa: E402

DOMAIN = "fairfax.test"
SERVICE = "conference.fairfax.test"
ACCOUNTS = ("kevin", "wayne", "keith")


def main():
    require_prosody()
    base = os.path.join(ROOT, "run")
    shutil.rmtree(os.path.join(base, DOMAIN), ignore_errors=True)
    secret = os.urandom(12).hex()
    server = ProsodyServer(base, DOMAIN, components={SERVICE: secret}, s2s_port=0,
                           c2s_port=5222)
    dmuc = DmucProcess(os.path.join(base, "dmuc"), {
        "xmpp": {"host": server.ip, "port": server.component_port},
        "master": {"jid": SERVICE, "secret": secret,
                   "database": os.path.join(base, "dmuc", "master.sqlite")}})
    try:
        server.start()
        for user in ACCOUNTS:
            server.register(user, user)
        dmuc.start()
        print_instructions(server, dmuc)
        while True:
            signal.pause()
    except KeyboardInterrupt:
        pass
    finally:
        dmuc.stop()
        server.stop()
        print("\nStopped dmuc and Prosody.")


def print_instructions(server, dmuc):
    print(f"""
dmuc master service is running.

  XMPP server   Prosody for {DOMAIN} at {server.ip}:{server.c2s_port} (plain text, no TLS)
  MUC service   {SERVICE} (dmuc, attached as an external component)
  accounts      {", ".join(f"{u}@{DOMAIN} / password {u}" for u in ACCOUNTS)}

Connect an ordinary client with one of the accounts, setting the server to
{server.ip} and port {server.c2s_port} by hand (there is no DNS for {DOMAIN}) and
allowing plain-text authentication, then join e.g. chat@{SERVICE}.

Logs: {dmuc.log_path}
      {server.log_path}
Press Ctrl-C to stop.""", flush=True)


def _interrupt(signum, frame):
    raise KeyboardInterrupt


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, _interrupt)
    main()
