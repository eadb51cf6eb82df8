"""
Invitations and joins across sites (docs/decisions.md, "Protocol
additions"): what the master and a mirror both need to send a user to the
room of its own site.

Every client joins the C{from} of a mediated invitation (XEP-0045 7.8.2):
so an invitation for a user whose domain a trusted mirror serves must come
from the mirror room.  The master hands it to the mirror service in an IQ
(L{relay_request}); the mirror rewrites it as from its room
(L{as_from_mirror_room}) and delivers it.  A join in the wrong site's room
is answered with a C{<redirect/>} to the right one (L{redirect_error}),
and the master adds a XEP-0249 direct invitation (L{direct_invitation}).
"""

from dmuc.xmpp import namespaces as ns
from dmuc.xmpp.addressing import mirror_room_jid
from dmuc.xmpp.stanzas import StanzaError, child, copy_element, make_stanza, parse_jid

CONFERENCE = "jabber:x:conference"


def is_invite_or_decline(stanza):
    """A mediated invitation or a decline (XEP-0045 7.8.2), which anyone
    may send, in the room or not."""
    if stanza.name != "message" or stanza.getAttribute("type") not in (None, "normal"):
        return False
    x = child(stanza, "x", ns.MUC_USER)
    return x is not None and any(e.name in ("invite", "decline") for e in x.elements())


def join_uri(room_jid):
    """The XMPP URI (RFC 5122, XEP-0147 C{join}) a C{<redirect/>} names."""
    return "xmpp:%s?join" % (room_jid,)


def redirect_error(room_jid, by):
    """The C{<redirect/>} (modify, RFC 6120 8.3.3.14) sending a joining
    user to C{room_jid}."""
    return StanzaError("redirect", type="modify", content=join_uri(room_jid), by=by,
                       text="Join this room at %s" % (room_jid,))


def serving_mirror(trusted_mirrors, user):
    """
    The trusted mirror service that speaks for C{user}'s domain, or
    C{None}; the first by name should several.

    @param trusted_mirrors: mirror service domain -> user domains.
    @type user: L{JID}
    """
    for mirror in sorted(trusted_mirrors):
        if user.host in trusted_mirrors[mirror]:
            return mirror
    return None


def direct_invitation(room_jid, to, target, password=None, reason=None):
    """A XEP-0249 invitation from C{room_jid} to join C{target}."""
    message = make_stanza("message", to=to, frm=room_jid)
    x = message.addElement((CONFERENCE, "x"))
    x["jid"] = target
    if password:
        x["password"] = password
    if reason:
        x["reason"] = reason
    return message


def relay_request(invitation, frm, mirror, iq_id):
    """
    The master's IQ asking C{mirror} (a service domain) to deliver
    C{invitation}, the mediated invitation as the master room would send
    it, from its mirror room.
    """
    iq = make_stanza("iq", to=mirror, frm=frm, type="set", id=iq_id)
    inner = copy_element(invitation)
    # Inside a foreign element a stanza names its namespace.
    inner.uri = inner.defaultUri = ns.CLIENT
    iq.addElement((ns.DMUC_SYNC, "invite")).addChild(inner)
    return iq


def relayed_invitation(iq, sender, local_domains):
    """
    The invitation a master asks a mirror to deliver, checked: it comes
    from a room of the asking service, to a user of ours.

    @return: (the invitation, the master room JID).
    @raise StanzaError: C{bad-request} or C{not-allowed}.
    """
    element = child(iq, "invite", ns.DMUC_SYNC)
    message = child(element, "message", ns.CLIENT) if element is not None else None
    if message is None:
        raise StanzaError("bad-request")
    room = parse_jid(message.getAttribute("from"))
    invitee = parse_jid(message.getAttribute("to"))
    if room is None or room.user is None or room.resource is not None or invitee is None:
        raise StanzaError("bad-request")
    if room.host != sender.host:
        raise StanzaError("not-allowed", text="Only a room's own service invites for it")
    if invitee.host not in local_domains:
        raise StanzaError("not-allowed", text="This mirror serves only its local users")
    return message, room.full()


def as_from_mirror_room(invitation, master_room, mirror_domain):
    """
    The master's invitation rewritten as from the mirror room: its C{from},
    the room named in C{jabber:x:conference} and in the body, and an
    inviter shown by nick become the mirror room's.
    """
    mirror_room = mirror_room_jid(master_room, mirror_domain)
    message = copy_element(invitation)
    message["from"] = mirror_room
    for conference in message.elements(CONFERENCE, "x"):
        conference["jid"] = mirror_room
    for x in message.elements(ns.MUC_USER, "x"):
        for invite in x.elements(ns.MUC_USER, "invite"):
            inviter = invite.getAttribute("from", "")
            if inviter.startswith(master_room + "/"):
                invite["from"] = mirror_room + inviter[len(master_room):]
    for body in message.elements(None, "body"):
        text = str(body).replace(master_room, mirror_room)
        body.children = [text]
    return message
