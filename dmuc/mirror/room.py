"""
A mirror room: the local copy of a master room (docs/protocol.md 2-4).

It keeps the master's configuration, roster, history and subject as
pushed by the master, knows which occupants are users of this site, and
serves them the room as XEP-0045 requires from that copy.  It never
decides what the master decides (admission, permissions); it relays.

Addresses: the master room C{chat@conference.fairfax.test} is, here,
C{chat\\40conference.fairfax.test@mirror.raleigh.test}; an occupant
C{.../Nick} of one is C{.../Nick} of the other.
"""

from dataclasses import dataclass, field

from twisted.logger import Logger
from twisted.words.xish import domish

from dmuc.muc import forms, history, notices, room_copy, voice
from dmuc.muc.model import RoomConfig, Session
from dmuc.muc.presence import destroy_presence, is_destroy, occupant_presence, template
from dmuc.storage import HistoryEntry, RoomRecord, SplitMessage
from dmuc.xmpp import namespaces as ns
from dmuc.xmpp.stanzas import (
    StanzaError, child, copy_element, error_condition, error_reply, make_stanza, parse_jid,
    parse_xml, strip_children)
from dmuc.xmpp.timestamps import format_timestamp, parse_timestamp

log = Logger(namespace="dmuc.mirror")

#: How long a fire-and-forget message is kept after it went up (seconds):
#: the master never answers one, and a link that lost it bounces it, or
#: is found split, well within this time (Prosody's S2S gives up on a
#: connection after 60 s).  A split within it sends the message again at
#: the netjoin, where the master keeps one copy (its origin-id).
SHOWN_KEPT = 120


@dataclass
class RemoteOccupant:
    """
    An occupant as the mirror knows it from the master.

    @ivar jid: the real JID when the master shows it to this mirror.
    @ivar user: the local user's full JID when the occupant is a user of
        this site, else C{None}.
    @ivar occupant_id: the master's XEP-0421 occupant-id, shown as is so
        that both sites attribute messages alike.
    """

    nick: str
    affiliation: str
    role: str
    jid: str | None = None
    presence: object = None
    user: object = None
    occupant_id: str | None = None
    others: dict = field(default_factory=dict)

    def addresses(self):
        """Every device of our user sharing this occupant, the one the
        master knows (C{user}) first (docs/decisions.md)."""
        return [self.user.full(), *self.others]

    def presence_of_session(self, address):
        session = self.others.get(address)
        return session.presence if session is not None else self.presence


class Roster(dict):
    """
    The room's occupants, nick -> L{RemoteOccupant}, with those of our
    users also indexed by the user's full JID: every stanza of a local
    user looks its occupant up, and a scan would grow with the room.
    Every change goes through the dict's own methods, kept in step with
    the index here; an occupant's C{user} changes only through
    L{drop_session}.  Every device sharing an occupant is indexed.
    """

    def __init__(self, occupants=()):
        dict.__init__(self)
        self._by_user = {}   # full JID -> [occupant], oldest first (one, but for a bug)
        self.update(occupants)

    def of_user(self, user):
        """The occupant of a user (a JID), or C{None}."""
        found = self._by_user.get(user.full())
        return found[0] if found else None

    def has_users(self):
        return bool(self._by_user)

    def users(self):
        """Our users in the room, as (full JID, nick), from the index."""
        return frozenset((user, o.nick) for user, found in self._by_user.items()
                         for o in found)

    def _index(self, occupant):
        if occupant.user is not None:
            for key in occupant.addresses():
                self._by_user.setdefault(key, []).append(occupant)

    def _unindex(self, occupant):
        if occupant.user is None:
            return
        for key in occupant.addresses():
            found = self._by_user.get(key, [])
            if occupant in found:
                found.remove(occupant)
            if not found:
                self._by_user.pop(key, None)

    def add_session(self, occupant, user, presence):
        """Another device of the occupant's user (a full JID) shares it."""
        self._unindex(occupant)
        occupant.others[user.full()] = Session(user, presence)
        self._index(occupant)

    def drop_session(self, occupant, address):
        """
        One of several devices leaves; when it was the one the master
        knows (C{user}), the oldest other takes its place: the only time
        an occupant's C{user} changes.
        """
        self._unindex(occupant)
        if address != occupant.user.full():
            occupant.others.pop(address, None)
        else:
            address, session = next(iter(occupant.others.items()))
            del occupant.others[address]
            occupant.user, occupant.presence = session.real_jid, session.presence
        self._index(occupant)

    def __setitem__(self, nick, occupant):
        old = self.get(nick)
        if old is not None:
            self._unindex(old)
        dict.__setitem__(self, nick, occupant)
        self._index(occupant)

    def __delitem__(self, nick):
        self._unindex(self[nick])
        dict.__delitem__(self, nick)

    _missing = object()

    def pop(self, nick, default=_missing):
        if nick in self:
            occupant = self[nick]
            del self[nick]
            return occupant
        if default is Roster._missing:
            raise KeyError(nick)
        return default

    def popitem(self):
        nick, occupant = dict.popitem(self)
        self._unindex(occupant)
        return nick, occupant

    def setdefault(self, nick, occupant=None):
        if nick not in self:
            self[nick] = occupant
        return self[nick]

    def update(self, occupants=(), **more):
        for nick, occupant in dict(occupants, **more).items():
            self[nick] = occupant

    def __ior__(self, occupants):
        self.update(occupants)
        return self

    def clear(self):
        dict.clear(self)
        self._by_user.clear()


@dataclass
class PendingJoin:
    """
    A join sent up to the master, not confirmed yet.  C{rejoin}: one of our
    users already in the room, joining again at a netjoin.  C{refresh}: one
    of our users joining again from the same session (its client lost its
    state): it gets the whole join sequence again, as at Prosody.
    """

    user: object
    request: object
    presence: object = None
    rejoin: bool = False
    refresh: bool = False


