"""
C{dmuc}: an operator's questions to a running dmuc process.

    dmuc -c /etc/dmuc/fairfax.ini rooms          the rooms and how many are in each
    dmuc -c /etc/dmuc/fairfax.ini who ROOM       who is in a room (nick, role, JID, site)
    dmuc -c /etc/dmuc/fairfax.ini links          each peer's link: up or split, since when

It asks the process's [metrics] listener (C{/status}); C{--url} names
the listener instead of a configuration file.
"""

import argparse
import json
import sys
import urllib.error
import urllib.request

from dmuc import config as dmuc_config


def main(argv=None, out=sys.stdout):
    parser = argparse.ArgumentParser(prog="dmuc", description=__doc__.strip().splitlines()[0])
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("-c", "--config", help="the process's configuration file (INI)")
    where.add_argument("--url", help="its [metrics] listener, e.g. http://127.0.0.1:9154")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("rooms", help="the rooms and how many are in each")
    who = commands.add_parser("who", help="who is in a room")
    who.add_argument("room", help="the room's JID (a master room, or a mirror room)")
    commands.add_parser("links", help="each peer's link: up or split, since when")
    args = parser.parse_args(argv)
    try:
        state = _fetch(_status_url(args))
    except _Failed as e:
        print("dmuc: %s" % (e,), file=sys.stderr)
        return 1
    return {"rooms": _rooms, "who": _who, "links": _links}[args.command](state, args, out)


class _Failed(Exception):
    pass


def _status_url(args):
    if args.url:
        return args.url.rstrip("/") + "/status"
    try:
        loaded = dmuc_config.load(args.config)
    except dmuc_config.ConfigError as e:
        raise _Failed("configuration error: %s" % (e,))
    if loaded.metrics is None:
        raise _Failed("%s has no [metrics] section: add one (listen = 127.0.0.1:9154) and "
                      "restart dmuc to ask it questions" % (args.config,))
    host, port = loaded.metrics.listen
    if host in ("0.0.0.0", "::", ""):
        host = "127.0.0.1"
    return "http://%s:%d/status" % (host if ":" not in host else "[%s]" % host, port)


def _fetch(url):
    try:
        with urllib.request.urlopen(url, timeout=10) as answer:
            return json.loads(answer.read().decode("utf-8"))
    except (urllib.error.URLError, OSError, ValueError) as e:
        raise _Failed("cannot ask the dmuc process at %s: %s (is it running, with "
                      "[metrics]?)" % (url, getattr(e, "reason", e)))


def _rooms(state, args, out):
    for service in state["services"]:
        print("%s: %d room(s)" % (service["service"], len(service["rooms"])), file=out)
        for room in service["rooms"]:
            extra = ""
            if "master" in room:
                extra = " (mirror of %s%s)" % (room["master"], ", split" if room["split"] else "")
            print("  %s  %d in the room%s" % (room["room"], len(room["occupants"]), extra),
                  file=out)
    return 0


def _who(state, args, out):
    for service in state["services"]:
        for room in service["rooms"]:
            if room["room"] == args.room:
                for o in room["occupants"]:
                    print("%-20s %-11s %-7s %s%s" % (
                        o["nick"], o["role"], o["affiliation"], o["jid"] or "-",
                        " (via %s)" % o["via"] if o["via"] else ""), file=out)
                return 0
    print("dmuc: no room %s in this process" % (args.room,), file=sys.stderr)
    return 1


def _links(state, args, out):
    for service in state["services"]:
        for link in service["links"]:
            print("%s -> %s: %s since %s, last heard %s, %d pings sent" % (
                service["service"], link["peer"], link["state"], link["since"],
                link["last_heard"], link["pings_sent"]), file=out)
        if not service["links"]:
            print("%s: no peer yet" % (service["service"],), file=out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
