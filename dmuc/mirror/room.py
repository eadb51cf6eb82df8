"""
A mirror room: the local copy of a master room (PROTOCOL.md 2-4).

It keeps the master's configuration, roster, history and subject as
pushed by the master, knows which occupants are users of this site, and
serves them the room as XEP-0045 requires from that copy.  It never
decides what the master decides (admission, permissions); it relays.

Addresses: the master room C{chat@conference.fairfax.test} is, here,
C{chat\\40conference.fairfax.test@mirror.raleigh.test}; an occupant
C{.../Nick} of one is C{.../Nick} of the other.
"""

from dataclasses import dataclass

from twisted.logger import Logger
from twisted.words.xish import domish

from dmuc.muc import forms, history
from dmuc.muc.model import RoomConfig
from dmuc.muc.presence import occupant_presence, template
from dmuc.storage import HistoryEntry, RoomRecord
from dmuc.xmpp import namespaces as ns
from dmuc.xmpp.stanzas import child, copy_element, make_stanza, parse_jid, parse_xml
from dmuc.xmpp.timestamps import format_timestamp

log = Logger(namespace="dmuc.mirror")


@dataclass
class RemoteOccupant:
    """
    An occupant as the mirror knows it from the master.

    @ivar jid: the real JID when the master shows it to this mirror.
    @ivar user: the local user's full JID when the occupant is a user of
        this site, else C{None}.
    """

    nick: str
    affiliation: str
    role: str
    jid: str | None = None
    presence: object = None
    user: object = None


@dataclass
class PendingJoin:
    user: object
    request: object


