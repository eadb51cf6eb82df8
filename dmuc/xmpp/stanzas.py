"""
Small helpers to build and inspect stanzas (C{domish.Element}).

Error conditions and their default types follow RFC 6120 section 8.3.3, so
callers name only the condition unless the XEP asks for another type.
"""

import functools
import os

from twisted.words.protocols.jabber.jid import InvalidFormat, JID
from twisted.words.xish import domish
from zope.interface import implementer

from dmuc.xmpp import namespaces as ns

DEFAULT_ERROR_TYPES = {
    "bad-request": "modify",
    "conflict": "cancel",
    "feature-not-implemented": "cancel",
    "forbidden": "auth",
    "gone": "cancel",
    "internal-server-error": "wait",
    "item-not-found": "cancel",
    "jid-malformed": "modify",
    "not-acceptable": "modify",
    "not-allowed": "cancel",
    "not-authorized": "auth",
    "policy-violation": "modify",
    "recipient-unavailable": "wait",
    "redirect": "modify",
    "registration-required": "auth",
    "remote-server-not-found": "cancel",
    "remote-server-timeout": "wait",
    "resource-constraint": "wait",
    "service-unavailable": "cancel",
    "subscription-required": "auth",
    "undefined-condition": "cancel",
    "unexpected-request": "wait",
}


class StanzaError(Exception):
    """
    Raised inside handlers to answer a stanza with an error.

    @ivar condition: the RFC 6120 defined condition, e.g. C{not-allowed}.
    @ivar type: the error type; the condition's default when not given.
    @ivar text: optional human-readable text.
    @ivar by: the JID generating the error (RFC 6120 8.2), or C{None}.
    @ivar content: text inside the condition element itself, or C{None}:
        the new address of C{gone} and C{redirect} (RFC 6120 8.3.3.5).
    """

    def __init__(self, condition, type=None, text=None, by=None, content=None):
        Exception.__init__(self, condition, text)
        self.condition = condition
        self.type = type or DEFAULT_ERROR_TYPES.get(condition, "cancel")
        self.text = text
        self.by = by
        self.content = content


def parse_jid(value):
    """
    Parse a JID attribute value.

    @return: a L{JID}, or C{None} when C{value} is missing or malformed.
        The same text gives the same (shared) L{JID}: callers must not
        change it.
    """
    if not value:
        return None
    return _parse_jid(value)


# Stringprep costs more than the rest of handling a small stanza, and the
# same few JIDs (occupants, rooms, peers) come back on every one.  Bounded:
# a flood of new JIDs only pushes old ones out.
@functools.lru_cache(maxsize=8192)
def _parse_jid(value):
    try:
        return JID(value)
    except (InvalidFormat, UnicodeError, ValueError):
        return None


def make_stanza(name, to=None, frm=None, type=None, id=None):
    """Build an empty stanza addressed as given."""
    stanza = domish.Element((None, name))
    for key, value in (("from", frm), ("to", to), ("type", type), ("id", id)):
        if value is not None:
            stanza[key] = value
    return stanza


def error_reply(stanza, error):
    """
    Build the error answer to C{stanza}.

    Like Prosody, the original payload is not echoed back: it may be large
    (the huge-body case) and the id is what a client matches on.

    @type error: L{StanzaError}
    """
    reply = make_stanza(
        stanza.name,
        to=stanza.getAttribute("from"),
        frm=stanza.getAttribute("to"),
        type="error",
        id=stanza.getAttribute("id"),
    )
    element = reply.addElement("error")
    element["type"] = error.type
    if error.by:
        element["by"] = error.by
    element.addElement((ns.STANZAS, error.condition), content=error.content)
    if error.text:
        element.addElement((ns.STANZAS, "text"), content=error.text)
    return reply


def result_reply(iq):
    """An empty C{result} answer to an IQ get or set."""
    return make_stanza(
        "iq",
        to=iq.getAttribute("from"),
        frm=iq.getAttribute("to"),
        type="result",
        id=iq.getAttribute("id"),
    )


