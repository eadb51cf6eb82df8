"""
Voice requests (XEP-0045 8.6), as Prosody 0.12 handles them: a visitor
sends the room a C{muc#request} form; every moderator gets the approval
form; a moderator who submits it with C{muc#request_allow} makes the
visitor a participant.  Only the master decides (through
L{handle}); a mirror relays the request up and passes the approval form
to its own moderators only (L{is_voice_request}).
"""

from twisted.logger import Logger
from twisted.words.xish import domish

from dmuc.xmpp import namespaces as ns
from dmuc.xmpp.stanzas import StanzaError, child, make_stanza, parse_jid

log = Logger(namespace="dmuc.master")

FORM_TYPE = ns.MUC + "#request"
NOT_IN_ROOM = "You are not currently connected to this chat"


def request_fields(stanza):
    """
    The fields of a C{muc#request} form in a message to the room, as
    var -> first value, or C{None} when the message carries none.
    """
    form = child(stanza, "x", ns.DATA_FORMS)
    if form is None:
        return None
    fields = {}
    for field in form.elements(ns.DATA_FORMS, "field"):
        value = child(field, "value", ns.DATA_FORMS)
        fields[field.getAttribute("var")] = str(value) if value is not None else None
    if fields.get("FORM_TYPE") != FORM_TYPE:
        return None
    return fields


def handle(room, sender, fields):
    """A voice request from a visitor, or a moderator's answer to one."""
    occupant = room.occupant_by_sender(sender)
    if occupant is None:
        raise StanzaError("not-acceptable", type="cancel", text=NOT_IN_ROOM, by=room.jid)
    if occupant.role == "moderator":
        _answer(room, sender, occupant, fields)
    elif occupant.role == "visitor":
        # Prosody sends it without an id.
        message = make_stanza("message", frm=room.jid, type="normal")
        message.addChild(approval_form(sender.real_jid.full(), occupant.nick))
        room.broadcast_to_moderators(message)
        log.debug("{room}: {nick} asked for voice", room=room.jid, nick=occupant.nick)


def _answer(room, sender, moderator, fields):
    if fields.get("muc#request_allow") not in ("1", "true"):
        return
    real = parse_jid(fields.get("muc#jid") or "")
    visitor = room.occupant_by_real_jid(real) if real is not None else None
    if visitor is None or visitor.role != "visitor":
        return
    room.set_role(sender, visitor.nick, "participant", "Voice granted")
    log.debug("{room}: {moderator} gave voice to {nick}", room=room.jid,
              moderator=moderator.nick, nick=visitor.nick)


def approval_form(real_jid, nick):
    """The form moderators get, Prosody's fields and labels."""
    form = domish.Element((ns.DATA_FORMS, "x"))
    form["type"] = "form"
    form.addElement("title", content="Voice Request")
    _field(form, "FORM_TYPE", "hidden", None, None, FORM_TYPE)
    _field(form, "muc#jid", "jid-single", "User ID", "The user's JID (address)", real_jid)
    _field(form, "muc#roomnick", "text-single", "Room nickname",
           "The user's nickname within the room", nick)
    role = _field(form, "muc#role", "list-single", "Requested role", None, "participant")
    for option in ("none", "visitor", "participant", "moderator"):
        element = role.addElement("option")
        element["label"] = option
        element.addElement("value", content=option)
    _field(form, "muc#request_allow", "boolean", "Grant voice to this person?",
           "Specify whether this person is able to speak in a moderated room", "0")
    return form


def _field(form, var, kind, label, desc, value):
    field = form.addElement("field")
    field["var"], field["type"] = var, kind
    if label:
        field["label"] = label
    if desc:
        field.addElement("desc", content=desc)
    field.addElement("value", content=value)
    return field


def is_voice_request(message):
    """Whether a room message is a voice request meant for moderators."""
    return request_fields(message) is not None
