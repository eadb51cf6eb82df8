"""
The compact profile (C{urn:xmpp:dmuc:1}): the same information as the
DMUC envelope, in fewer bytes, on the stanzas that cross the link most.

The link between the sites is what dmuc exists to save, and a room
message's envelope and markers were bigger than most messages
(issue 11).  Between two peers that both speak the profile:

- a mirror's upload carries C{<u/>} in place of C{<fmuc from=...>}: the
  master knows the user behind a mirror occupant JID from its join, so
  C{f} names the user only when it is another device;  C{s} is the time
  the user sent it, C{n='1'} a fire-and-forget message, C{o} the id of
  its origin-id (the element would cost twice as much), empty when it is
  the stanza's own id;
- the master's copy of a room message for a mirror carries C{<t i s o/>}
  in place of C{<stanza-id by=ROOM/>}, C{<time/>} and the origin-id, and no occupant-id
  when the mirror already knows the sender's (from its presence);
- the acknowledgement is C{<a o i s/>}, several in one message when the
  master acknowledges several at once (L{acks});
- a history item (first sync, resync) carries C{<t i s/>} in place of its
  stanza-id and C{<delay/>}, and no occupant-id when the sender is still
  in the room under that nick;
- an occupant's presence carries C{<o/>} in place of an occupant-id every
  mirror already has for that nick (from its join, or the roster);
- the configuration push lists only what differs from the defaults
  (L{RoomConfig}'s, fixed for this version of the profile).

Times are milliseconds since the epoch in base 36 (C{lp0l1qtc}): eight
characters, and one order at every site as before.

Each end translates at its edge (L{expand_upload} at the master,
L{expand_copy} and L{expand_ack} at the mirror), so that everything
inside sees the envelope it always saw.  A master offers the profile as
the disco feature L{NS}; a mirror uses it only with a master offering
it, and the master answers compactly only a mirror that wrote to it
compactly (docs/decisions.md, "The compact profile").
"""

import re

from twisted.words.xish import domish

from dmuc.muc import forms, room_copy
from dmuc.muc.model import RoomConfig
from dmuc.xmpp import namespaces as ns
from dmuc.xmpp.stanzas import child, make_stanza, strip_children
from dmuc.xmpp.timestamps import format_timestamp, parse_timestamp

NS = ns.DMUC_COMPACT

_DIGITS = "0123456789abcdefghijklmnopqrstuvwxyz"
_STAMP = re.compile(r"[0-9a-z]{1,12}\Z")


def stamp(seconds):
    """Seconds since the epoch -> milliseconds in base 36."""
    millis = int(round(seconds * 1000))
    if millis < 0:
        raise ValueError("a time before the epoch: %r" % (seconds,))
    return base36(millis)


def base36(number):
    """A non-negative integer in base 36, lower case."""
    text = ""
    while True:
        number, digit = divmod(number, 36)
        text = _DIGITS[digit] + text
        if not number:
            return text


def parse_stamp(text):
    """The inverse of L{stamp}. @raise ValueError: not such a time."""
    if not _STAMP.match(text or ""):
        raise ValueError("not a compact time: %r" % (text,))
    return int(text, 36) / 1000.0


# -- the mirror's uploads


class UnknownUser(ValueError):
    """A compact envelope names no user, and the sender is no occupant
    (the master forgot it: a restart)."""


def add_envelope(up, user, known_user=None, sent=None, ack=False, nomirror=False):
    """
    The compact envelope on a stanza a mirror sends up for its user
    C{user}.  C{known_user} is the device the master surely knows behind
    the occupant, given only for a room message (see L{expand_upload});
    the master need not be told it again.  A room message is acknowledged
    (L{ack}) unless C{ack} is false: then C{c='1'} asks for the copy.
    """
    envelope = up.addElement((NS, "u"))
    if user != known_user:
        envelope["f"] = user
    _fold_origin_id(up, envelope)
    if sent is not None:
        envelope["s"] = stamp(sent)
    if nomirror:
        envelope["n"] = "1"
    elif not ack and _is_groupchat(up):
        envelope["c"] = "1"
    return envelope


def _is_groupchat(stanza):
    return stanza.name == "message" and stanza.getAttribute("type") == "groupchat"


def is_compact_upload(stanza):
    return child(stanza, "u", NS) is not None


