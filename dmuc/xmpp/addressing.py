"""
Mirror room addresses: the master room JID, XEP-0106 escaped, as the node
of a JID at the mirror service.

    chat@conference.fairfax.test  <->  chat\\40conference.fairfax.test@mirror.raleigh.test

Unescaping is strict (docs/protocol.md 1, 8): every backslash must start one of
XEP-0106's ten escapes, and the result must be a bare JID with a node.
Anything else raises L{MalformedAddress}, answered with C{jid-malformed}.
"""

from dmuc.xmpp.stanzas import parse_jid

# XEP-0106 table 1.
_ESCAPES = [(" ", "\\20"), ('"', "\\22"), ("&", "\\26"), ("'", "\\27"),
            ("/", "\\2f"), (":", "\\3a"), ("<", "\\3c"), (">", "\\3e"),
            ("@", "\\40")]
_CODES = {code[1:]: char for char, code in _ESCAPES + [("\\", "\\5c")]}


class MalformedAddress(ValueError):
    """A mirror room node that does not unescape to a room JID."""


def escape_node(text):
    """
    XEP-0106 escaping of C{text} for use as a JID node.  Every backslash is
    escaped (XEP-0106 allows leaving some), so strict unescaping accepts
    everything this produces.
    """
    table = dict(_ESCAPES + [("\\", "\\5c")])
    return "".join(table.get(char, char) for char in text)


def unescape_node(node):
    """Strict XEP-0106 unescaping. @raise MalformedAddress: on a bad escape."""
    out = []
    i = 0
    while i < len(node):
        if node[i] == "\\":
            code = node[i + 1:i + 3].lower()
            if code not in _CODES:
                raise MalformedAddress("bad escape %r in %r" % (node[i:i + 3], node))
            out.append(_CODES[code])
            i += 3
        else:
            out.append(node[i])
            i += 1
    return "".join(out)


def domain_of(jid):
    """The domain of a JID given as text (bare or full)."""
    return jid.split("/", 1)[0].rpartition("@")[2]


def mirror_room_jid(room_jid, mirror_domain):
    """The mirror room's bare JID for a master room at a mirror service."""
    return "%s@%s" % (escape_node(room_jid), mirror_domain)


def master_room_jid(mirror_node):
    """
    The master room JID a mirror room node stands for.

    @raise MalformedAddress: unless it unescapes to C{node@domain}.
    """
    text = unescape_node(mirror_node)
    jid = parse_jid(text)
    if jid is None or not jid.user or jid.resource is not None or jid.full() != text:
        raise MalformedAddress("%r is not a room JID" % (text,))
    return text
