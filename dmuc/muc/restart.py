"""
A service that stops and starts again: what its own users are told
(XEP-0045 status 332), the notices a master service sends the mirror
services it trusts (docs/decisions.md, "Protocol additions"), and how a
mirror recognises that the master no longer counts one of its users.
Master and mirror share these, so both sites look the same to a client.
"""

from dmuc.muc.presence import occupant_presence
from dmuc.xmpp import namespaces as ns
from dmuc.xmpp.stanzas import child, error_condition, make_stanza

SHUTDOWN = "332"


def shutdown_presence(occupant_jid, affiliation, real_jid):
    """
    The presence a user gets when the service stops (XEP-0045, status 332:
    removed because the service is being shut down): its own leave, with
    110, so that its client knows it is out and may join again later.
    """
    return occupant_presence(None, occupant_jid, affiliation, "none", real_jid=real_jid,
                             codes=(SHUTDOWN, "110"), unavailable=True)


def stop_notice(service, mirror):
    """
    A master service stopping, to a mirror service: the same status 332,
    once per mirror service rather than once per occupant.  The mirror
    treats it as a split; an older mirror ignores it (a presence to its
    own domain).
    """
    presence = make_stanza("presence", to=mirror, frm=service, type="unavailable")
    presence.addElement((ns.MUC_USER, "x")).addElement("status")["code"] = SHUTDOWN
    return presence


def start_notice(service, mirror):
    """
    A master service started, to a mirror service: it counts no occupant
    any more (occupants are not kept over a restart), whatever the mirror
    thinks.
    """
    presence = make_stanza("presence", to=mirror, frm=service)
    presence.addElement((ns.DMUC_SYNC, "started"))
    return presence


def is_stop_notice(presence):
    if presence.getAttribute("type") != "unavailable":
        return False
    x = child(presence, "x", ns.MUC_USER)
    return x is not None and any(s.getAttribute("code") == SHUTDOWN
                                 for s in x.elements(ns.MUC_USER, "status"))


def is_start_notice(presence):
    return (presence.getAttribute("type") is None
            and child(presence, "started", ns.DMUC_SYNC) is not None)


def is_self_ping_request(iq):
    """A XEP-0199 ping (the request of a XEP-0410 self-ping)."""
    return (iq.getAttribute("type") == "get"
            and child(iq, "ping", ns.PING) is not None)


def says_not_in_room(stanza):
    """
    Whether an error from a master room means "you are not in this room"
    (the answer of a master that restarted and forgot its occupants):
    C{not-acceptable} to a message or IQ, C{item-not-found} to a presence,
    as Prosody's mod_muc answers too.  An IQ error must also carry the
    text, as an administration request can be not-acceptable for other
    reasons.
    """
    condition = error_condition(stanza)
    if stanza.name == "presence":
        return condition == "item-not-found"
    if condition != "not-acceptable":
        return False
    if stanza.name == "message":
        return True
    error = child(stanza, "error", stanza.uri)
    text = child(error, "text", ns.STANZAS)
    return text is not None and "not currently connected" in str(text)