def expand_upload(stanza, known_user):
    """
    At the master: the compact envelope of C{stanza} made the full one
    (C{<fmuc from sent ack>}, C{<nomirror/>}) the room's code reads.

    @param known_user: the user (full JID) the master knows behind the
        sender's occupant JID, or C{None}.
    @raise UnknownUser: the envelope names no user and the sender is no
        occupant.
    @raise ValueError: its time is malformed.
    """
    envelope = child(stanza, "u", NS)
    user = envelope.getAttribute("f") or known_user
    if not user:
        raise UnknownUser("a compact envelope without a user, from no known occupant")
    sent = parse_stamp(envelope["s"]) if envelope.getAttribute("s") else None
    full = stanza.addElement((ns.FMUC, "fmuc"))
    full["from"] = user
    if sent is not None:
        full["sent"] = format_timestamp(sent)
    if _is_groupchat(stanza) and envelope.getAttribute("c") != "1":
        full[room_copy.ACK_REQUEST] = "1"
    if envelope.getAttribute("n") == "1":
        stanza.addElement((ns.FMUC, "nomirror"))
    _unfold_origin_id(stanza, envelope)
    stanza.children.remove(envelope)


def _fold_origin_id(message, element):
    """
    The message's origin-id (XEP-0359) as the attribute C{o} of
    C{element}, the element left out (it would cost twice as much); C{o}
    is empty when the origin-id is the message's own id, as most clients
    (Conversations, Gajim, Dino) send it.
    """
    origins = list(message.elements(ns.STANZA_ID, "origin-id"))
    if len(origins) == 1 and origins[0].getAttribute("id"):
        origin = origins[0]["id"]
        element["o"] = "" if origin == message.getAttribute("id") else origin
        message.children.remove(origins[0])


def _unfold_origin_id(message, element):
    """The inverse of L{_fold_origin_id}."""
    origin = element.getAttribute("o")
    if origin == "" and message.getAttribute("id"):
        origin = message["id"]
    if origin:
        message.addElement((ns.STANZA_ID, "origin-id"))["id"] = origin


def _fold_marks(message, stamp_text, marker, dropped):
    """
    C{<t i s o/>} in place of the room's stanza-id (C{marker}) and the
    element that said the time (C{dropped}), with the origin-id folded
    in: what a copy and a history item have in common.
    """
    compact = message.addElement((NS, "t"))
    compact["s"] = stamp(parse_timestamp(stamp_text))
    if marker is not None:
        compact["i"] = marker["id"]
    message.children = [c for c in message.children if c is not dropped and c is not marker]
    _fold_origin_id(message, compact)
    return compact


def _unfold_marks(message, master_room, occupant_id):
    """
    The inverse of L{_fold_marks} at the mirror, with the sender's
    occupant-id put back: the C{<t/>} element, and its time in seconds.
    @raise ValueError: a malformed time.
    """
    compact = child(message, "t", NS)
    timestamp = parse_stamp(compact.getAttribute("s", ""))
    message.children.remove(compact)
    _unfold_origin_id(message, compact)
    if occupant_id and child(message, "occupant-id", ns.OCCUPANT_ID) is None:
        message.addElement((ns.OCCUPANT_ID, "occupant-id"))["id"] = occupant_id
    if compact.getAttribute("i"):
        marker = message.addElement((ns.STANZA_ID, "stanza-id"))
        marker["id"], marker["by"] = compact["i"], master_room
    return compact, timestamp


# -- the master's copies and acknowledgements


def compact_copy(message, omit_occupant_id):
    """
    The compact form of a room message's copy for the mirrors
    (L{room_copy.with_time}'s): its stanza-id and time in one C{<t/>};
    without the occupant-id when C{omit_occupant_id} (the mirror knows it).
    """
    time = child(message, "time", ns.DMUC_SYNC)
    if time is None:
        return message
    _fold_marks(message, time["stamp"], child(message, "stanza-id", ns.STANZA_ID), time)
    if omit_occupant_id:
        strip_children(message, ns.OCCUPANT_ID)
    return message


def is_compact_copy(message):
    return child(message, "t", NS) is not None


def expand_copy(message, master_room, occupant_id):
    """
    At the mirror: C{<t/>} made the stanza-id and time the room's code
    reads, and the sender's occupant-id put back (C{occupant_id}: the one
    our copy of the roster holds, or C{None}).

    @raise ValueError: a malformed time.
    """
    _, timestamp = _unfold_marks(message, master_room, occupant_id)
    message.addElement((ns.DMUC_SYNC, "time"))["stamp"] = format_timestamp(timestamp)


def ack(origin_id, stanza_id, timestamp):
    """L{room_copy.ack}'s element in the compact form: C{<a o i s/>}."""
    element = domish.Element((NS, "a"))
    element["o"], element["i"], element["s"] = origin_id, stanza_id, stamp(timestamp)
    return element


