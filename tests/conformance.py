"""
The differential conformance harness: one scripted scenario, played once
against a room of Prosody's own mod_muc and once against a room of the
dmuc master service on the same server, and what each client received,
normalised, side by side.  Across two sites (L{play_views}) each user
addresses the room under its own JID: a mirror's users the mirror room.

Normalising removes what legitimately differs between two runs or two
implementations and nothing else:

  - the MUC service's host name (C{rooms...} for Prosody, C{conference...}
    for dmuc) becomes C{MUC}; across sites the room's bare JID as that
    user sees it (stock, master or mirror room) becomes C{ROOM} first;
  - stanza C{id}s (XEP-0359 stanza-ids too: Prosody runs with mod_muc_mam),
    C{xml:lang}, and time stamps become placeholders;
  - XEP-0421 occupant ids become C{OID1}, C{OID2}... in order of first
    appearance, so the same user keeps the same id;
  - through a mirror, XEP-0359 C{<origin-id/>}s that no client sent: the
    mirror gives one to each message of its users (docs/conformance.md);
  - the order of child elements (XMPP gives it no meaning); the order of
    the stanzas themselves is kept and compared, except within a run of
    other occupants' presences in a join (Prosody sends them in Lua table
    order, which is unspecified).
"""

import re
import time
import xml.etree.ElementTree as ET

from tests.harness.xml import NS, XML_NS, qname

PLACEHOLDER_ATTRIBUTES = {"id": "ID", "stamp": "STAMP"}
DROPPED_ELEMENTS = set()
OCCUPANT_ID = qname("urn:xmpp:occupant-id:0", "occupant-id")
ORIGIN_ID = qname(NS.STANZA_ID, "origin-id")


class Step:
    """
    One action of a scenario: C{user} sends C{xml} (C{{room}} and C{{muc}}
    are filled in).  After it, the sender and then every client wait for a
    disco round trip to the MUC service, so everything the step caused has
    arrived before the next step.
    """

    def __init__(self, user, xml):
        self.user = user
        self.xml = xml

    def text(self, room, service, clients):
        """
        The stanza to send; C{{jid[wayne]}} is wayne's bare JID and
        C{{full[wayne]}} his full JID, which differ between sites.
        """
        jids = {user: client.jid.split("/")[0] for user, client in clients.items()}
        full = {user: client.jid for user, client in clients.items()}
        return self.xml.format(room=room, muc=service, jid=jids, full=full)


def play(clients, service, room_node, steps):
    """
    Play C{steps} against C{room_node@service}.

    @param clients: user name -> L{tests.harness.client.Client}.
    @return: user name -> list of received stanzas from the MUC service.
    """
    room = "%s@%s" % (room_node, service)
    received = {user: [] for user in clients}
    for step in steps:
        clients[step.user].send(step.text(room, service, clients))
        clients[step.user].barrier(service)
        for user, client in clients.items():
            client.barrier(service)
            received[user].extend(
                s for s in client.take_all() if _domain(s.get("from")) == service)
    return received


def _domain(jid):
    return (jid or "").split("/")[0].split("@")[-1]


class Normaliser:
    """Turns stanzas into comparable text; see the module docstring."""

    def __init__(self, service, room=None):
        """
        @param room: the room's bare JID as the viewer sees it, which
            becomes C{ROOM}; given when viewers see the room under
            different JIDs (a master room and its mirror room).
        """
        self.service = service
        self.replacements = ([(room, "ROOM")] if room else []) + [(service, "MUC")]
        self.occupant_ids = {}
        #: When a set: an origin-id whose id is not in it is dropped (see
        #: L{normalise_views}); when C{None}, every origin-id is kept.
        self.sent_origin_ids = None

    def viewer(self, service, room):
        """
        A normaliser for another viewer of the same run, who sees the room
        as C{room} on C{service}: occupant ids keep their numbers, so that
        one user's id must be the same whoever sees it.
        """
        other = Normaliser(service, room)
        other.occupant_ids = self.occupant_ids
        other.sent_origin_ids = self.sent_origin_ids
        return other

    def __call__(self, stanza):
        return self._text(self._normalise(stanza))

    def _replace(self, text):
        for found, placeholder in self.replacements:
            text = text.replace(found, placeholder)
        return text

    def _normalise(self, element):
        copy = ET.Element(element.tag)
        for key, value in sorted(element.attrib.items()):
            if key == qname(XML_NS, "lang"):
                continue
            if key in PLACEHOLDER_ATTRIBUTES:
                value = PLACEHOLDER_ATTRIBUTES[key]
                if element.tag == OCCUPANT_ID:
                    value = self._occupant_id(element.get("id"))
            copy.set(key, self._replace(value))
        copy.text = self._replace(element.text or "").strip() or None
        children = [self._normalise(c) for c in element
                    if c.tag not in DROPPED_ELEMENTS and not self._added_origin_id(c)]
        for child in sorted(children, key=self._text):
            copy.append(child)
        return copy

    def _added_origin_id(self, element):
        return (element.tag == ORIGIN_ID and self.sent_origin_ids is not None
                and element.get("id") not in self.sent_origin_ids)

    def _occupant_id(self, value):
        return self.occupant_ids.setdefault(value, "OID%d" % (len(self.occupant_ids) + 1))

    @staticmethod
    def _text(element):
        return re.sub(r"\s+", " ", ET.tostring(element, encoding="unicode"))