@dataclass
class InFlight:
    """A message of one of our users on its way to the master."""

    nick: str
    message: object
    sent: float
    shown: bool = False   # fire-and-forget: our users have it already


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
        self.roster = Roster()
        self.history = history.History()
        self.subject = None
        self.subject_from = None
        self.subject_delay = None
        self.pending = {}
        self.synced = False
        self.history_requested = False
        self.split = False
        self.split_keeps_messages = True
        self.split_stopped = False
        self.resyncing = False
        self.resync_started = None
        self.split_messages = []
        self.in_flight = {}   # origin-id -> InFlight: sent up, not placed yet
        # The master said its archive holds nothing older than our copy's.
        self.archive_complete = False
        self._waiting = []   # confirmations held until history arrives
        self._presence_text = {}   # nick -> (presence template, its XML)
        self._held_pings = {}   # nick -> self-pings waiting for its rejoin
        self.renaming = {}   # our user's nick -> the nick it asked the master for

    @property
    def roster(self):
        """nick -> L{RemoteOccupant}, a L{Roster}: whatever is assigned
        is copied into one, so the user index is never bypassed."""
        return self._roster

    @roster.setter
    def roster(self, occupants):
        self._roster = occupants if isinstance(occupants, Roster) else Roster(occupants)

    # -- persistence: the copy survives a restart of the mirror

    def to_record(self):
        roster = [{"nick": o.nick, "affiliation": o.affiliation, "role": o.role,
                   "jid": o.jid, "user": o.user.full() if o.user else None,
                   "presence": self._presence_xml(o), "occupant_id": o.occupant_id,
                   **_sessions_record(o)}
                  for o in self.roster.values()]
        if len(self._presence_text) > 2 * len(self.roster) + 16:
            # Forget those who left.
            self._presence_text = {n: t for n, t in self._presence_text.items()
                                   if n in self.roster}
        return RoomRecord(
            jid=self.jid,
            config={"master": self.master_jid, "room_config": self.config.to_dict(),
                    "synced": self.synced, "roster": roster, "split": self.split,
                    "archive_complete": self.archive_complete},
            subject=self.subject, subject_nick=self.subject_from,
            subject_time=self.subject_delay)

    def crash_relevant_state(self):
        """What of this copy must be on disk at once, not within the save
        delay: who of our users is in (and at which nick), the split, and
        what they wrote during it (that is in the outbox, written as it
        comes: L{_keep_for_master})."""
        return self.roster.users(), self.split, self.synced

    def _presence_xml(self, occupant):
        """
        The occupant's presence template as text.  The room is saved at
        every presence, each time with the whole roster: serialise each
        template once.  Templates are replaced, never changed in place.
        """
        if occupant.presence is None:
            return None
        cached = self._presence_text.get(occupant.nick)
        if cached is None or cached[0] is not occupant.presence:
            cached = self._presence_text[occupant.nick] = (
                occupant.presence, occupant.presence.toXml())
        return cached[1]

    @classmethod
    def from_record(cls, record, host, entries, outbox=()):
        """
        @param outbox: the L{SplitMessage}s kept for the master; a record
            an older dmuc wrote may hold some too (before them).
        """
        data = record.config
        room = cls(data["master"], record.jid, host)
        room.config = RoomConfig.from_dict(data.get("room_config", {}))
        room.synced = room.history_requested = bool(data.get("synced"))
        room.split = bool(data.get("split"))
        room.split_messages = [SplitMessage(**m) for m in data.get("split_messages", [])]
        room.split_messages += outbox
        room.archive_complete = bool(data.get("archive_complete"))
        for item in data.get("roster", []):
            room.roster[item["nick"]] = RemoteOccupant(
                item["nick"], item["affiliation"], item["role"], item.get("jid"),
                parse_xml(item["presence"]) if item.get("presence") else None,
                parse_jid(item["user"]) if item.get("user") else None,
                item.get("occupant_id"), _sessions_from_record(item))
        room.subject, room.subject_from = record.subject, record.subject_nick
        room.subject_delay = record.subject_time
        room.history = history.History(entries)
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
        """The occupant of one of our users, by its full JID (indexed)."""
        return self.roster.of_user(user)

    def is_idle(self):
        """Nobody of ours uses it, and the master has all they wrote."""
        return not self.roster.has_users() and not self.pending and not self.split_messages

    # -- what local users see

    def may_see_jids(self, viewer):
        return self.config.whois == "anyone" or viewer.role == "moderator"

    def _deliver(self, user, stanza):
        """To our user C{user}: to every device sharing its occupant (as
        Prosody's route_to_occupant), when it has several.  An answer to
        one device's request goes by L{_deliver_session}."""
        occupant = self.roster.of_user(user)
        if occupant is None or occupant.user != user:
            self._deliver_session(user.full(), stanza)
            return
        self._deliver_to_occupant(occupant, stanza)

    def _deliver_to_occupant(self, occupant, stanza):
        """To every device of our user's C{occupant}, in the roster or
        just removed from it."""
        if not occupant.others:
            self._deliver_session(occupant.user.full(), stanza)
            return
        prepared = self.host.prepare(stanza)
        for address in occupant.addresses():
            self.host.send(prepared.to(address))

    def _deliver_session(self, address, stanza):
        """To one device only (a full JID as a string)."""
        stanza["to"] = address
        self.host.send(stanza)

    def translate(self, stanza):
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
            if element.name == "error":
                name_ourselves(element, self.master_jid, self.jid)
        return copy

    def _view(self, presence, viewer):
        """A presence as a local viewer may see it (real JIDs hidden from
        those who may not see them)."""
        copy = self.translate(presence)
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
            occupant.role, real_jid=jid if show else None, occupant_id=occupant.occupant_id)

    def fan_out(self, stanza, exclude=None, view=False, only=None):
        """
        C{stanza} from the master to our users (but C{exclude}, and only
        those for whom C{only} is true when given), each version serialised
        once: one, or with C{view} one for those who see real JIDs and one
        for those who do not (the occupant the presence is about sees its
        own).
        """
        versions = {}   # key -> (prepared, its recipients)
        for occupant in self.local_users():
            if occupant.nick == exclude or (only is not None and not only(occupant)):
                continue
            key = None
            if view:
                key = self.may_see_jids(occupant) or ("self" if self._is_self(stanza, occupant)
                                                      else "other")
            if key not in versions:
                out = self._view(stanza, occupant) if view else self.translate(stanza)
                versions[key] = (self.host.prepare(out), [])
            versions[key][1].append(occupant)
        for prepared, occupants in versions.values():
            self._send_to_users(prepared, occupants)

    def fan_out_room_message(self, message):
        """
        A message from the room itself that is not groupchat: the master
        sent this mirror one copy because one of our users should have it.
        A voice request goes to moderators only, as at the master; a
        message naming a real JID only to those who may see it.
        """
        if voice.is_voice_request(message):
            self.fan_out(message, only=lambda o: o.role == "moderator")
        elif _item(message) is not None and _item(message).getAttribute("jid"):
            self.fan_out(message, only=self.may_see_jids)
        else:
            self.fan_out(message)

    def _send_to_users(self, prepared, occupants):
        """A prepared stanza to every device of these users of ours (in one
        stanza where the local server takes multicast)."""
        self.host.send_to_all(prepared, [a for o in occupants for a in o.addresses()])

    # -- sync from the master

    def apply_config(self, form):
        """The master's configuration: a form (a full push), or the
        L{RoomConfig} a compact push made."""
        if isinstance(form, RoomConfig):
            self.config = form
        else:
            self.config = forms.parse_config_submission(form, self.config)
        self._save()

    def apply_roster(self, roster):
        """The master's roster push replaces what we knew of remote
        occupants (local users are kept: the master confirms them)."""
        kept = {n: o for n, o in self.roster.items() if o.user is not None}
        before = set(self.roster)
        self.roster = kept
        for item in roster.elements(ns.DMUC_SYNC, "item"):
            nick = item.getAttribute("name")
            if not nick or nick in kept:
                continue
            self.roster[nick] = RemoteOccupant(
                nick, item.getAttribute("affiliation", "none"),
                item.getAttribute("role", "participant"), item.getAttribute("jid"),
                presence=_roster_item_presence(item),
                occupant_id=item.getAttribute("occupant-id"))
        self._save()
        # At a netjoin our users are in the room already: they see the
        # remote occupants that came and went meanwhile.
        for nick in sorted(before - set(self.roster)):
            for local in self.local_users():
                self._deliver(local.user, occupant_presence(
                    None, self.local_jid(nick), "none", "none", unavailable=True))
        for nick in sorted(set(self.roster) - before):
            occupant = self.roster[nick]
            if not self.config.broadcasts(occupant.role):
                continue
            for local in self.local_users():
                self._deliver(local.user, self._roster_presence(occupant, local))

    def apply_history(self, messages):
        subjects = [m for m in messages if _is_subject_change(m)]
        messages = [m for m in messages if not _is_subject_change(m)]
        if subjects:
            self._take_subject(subjects[-1], tell_users=self.resyncing)
        if self.resyncing:
            # Only what we missed came; our users get it, with its delay.
            for message in messages:
                entry = self._remember(message)
                if entry is not None:
                    for local in self.local_users():
                        self._deliver(local.user, self._history_message(entry))
            self.resyncing = False
            self._notify_locals(notices.netjoin_notice(self.jid, self.master_site(),
                                                       self.split_stopped))
            self.split_stopped = False
        else:
            self.history = history.History()
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
            occupant.occupant_id = _occupant_id(presence) or occupant.occupant_id
            self.roster[nick] = occupant
        self._save()
        if is_destroy(presence):
            # An older master's copy of someone else's destroy notice:
            # nobody hears of anyone else's (XEP-0045 10.9, Prosody).
            return
        self.fan_out(presence, view=True)

    def handle_self_presence(self, presence, nick):
        """
        The master's answer about one of our users (status 110), at that
        user's mirror occupant JID: a join confirmed, a status change, a
        leave, a kick, the room destroyed.
        """
        if is_destroy(presence):
            self._destroyed(presence, nick)
            return
        pending = self.pending.pop(nick, None)
        occupant = self.roster.get(nick)
        if pending is not None and pending.rejoin:
            joined = presence.getAttribute("type") != "unavailable"
            self._answer_held_pings(nick, joined=joined)
            if joined:
                if occupant is not None:
                    self._update_local(occupant, presence)
                    self._save()
                return
            # The master answers with a kick it made while the link was
            # down (docs/protocol.md 6): our user leaves as kicked, below.
            pending = None
        if pending is not None and pending.refresh and occupant is not None \
                and presence.getAttribute("type") != "unavailable":
            self._confirm_refresh(presence, occupant, pending)
            return
        if pending is not None:
            if self.synced:
                self._confirm_join(presence, nick, pending)
            else:
                self._waiting.append(lambda: self._confirm_join(presence, nick, pending))
            return
        if occupant is None or occupant.user is None:
            return
        unavailable = presence.getAttribute("type") == "unavailable"
        if unavailable and _new_nick(presence) is not None:
            self._renamed(occupant, presence)
            return
        if unavailable and occupant.others and _has_status(presence, "333"):
            # The device the master knew bounced a presence (its server
            # restarted, say) and the master, knowing that one device only,
            # dropped the occupant.  Prosody's mod_muc drops only the
            # device that bounced: the user's other device stays, and
            # joins at the master in its place, told nothing.
            self.roster.drop_session(occupant, occupant.user.full())
            self._save()
            self.host.rejoin_session(self, occupant)
            return
        shown_role = occupant.role
        self._update_local(occupant, presence)
        if unavailable:
            del self.roster[nick]
        # Saved before anyone is told: a leave told must not be undone by
        # a crash (the copy would bring the user back at the restart).
        self._save()
        self._deliver_to_occupant(occupant, self.translate(presence))
        self._show_to_others(presence, occupant, shown_role)
        if unavailable:
            self.host.user_left(self, occupant)

    def show_status_change(self, occupant):
        """
        Our user's status change (its presence template is the new one),
        shown here as the master's self-presence would show it: the master
        tells the other sites and sends us nothing back (compact profile).
        """
        presence = occupant_presence(
            occupant.presence, self.master_occupant(occupant.nick), occupant.affiliation,
            occupant.role, real_jid=occupant.user.full(), codes=("110",),
            occupant_id=occupant.occupant_id)
        self.handle_self_presence(presence, occupant.nick)

    def _renamed(self, occupant, presence):
        """
        The master renamed our user (303): everyone here sees it as
        Prosody shows it, and the occupant moves to its new nick, where
        the master addresses it from now on (its presence from the new
        nick follows).
        """
        old, new = occupant.nick, _new_nick(presence)
        self.renaming.pop(old, None)
        self._deliver(occupant.user, self.translate(presence))
        others = _without_110(presence)
        if occupant.occupant_id and _occupant_id(others) is None:
            # The user's own 303 has none (Prosody's, built by hand); the
            # others' has, as at the master.
            others.addElement((ns.OCCUPANT_ID, "occupant-id"))["id"] = occupant.occupant_id
        self.fan_out(others, exclude=old, view=True)
        del self.roster[old]
        occupant.nick = new
        self.roster[new] = occupant
        # A message in flight is kept under the nick it is known by now.
        for flying in self.in_flight.values():
            if flying.nick == old:
                flying.nick = new
        self._save()
        log.info("{user} is now {nick} in {room}", user=occupant.user.full(), nick=new,
                 room=self.master_jid)

    def _destroyed(self, presence, nick):
        """
        The master room was destroyed (XEP-0045 10.9): our user hears of
        its own departure only.  The other sites' occupants went with the
        room and the copy no longer matches anything at the master: a join
        from here makes it sync afresh.  The copy itself goes when the
        last of our users has had its notice (L{MirrorMUC.maybe_idle}).
        """
        self.pending.pop(nick, None)
        for other in [o for o in self.roster.values() if o.user is None]:
            del self.roster[other.nick]
        self.synced = self.history_requested = False
        occupant = self.roster.get(nick)
        if occupant is not None and occupant.user is not None:
            self._deliver(occupant.user, self.translate(presence))
            del self.roster[nick]
        self._save()
        if occupant is not None:
            self.host.user_left(self, occupant)
        log.info("{room}: destroyed at the master; {nick} told", room=self.master_jid,
                 nick=nick)

    def _update_local(self, occupant, presence):
        item = _item(presence)
        if item is not None:
            occupant.affiliation = item.getAttribute("affiliation", "none")
            occupant.role = item.getAttribute("role", "participant")
        occupant.presence = template(presence)
        occupant.occupant_id = _occupant_id(presence) or occupant.occupant_id

    def _confirm_join(self, presence, nick, pending):
        occupant = RemoteOccupant(nick, "none", "participant", user=pending.user)
        self._update_local(occupant, presence)
        self.roster[nick] = occupant
        self._save()
        self._send_join_sequence(occupant, pending.request, self.translate(presence))
        self._show_to_others(presence, occupant, None)
        log.info("{user} joined {room} through this mirror", user=pending.user.full(),
                 room=self.master_jid)

    def _show_to_others(self, presence, occupant, shown_role):
        """
        One of our users' presence (the master's self-presence) to our other
        users, as the room shows it: not at all for a role it hides, and as
        a leave when the role was shown before (presence broadcast).
        """
        if not self.config.broadcasts(occupant.role):
            if shown_role is None or not self.config.broadcasts(shown_role):
                return
            presence = copy_element(presence)
            presence["type"] = "unavailable"
        self.fan_out(_without_110(presence), exclude=occupant.nick, view=True)

    def _send_join_sequence(self, occupant, request, own_presence, to=None):
        """XEP-0045 7.2: the others, the occupant itself (110), history,
        subject, all from this copy, to the joining device C{to} (a full
        JID; by default the occupant's C{user})."""
        address = (to or occupant.user).full()
        for other in list(self.roster.values()):
            if other is not occupant and self.config.broadcasts(other.role):
                self._deliver_session(address, self._roster_presence(other, occupant))
        self._deliver_session(address, own_presence)
        for entry in history.select(self.history, request.history,
                                    self.host.now(), self.config.default_history):
            self._deliver_session(address, self._history_message(entry))
        self._deliver_session(address, self._subject_message())

    # -- several devices of one of our users (docs/decisions.md)

    def take_as_session(self, user, nick, request, stanza):
        """
        A join to C{nick} from a user with no occupant here.  Another
        device of our user at C{nick} shares its occupant, served from
        this copy: the master need not know.  Another user of this site is
        refused here: the master knows our users by occupant JID and would
        take the join for the occupant's.

        @return: whether the join was dealt with here; if not, it goes up.
        """
        occupant = self.roster.get(nick)
        pending = self.pending.get(nick)
        holder = occupant.user if occupant is not None else (
            pending.user if pending is not None else None)
        if holder is None:
            return False
        if occupant is None or holder.userhost() != user.userhost():
            raise StanzaError("conflict", by=self.jid)
        self.join_session(occupant, user, request, template(stanza))
        return True

    def join_session(self, occupant, user, request, presence):
        """The join sequence to the new device; the others sharing the
        occupant hear of it again (110), as at Prosody."""
        self.roster.add_session(occupant, user, presence)
        self._save()
        codes = ("100", "110") if self.config.whois == "anyone" else ("110",)
        self._send_join_sequence(occupant, request, self._session_presence(
            occupant, user.full(), codes), to=user)
        for address in occupant.addresses():
            if address != user.full():
                self._deliver_session(address, self._session_presence(
                    occupant, address, codes))

    def session_presence(self, occupant, user, stanza):
        """A status update from a device other than the one the master
        knows: others see that one's presence (Prosody shows the primary
        session's); the device gets its own back."""
        occupant.others[user.full()].presence = template(stanza)
        self._deliver_session(user.full(), self._session_presence(
            occupant, user.full(), ("110",)))

    def leave_session(self, occupant, user, stanza):
        """
        One of several devices leaves (C{stanza} C{None}: it bounced): it
        sees itself go; the occupant stays.

        @return: whether the device the master knew left (the master must
            hear of the one that took its place).
        """
        address = user.full()
        was_known = occupant.user.full() == address
        self.roster.drop_session(occupant, address)
        self._save()
        self._deliver_session(address, occupant_presence(
            template(stanza) if stanza is not None else None,
            self.local_jid(occupant.nick), occupant.affiliation, occupant.role,
            real_jid=address, codes=("110",), unavailable=True,
            occupant_id=occupant.occupant_id))
        return was_known

    def _session_presence(self, occupant, address, codes):
        """The occupant's presence as one of its devices sees it."""
        return occupant_presence(
            occupant.presence_of_session(address), self.local_jid(occupant.nick),
            occupant.affiliation, occupant.role, real_jid=address, codes=codes,
            occupant_id=occupant.occupant_id)

    def _confirm_refresh(self, presence, occupant, pending):
        """The master took the presence of a user joining again from the
        same session: the whole sequence to it, an update to the others."""
        shown_role = occupant.role
        self._update_local(occupant, presence)
        self._save()
        self._send_join_sequence(occupant, pending.request, self.translate(presence))
        self._show_to_others(presence, occupant, shown_role)

    def refresh_locally(self, occupant, request, stanza):
        """The same during a split, served from the copy alone."""
        occupant.presence = template(stanza)
        self._save()
        self._send_join_sequence(occupant, request, self._local_presence_of(
            occupant, occupant, codes=("110",)))
        for local in self.local_users():
            if local is not occupant:
                self._deliver(local.user, self._local_presence_of(occupant, local))

    def handle_join_error(self, error, nick):
        """The master refused a join: only the user who tried hears it."""
        pending = self.pending.pop(nick, None)
        destroyed = _destroyed_venue(error)
        if pending is not None and pending.rejoin and destroyed is not None:
            # Destroyed during the split: the tombstone tells us how.
            self._answer_held_pings(nick, joined=False)
            occupant = self.roster.get(nick)
            if occupant is not None and occupant.user is not None:
                self._destroyed(destroy_presence(
                    self.local_jid(nick), occupant.affiliation, occupant.user.full(),
                    *destroyed, occupant_id=occupant.occupant_id), nick)
        elif pending is not None and pending.rejoin:
            self._answer_held_pings(nick, joined=False)
            self._refused_rejoin(nick, error_condition(error))
        elif pending is not None:
            self._deliver(pending.user, self.translate(error))
        elif self.renaming.pop(nick, None) is not None and self.user_of_nick(nick):
            # The master refused our user's new nick: only the user hears.
            self._deliver(self.user_of_nick(nick), self.translate(error))
        self.host.maybe_idle(self)

    # -- messages from the master

    def _refused_rejoin(self, nick, condition):
        """
        The master refused to take our user back at the netjoin: the user
        leaves, told why (docs/protocol.md 6).  A ban made during the split
        (C{forbidden}) is a ban here too: status 301, and what the user
        wrote during the split leaves our history, as the master keeps
        none of a banned author's.
        """
        occupant = self.roster.get(nick)
        if condition == "forbidden":
            if occupant is not None:
                occupant.affiliation = "outcast"
            self._drop_split_entries(nick)
            self._remove_local(occupant, "301",
                               "You were banned from the room during a network split")
        elif condition == "conflict":
            # The master's occupant keeps the nick; what ours wrote under
            # it during the split is kept apart, as the master keeps it.
            self._rename_split_entries(nick, notices.displaced_nick(nick))
            self._remove_local(occupant, "333", "The nick %s was taken in the room during a "
                               "network split; join again with another nick" % nick)
        else:
            self._remove_local(occupant, "333", "The room did not take you back after a "
                               "network split (%s); join again" % condition)

    def _rename_split_entries(self, nick, new_nick):
        for entry in [e for e in self.history
                      if e.nick == nick and not self._is_master_copy(e)]:
            message = parse_xml(entry.xml)
            message["from"] = "%s/%s" % (message.getAttribute("from", "").partition("/")[0],
                                         new_nick)
            renamed = HistoryEntry(entry.stanza_id, entry.timestamp, new_nick, entry.real_jid,
                                   message.toXml())
            self.history.remove(entry)
            self.host.forget_message(self, entry)
            self.history.insert(renamed)
            self.host.store_message(self, renamed)

    def _drop_split_entries(self, nick):
        """What C{nick} wrote here during the split (ours, never placed by
        the master) leaves the copy's history."""
        for entry in [e for e in self.history
                      if e.nick == nick and not self._is_master_copy(e)]:
            self.history.remove(entry)
            self.host.forget_message(self, entry)
            self.host.forget_archived(self, entry.stanza_id)

    def track_in_flight(self, message, sender, id_is_ours=False, shown=False):
        """
        Every message our users send up gets an origin-id, and is kept
        until the master's copy comes back: if the link splits first, it
        becomes a split message, sent again at the netjoin, and the
        origin-id keeps it from being stored twice.

        @param id_is_ours: we gave the message its id, unique as the
            origin-id must be, so it serves as both (a client's own id
            may not be unique: some count from 1 at every start).
        @param shown: a fire-and-forget message, shown to our users
            already: the master sends nothing back, and it is kept for
            L{SHOWN_KEPT} seconds in case the link lost it.
        """
        origin = room_copy.origin_id(message)
        if origin is None:
            origin = message["id"] if id_is_ours else self.host.new_id()
            message.addElement((ns.STANZA_ID, "origin-id"))["id"] = origin
        self._forget_old_shown()
        self.in_flight[origin] = InFlight(sender.nick, copy_element(message), self.host.now(),
                                          shown)
        while len(self.in_flight) > 1000:
            del self.in_flight[next(iter(self.in_flight))]

    def awaits_master(self, nick):
        """Whether a message C{nick} sent is on its way to the master and
        not placed in the room's order yet."""
        return any(f.nick == nick and not f.shown for f in self.in_flight.values())

    def _forget_old_shown(self):
        too_old = self.host.now() - SHOWN_KEPT
        for origin, flying in list(self.in_flight.items()):
            if flying.shown and flying.sent < too_old:
                del self.in_flight[origin]

    def wants_ack(self, sender):
        """Whether the master may answer our user's message with an
        acknowledgement: we can build its copy only knowing the
        occupant-id it gives our user."""
        return bool(sender.occupant_id)

    def handle_ack(self, message):
        """
        The master's acknowledgements of messages our users sent up
        (L{room_copy.ack}; several in one message in the compact profile):
        for each, build the copy the master gave every other site, and
        treat it as the master's copy, in this place in the room's order.
        """
        for parsed in room_copy.parse_acks(message):
            if parsed is None:
                log.warn("{room}: ignored a malformed acknowledgement from the master: {xml}",
                         room=self.jid, xml=message.toXml()[:300])
                continue
            self._acknowledged(*parsed)

    def _acknowledged(self, origin, stanza_id, timestamp):
        flying = self.in_flight.get(origin)
        sender = self.roster.get(flying.nick) if flying is not None else None
        if sender is None or not sender.occupant_id:
            # Moved to the split messages, or our user left: the netjoin's
            # resync brings the master's copy.
            log.info("{room}: an acknowledgement for a message we no longer wait for "
                     "({origin}); the next resync brings it", room=self.jid, origin=origin)
            return
        copy = room_copy.room_copy(flying.message, self.master_jid, flying.nick,
                                   sender.occupant_id, stanza_id)
        self.handle_groupchat(room_copy.with_time(copy, timestamp))

    def handle_groupchat(self, message):
        self.in_flight.pop(room_copy.origin_id(message), None)
        stamp = child(message, "time", ns.DMUC_SYNC)
        if stamp is not None:
            message.children.remove(stamp)
        if _is_subject_change(message):
            self._take_subject(message)
        elif history.is_historic(message) and self._remember(message, _stamp(stamp)) is None:
            return   # had it already (a resync, or our own split copy)
        self.fan_out(message)

    def _remember(self, message, timestamp=None):
        """
        Keep a message in the copy's history, in (time, id) order, once.
        @param timestamp: the master's time for it; else its <delay/>,
            else now.
        @return: the new L{HistoryEntry}, or C{None} when already held.
        """
        marker = child(message, "stanza-id", ns.STANZA_ID)
        delay = child(message, "delay", ns.DELAY)
        stored = copy_element(message)
        strip_children(stored, ns.DELAY)
        stored.attributes.pop("to", None)
        if timestamp is None and delay is not None:
            timestamp = _stamp(delay)
        if timestamp is None:
            timestamp = self.host.now()
        entry = history.entry_of(
            stored, marker.getAttribute("id") if marker is not None else self.host.new_id(),
            timestamp, (message.getAttribute("from") or "").partition("/")[2], "")
        origin = room_copy.origin_id(message)
        held = self.history.with_id(entry.stanza_id)
        if held is None:
            # One author's message once; another's origin-id is no match
            # (clients choose them).
            same = self.history.with_origin(origin)
            held = same if same is not None and same.nick == entry.nick else None
        if held is not None:
            if self._is_master_copy(entry) and not self._is_master_copy(held):
                # The master's copy (its id, its time) replaces the one we
                # kept while the link was down: one order everywhere.
                self.history.remove(held)
                self.host.forget_message(self, held)
                self.host.forget_archived(self, held.stanza_id)
                self._insert(entry)
            return None
        self._insert(entry)
        return entry

    def _is_master_copy(self, entry):
        return "by='%s'" % self.master_jid in entry.xml

    is_master_copy = _is_master_copy

    def _insert(self, entry):
        self.history.insert(entry)
        self.history.trim(self.config.history_length)
        self.host.store_message(self, entry)
        if self.config.archiving:
            # The copy of the archive keeps what the history length drops.
            self.host.archive_message(self, entry)

    def last_master_stanza_id(self):
        """The newest message id given by the master: where a resync
        starts (what this mirror wrote itself carries its own ids)."""
        marker = "by='%s'" % self.master_jid
        for entry in reversed(self.history):
            if marker in entry.xml:
                return entry.stanza_id
        return None

    def _history_message(self, entry):
        message = self.translate(history.to_message(entry))
        delay = message.addElement((ns.DELAY, "delay"))
        delay["from"] = self.jid
        delay["stamp"] = format_timestamp(entry.timestamp)
        return message

    def _take_subject(self, message, tell_users=False):
        """
        The master's subject (a change, or the one its history answer
        ends with, whose <delay/> says when it was set).
        @param tell_users: our users get it now if it is news to them (a
            change they missed during a split).
        """
        text = str(child(message, "subject", message.uri)) or None
        changed = (text, message.getAttribute("from")) != (self.subject, self.subject_from)
        delay = child(message, "delay", ns.DELAY)
        self.subject, self.subject_from = text, message.getAttribute("from")
        self.subject_delay = _stamp(delay) if delay is not None else self.host.now()
        self._save()
        if tell_users and changed:
            for local in self.local_users():
                self._deliver(local.user, self._subject_message())

    def _subject_message(self):
        frm = self.subject_from or self.master_jid
        message = make_stanza("message", frm=frm, type="groupchat")
        message.addElement("subject", content=self.subject or "")
        message = self.translate(message)
        if self.subject_delay is not None:
            delay = message.addElement((ns.DELAY, "delay"))
            delay["from"] = self.jid
            delay["stamp"] = format_timestamp(self.subject_delay)
        return message

    def deliver_to_nick(self, stanza, nick):
        """A per-occupant stanza from the master for one of our users (IQs
        are routed by the service, which matches their answers)."""
        user = self.user_of_nick(nick)
        if user is None:
            return False
        self._deliver(user, self.translate(stanza))
        return True

    def user_of_nick(self, nick):
        """The full JID of our user at C{nick}, in the room or joining
        (the master may address it before we confirm the join), or
        C{None}."""
        occupant = self.roster.get(nick)
        if occupant is not None and occupant.user is not None:
            return occupant.user
        pending = self.pending.get(nick)
        return pending.user if pending is not None else None

    def fan_out_local_message(self, message, sender, timestamp=None):
        """Fire-and-forget: a local user's message goes to the local users
        at once (FMUC 0.0.1); the master sends this mirror no copy."""
        copy = copy_element(message)
        copy["from"] = self.local_jid(sender.nick)
        copy["type"] = "groupchat"
        strip_children(copy, ns.FMUC, ns.DMUC3, ns.DMUC_COMPACT)
        if history.is_historic(copy):
            marker = copy.addElement((ns.STANZA_ID, "stanza-id"))
            marker["id"] = self.host.new_id()
            marker["by"] = self.jid
            if self._remember(copy, timestamp) is None:
                # Held already: the master's copy came while a split
                # message waited for its outbox write, and our users
                # have it (exactly once).
                return
        users = self.local_users()
        if users:
            self._send_to_users(self.host.prepare(copy), users)

    # -- netsplit (docs/protocol.md 6)

    def enter_split(self, keep_messages=True, stopped=False):
        """
        The master is out of reach: every occupant of the other sites
        leaves our users' view (333); joins in flight are served here;
        messages in flight are kept for the netjoin (split_mode local) or
        refused to their senders (C{keep_messages} false: readonly).
        C{stopped}: the master said it stops, which users are told.
        """
        self.split = True
        self.split_keeps_messages = keep_messages
        self.split_stopped = stopped
        self.synced = self.history_requested = False
        gone = [o for o in self.roster.values() if o.user is None]
        reason = notices.split_presence_template(self.master_site(), stopped)
        for occupant in gone:
            del self.roster[occupant.nick]
            for local in self.local_users():
                self._deliver(local.user, occupant_presence(
                    reason, self.local_jid(occupant.nick), occupant.affiliation,
                    "none", real_jid=occupant.jid if self.may_see_jids(local) else None,
                    codes=("333",), unavailable=True, occupant_id=occupant.occupant_id))
        self._notify_locals(self._split_notice([o.nick for o in gone]))
        for nick, pending in list(self.pending.items()):
            del self.pending[nick]
            # During a split our users are in the room by our own state.
            self._answer_held_pings(nick, joined=True)
            if not (pending.rejoin or pending.refresh):
                self.local_join(pending.user, nick, pending.request, pending.presence)
        self.keep_in_flight(keep_messages)
        self._save()

    def local_join(self, user, nick, request, presence):
        """A join while split: served from the copy, sent up at netjoin."""
        if nick in self.roster:
            raise StanzaError("conflict", by=self.jid)
        occupant = RemoteOccupant(nick, "none", "participant", presence=presence, user=user)
        self.roster[nick] = occupant
        self._save()
        for other in list(self.roster.values()):
            if other is not occupant:
                self._deliver(user, self._roster_presence(other, occupant))
        self._deliver(user, occupant_presence(
            presence, self.local_jid(nick), "none", "participant", real_jid=user.full(),
            codes=("110",)))
        for entry in history.select(self.history, request.history, self.host.now(),
                                    self.config.default_history):
            self._deliver(user, self._history_message(entry))
        self._deliver(user, self._subject_message())
        # Why only this site's users are here.
        self._deliver(user, self._split_notice())
        for other in self.local_users():
            if other is not occupant:
                self._deliver(other.user, self._roster_presence(occupant, other))

    def master_site(self):
        """The master's side as users know it in notices."""
        return self.master_jid.split("@")[-1]

    def _split_notice(self, nicks=()):
        return notices.split_notice(self.jid, self.master_site(), nicks,
                                    self.split_keeps_messages, self.split_stopped)

    def _notify_locals(self, message):
        users = self.local_users()
        if users:
            message["id"] = self.host.new_id()
            self._send_to_users(self.host.prepare(message), users)

    def local_presence(self, occupant, stanza):
        """A status change or leave while split: our users only."""
        occupant.presence = template(stanza)
        if stanza.getAttribute("type") == "unavailable":
            self._remove_local(occupant)
            return
        self._save()
        for local in self.local_users():
            codes = ("110",) if local is occupant else ()
            self._deliver(local.user, self._local_presence_of(occupant, local, codes))

    def _local_presence_of(self, occupant, viewer, codes=()):
        """One of our users' presence as another (or itself) sees it, built
        here (during a split the master cannot)."""
        return occupant_presence(
            occupant.presence, self.local_jid(occupant.nick), occupant.affiliation,
            occupant.role, codes=codes, occupant_id=occupant.occupant_id,
            real_jid=occupant.user.full() if viewer is occupant or self.may_see_jids(viewer)
            else None)

    def _remove_local(self, occupant, code=None, reason=None):
        if occupant is None:
            return
        self.roster.pop(occupant.nick, None)
        self._save()
        for local in [occupant] + self.local_users():
            codes = tuple(c for c in (code, "110" if local is occupant else None) if c)
            presence = occupant_presence(
                None, self.local_jid(occupant.nick), occupant.affiliation, "none",
                codes=codes, unavailable=True,
                real_jid=occupant.user.full() if local is occupant or self.may_see_jids(local)
                else None)
            if reason:
                presence.addElement("status", content=reason)
            self._deliver(local.user, presence)
        self.host.user_left(self, occupant)

    def local_message(self, message, sender, written=None):
        """
        A message while split (split_mode local): the master gets it at the
        netjoin, with its time and an origin-id; our users get it once it
        is in the outbox on disk.  The sender's echo means "kept": a crash
        after it cannot keep the message from the master (issue 13).  A
        failed write is logged and the message shown anyway: it still goes
        up unless the process dies before the netjoin.
        """
        copy, now, written_down = self._keep_for_master(message, sender, written)
        written_down.addCallback(lambda _: self.fan_out_local_message(copy, sender, now))

    def _keep_for_master(self, message, sender, written=None):
        """A message of our user kept for the master's netjoin (written to
        the outbox at once).  @return: the copy kept, its time, and a
        Deferred that fires when the outbox write ended."""
        copy = copy_element(message)
        if room_copy.origin_id(copy) is None:
            copy.addElement((ns.STANZA_ID, "origin-id"))["id"] = self.host.new_id()
        now = written if written is not None else self.host.now()
        kept = SplitMessage(sender.nick, sender.user.full(), now, copy.toXml())
        self.split_messages.append(kept)
        return copy, now, self.host.keep_split_message(self, kept)

    # -- XEP-0410 self-ping

    def answer_self_ping(self, iq, occupant):
        """
        One of our users pings its own occupant JID: "joined" when the
        master counts it, or, during a split, by our own state.  While it
        joins again (a resync) that is not known yet: the answer waits
        for the master's confirmation.
        """
        pending = self.pending.get(occupant.nick)
        if pending is not None and pending.rejoin:
            self._held_pings.setdefault(occupant.nick, []).append(iq)
            return
        self._answer_ping(iq, joined=True)

    def _answer_held_pings(self, nick, joined):
        for iq in self._held_pings.pop(nick, ()):
            self._answer_ping(iq, joined)

    def _answer_ping(self, iq, joined):
        if joined:
            answer = make_stanza("iq", type="result", id=iq.getAttribute("id"))
        else:
            answer = error_reply(iq, StanzaError(
                "not-acceptable", type="cancel",
                text="You are not currently connected to this chat"))
        answer["from"] = iq["to"]
        self._deliver_session(iq["from"], answer)   # the pinging device only

    def master_forgot_us(self):
        """
        A roster push while our users are in the room and no rejoin is
        under way: the master dropped them at a split we did not see (a
        one-way loss).  Messages in flight are kept; the users join again.
        """
        return bool(self.local_users()) and not any(
            p.rejoin for p in self.pending.values())

    def keep_in_flight(self, keep_messages=True):
        """
        The messages on their way to the master when the link failed: kept
        for the netjoin and shown here as split messages, or (read-only
        split mode, C{keep_messages} false) refused to their senders.  A
        fire-and-forget one our users have already goes up at the netjoin
        whatever the mode, not shown again; the master stores it once.
        """
        self._forget_old_shown()
        in_flight, self.in_flight = self.in_flight, {}
        for flying in in_flight.values():
            sender = self.roster.get(flying.nick)
            if sender is None or sender.user is None:
                continue
            if flying.shown:
                self._keep_for_master(flying.message, sender, flying.sent)
            elif keep_messages:
                self.local_message(flying.message, sender, flying.sent)
            else:
                self._deliver(sender.user, error_reply_from(
                    flying.message, self.jid, StanzaError(
                        "recipient-unavailable", text="Not delivered: the room's site "
                        "became unreachable (network split)")))

    def begin_resync(self):
        """
        The master is back: our users join again (the master dropped them
        at the split).  @return: the joins to send up, as (nick, user,
        presence template).
        """
        self.split = False
        self.resyncing = True
        self.resync_started = self.host.now()
        joins = []
        for occupant in self.local_users():
            self.pending[occupant.nick] = PendingJoin(
                occupant.user, None, occupant.presence, rejoin=True)
            joins.append((occupant.nick, occupant.user, occupant.presence))
        self._save()
        return joins

    def split_upload(self):
        """The messages written here during the split, as the master gets
        them: from our occupant JID, with the envelope, the original
        <delay/> and the origin-id.  Lazy: uploads take a page at a time."""
        for kept in self.split_messages:
            message = parse_xml(kept.xml)
            message["from"] = self.local_jid(kept.nick)
            message["type"] = "groupchat"
            message.attributes.pop("to", None)
            message.children = [c for c in message.children
                                if not (isinstance(c, domish.Element)
                                        and (c.uri, c.name) in ((ns.STANZA_ID, "stanza-id"),
                                                                (ns.DELAY, "delay")))]
            delay = message.addElement((ns.DELAY, "delay"))
            delay["from"] = self.jid
            delay["stamp"] = format_timestamp(kept.timestamp)
            message.addElement((ns.FMUC, "fmuc"))["from"] = kept.user
            message.uri = message.defaultUri = ns.CLIENT
            yield message

    def split_messages_delivered(self, count):
        del self.split_messages[:count]
        self.host.drop_split_messages(self, count)

    # -- discovery

    def disco_info(self):
        name = self.config.name or self.master_jid.split("@")[0]
        occupants = len(self.roster)
        form = forms.roominfo_form(self.config, occupants, self.subject,
                                   extra=(("dmuc-source", self.master_jid),))
        return name, forms.room_features(self.config), form