def child(element, name, uri):
    """The first child element with this name and namespace, or C{None}."""
    for candidate in element.elements(uri, name):
        return candidate
    return None


def child_text(element, name, uri=None):
    """The text of the first matching child, or C{None}."""
    for candidate in element.elements():
        if candidate.name == name and (uri is None or candidate.uri == uri):
            return str(candidate)
    return None


def payload(element):
    """The first child element (the payload of an IQ), or C{None}."""
    for candidate in element.elements():
        return candidate
    return None


def error_condition(stanza):
    """The defined condition of an error stanza (e.g. C{item-not-found}),
    or C{None}."""
    error = child(stanza, "error", stanza.uri)
    if error is None:
        return None
    for element in error.elements():
        if element.uri == ns.STANZAS and element.name != "text":
            return element.name
    return None


def strip_children(element, *uris):
    """Remove every child element in one of the given namespaces."""
    element.children = [
        c for c in element.children
        if not (isinstance(c, domish.Element) and c.uri in uris)
    ]
    return element


_STREAM_NAMESPACES = (ns.CLIENT, ns.COMPONENT, ns.SERVER)


def copy_element(element, _in_stream=True):
    """
    A deep copy of a C{domish.Element}, detached from its parent.

    Stanza-level elements in the stream namespace (C{jabber:client} as
    stored, C{jabber:component:accept} as received) lose it, so the copy
    serialises in whatever stream it is sent on without stray C{xmlns}
    declarations.  A stanza nested in a foreign element (a message inside
    a history result) keeps its namespace, which it needs there.
    """
    strip = _in_stream and element.uri in _STREAM_NAMESPACES
    uri = None if strip else element.uri
    default = None if strip and element.defaultUri in _STREAM_NAMESPACES else element.defaultUri
    clone = domish.Element((uri, element.name), default)
    clone.attributes = dict(element.attributes)
    clone.localPrefixes = dict(element.localPrefixes)
    children_in_stream = _in_stream and uri is None
    for node in element.children:
        if isinstance(node, domish.Element):
            clone.addChild(copy_element(node, _in_stream=children_in_stream))
        else:
            clone.addContent(node)
    return clone


def parse_xml(text):
    """Parse one serialised element back into a C{domish.Element}."""
    # The history store keeps messages as text; re-parse through a stream
    # wrapper so the default namespace is jabber:client, as on the wire.
    result = []
    stream = domish.elementStream()
    stream.DocumentStartEvent = lambda root: None
    stream.ElementEvent = result.append
    stream.DocumentEndEvent = lambda: None
    stream.parse(
        "<stream:stream xmlns='%s' xmlns:stream='http://etherx.jabber.org/streams'>"
        % ns.CLIENT
    )
    stream.parse(text.encode("utf-8") if isinstance(text, str) else text)
    if not result:
        raise ValueError("no element in %r" % (text[:80],))
    return copy_element(result[0])