def acks(room_jid, to, elements):
    """One message with the L{ack}s of C{room_jid}, in order."""
    message = make_stanza("message", frm=room_jid, to=to)
    for element in elements:
        message.addChild(element)
    return message


def is_compact_ack(message):
    return child(message, "a", NS) is not None


def expand_ack(message):
    """At the mirror: each C{<a/>} made the L{room_copy.ack} element it
    stands for, in order; one with a malformed time gets none, so that
    L{room_copy.parse_ack} finds it malformed and the others stand."""
    for index, node in enumerate(message.children):
        if getattr(node, "uri", None) != NS or node.name != "a":
            continue
        full = domish.Element((ns.DMUC_SYNC, "ack"))
        full["origin"] = node.getAttribute("o", "")
        full["id"] = node.getAttribute("i", "")
        try:
            full["stamp"] = format_timestamp(parse_stamp(node.getAttribute("s", "")))
        except ValueError:
            full["stamp"] = ""
        full.parent = message
        message.children[index] = full


# -- synchronisation


def history_item(message, room_jid, omit_occupant_id):
    """
    The compact form of a history item the master sends a mirror (with
    the room's C{<stanza-id/>} and C{<delay/>}): C{<t i s n/>} in their
    place, C{n} the sender's nick in place of its occupant JID in C{from}
    and of C{type='groupchat'}, which every history item has; without
    the occupant-id when C{omit_occupant_id}.
    """
    delay = child(message, "delay", ns.DELAY)
    if delay is None:
        return message
    compact = _fold_marks(message, delay["stamp"], child(message, "stanza-id", ns.STANZA_ID),
                          delay)
    sender = message.getAttribute("from") or ""
    if sender.startswith(room_jid + "/") and message.getAttribute("type") == "groupchat":
        compact["n"] = sender[len(room_jid) + 1:]
        del message.attributes["from"]
        del message.attributes["type"]
    if omit_occupant_id:
        strip_children(message, ns.OCCUPANT_ID)
    return message


def history_item_nick(message):
    """The sender's nick of a history item, compact or not."""
    compact = child(message, "t", NS)
    if compact is not None and compact.getAttribute("n"):
        return compact["n"]
    return (message.getAttribute("from") or "").partition("/")[2] or None


def expand_history_item(message, master_room, occupant_id):
    """At the mirror: a compact history item made the full one (with the
    stanza-id by C{master_room}, a C{<delay/>} from it and the sender's
    occupant-id).  @raise ValueError: a malformed time."""
    if child(message, "t", NS) is None:
        return
    compact, timestamp = _unfold_marks(message, master_room, occupant_id)
    if compact.getAttribute("n"):
        message["from"] = "%s/%s" % (master_room, compact["n"])
        message["type"] = "groupchat"
    delay = message.addElement((ns.DELAY, "delay"))
    delay["from"], delay["stamp"] = master_room, format_timestamp(timestamp)


def config(room_config):
    """
    The compact configuration push: C{<config xmlns='urn:xmpp:dmuc:1'>}
    with a form of the fields that differ from the defaults (most rooms:
    none or two).
    """
    element = domish.Element((NS, "config"))
    form = forms.config_form(room_config, None, compact=True, unless_equal=RoomConfig())
    # The form's type says what it is here: no FORM_TYPE field.
    form.children = [f for f in form.elements() if f.getAttribute("var") != "FORM_TYPE"]
    if form.children:
        element.addChild(form)
    return element


def is_compact_config(query):
    return (query.uri, query.name) == (NS, "config")


def parse_config(query):
    """The room configuration a compact push says: the defaults, but for
    the fields it lists.  @raise StanzaError: a bad value."""
    form = child(query, "x", ns.DATA_FORMS)
    if form is None:
        return RoomConfig()
    return forms.parse_config_submission(form, RoomConfig())


# -- presence


def brief_occupant_id(presence):
    """The occupant-id of C{presence} as C{<o/>}: the mirror has it."""
    if child(presence, "occupant-id", ns.OCCUPANT_ID) is not None:
        strip_children(presence, ns.OCCUPANT_ID)
        presence.addElement((NS, "o"))
    return presence


def has_brief_occupant_id(presence):
    return child(presence, "o", NS) is not None


def expand_occupant_id(presence, occupant_id):
    """At the mirror: C{<o/>} made the occupant-id C{occupant_id} (the
    one our roster has for the nick).
    @return: C{False} when we have none to put back."""
    marker = child(presence, "o", NS)
    presence.children.remove(marker)
    if not occupant_id:
        return False
    presence.addElement((ns.OCCUPANT_ID, "occupant-id"))["id"] = occupant_id
    return True