def _sessions_record(occupant):
    """The other devices sharing an occupant, for the record (none: no key,
    so that a record stays as an older mirror wrote it)."""
    if not occupant.others:
        return {}
    return {"sessions": {address: s.presence.toXml() if s.presence is not None else None
                         for address, s in occupant.others.items()}}


def _sessions_from_record(item):
    return {address: Session(parse_jid(address), parse_xml(xml) if xml else None)
            for address, xml in item.get("sessions", {}).items()}


def name_ourselves(error, master_jid, room_jid):
    """Our users know the room by its mirror JID, and its service by ours:
    an error the master names itself in is named here."""
    by = error.getAttribute("by")
    if by == master_jid:
        error["by"] = room_jid
    elif by is not None and by == master_jid.split("@")[-1]:
        error["by"] = room_jid.split("@")[-1]


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


def error_reply_from(message, frm, error):
    """An error about one of our users' messages, from the mirror room."""
    reply = error_reply(message, error)
    reply["from"] = frm
    return reply


def _destroyed_venue(error):
    """
    The alternate venue and reason of a C{gone} error (a destroyed room's
    tombstone: C{<gone>xmpp:JID?join</gone>}, the reason as C{<text/>}),
    or C{None} for any other error.
    """
    element = child(error, "error", error.uri)
    if element is None or child(element, "gone", ns.STANZAS) is None:
        return None
    uri = str(child(element, "gone", ns.STANZAS)).strip()
    alternate = uri[len("xmpp:"):].split("?")[0] if uri.startswith("xmpp:") else None
    text = child(element, "text", ns.STANZAS)
    return alternate or None, str(text) if text is not None else None