def normalise_all(received, service):
    normalise = Normaliser(service)
    return {user: _sort_occupant_runs([normalise(s) for s in stanzas])
            for user, stanzas in received.items()}


class View:
    """
    How one user reaches the room in a run played across two sites.

    @ivar room: the room's bare JID for this user (the mirror room for a
        mirror's users).
    @ivar service: the domain of C{room}.
    @ivar sources: the domains whose stanzas count as the room's; a
        mirror's users also listen to the master, so that anything the
        master sends them directly shows up as a difference.
    @ivar barriers: the domains this user round-trips to after a step.
    """

    def __init__(self, room, sources=(), barriers=()):
        self.room = room
        self.service = _domain(room)
        self.sources = frozenset(sources or (self.service,))
        self.barriers = tuple(barriers or (self.service,))


#: Between looks at the inboxes while a step's stanzas are still coming.
POLL_INTERVAL = 0.05
#: After the last step, for stanzas nobody waited for.
LAST_GRACE = 0.5


def play_views(clients, views, steps, expected=None, timeout=5):
    """
    Play C{steps}, each user addressing the room as its L{View} says.

    Across sites a barrier to one service does not prove that a step's
    stanzas have all arrived: a mirror user's stanza goes on to the master
    and comes back on other S2S streams.  So, given the counts of a
    reference run, each step waits up to C{timeout} seconds until every
    user has received at least as many, and after the last step a short
    grace catches any extra.

    @param views: user name -> L{View}.
    @param expected: per step, user name -> stanzas received (the counts
        this returns for a reference run).
    @return: user name -> received stanzas, and the per-step counts.
    """
    received = {user: [] for user in clients}
    counts = []
    for index, step in enumerate(steps):
        view = views[step.user]
        clients[step.user].send(step.text(view.room, view.service, clients))
        clients[step.user].barrier(view.service)
        got = _collect(clients, views, expected[index] if expected else {}, timeout)
        if expected and index == len(steps) - 1:
            time.sleep(LAST_GRACE)
            for user, late in _collect(clients, views, {}, 0).items():
                got[user].extend(late)
        for user, stanzas in got.items():
            received[user].extend(stanzas)
        counts.append({user: len(stanzas) for user, stanzas in got.items()})
    return received, counts


def _collect(clients, views, wanted, timeout):
    """Barrier rounds until every user has its C{wanted} count, or C{timeout}."""
    got = {user: [] for user in clients}
    deadline = time.monotonic() + timeout
    while True:
        for user, client in clients.items():
            view = views[user]
            for domain in view.barriers:
                client.barrier(domain)
            got[user].extend(s for s in client.take_all()
                             if _domain(s.get("from")) in view.sources)
        if (all(len(got[user]) >= wanted.get(user, 0) for user in clients)
                or time.monotonic() >= deadline):
            return got
        time.sleep(POLL_INTERVAL)


def normalise_views(received, views, sent_origin_ids=None):
    """
    As L{normalise_all}, each user's stanzas with the room JID and the
    service of its own L{View} replaced.

    @param sent_origin_ids: the origin-ids the clients sent (see
        L{origin_ids_in}), for a run through a mirror: a mirror gives
        each message of its users an origin-id (docs/conformance.md), and
        only the origin-ids no client sent are dropped.
    """
    shared = None
    result = {}
    for user, stanzas in received.items():
        view = views[user]
        normalise = (shared.viewer(view.service, view.room) if shared
                     else Normaliser(view.service, view.room))
        if shared is None:
            normalise.sent_origin_ids = sent_origin_ids
        shared = shared or normalise
        result[user] = _sort_occupant_runs([normalise(s) for s in stanzas])
    return result


def _sort_occupant_runs(texts):
    result, run = [], []
    for text in texts + [None]:
        if text is not None and text.startswith("<ns0:presence") and "status code" not in text:
            run.append(text)
            continue
        result.extend(sorted(run))
        run = []
        if text is not None:
            result.append(text)
    return result


def origin_ids_in(steps):
    """The ids of the XEP-0359 origin-ids the C{steps} send."""
    ids = set()
    for step in steps:
        for element in ET.fromstring("<steps>%s</steps>" % step.xml).iter(ORIGIN_ID):
            ids.add(element.get("id"))
    return ids
