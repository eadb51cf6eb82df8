"""
Unit-test helpers: a master service and a mirror service wired together
in memory, with users of both sites, and a count of what crosses the link
between the sites (every stanza between a fairfax.test entity and a
raleigh.test entity).
"""

from collections import deque, defaultdict

from twisted.internet.task import Clock
from wokkel.test.helpers import TestableStreamManager

import dmuc  # noqa: F401
from dmuc.master.handler import MasterMUC
from dmuc.mirror.handler import MirrorMUC
from dmuc.storage.memory import MemoryRoomStore
from dmuc.xmpp.addressing import mirror_room_jid
from dmuc.xmpp import namespaces as ns
from dmuc.xmpp.multicast import LISTS_FEATURE, PROBE_NODE
from dmuc.xmpp.stanzas import child, copy_element, parse_xml, strip_children
from tests.stanza_helpers import component_stanza

MASTER = "conference.fairfax.test"
MIRROR = "mirror.raleigh.test"
ROOM = "chat@" + MASTER
MROOM = mirror_room_jid(ROOM, MIRROR)


def site(jid):
    host = jid.split("/")[0].split("@")[-1]
    return "raleigh" if host.endswith("raleigh.test") else "fairfax"


class TwoSites:
    """
    @ivar inbox: user full JID -> stanzas received.
    @ivar link: list of (direction, stanza) that crossed between sites.
    """

    def __init__(self, trusted=None, fire_and_forget=False, compact=True, multicast=None,
                 limits=None, multicast_lists=False):
        """
        @param multicast: raleigh.test's server offers XEP-0033 multicast
            as dmuc's Prosody module does: C{True} to the mirror, C{False}
            to others only (it refuses the mirror); C{None}: no multicast.
            L{multicasts} counts the multicast stanzas it delivered.
        @param multicast_lists: it also keeps recipient lists, as the
            module does (otherwise it is an older module).
        @param limits: the L{Limits} of both services (by default none).
        """
        self.limits = limits
        self.multicast = multicast
        self.multicasts = []
        self.multicast_lists = multicast_lists
        #: The mirror's recipient lists raleigh.test keeps, by number.
        self.kept_lists = {}
        self.clock = Clock()
        self.clock.advance(1_700_000_000)
        self.trusted = trusted if trusted is not None else {MIRROR: ("raleigh.test",)}
        self.master = MasterMUC(MASTER, MemoryRoomStore(), self.clock,
                                trusted_mirrors=self.trusted, compact=compact, limits=limits)
        self.fire_and_forget = fire_and_forget
        self.mirror = MirrorMUC(MIRROR, ("raleigh.test",), MemoryRoomStore(), self.clock,
                                fire_and_forget=fire_and_forget, limits=limits)
        self._managers = {}
        self.inbox = defaultdict(list)
        self.link = []
        self._queue = deque()
        for domain, handler in ((MASTER, self.master), (MIRROR, self.mirror)):
            self._attach(domain, handler)
        # What the services say as they connect (the master's start notice)
        # is not part of any test's traffic.
        self._run()
        self.link = []

    def _attach(self, domain, handler):
        manager = TestableStreamManager(reactor=self.clock)
        manager.stub.xmlstream.send = (lambda el, d=domain: self._route(d, el))
        handler.setHandlerParent(manager)
        self._managers[domain] = manager

    def restart_mirror(self, crash=False):
        """A new mirror process on the same database, as after a restart
        (the old one stopped as its service stops it: saves flushed; or,
        with C{crash}, killed: what it had not written is lost)."""
        if crash:
            for room_jid in list(self.mirror._unsaved):
                self.mirror.cancel_save(room_jid)
        else:
            self.mirror.flush()
        self.mirror = MirrorMUC(MIRROR, ("raleigh.test",), self.mirror.store, self.clock,
                                fire_and_forget=self.fire_and_forget, limits=self.limits)
        self.mirror.load()
        self._attach(MIRROR, self.mirror)

    master_down = False

    def stop_master(self, crash=False):
        """
        The master's process ends: cleanly (as its service stops it:
        occupants told, saves flushed) or killed (C{crash}: nothing sent,
        only what the store already holds survives).  Until L{start_master}
        the master site's server bounces what is sent to the master's
        domain, as Prosody does for a component that is not connected.
        """
        if not crash:
            self.master.shutdown()
            self._run()
            self.master.flush()
        self.master.monitors.stop()
        self.master_down = True
        del self._managers[MASTER]

    def start_master(self, announce=True):
        """
        A new master process on the same store.  C{announce=False}: what
        it says as it connects is lost (an older master says nothing).
        """
        self.master = MasterMUC(MASTER, self.master.store, self.clock,
                                trusted_mirrors=self.trusted,
                                compact=self.master.offers_compact, limits=self.limits)
        self.master.load()
        self.master_down = False
        self._attach(MASTER, self.master)
        if not announce:
            self._queue = deque((frm, s) for frm, s in self._queue
                                if frm.split("/")[0].split("@")[-1] != MASTER)
        self._run()

    def restart_master(self, crash=False, announce=True):
        """L{stop_master}, then L{start_master}, without time passing."""
        self.stop_master(crash)
        self.start_master(announce)

    def _route(self, sender_domain, element):
        copy = parse_xml(element.toXml())
        frm = copy.getAttribute("from") or sender_domain
        self._queue.append((frm, copy))

    def send(self, user, text):
        """A user's client sends a stanza (its server stamps the from)."""
        stanza = parse_xml(text)
        stanza["from"] = user
        self._queue.append((user, stanza))
        self._run()

    cut = False
    stalled = ()
    _held = ()

    def stall(self, direction):
        """Hold back what crosses in one direction (one-way loss)."""
        self.stalled = (direction,)
        self._held = []

    def heal(self):
        """Undo cut and stall; what was held crosses now, in order."""
        self.cut, self.stalled = False, ()
        held, self._held = self._held, []
        self._queue.extend(held)
        self._run()

    def _run(self):
        # What the services leave for the reactor's next turn (calls at
        # "now": the master's acknowledgements) is part of the exchange.
        self._deliver_queue()
        while self.clock.getDelayedCalls() and any(
                c.getTime() <= self.clock.seconds() for c in self.clock.getDelayedCalls()):
            self.clock.advance(0)
            self._deliver_queue()

    def _deliver_queue(self):
        while self._queue:
            frm, stanza = self._queue.popleft()
            to = stanza.getAttribute("to")
            bounce = frm.startswith("bounce:")
            if bounce:
                frm = frm[len("bounce:"):]   # made by the sender's own server
            elif site(frm) != site(to):
                direction = "%s>%s" % (site(frm), site(to))
                if self.cut:
                    self._bounce(frm, stanza)
                    continue
                if direction in self.stalled:
                    self._held.append((frm, stanza))
                    continue
                self.link.append(("%s>%s" % (site(frm), site(to)), stanza))
            host = to.split("/")[0].split("@")[-1]
            if host == MASTER and self.master_down and not bounce:
                self._bounce(frm, stanza, "wait", "remote-server-timeout")
                continue
            if host in self._managers:
                self._managers[host].stub.send(component_stanza(stanza.toXml()))
            elif to == "raleigh.test" and self.multicast is not None:
                self._multicast_server(frm, stanza)
            else:
                self.inbox[to].append(stanza)

    def _multicast_server(self, frm, stanza):
        """raleigh.test with etc/prosody-modules/mod_dmuc_multicast.lua."""
        allowed = self.multicast and frm.split("/")[0].split("@")[-1] == MIRROR
        if stanza.name == "iq":
            if allowed:
                answer = parse_xml("<iq type='result'><query xmlns='%s' node='%s'>"
                                   "<feature var='%s'/>%s</query></iq>"
                                   % (ns.DISCO_INFO, PROBE_NODE, ns.ADDRESS,
                                      "<feature var='%s'/>" % LISTS_FEATURE
                                      if self.multicast_lists else ""))
            else:
                answer = parse_xml("<iq type='error'><error type='auth'><forbidden xmlns="
                                   "'urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>")
            answer["from"], answer["to"], answer["id"] = "raleigh.test", frm, stanza["id"]
            self._queue.append(("raleigh.test", answer))
            return
        addresses = child(stanza, "addresses", ns.ADDRESS)
        if not allowed or addresses is None:
            self.inbox["raleigh.test"].append(stanza)
            return
        self.multicasts.append(stanza)
        recipients = [a["jid"] for a in addresses.elements(ns.ADDRESS, "address")]
        named = child(addresses, "list", ns.MULTICAST) if self.multicast_lists else None
        if named is not None and recipients:
            self.kept_lists[int(named["id"])] = recipients
        elif named is not None:
            if int(named["id"]) not in self.kept_lists:
                self._bounce(frm, stanza, "cancel", "item-not-found", extra=named)
                return
            recipients = self.kept_lists[int(named["id"])]
        copy = copy_element(stanza)
        strip_children(copy, ns.ADDRESS)
        for jid in recipients:
            one = copy_element(copy)
            one["to"] = jid
            self._queue.append((frm, one))

    def _bounce(self, frm, stanza, kind="cancel", condition="remote-server-not-found",
                extra=None):
        """What Prosody does with a stanza for an unreachable server (or,
        with C{wait} and C{remote-server-timeout}, for a component that is
        not connected: mod_component); C{extra} is an application-specific
        condition to add."""
        if stanza.getAttribute("type") in ("error", "result"):
            return
        error = parse_xml("<%s type='error'><error type='%s'><%s "
                          "xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></%s>"
                          % (stanza.name, kind, condition, stanza.name))
        error["from"], error["to"] = stanza["to"], frm
        if extra is not None:
            child(error, "error", error.uri).addChild(copy_element(extra))
        if stanza.getAttribute("id"):
            error["id"] = stanza["id"]
        self._queue.append(("bounce:" + stanza["to"], error))

    def advance(self, seconds, step=1):
        """Let time pass (pings, timeouts), delivering what it causes."""
        for _ in range(int(seconds / step)):
            self.clock.advance(step)
            self._run()

    def take(self, user):
        stanzas, self.inbox[user] = self.inbox[user], []
        return stanzas

    def link_count(self):
        count = len(self.link)
        self.link = []
        return count