def _stamp(element):
    """The time in a <delay/> or <time/> element, or C{None}."""
    if element is None:
        return None
    try:
        return parse_timestamp(element.getAttribute("stamp", ""))
    except ValueError:
        return None


def _roster_item_presence(item):
    """The occupant's own presence a roster item carries (docs/decisions.md,
    "Protocol additions"), as a template; C{None} from an older master."""
    presence = child(item, "presence", ns.CLIENT)
    return template(presence) if presence is not None else None


def _has_status(presence, code):
    return any(s.getAttribute("code") == code for x in presence.elements(ns.MUC_USER, "x")
               for s in x.elements(ns.MUC_USER, "status"))


def _new_nick(presence):
    """The new nick of a nick change (status 303), or C{None}."""
    item = _item(presence)
    for x in presence.elements(ns.MUC_USER, "x"):
        if any(s.getAttribute("code") == "303" for s in x.elements(ns.MUC_USER, "status")):
            return item.getAttribute("nick") if item is not None else None
    return None


def _occupant_id(presence):
    element = child(presence, "occupant-id", ns.OCCUPANT_ID)
    return element.getAttribute("id") if element is not None else None


def _is_subject_change(message):
    """A subject change: a subject and no body (XEP-0045 8.1)."""
    return (child(message, "subject", message.uri) is not None
            and child(message, "body", message.uri) is None)
