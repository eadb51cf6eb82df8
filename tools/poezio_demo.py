"""
Two sites for watching a real client through a split and a master crash.

Starts the two sites of C{make run} (fairfax: master, raleigh: mirror) on
a free 127.x.y.0 block, with monitor intervals of a few seconds, writes a
poezio configuration for wayne@raleigh.test, and plays kevin@fairfax.test
(a scripted client) in C{chat@conference.fairfax.test}.  It then obeys
one command a line, from its standard input or from the FIFO it prints:

    say TEXT   kevin says TEXT in the room
    cut        break the S2S link between the sites (the relay's cut)
    heal       let the link work again
    kill       kill -9 the master's dmuc process, as in a crash
    start      start the master again; kevin's client then checks with a
               self-ping (XEP-0410) that it is still in the room, and
               joins again if the restart dropped it, as poezio would
    heard      what kevin's client received since the last time: messages
               (with their XEP-0203 time when delayed), joins and leaves
    status     each dmuc's view of the link (its status file)
    quit       stop everything (so do Ctrl-C and SIGTERM)

docs/poezio.md shows what poezio shows at each step.  Unlike C{make run}
it leaves 127.0.0.2 and 127.0.0.3 to the tests.
"""

import argparse
import json
import os
import queue
import signal
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from tests.harness.client import Client  # noqa: E402
from tests.harness.sites import (  # noqa: E402
    MASTER, MIRROR, RALEIGH, TwoSites, free_addresses)
from tests.harness.xml import find, status_codes  # noqa: E402
from dmuc.xmpp.addressing import mirror_room_jid  # noqa: E402

ROOM = "chat@" + MASTER
MROOM = mirror_room_jid(ROOM, MIRROR)
MUC = "http://jabber.org/protocol/muc"
#: Short enough that a split shows within seconds, long enough that the
#: link's ordinary latency is never mistaken for one.
MONITOR = {"ping_interval": "2", "ping_timeout": "2", "split_ping_interval": "1"}
PERSISTENT = (
    "<iq type='set' to='%s'><query xmlns='%s#owner'><x xmlns='jabber:x:data' type='submit'>"
    "<field var='muc#roomconfig_persistentroom'><value>1</value></field></x></query></iq>"
    % (ROOM, MUC))
SELF_PING = "<iq type='get' to='%s/Kevin'><ping xmlns='urn:xmpp:ping'/></iq>" % ROOM


def main():
    options = parse_options()
    base = options.dir or tempfile.mkdtemp(prefix="dmuc-poezio-")
    sites = TwoSites(base, addresses=free_addresses(), monitor=MONITOR, log_level="info",
                     multicast_senders=(MIRROR,) if options.multicast else None)
    commands = queue.Queue()
    try:
        sites.start()
        for server, users in ((sites.fairfax, ("kevin",)), (sites.raleigh, ("wayne", "keith"))):
            for user in users:
                server.register(user, user)
        config = write_poezio_config(base, sites.raleigh)
        kevin = Kevin(sites.fairfax)
        kevin.join()
        kevin.client.iq(PERSISTENT)
        kevin.client.take_all()
        keith = None
        if options.multicast:
            # A second raleigh user: the mirror's fan-out then has two
            # recipients, one multicast stanza for both.
            keith = Client.connect("keith@raleigh.test/desk", "keith", sites.raleigh.ip,
                                   sites.raleigh.c2s_port)
            keith.send("<presence to='%s/Keith'><x xmlns='%s'/></presence>" % (MROOM, MUC))
        fifo = os.path.join(base, "control")
        os.mkfifo(fifo)
        start_reader(lambda: open(fifo), commands, forever=True)
        start_reader(lambda: sys.stdin, commands, forever=False)
        print_instructions(sites, config, fifo)
        obey(commands, sites, kevin)
        kevin.client.disconnect()
    except KeyboardInterrupt:
        pass
    finally:
        sites.stop()
        print("Stopped both sites.", flush=True)


def parse_options():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dir", help="where configs, logs and databases go "
                        "(default: a new temporary directory)")
    parser.add_argument("--multicast", action="store_true",
                        help="raleigh's Prosody takes XEP-0033 multicast from the mirror "
                        "(etc/prosody-modules), and keith@raleigh.test is in the room too")
    return parser.parse_args()


def write_poezio_config(base, raleigh):
    """
    Write a poezio configuration for wayne that joins the mirror room on
    start; return its path.  Plain text on the loopback, as the test
    servers offer no TLS.
    """
    directory = os.path.join(base, "poezio")
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, "poezio.cfg")
    with open(path, "w") as f:
        f.write("\n".join([
            "[Poezio]",
            "jid = wayne@%s/poezio" % RALEIGH,
            "password = wayne",
            "custom_host = %s" % raleigh.ip,
            "custom_port = %d" % raleigh.c2s_port,
            "force_encryption = false",
            "ignore_certificate = true",
            "rooms = %s/Wayne" % MROOM,
            "use_bookmarks_method = local",
            "use_remote_bookmarks = false",
            "enable_vertical_tab_list = false",
            "show_timestamps = true",
            # Every join and leave stays on screen: they are what we watch.
            "hide_exit_join = -1",
            "log_dir = %s" % os.path.join(directory, "logs"),
            "",
        ]))
    return path


