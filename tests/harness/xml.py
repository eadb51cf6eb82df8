"""
XML helpers for tests that look at raw stanzas.

Stanzas are plain L{xml.etree.ElementTree.Element} objects with
Clark-notation tags (C{{jabber:client}presence}).  L{parse} reads the
stanza syntax tests write by hand (no C{xmlns} needed for the stanza
itself) and L{tostring} writes it back in the same compact form, which is
what the client sends on the wire and what failure messages show.
"""

import xml.etree.ElementTree as ET

from dmuc.xmpp import namespaces as _ns

CLIENT_NS = "jabber:client"
XML_NS = "http://www.w3.org/XML/1998/namespace"


class NS:
    """Namespaces that MUC tests keep needing."""

    CLIENT = CLIENT_NS
    MUC = _ns.MUC
    MUC_USER = _ns.MUC_USER
    MUC_ADMIN = _ns.MUC_ADMIN
    MUC_OWNER = _ns.MUC_OWNER
    DISCO_INFO = _ns.DISCO_INFO
    DISCO_ITEMS = _ns.DISCO_ITEMS
    DATA_FORMS = _ns.DATA_FORMS
    DELAY = _ns.DELAY
    STANZA_ID = _ns.STANZA_ID
    PING = _ns.PING
    STANZAS = _ns.STANZAS


def qname(namespace, name):
    """Return the Clark-notation tag C{{namespace}name}."""
    return "{%s}%s" % (namespace, name)


def split_tag(tag):
    """Split a Clark-notation tag into C{(namespace, local name)}."""
    if tag.startswith("{"):
        namespace, _, name = tag[1:].partition("}")
        return namespace, name
    return "", tag


def parse(xml_string):
    """
    Parse one stanza written in the client's stream syntax.

    Elements without an C{xmlns} get C{jabber:client}, as they would on a
    client stream, so C{"<message to='a@b'><body>hi</body></message>"}
    parses to C{{jabber:client}message} with a C{{jabber:client}body}.

    @param xml_string: the stanza as text.
    @return: the stanza element.
    """
    wrapper = ET.fromstring(
        "<wrapper xmlns='%s'>%s</wrapper>" % (CLIENT_NS, xml_string))
    if len(wrapper) != 1 or (wrapper.text or "").strip():
        raise ValueError("expected exactly one element: %r" % (xml_string,))
    return wrapper[0]


def _escape_text(text):
    return (text.replace("&", "&amp;").replace("<", "&lt;")
            .replace(">", "&gt;"))


def _escape_attribute(value):
    return _escape_text(value).replace("'", "&apos;")


def _attributes(element):
    """Yield C{(name, value)}, with prefixes for namespaced names."""
    prefixes = {XML_NS: "xml"}
    for key in sorted(element.attrib):
        namespace, local = split_tag(key)
        if namespace and namespace not in prefixes:
            prefixes[namespace] = "ns%d" % (len(prefixes),)
            yield "xmlns:" + prefixes[namespace], namespace
        name = prefixes[namespace] + ":" + local if namespace else local
        yield name, element.attrib[key]


def _write(element, parent_ns, out):
    namespace, name = split_tag(element.tag)
    out.append("<" + name)
    if namespace != parent_ns:
        out.append(" xmlns='%s'" % _escape_attribute(namespace))
    for key, value in _attributes(element):
        out.append(" %s='%s'" % (key, _escape_attribute(value)))
    if len(element) == 0 and not element.text:
        out.append("/>")
        return
    out.append(">")
    if element.text:
        out.append(_escape_text(element.text))
    for child in element:
        _write(child, namespace, out)
        if child.tail:
            out.append(_escape_text(child.tail))
    out.append("</%s>" % name)


def tostring(element, default_ns=CLIENT_NS):
    """
    Serialize an element compactly and deterministically.

    Namespaces are written as default C{xmlns} declarations where they
    change (no prefixes), attributes are sorted and quoted with C{'}.  The
    result can be sent on a client stream as it is.

    @param element: the element to write.
    @param default_ns: the namespace in scope around the element; it is
        not repeated on the element.
    @return: the XML text.
    """
    out = []
    _write(element, default_ns, out)
    return "".join(out)


def find(element, path):
    """
    Find the first descendant matching an ElementTree path.

    Path steps without a namespace are looked up in C{jabber:client};
    write others in Clark notation or with the C{ns:} prefixes of L{NS}
    (e.g. C{"muc_user:x/muc_user:status"}).

    @return: the element or C{None}.
    """
    return element.find(path, _PREFIXES)


def findall(element, path):
    """Like L{find}, but return every match as a list."""
    return element.findall(path, _PREFIXES)


_PREFIXES = {
    "": CLIENT_NS,
    "muc": NS.MUC,
    "muc_user": NS.MUC_USER,
    "muc_admin": NS.MUC_ADMIN,
    "muc_owner": NS.MUC_OWNER,
    "disco_info": NS.DISCO_INFO,
    "disco_items": NS.DISCO_ITEMS,
    "data": NS.DATA_FORMS,
    "delay": NS.DELAY,
    "sid": NS.STANZA_ID,
    "ping": NS.PING,
    "stanzas": NS.STANZAS,
}


def status_codes(presence):
    """
    Return the MUC status codes of a stanza.

    @return: the set of C{code} values (as C{int}) of the C{<status/>}
        elements in the stanza's C{muc#user} C{<x/>}; empty if none.
    """
    return {int(status.get("code"))
            for status in findall(presence, "muc_user:x/muc_user:status")
            if status.get("code", "").isdigit()}


def error_condition(stanza):
    """
    Return a stanza's error as C{(type, condition)}.

    @return: e.g. C{("cancel", "item-not-found")}, or C{None} if the
        stanza carries no C{<error/>} child.
    """
    error = stanza.find(qname(CLIENT_NS, "error"))
    if error is None:
        return None
    for child in error:
        namespace, name = split_tag(child.tag)
        if namespace == NS.STANZAS and name != "text":
            return error.get("type"), name
    return error.get("type"), None


def matcher(kind=None, **attributes):
    """
    Return a predicate for C{Client.wait_for}.

    @param kind: C{"message"}, C{"presence"} or C{"iq"}, or C{None} for any.
    @param attributes: attribute values the stanza must have; write
        C{from_} for C{from}; a value of C{None} means "absent".
    """
    wanted = {name.rstrip("_"): value for name, value in attributes.items()}

    def predicate(stanza):
        if kind is not None and stanza.tag != qname(CLIENT_NS, kind):
            return False
        return all(stanza.get(name) == value
                   for name, value in wanted.items())
    return predicate
