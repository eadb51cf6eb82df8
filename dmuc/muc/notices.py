"""
What users are told, in the room, when the link to another site splits
and when it is whole again: a groupchat message from the room itself, as
a server shows room events, so that nobody has to guess from a row of
leave presences (IRC users know these as netsplit and netjoin notices).
Master and mirror rooms send the same texts.  They are never stored.
"""

from dmuc.xmpp import namespaces as ns
from dmuc.xmpp.stanzas import make_stanza

MAX_NICKS_NAMED = 10


def displaced_nick(nick):
    """
    The nick under which the room keeps what a mirror's user wrote during
    a split at a nick someone at the master's site took meanwhile: the
    master's occupant keeps the nick, and the words stay the writer's
    (master and mirror both name them so, docs/protocol.md 6).
    """
    return "%s (split)" % nick


def split_presence_template(site, stopped=False):
    """
    The presence template of an occupant who left with a split: the reason
    a client shows for the leave (status 333), instead of whatever status
    text the occupant last set.

    @param stopped: the other side's service said it stops (a restart,
        most likely), rather than falling silent.
    """
    presence = make_stanza("presence")
    text = ("%s has stopped" if stopped else "Network split: %s is unreachable") % site
    presence.addElement("status", content=text)
    return presence


def split_notice(room_jid, site, nicks=(), keeps_messages=True, stopped=False):
    """
    @param site: the other side, as users know it (a domain).
    @param nicks: the occupants who left with the split.
    @param keeps_messages: whether what is written now reaches the other
        side later (C{False}: the room is read-only during the split).
    @param stopped: see L{split_presence_template}.
    """
    if stopped:
        text = "The room's service %s has stopped (a restart, most likely)." % site
    else:
        text = "Network split: the link to %s is down." % site
    if nicks:
        text += " %s %s on the other side." % (_names(nicks), "is" if len(nicks) == 1 else "are")
    if keeps_messages:
        text += (" You can go on talking here; what is written on each side reaches the other"
                 " when the link is back.")
    else:
        text += " The room is read-only here until the link is back."
    return _notice(room_jid, text)


def netjoin_notice(room_jid, site, stopped=False):
    if stopped:
        return _notice(room_jid, "The room's service %s is back; the room is whole again." % site)
    return _notice(room_jid, "Netjoin: the link to %s is back; the room is whole again." % site)


def _names(nicks):
    nicks = sorted(nicks)
    if len(nicks) > MAX_NICKS_NAMED:
        shown = ", ".join(nicks[:MAX_NICKS_NAMED])
        return "%s and %d more" % (shown, len(nicks) - MAX_NICKS_NAMED)
    if len(nicks) == 1:
        return nicks[0]
    return "%s and %s" % (", ".join(nicks[:-1]), nicks[-1])


def _notice(room_jid, text):
    message = make_stanza("message", frm=room_jid, type="groupchat")
    message.addElement("body", content=text)
    message.addElement((ns.HINTS, "no-store"))
    return message