class Kevin:
    """kevin@fairfax.test at the master, nick Kevin."""

    def __init__(self, fairfax):
        self.client = Client.connect("kevin@fairfax.test/desk", "kevin",
                                     fairfax.ip, fairfax.c2s_port)

    def join(self):
        self.client.send("<presence to='%s/Kevin'><x xmlns='%s'/></presence>" % (ROOM, MUC))
        self.client.wait_for(lambda s: 110 in status_codes(s)
                             and s.get("type") != "unavailable", timeout=20)

    def say(self, text):
        self.client.send("<message to='%s' type='groupchat'><body>%s</body></message>"
                         % (ROOM, escape(text)))

    def rejoin_if_dropped(self):
        """XEP-0410: a client asks its own occupant JID whether it is still
        in; an error means the room has forgotten it."""
        if self.client.iq(SELF_PING, timeout=20).get("type") == "result":
            return "kevin is still in the room"
        self.join()
        return "the restart dropped kevin (self-ping failed); he joined again"

    def heard(self):
        """What kevin's client received since the last call, a line each."""
        return "".join("\n    " + describe(s) for s in self.client.take_all()
                       if s.tag.endswith("presence") or find(s, "body") is not None)


def describe(stanza):
    """One line for a message or presence, as a client would show it."""
    sender = stanza.get("from", "").partition("/")[2] or "(the room)"
    if stanza.tag.endswith("presence"):
        codes = sorted(status_codes(stanza))
        went = "left" if stanza.get("type") == "unavailable" else "is in"
        return "%s %s the room%s" % (sender, went, " %s" % codes if codes else "")
    delay = find(stanza, "delay:delay")
    stamp = " (written %s)" % delay.get("stamp") if delay is not None else ""
    return "%s> %s%s" % (sender, find(stanza, "body").text, stamp)


def escape(text):
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def start_reader(opener, commands, forever):
    """Read command lines from what C{opener} opens, on a thread."""
    def read():
        while True:
            with opener() as source:
                for line in source:
                    commands.put(line.strip())
            if not forever:
                return
    threading.Thread(target=read, daemon=True).start()


def obey(commands, sites, kevin):
    actions = {
        "say": kevin.say,
        "cut": lambda _: sites.relay.cut(),
        "heal": lambda _: sites.relay.heal(),
        "kill": lambda _: sites.master.kill(),
        "start": lambda _: (sites.master.start(), kevin.rejoin_if_dropped())[1],
        "heard": lambda _: kevin.heard(),
        "status": lambda _: link_status(sites),
    }
    while True:
        line = commands.get()
        if not line:
            continue
        name, _, argument = line.partition(" ")
        if name == "quit":
            return
        if name not in actions:
            log("unknown command %r (say, cut, heal, kill, start, heard, status, quit)"
                % name)
            continue
        try:
            outcome = actions[name](argument)
        except Exception as e:  # keep the sites up for the next command
            log("%s failed: %r" % (name, e))
        else:
            log("%s: done%s" % (line, ": " + outcome if outcome else ""))


def link_status(sites):
    states = []
    for dmuc in (sites.master, sites.mirror):
        try:
            with open(os.path.join(dmuc.directory, "status.json")) as f:
                status = json.load(f)
        except (OSError, ValueError):
            continue
        states += ["%s sees %s %s" % (status["service"], p["peer"], p["state"])
                   for p in status["peers"]]
    return "; ".join(states) or "no status yet"


def log(text):
    print(time.strftime("%H:%M:%S"), text, flush=True)


def print_instructions(sites, config, fifo):
    print(f"""
Two dmuc sites are running; kevin@fairfax.test is in {ROOM}.

  raleigh.test c2s: {sites.raleigh.ip} port {sites.raleigh.c2s_port} (wayne, keith; password = name)
  fairfax.test c2s: {sites.fairfax.ip} port {sites.fairfax.c2s_port}
  the room through the mirror: {MROOM}

Start poezio as wayne (as a user other than root; poezio refuses root):
  poezio -f {config}

Commands, typed here or written to the FIFO (echo cut > {fifo}):
  say TEXT | cut | heal | kill | start | heard | status | quit
Files: {sites.base_dir}""", flush=True)


def _interrupt(signum, frame):
    raise KeyboardInterrupt


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, _interrupt)
    main()