class MirrorRoom:
    """
    @ivar master_jid: the master room's JID.
    @ivar jid: this mirror room's bare JID.
    @ivar synced: the master's config, roster and history have arrived.
    """

    def __init__(self, master_jid, jid, host):
        self.master_jid = master_jid
        self.jid = jid
        self.host = host
        self.config = RoomConfig()
        self.roster = {}
        self.history = []
        self.subject = None
        self.subject_from = None
        self.subject_delay = None
        self.pending = {}
        self.synced = False
        self.history_requested = False
        self._waiting = []   # confirmations held until history arrives

    # -- persistence: the copy survives a restart of the mirror

    def to_record(self):
        roster = [{"nick": o.nick, "affiliation": o.affiliation, "role": o.role,
                   "jid": o.jid, "user": o.user.full() if o.user else None,
                   "presence": o.presence.toXml() if o.presence is not None else None}
                  for o in self.roster.values()]
        return RoomRecord(
            jid=self.jid,
            config={"master": self.master_jid, "room_config": self.config.to_dict(),
                    "synced": self.synced, "roster": roster},
            subject=self.subject, subject_nick=self.subject_from,
            subject_time=self.subject_delay)

    @classmethod
    def from_record(cls, record, host, entries):
        data = record.config
        room = cls(data["master"], record.jid, host)
        room.config = RoomConfig.from_dict(data.get("room_config", {}))
        room.synced = room.history_requested = bool(data.get("synced"))
        for item in data.get("roster", []):
            room.roster[item["nick"]] = RemoteOccupant(
                item["nick"], item["affiliation"], item["role"], item.get("jid"),
                parse_xml(item["presence"]) if item.get("presence") else None,
                parse_jid(item["user"]) if item.get("user") else None)
        room.subject, room.subject_from = record.subject, record.subject_nick
        room.subject_delay = record.subject_time
        room.history = list(entries)
        return room

    def _save(self):
        self.host.save(self)

    # -- addresses

    def local_jid(self, nick=None):
        return self.jid if nick is None else "%s/%s" % (self.jid, nick)

    def master_occupant(self, nick):
        return "%s/%s" % (self.master_jid, nick)

    def local_users(self):
        return [o for o in self.roster.values() if o.user is not None]

    def occupant_of(self, user):
        for occupant in self.roster.values():
            if occupant.user is not None and occupant.user.full() == user.full():
                return occupant
        return None

    def is_idle(self):
        return not self.local_users() and not self.pending

    # -- what local users see

    def may_see_jids(self, viewer):
        return self.config.whois == "anyone" or viewer.role == "moderator"

    def _deliver(self, user, stanza):
        stanza["to"] = user.full()
        self.host.send(stanza)

    def _translate(self, stanza):
        """A copy of a master stanza as coming from this mirror room."""
        copy = copy_element(stanza)
        frm = copy.getAttribute("from") or ""
        if frm == self.master_jid or frm.startswith(self.master_jid + "/"):
            copy["from"] = self.jid + frm[len(self.master_jid):]
        for element in _descendants(copy):
            if element.uri == ns.STANZA_ID and element.getAttribute("by") == self.master_jid:
                element["by"] = self.jid
            if element.uri == ns.DELAY and element.getAttribute("from") == self.master_jid:
                element["from"] = self.jid
        return copy

    def _view(self, presence, viewer):
        """A presence as a local viewer may see it (real JIDs hidden from
        those who may not see them)."""
        copy = self._translate(presence)
        if viewer is not None and not self.may_see_jids(viewer):
            for x in copy.elements(ns.MUC_USER, "x"):
                for item in x.elements(ns.MUC_USER, "item"):
                    if item.getAttribute("jid") and not self._is_self(copy, viewer):
                        del item["jid"]
                    for actor in item.elements(ns.MUC_USER, "actor"):
                        actor.attributes.pop("jid", None)
        return copy

    @staticmethod
    def _is_self(presence, viewer):
        return presence.getAttribute("from", "").endswith("/" + viewer.nick)

    def _roster_presence(self, occupant, viewer):
        show = self.may_see_jids(viewer) or occupant is viewer
        jid = occupant.jid if occupant.user is None else occupant.user.full()
        return occupant_presence(
            occupant.presence, self.local_jid(occupant.nick), occupant.affiliation,
            occupant.role, real_jid=jid if show else None)

    def _fan_out(self, stanza, exclude=None, view=False):
        for occupant in self.local_users():
            if occupant.nick == exclude:
                continue
            out = self._view(stanza, occupant) if view else self._translate(stanza)
            self._deliver(occupant.user, out)

    # -- sync from the master

    def apply_config(self, form):
        self.config = forms.parse_config_submission(form, self.config)
        self._save()

    def apply_roster(self, roster):
        """The master's roster push replaces what we knew of remote
        occupants (local users are kept: the master confirms them)."""
        kept = {n: o for n, o in self.roster.items() if o.user is not None}
        self.roster = kept
        for item in roster.elements(ns.DMUC_SYNC, "item"):
            nick = item.getAttribute("name")
            if not nick or nick in kept:
                continue
            self.roster[nick] = RemoteOccupant(
                nick, item.getAttribute("affiliation", "none"),
                item.getAttribute("role", "participant"), item.getAttribute("jid"))
        self._save()

    def apply_history(self, messages):
        self.history = []
        for message in messages:
            self._remember(message)
        self.synced = True
        self._save()
        waiting, self._waiting = self._waiting, []
        for confirm in waiting:
            confirm()

    # -- presence from the master

    def handle_broadcast_presence(self, presence, nick):
        """A copy of a (remote) occupant's presence, one for this mirror."""
        unavailable = presence.getAttribute("type") == "unavailable"
        item = _item(presence)
        if unavailable:
            self.roster.pop(nick, None)
        else:
            occupant = self.roster.get(nick) or RemoteOccupant(nick, "none", "participant")
            if occupant.user is None:
                occupant.jid = item.getAttribute("jid") if item is not None else None
            if item is not None:
                occupant.affiliation = item.getAttribute("affiliation", "none")
                occupant.role = item.getAttribute("role", "participant")
            occupant.presence = template(presence)
            self.roster[nick] = occupant
        self._save()
        self._fan_out(presence, view=True)

    def handle_self_presence(self, presence, nick):
        """
        The master's answer about one of our users (status 110), at that
        user's mirror occupant JID: a join confirmed, a status change, a
        leave, a kick.
        """
        pending = self.pending.pop(nick, None)
        occupant = self.roster.get(nick)
        if pending is not None:
            if self.synced:
                self._confirm_join(presence, nick, pending)
            else:
                self._waiting.append(lambda: self._confirm_join(presence, nick, pending))
            return
        if occupant is None or occupant.user is None:
            return
        unavailable = presence.getAttribute("type") == "unavailable"
        self._update_local(occupant, presence)
        self._deliver(occupant.user, self._translate(presence))
        others = _without_110(presence)
        self._fan_out(others, exclude=nick, view=True)
        if unavailable:
            del self.roster[nick]
        self._save()
        if unavailable:
            self.host.user_left(self, occupant)

    def _update_local(self, occupant, presence):
        item = _item(presence)
        if item is not None:
            occupant.affiliation = item.getAttribute("affiliation", "none")
            occupant.role = item.getAttribute("role", "participant")
        occupant.presence = template(presence)

    def _confirm_join(self, presence, nick, pending):
        occupant = RemoteOccupant(nick, "none", "participant", user=pending.user)
        self._update_local(occupant, presence)
        self.roster[nick] = occupant
        self._save()
        for other in list(self.roster.values()):
            if other is not occupant:
                self._deliver(pending.user, self._roster_presence(other, occupant))
        self._deliver(pending.user, self._translate(presence))
        for entry in history.select(self.history, pending.request.history,
                                    self.host.now(), self.config.default_history):
            self._deliver(pending.user, self._history_message(entry))
        self._deliver(pending.user, self._subject_message())
        self._fan_out(_without_110(presence), exclude=nick, view=True)
        log.info("{user} joined {room} through this mirror", user=pending.user.full(),
                 room=self.master_jid)

    def handle_join_error(self, error, nick):
        """The master refused a join: only the user who tried hears it."""
        pending = self.pending.pop(nick, None)
        if pending is not None:
            self._deliver(pending.user, self._translate(error))
        self.host.maybe_idle(self)

    # -- messages from the master

    def handle_groupchat(self, message):
        subject = child(message, "subject", message.uri)
        body = child(message, "body", message.uri)
        if subject is not None and body is None:
            self.subject = str(subject) or None
            self.subject_from = message.getAttribute("from")
            self.subject_delay = self.host.now()
            self._save()
        elif body is not None:
            self._remember(message)
        self._fan_out(message)

    def _remember(self, message):
        marker = child(message, "stanza-id", ns.STANZA_ID)
        delay = child(message, "delay", ns.DELAY)
        stored = copy_element(message)
        stored.children = [c for c in stored.children
                           if not (isinstance(c, domish.Element) and c.uri == ns.DELAY)]
        stored.attributes.pop("to", None)
        timestamp = self.host.now()
        if delay is not None:
            from dmuc.xmpp.timestamps import parse_timestamp
            try:
                timestamp = parse_timestamp(delay.getAttribute("stamp", ""))
            except ValueError:
                pass
        entry = HistoryEntry(
            stanza_id=marker.getAttribute("id") if marker is not None else self.host.new_id(),
            timestamp=timestamp, nick=(message.getAttribute("from") or "").partition("/")[2],
            real_jid="", xml=stored.toXml())
        if any(e.stanza_id == entry.stanza_id for e in self.history[-50:]):
            return
        self.history.append(entry)
        del self.history[:max(0, len(self.history) - self.config.history_length)]
        self.host.store_message(self, entry)

    def _history_message(self, entry):
        message = self._translate(history.to_message(entry))
        delay = message.addElement((ns.DELAY, "delay"))
        delay["from"] = self.jid
        delay["stamp"] = format_timestamp(entry.timestamp)
        return message

    def _subject_message(self):
        frm = self.subject_from or self.master_jid
        message = make_stanza("message", frm=frm, type="groupchat")
        message.addElement("subject", content=self.subject or "")
        message = self._translate(message)
        if self.subject_delay is not None:
            delay = message.addElement((ns.DELAY, "delay"))
            delay["from"] = self.jid
            delay["stamp"] = format_timestamp(self.subject_delay)
        return message

    def deliver_to_nick(self, stanza, nick):
        """A per-occupant stanza from the master for one of our users."""
        occupant = self.roster.get(nick)
        if occupant is not None and occupant.user is not None:
            self._deliver(occupant.user, self._translate(stanza))
            return True
        pending = self.pending.get(nick)
        if pending is not None:
            self._deliver(pending.user, self._translate(stanza))
            return True
        return False

    def fan_out_local_message(self, message, sender):
        """Fire-and-forget: a local user's message goes to the local users
        at once (FMUC 0.0.1); the master sends this mirror no copy."""
        copy = copy_element(message)
        copy["from"] = self.local_jid(sender.nick)
        copy["type"] = "groupchat"
        copy.children = [c for c in copy.children
                         if not (isinstance(c, domish.Element)
                                 and c.uri in (ns.FMUC, ns.DMUC3))]
        marker = copy.addElement((ns.STANZA_ID, "stanza-id"))
        marker["id"] = self.host.new_id()
        marker["by"] = self.jid
        if child(copy, "body", None) is not None:
            self._remember(copy)
        for occupant in self.local_users():
            out = copy_element(copy)
            self._deliver(occupant.user, out)

    # -- discovery

    def disco_info(self):
        name = self.config.name or self.master_jid.split("@")[0]
        occupants = len(self.roster)
        form = forms.roominfo_form(self.config, occupants, self.subject,
                                   extra=(("dmuc-source", self.master_jid),))
        return name, forms.room_features(self.config), form


def _descendants(element):
    yield element
    for node in element.elements():
        yield from _descendants(node)


def _item(presence):
    for x in presence.elements(ns.MUC_USER, "x"):
        for item in x.elements(ns.MUC_USER, "item"):
            return item
    return None


def _without_110(presence):
    """The presence others see of a self-presence: no 110, no 100/201/210."""
    copy = copy_element(presence)
    for x in copy.elements(ns.MUC_USER, "x"):
        x.children = [c for c in x.children
                      if not (isinstance(c, domish.Element) and c.name == "status"
                              and c.getAttribute("code") in ("110", "100", "201", "210"))]
    return copy


def parse_real_jid(text):
    return parse_jid(text)
