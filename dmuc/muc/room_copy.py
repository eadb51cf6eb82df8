"""
The room's copy of an occupant's groupchat message, built in one place for
the master and for the mirror the message came from.

In ordered mode a mirror user's message goes up to the master, which
gives it its place (stanza-id, time) and sends every site the copy.  The
mirror it came from already holds the message: the master answers it with
a short acknowledgement (L{ack}) instead of the full copy, and the mirror
builds the copy itself.  Both ends build it with L{room_copy}, so the copy
is the same at every site (docs/decisions.md, "Protocol additions").
"""

from twisted.words.xish import domish

from dmuc.muc import history
from dmuc.xmpp import namespaces as ns
from dmuc.xmpp.addressing import MalformedAddress, master_room_jid
from dmuc.xmpp.stanzas import child, copy_element, make_stanza, strip_children
from dmuc.xmpp.timestamps import format_timestamp, parse_timestamp

#: The envelope's attribute by which a mirror asks for L{ack}s.
ACK_REQUEST = "ack"


def room_copy(message, room_jid, nick, occupant_id, stanza_id, late=None):
    """
    What room C{room_jid} broadcasts for C{message} from occupant C{nick}:
    the message without what only the room may say (the DMUC envelope and
    times, a delay or stanza-id claiming to be the room's), from the
    occupant JID, with the room's occupant-id and, when it is kept in
    history, the room's stanza-id.

    @param late: the time a message held in the link was sent, kept in a
        XEP-0203 <delay/> from the room.
    """
    copy = copy_element(message)
    copy.children = [c for c in copy.children if not is_room_marker(c, room_jid)]
    if late is not None:
        delay = copy.addElement((ns.DELAY, "delay"))
        delay["from"], delay["stamp"] = room_jid, format_timestamp(late)
    copy["from"] = "%s/%s" % (room_jid, nick)
    copy["type"] = "groupchat"
    copy.attributes.pop("to", None)
    strip_children(copy, ns.OCCUPANT_ID)
    copy.addElement((ns.OCCUPANT_ID, "occupant-id"))["id"] = occupant_id
    if history.is_historic(copy):
        # A stanza-id names a message the room keeps (as Prosody's
        # mod_muc_mam): clients would look for the others in vain.
        marker = copy.addElement((ns.STANZA_ID, "stanza-id"))
        marker["id"] = stanza_id
        marker["by"] = room_jid
    return copy


def is_room_marker(node, room_jid):
    """Elements only the room may add: from a client (or a mirror's user)
    they are forgeries (XEP-0359 4; Prosody strips delay too).  The room
    is the master room and each of its mirror rooms: a stanza-id by the
    mirror room would reach the mirror's users as the room's own."""
    if not isinstance(node, domish.Element):
        return False
    if node.uri in (ns.FMUC, ns.DMUC3, ns.DMUC_SYNC, ns.DMUC_COMPACT):
        return True   # the DMUC envelope and times are for the room only
    return ((node.uri, node.name) in ((ns.DELAY, "delay"), (ns.STANZA_ID, "stanza-id"))
            and (speaks_for(node.getAttribute("from"), room_jid)
                 or speaks_for(node.getAttribute("by"), room_jid)))


def speaks_for(address, room_jid):
    """Whether C{address} is the room C{room_jid} or a mirror room of it."""
    if not address:
        return False
    if address == room_jid:
        return True
    node = address.partition("@")[0] if "@" in address else ""
    try:
        return bool(node) and master_room_jid(node) == room_jid
    except MalformedAddress:
        return False


def strip_room_claims(message, room_jid):
    """
    A user's own message, at the service it comes to, without what only
    the room may say: a stanza-id or delay of the room or one of its
    mirror rooms, the DMUC envelope and times, and any occupant-id (the
    room adds the sender's own, XEP-0421).  @return: C{message}.
    """
    message.children = [c for c in message.children
                        if not is_room_marker(c, room_jid)
                        and not (isinstance(c, domish.Element) and c.uri == ns.OCCUPANT_ID)]
    return message


def with_time(copy, timestamp):
    """The mirrors' version of a copy: with the time the room gave it, so
    that every site's history has one order."""
    copy = copy_element(copy)
    copy.addElement((ns.DMUC_SYNC, "time"))["stamp"] = format_timestamp(timestamp)
    return copy


# -- the acknowledgement


def ack(room_jid, mirror_room, origin_id, stanza_id, timestamp):
    """
    The master's answer to the mirror a message came from, in place of
    the full copy::

        <message from='ROOM' to='MIRROR-ROOM'>
          <ack xmlns='urn:xmpp:dmuc:0' origin='ORIGIN-ID' id='STANZA-ID' stamp='TIME'/>
        </message>
    """
    message = make_stanza("message", frm=room_jid, to=mirror_room)
    element = message.addElement((ns.DMUC_SYNC, "ack"))
    element["origin"] = origin_id
    element["id"] = stanza_id
    element["stamp"] = format_timestamp(timestamp)
    return message


def parse_acks(message):
    """@return: C{(origin id, stanza id, time)} of each acknowledgement in
    C{message} (the compact profile sends several at once), in order;
    C{None} for a malformed one."""
    return [parse_ack(element) for element in message.elements(ns.DMUC_SYNC, "ack")]


def parse_ack(element):
    """@return: C{(origin id, stanza id, time)} of an acknowledgement
    element, or C{None} when it is malformed."""
    origin, stanza_id = element.getAttribute("origin"), element.getAttribute("id")
    try:
        timestamp = parse_timestamp(element.getAttribute("stamp") or "")
    except ValueError:
        return None
    if not origin or not stanza_id:
        return None
    return origin, stanza_id, timestamp


def is_ack(message):
    return child(message, "ack", ns.DMUC_SYNC) is not None


def origin_id(message):
    element = child(message, "origin-id", ns.STANZA_ID)
    return element.getAttribute("id") if element is not None else None


def may_ack(upload):
    """Whether the mirror that sent C{upload} asked for an L{ack} (and
    can build the copy: the message has an id and an origin-id)."""
    envelope = child(upload, "fmuc", ns.FMUC)
    return (envelope is not None and envelope.getAttribute(ACK_REQUEST) == "1"
            and bool(upload.getAttribute("id")) and origin_id(upload) is not None)
