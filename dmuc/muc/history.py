"""
Discussion history: which stored messages a joining occupant gets.

The rules are XEP-0045 7.2.15 as Prosody applies them: walk back from the
newest message, stop at the first one that breaks a limit.  C{maxchars}
counts the serialised stanza as it will be sent, as Prosody does.
"""

import bisect
from collections import OrderedDict

from dmuc.storage.records import HistoryEntry
from dmuc.xmpp import namespaces as ns
from dmuc.xmpp.stanzas import child, parse_xml


def select(entries, request, now, default_maxstanzas):
    """
    @param entries: the room's L{HistoryEntry} list, oldest first.
    @param request: the joiner's L{HistoryRequest}.
    @param now: current time, seconds since the epoch.
    @param default_maxstanzas: used when the joiner asked for nothing.
    @return: the entries to send, oldest first.
    """
    maxstanzas = request.maxstanzas
    if request.is_empty():
        maxstanzas = default_maxstanzas
    since = request.since
    if request.seconds is not None:
        cutoff = now - request.seconds
        since = cutoff if since is None else max(since, cutoff)

    chosen = []
    chars = 0
    for entry in reversed(entries):
        if maxstanzas is not None and len(chosen) >= maxstanzas:
            break
        if since is not None and entry.timestamp < since:
            break
        if request.maxchars is not None:
            chars += len(entry.xml)
            if chars > request.maxchars:
                break
        chosen.append(entry)
    chosen.reverse()
    return chosen


def is_historic(message):
    """
    Whether a groupchat message is kept for history (and so for later
    joiners at every site): Prosody's rule, a body unless hinted
    otherwise, or any message hinted C{<store/>} (reactions, retractions)
    (XEP-0334).
    """
    hints = {c.name for c in message.elements() if c.uri == ns.HINTS}
    if hints & {"no-store", "no-permanent-store"}:
        return False
    if "store" in hints:
        return True
    return any(c.name == "body" and c.uri in (None, message.uri)
               for c in message.elements())


def to_message(entry):
    """The stored message as a C{domish.Element}, ready to address."""
    return parse_xml(entry.xml)


def order_key(entry):
    """
    History is kept in timestamp order on every node.  Two messages with
    the same time (written at two sites during a split) are ordered by an
    id every node knows them by: the origin-id a mirror gave its users'
    messages, else the master's stanza-id.
    """
    return entry.timestamp, origin_id(entry) or entry.stanza_id


def origin_id(entry):
    """The origin-id of a stored message, or C{None}."""
    if "origin-id" not in entry.xml:
        return None
    try:
        origin = _ORIGINS[entry.xml]
    except KeyError:
        element = child(parse_xml(entry.xml), "origin-id", ns.STANZA_ID)
        return _note_origin(entry.xml, element.getAttribute("id") if element is not None else None)
    _ORIGINS.move_to_end(entry.xml)
    return origin


def entry_of(message, stanza_id, timestamp, nick, real_jid):
    """
    The L{HistoryEntry} of C{message} (serialised here), its origin-id
    noted from the element: ordering and de-duplicating ask for it, and
    parsing it back out of the text costs about 60 us a message.
    """
    xml = message.toXml()
    element = child(message, "origin-id", ns.STANZA_ID)
    if element is not None:   # without, L{origin_id} needs no note
        _note_origin(xml, element.getAttribute("id"))
    return HistoryEntry(stanza_id, timestamp, nick, real_jid, xml)


# Ordering and de-duplicating history asks for the origin-id of the same
# stored messages again and again: each is parsed once at most, the
# newest few thousand kept.
_ORIGINS = OrderedDict()   # a stored message's text -> its origin-id or None
_ORIGINS_KEPT = 4096


def _note_origin(xml, origin):
    _ORIGINS[xml] = origin
    if len(_ORIGINS) > _ORIGINS_KEPT:
        _ORIGINS.popitem(last=False)
    return origin


class History:
    """
    A room's history, oldest first in L{order_key} order, with its
    stanza-ids and origin-ids indexed: a resync after a long split adds
    thousands of messages, each placed and checked for a copy already
    held, and a scan per message would make that quadratic (issue 13).

    Reads like the list it replaces (iteration, C{len}, indexes and
    slices); changes go through L{insert}, L{remove} and L{trim}.
    """

    def __init__(self, entries=()):
        self._entries = sorted(entries, key=order_key)
        self._keys = [order_key(e) for e in self._entries]
        self._by_id = {}
        self._by_origin = {}
        for entry in self._entries:
            self._index(entry)

    def _index(self, entry):
        self._by_id[entry.stanza_id] = entry
        origin = origin_id(entry)
        if origin:
            self._by_origin[origin] = entry

    def _unindex(self, entry):
        if self._by_id.get(entry.stanza_id) is entry:
            del self._by_id[entry.stanza_id]
        origin = origin_id(entry)
        if origin and self._by_origin.get(origin) is entry:
            del self._by_origin[origin]

    def insert(self, entry):
        """Place C{entry} by its time (a late message goes back in)."""
        key = order_key(entry)
        position = bisect.bisect_right(self._keys, key)
        self._keys.insert(position, key)
        self._entries.insert(position, entry)
        self._index(entry)

    def remove(self, entry):
        position = self._entries.index(entry)
        del self._entries[position], self._keys[position]
        self._unindex(entry)

    def trim(self, limit):
        """Drop the oldest entries beyond C{limit}."""
        excess = max(0, len(self._entries) - limit)
        for entry in self._entries[:excess]:
            self._unindex(entry)
        del self._entries[:excess], self._keys[:excess]

    def with_id(self, stanza_id):
        return self._by_id.get(stanza_id)

    def with_origin(self, origin):
        """The entry with origin-id C{origin}, or C{None}."""
        return self._by_origin.get(origin) if origin else None

    def __iter__(self):
        return iter(self._entries)

    def __reversed__(self):
        return reversed(self._entries)

    def __len__(self):
        return len(self._entries)

    def __getitem__(self, index):
        return self._entries[index]

    def __eq__(self, other):
        return list(self._entries) == list(other)

    def __repr__(self):
        return "History(%r)" % (self._entries,)