class Prepared:
    """
    A stanza serialised once and sent to many: what a room broadcasts is
    the same for every recipient but the C{to}, so the text is made once,
    with a placeholder where C{to} goes, and each copy is that text with
    the recipient's JID put in (escaped as the serialiser escapes it).

    The stanza must not change after it is prepared.
    """

    # Random per process: no stanza can carry it by chance, and one that
    # does (found by the count) is serialised the ordinary way.
    _PLACEHOLDER = "dmuc-to-" + os.urandom(12).hex()

    def __init__(self, stanza):
        self.stanza = stanza
        self.name = stanza.name
        stanza["to"] = self._PLACEHOLDER
        text = stanza.toXml()
        if text.count(self._PLACEHOLDER) == 1:
            self._head, _, self._tail = text.partition(self._PLACEHOLDER)
        else:
            self._head = self._tail = None

    def to(self, jid):
        """The stanza addressed to C{jid} (text), ready to send."""
        if self._head is None:
            self.stanza["to"] = jid
            return SerializedStanza(self, jid, self.stanza.toXml())
        return SerializedStanza(self, jid, self._head + _escaped(jid) + self._tail)

    def multicast(self, domain, jids, list_id=None):
        """The stanza to the server C{domain} for every one of C{jids}
        (XEP-0033 blind copies: the server drops the list as it delivers),
        and with C{list_id}, for the recipient list of that number the
        server keeps (C{jids} empty) or is to keep (see
        L{dmuc.xmpp.multicast})."""
        addresses = "".join("<address type='bcc' jid='%s'/>" % _escaped(jid) for jid in jids)
        if list_id is not None:
            addresses = "<list xmlns='%s' id='%d'/>%s" % (ns.MULTICAST, list_id, addresses)
        addresses = "<addresses xmlns='%s'>%s</addresses>" % (ns.ADDRESS, addresses)
        text = self.to(domain).toXml()
        end = "</%s>" % self.name
        if text.endswith(end):
            text = text[:-len(end)] + addresses + end
        else:   # an empty stanza, <presence .../>
            text = "%s>%s%s" % (text[:-2], addresses, end)
        return SerializedStanza(self, domain, text)


# The same occupants get every broadcast of their room.
@functools.lru_cache(maxsize=8192)
def _escaped(jid):
    """C{jid} as an attribute value, as the serialiser writes it."""
    return domish.escapeToXml(jid, 1)


@implementer(domish.IElement)
class SerializedStanza:
    """
    One addressed copy of a L{Prepared} stanza.  An XML stream sends it as
    it sends an element (through C{toXml}, here the text made already); it
    answers C{getAttribute} and C{name} like the element, for code that
    looks at what is sent (tests, the traffic counters of benchmarks).
    """

    def __init__(self, prepared, to, text):
        self._prepared = prepared
        self._to = to
        self._text = text
        self.name = prepared.name

    def toXml(self, *args, **kwargs):
        return self._text

    def getAttribute(self, name, default=None):
        if name == "to":
            return self._to
        return self._prepared.stanza.getAttribute(name, default)

    def hasAttribute(self, name):
        return name == "to" or self._prepared.stanza.hasAttribute(name)


def nested_deeper_than(element, limit):
    """Whether C{element} nests elements more than C{limit} deep: copying
    or serialising such a stanza would exhaust Python's recursion (a
    message 1,000 elements deep did), so it is refused at the edge."""
    stack = [(element, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > limit:
            return True
        stack.extend((c, depth + 1) for c in node.children if isinstance(c, domish.Element))
    return False


def larger_than(element, limit):
    """
    Whether C{element} serialises to more than C{limit} characters.

    Serialising an inbound stanza only to measure it is costly; bounds
    taken from the tree give the answer for every stanza far from the
    limit, and the exact length decides the others.
    """
    low, high = _size_bounds(element)
    if high <= limit:
        return False
    if low > limit:
        return True
    return len(element.toXml()) > limit


# Escaping makes a character at most six (an attribute's quote as
# &quot;); a namespace declaration costs at most its URI and this much
# (" xmlns:xn12=''" and the prefix on the names).
_ESCAPED = 6
_DECLARATION = 48


def _size_bounds(element):
    """(at least, at most) the length of C{element.toXml()}."""
    low = high = 0
    stack = [element]
    while stack:
        node = stack.pop()
        if isinstance(node, str):
            low += len(node)
            high += _ESCAPED * len(node)
            continue
        name = len(node.name)
        low += name + 3        # <name/>
        high += 2 * name + 5   # <name>...</name>
        for uri in (node.uri, node.defaultUri):
            if uri:
                high += len(uri) + _DECLARATION
        for prefix, uri in (node.localPrefixes or {}).items():
            high += len(prefix) + len(uri) + _DECLARATION
        for key, value in node.attributes.items():
            if isinstance(key, tuple):
                high += len(key[0]) + _DECLARATION
                key = key[1]
            low += len(key) + len(value) + 4
            high += len(key) + _ESCAPED * len(value) + 4
        stack.extend(node.children)
    return low, high
