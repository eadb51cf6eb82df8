"""
Occupant presences as XEP-0045 shows them: the occupant's own presence as
the template, then the muc#user element with the item (and, for the
occupant itself, status 110 last).  Built here once for the master and the
mirror, which must look the same to a client.
"""


from dmuc.xmpp import namespaces as ns
from dmuc.xmpp.stanzas import copy_element, make_stanza, strip_children


def template(stanza):
    """
    What the room keeps of a presence an occupant sent: a copy without the
    MUC elements, the DMUC envelope, a client-supplied occupant-id or hats,
    and addressing.
    """
    presence = copy_element(stanza)
    # Hats (XEP-0317) are the room's to give, as at Prosody: a client's
    # own would be shown as if the room had given them.
    dropped = (ns.MUC, ns.MUC_USER, ns.OCCUPANT_ID, ns.FMUC, ns.DMUC3, ns.DMUC_COMPACT, ns.HATS)
    strip_children(presence, *dropped)
    for attr in ("to", "from"):
        if presence.hasAttribute(attr):
            del presence[attr]
    return presence


def occupant_presence(base, occupant_jid, affiliation, role, *, real_jid=None,
                      nick=None, codes=(), actor_nick=None, actor_jid=None,
                      reason=None, destroy=None, unavailable=False,
                      occupant_id=None):
    """
    One presence of an occupant, ready to address.

    @param base: the occupant's presence template, or C{None} for a bare
        C{<presence/>}.
    @param real_jid: include the real JID in the item (who may see it is the
        caller's decision).
    @param nick: the new nick in a nick-change (303) presence.
    @param destroy: C{(alternate_jid, reason)} for a room destruction.
    @param occupant_id: the XEP-0421 occupant id, or C{None}.

    Status codes go before the item and 110 after it, the order Prosody
    writes them in.
    """
    presence = copy_element(base) if base is not None else make_stanza("presence")
    presence["from"] = occupant_jid
    if unavailable:
        presence["type"] = "unavailable"
    elif presence.hasAttribute("type"):
        del presence["type"]
    if occupant_id:
        presence.addElement((ns.OCCUPANT_ID, "occupant-id"))["id"] = occupant_id
    x = presence.addElement((ns.MUC_USER, "x"))
    if destroy is not None:
        # First, as Prosody's room:destroy() builds the element.
        _add_destroy(x, *destroy)
    for code in codes:
        if code != "110":
            x.addElement("status")["code"] = code
    item = x.addElement("item")
    item["affiliation"] = affiliation
    item["role"] = role
    if real_jid:
        item["jid"] = real_jid
    if nick:
        item["nick"] = nick
    if actor_nick or actor_jid:
        actor = item.addElement("actor")
        if actor_nick:
            actor["nick"] = actor_nick
        if actor_jid:
            actor["jid"] = actor_jid
    if reason:
        item.addElement("reason", content=reason)
    if "110" in codes:
        x.addElement("status")["code"] = "110"
    return presence


def destroy_presence(occupant_jid, affiliation, real_jid, alternate, reason,
                     occupant_id=None):
    """
    What an occupant of a destroyed room gets (XEP-0045 10.9): its own
    departure only, a fresh unavailable presence with C{<destroy/>} and
    status 110, as Prosody's room:clear() sends it.  Nobody hears of
    anyone else.
    """
    return occupant_presence(
        None, occupant_jid, affiliation, "none", real_jid=real_jid, codes=("110",),
        destroy=(alternate, reason), unavailable=True, occupant_id=occupant_id)


def is_destroy(presence):
    """Whether a presence announces the room's destruction."""
    return any(True for x in presence.elements(ns.MUC_USER, "x")
               for _ in x.elements(ns.MUC_USER, "destroy"))


def _add_destroy(x, alternate, reason):
    element = x.addElement("destroy")
    if alternate:
        element["jid"] = alternate
    if reason:
        element.addElement("reason", content=reason)
