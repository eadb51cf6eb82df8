"""
Nick registration (XEP-0045 7.10, 7.12), as Prosody 0.12's
register.lib.lua does it: a user with an affiliation registers a nick,
which becomes theirs in the room (others get C{conflict}); the room says
which nick a user has reserved (disco#info node C{x-roomuser-item}); a
user removes the registration (losing membership: status 321 where that
removes them).  Registration makes a user without an affiliation a
member, like Prosody with C{allow_unaffiliated_register} off refuses
them.  The master decides; a mirror forwards its users' requests.
"""

from twisted.words.xish import domish

from dmuc.xmpp import namespaces as ns
from dmuc.xmpp.stanzas import StanzaError, child, payload, result_reply

REGISTER = "jabber:iq:register"
FORM_TYPE = ns.MUC + "#register"
RESERVED_NICK_NODE = "x-roomuser-item"


def handle_iq(room, iq, query, sender):
    """
    A C{jabber:iq:register} get or set to the room.

    @return: the reply to send.
    @raise StanzaError: as Prosody refuses it.
    """
    bare = sender.real_jid.userhost()
    affiliation = room.get_affiliation(sender.real_jid)
    if affiliation == "outcast":
        raise StanzaError("forbidden", type="auth")
    if affiliation == "none":
        raise StanzaError("registration-required", type="auth")
    reply = result_reply(iq)
    registered = room.reserved_nicks.get(bare)
    if iq.getAttribute("type") == "get":
        answer = reply.addElement((REGISTER, "query"))
        if registered:
            answer.addElement("registered")
            answer.addElement("username", content=registered)
        else:
            answer.addChild(registration_form())
        return reply
    if child(query, "remove", REGISTER) is not None:
        room.unregister(bare, affiliation)
        return reply
    nick = _submitted_nick(query)
    current = room.occupants.get(nick)
    if current is not None and current.bare_jid != bare:
        raise StanzaError("conflict")
    if reserved_by(room, nick) not in (None, bare):
        raise StanzaError("conflict")
    if registered != nick:
        room.register(bare, nick)
    return reply


def _submitted_nick(query):
    form = child(query, "x", ns.DATA_FORMS)
    if form is None:
        raise StanzaError("bad-request", type="modify", text="Missing dataform")
    values = {}
    for field in form.elements(ns.DATA_FORMS, "field"):
        value = child(field, "value", ns.DATA_FORMS)
        values[field.getAttribute("var")] = str(value) if value is not None else ""
    if values.get("FORM_TYPE") != FORM_TYPE:
        raise StanzaError("bad-request", type="modify", text="Error in form")
    nick = values.get("muc#register_roomnick", "").strip()
    if not nick:
        raise StanzaError("bad-request", type="modify", text="Invalid Nickname")
    return nick


def reserved_by(room, nick):
    """The bare JID that registered C{nick}, or C{None}."""
    for bare, registered in room.reserved_nicks.items():
        if registered == nick:
            return bare
    return None


def check_nick(room, nick, bare):
    """A join or nick change to a nick registered by someone else."""
    owner = reserved_by(room, nick)
    if owner is not None and owner != bare:
        raise StanzaError("conflict", by=room.jid)


def registration_form():
    form = domish.Element((ns.DATA_FORMS, "x"))
    form["type"] = "form"
    hidden = form.addElement("field")
    hidden["var"], hidden["type"] = "FORM_TYPE", "hidden"
    hidden.addElement("value", content=FORM_TYPE)
    nick = form.addElement("field")
    nick["var"], nick["type"], nick["label"] = "muc#register_roomnick", "text-single", "Nickname"
    nick.addElement("required")
    return form


def reserved_nick_info(room, iq, sender):
    """
    The disco#info answer for the node C{x-roomuser-item}: an identity
    named after the asker's registered nick, or nothing.
    """
    reply = result_reply(iq)
    info = reply.addElement((ns.DISCO_INFO, "query"))
    info["node"] = RESERVED_NICK_NODE
    nick = room.reserved_nicks.get(sender.real_jid.userhost())
    if nick:
        identity = info.addElement("identity")
        identity["category"], identity["type"], identity["name"] = "conference", "text", nick
    return reply


def is_registration_iq(stanza):
    """Nick registration or the reserved-nick query: made outside any
    occupancy, so a mirror always forwards them (L{is_users_own_iq})."""
    if stanza.name != "iq" or stanza.getAttribute("type") not in ("get", "set"):
        return False
    query = payload(stanza)
    return query is not None and (query.uri == REGISTER or (
        query.uri == ns.DISCO_INFO and query.getAttribute("node") == RESERVED_NICK_NODE))


def is_users_own_iq(stanza):
    """
    A user's request to the room itself, made outside any occupancy: nick
    registration, the reserved-nick query, and disco#info (of a room the
    mirror holds no copy of).  A mirror forwards it from the mirror room's
    bare JID with the envelope (docs/decisions.md, "Protocol additions"),
    and the master answers the mirror room.
    """
    query = payload(stanza) if stanza.name == "iq" else None
    return is_registration_iq(stanza) or (
        query is not None and query.uri == ns.DISCO_INFO
        and stanza.getAttribute("type") == "get")
