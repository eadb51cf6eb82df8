"""
A room of the master MUC service: its state and the XEP-0045 rules.

The room receives stanzas already checked and parsed by the service
(L{dmuc.master.handler}), keeps plain state (L{Occupant}, L{RoomConfig},
affiliations, history) and answers through its C{host}, which sends
stanzas, gives the time and ids, and persists.  Where XEP-0045 leaves a
choice, the room does what Prosody 0.12's mod_muc does; the exceptions are
listed in docs/conformance.md.

A refused request raises L{StanzaError}; the service turns it into the
error reply.
"""

import base64
import functools
import hashlib
import hmac
import uuid

from twisted.logger import Logger
from twisted.words.xish import domish

from dmuc.muc import (
    compact, forms, history, limits, notices, paging, registration, room_copy)
from dmuc.muc.model import (
    AFFILIATION_RANK, ROLE_RANK, Occupant, RoomConfig, Session, affiliation_rank,
    role_rank)
from dmuc.muc.occupant_iq import RoutedIqs, goes_to_bare_jid
from dmuc.muc.presence import destroy_presence, occupant_presence, template
from dmuc.storage import RoomRecord
from dmuc.xmpp import namespaces as ns
from dmuc.xmpp.stanzas import (
    StanzaError, child, child_text, copy_element, larger_than, make_stanza, parse_jid,
    strip_children)
from dmuc.xmpp.timestamps import format_timestamp, parse_timestamp

log = Logger(namespace="dmuc.master")

NOT_IN_ROOM = "You are not currently connected to this chat"

# A mirror user's message this many seconds after it was sent was held in
# the link: it keeps its time.  Well above any link's normal latency, and
# above the clock skew that NTP leaves between two sites.
LATE_AFTER = 10.0


class Room:
    """
    One master room.

    @ivar jid: the room's bare JID as a string.
    @ivar config: its L{RoomConfig}.
    @ivar affiliations: bare JID or domain -> affiliation (never C{none}).
    @ivar occupants: nick -> L{Occupant}.
    @ivar history: the newest L{HistoryEntry}s, oldest first, at most
        C{config.history_length}.
    """

    def __init__(self, jid, host, config=None):
        self.jid = jid
        self.host = host
        self.config = config or RoomConfig()
        self.affiliations = {}
        self.occupants = {}
        self.history = history.History()
        self.subject = None
        self.subject_nick = None
        self.subject_time = None
        self.salt = uuid.uuid4().hex
        self._nick_by_address = {}
        # A renamed mirror occupant's old occupant JID -> its new one.
        self._renamed_addresses = {}
        self._pending_iqs = RoutedIqs(host.clock)
        # Mirror room JIDs that have had the config and roster (DMUC), and
        # those whose users were dropped at a netsplit.
        self.reserved_nicks = {}   # bare JID -> its registered nick
        self.synced_mirrors = set()
        self.split_mirrors = set()
        self._split_sites = {}   # split mirror -> its users' domain(s), for notices
        self._kicks = MirrorKicks(host.clock)

    # -- persistence

    def to_record(self):
        config = self.config.to_dict()
        config["occupant_id_salt"] = self.salt
        config["reserved_nicks"] = dict(self.reserved_nicks)
        return RoomRecord(
            jid=self.jid, config=config,
            affiliations=dict(self.affiliations), subject=self.subject,
            subject_nick=self.subject_nick, subject_time=self.subject_time)

    @classmethod
    def from_record(cls, record, host, entries=()):
        room = cls(record.jid, host, RoomConfig.from_dict(record.config))
        room.affiliations = dict(record.affiliations)
        room.salt = record.config.get("occupant_id_salt", room.salt)
        room.reserved_nicks = dict(record.config.get("reserved_nicks", {}))
        room.subject = record.subject
        room.subject_nick = record.subject_nick
        room.subject_time = record.subject_time
        room.history = history.History(entries)
        return room

    def _save(self):
        self.host.save(self)

    # -- lookups

    def occupant_jid(self, nick):
        return "%s/%s" % (self.jid, nick)

    def occupant_by_sender(self, sender):
        occupant = self.occupant_by_address(sender.address)
        if occupant is None and self._renamed_addresses:
            occupant = self._renamed_mirror_occupant(sender)
        return occupant

    def _renamed_mirror_occupant(self, sender):
        """
        A stanza from a renamed mirror occupant's old occupant JID: its
        mirror sent it before it heard of the rename, and it is the
        occupant's.  The same address for anyone else is a new occupant
        of the mirror's (another user joining the old nick).
        """
        new = self._renamed_addresses.get(sender.address)
        occupant = self.occupant_by_address(new) if new is not None else None
        if occupant is None or occupant.bare_jid != sender.real_jid.userhost():
            self._renamed_addresses.pop(sender.address, None)
            return None
        return occupant

    def mirror_user(self, address):
        """The real JID the room knows behind the mirror occupant JID
        C{address} (also just renamed), or C{None}."""
        occupant = self.occupant_by_address(address)
        if occupant is None and address in self._renamed_addresses:
            occupant = self.occupant_by_address(self._renamed_addresses[address])
        return occupant.real_jid if occupant is not None else None

    def occupant_by_address(self, address):
        nick = self._nick_by_address.get(address)
        return self.occupants.get(nick) if nick is not None else None

    def occupant_by_real_jid(self, jid):
        return next((o for o in self.occupants.values() if o.real_jid == jid), None)

    def broadcast_to_moderators(self, message):
        """To this site's moderators, and to the mirrors hosting one (each
        passes it to its own moderators only)."""
        self._broadcast(message, only=lambda o: o.role == "moderator")

    def mirrors(self):
        """The mirrors with occupants here, in a stable order."""
        return sorted({o.via for o in self.occupants.values() if o.via})

    def get_affiliation(self, jid):
        """The affiliation of a (real) JID; a banned domain bans its users."""
        affiliation = self.affiliations.get(jid.userhost())
        if affiliation is None and self.affiliations.get(jid.host) == "outcast":
            affiliation = "outcast"
        return affiliation or "none"

    def default_role(self, affiliation):
        if affiliation_rank(affiliation) >= AFFILIATION_RANK["admin"]:
            return "moderator"
        if affiliation == "outcast":
            return None
        if affiliation == "none":
            if self.config.members_only:
                return None
            if self.config.moderated:
                return "visitor"
        return "participant"

    def occupant_id(self, occupant):
        """XEP-0421: stable per user and room, and says nothing of the JID."""
        return _occupant_id(occupant.bare_jid, self.salt)

    def _stamp_occupant_id(self, stanza, occupant):
        """Replace any client-supplied occupant-id with the room's own."""
        _drop_occupant_id(stanza)
        stanza.addElement((ns.OCCUPANT_ID, "occupant-id"))["id"] = self.occupant_id(occupant)

    def may_see_real_jids(self, viewer):
        """Whether the occupant C{viewer} is shown real JIDs."""
        return self.config.whois == "anyone" or viewer.role == "moderator"

    def mirror_sees_real_jids(self, via):
        """
        DMUC2's privacy rule: in a semi-anonymous room a mirror gets real
        JIDs only while it hosts a moderator (who may see them).
        """
        return self.config.whois == "anyone" or any(
            o.via == via and o.role == "moderator" for o in self.occupants.values())

    def is_empty(self):
        return not self.occupants

    # -- sending

    def _send_to(self, occupant, stanza):
        """To every session of C{occupant} (Prosody's route_to_occupant)."""
        if not occupant.others:
            stanza["to"] = occupant.address
            self.host.send(stanza)
            return
        self._send_to_each(self.host.prepare(stanza), occupant.addresses())

    def _send_to_session(self, address, stanza):
        """To one session only: what it alone asked for (join sequence)."""
        stanza["to"] = address
        self.host.send(stanza)

    def _send_to_mirror(self, via, stanza):
        stanza["to"] = self.host.mirror_address(via)
        self.host.send(stanza)

    def _send_to_each(self, prepared, addresses):
        for address in addresses:
            self.host.send(prepared.to(address))

    def _presence_of(self, occupant, viewer, codes=(), base=None, **kwargs):
        """
        C{occupant}'s presence as C{viewer} may see it; C{viewer} is an
        occupant, or a mirror room JID for the one copy a mirror gets.

        @param base: the template, when not the occupant's (primary
            session's) own: another session's, for its self-presence.
        """
        if isinstance(viewer, str):
            show_jid = self.mirror_sees_real_jids(viewer)
        else:
            show_jid = viewer is occupant or self.may_see_real_jids(viewer)
        if viewer is occupant or not show_jid:
            # The actor's real JID only for those who may see real JIDs.
            kwargs.pop("actor_jid", None)
        presence = occupant_presence(
            occupant.presence if base is None else base, self.occupant_jid(occupant.nick),
            self.get_affiliation(occupant.real_jid), occupant.role or "none",
            real_jid=occupant.real_jid.full() if show_jid else None,
            codes=codes, occupant_id=self.occupant_id(occupant), **kwargs)
        if show_jid and occupant.others:
            _add_session_items(presence, occupant)
        if occupant.id_shown and self._reads_compact(occupant, viewer):
            compact.brief_occupant_id(presence)
        return presence

    def _reads_compact(self, occupant, viewer):
        """Whether C{viewer} (of C{occupant}'s presence) is a mirror that
        reads the compact profile: one's copy, or its user's own presence."""
        if isinstance(viewer, str):
            return self.host.speaks_compact(viewer)
        return (viewer is occupant and occupant.via is not None
                and occupant.address != occupant.real_jid.full()   # not DMUC3's literal join
                and self.host.speaks_compact(occupant.via))

    def _publicise(self, occupant, codes=(), self_codes=(), leaving=None,
                   shown_by_mirror=False, **kwargs):
        """
        Tell everyone about C{occupant}: the other occupants first, then the
        occupant itself with status 110 last, as Prosody orders them.

        @param leaving: the address of a session leaving an occupant that
            stays (its self-presence is its leave).
        @param shown_by_mirror: the occupant's mirror showed its users this
            presence already (L{_shown_by_mirror}): it gets no copy.
        """
        unavailable = occupant.role is None
        if self.config.broadcasts(occupant.role):
            self._tell_others(occupant, codes, unavailable=unavailable, **kwargs)
        elif occupant.shown_role is not None and self.config.broadcasts(occupant.shown_role):
            # Now of a role the room hides: the others see it leave.
            self._tell_others(occupant, codes, unavailable=True, **kwargs)
        occupant.shown_role = occupant.role
        own = tuple(codes) + tuple(self_codes) + ("110",)
        if not shown_by_mirror:
            self._tell_sessions(occupant, own, leaving, unavailable=unavailable, **kwargs)
        occupant.id_shown = not unavailable and self.config.broadcasts(occupant.role)

    def _tell_sessions(self, occupant, codes, leaving=None, unavailable=False, **kwargs):
        """
        The occupant's self-presence (110): each session with its own
        presence as the template while it is in (a C{leaving} one its
        leave), the primary's for all once it is gone (Prosody's
        publicise_occupant_status).
        """
        presence = self._presence_of(occupant, occupant, codes, unavailable=unavailable,
                                     **kwargs)
        if not occupant.others or occupant.role is None:
            self._send_to(occupant, presence)
            return
        self._send_to_session(occupant.address, presence)
        for address, session in occupant.others.items():
            own = self._presence_of(occupant, occupant, codes, base=session.presence,
                                    unavailable=unavailable or address == leaving, **kwargs)
            if address == leaving:
                # Prosody sends the session's own leave back as it came,
                # without an occupant-id.
                _drop_occupant_id(own)
            self._send_to_session(address, own)

    def _tell_others(self, occupant, codes, **kwargs):
        """C{occupant}'s presence to this site's other occupants and one
        copy to each mirror that needs it."""
        self._tell_local_occupants(occupant, codes, **kwargs)
        for via in self._mirrors_told_about(occupant):
            self._send_to_mirror(via, self._presence_of(occupant, via, codes, **kwargs))

    def _tell_local_occupants(self, occupant, codes, **kwargs):
        """
        C{occupant}'s presence to every other occupant of this site.  There
        are two versions at most, with the real JID and without (the viewer
        decides which), each serialised once.
        """
        versions = {}
        for other in list(self.occupants.values()):
            if other is occupant or other.via is not None:
                continue
            sees_jid = self.may_see_real_jids(other)
            prepared = versions.get(sees_jid)
            if prepared is None:
                prepared = versions[sees_jid] = self.host.prepare(
                    self._presence_of(occupant, other, codes, **kwargs))
            self._send_to_each(prepared, other.addresses())

    def _mirrors_told_about(self, occupant):
        """
        The mirrors that get one copy of a presence of C{occupant}: all but
        its own, which learns from the occupant's self-presence (110) -
        unless it joined literally (DMUC3), when the self-presence went to
        the user and the mirror needs its copy.
        """
        own = occupant.via if occupant.via and occupant.address != occupant.real_jid.full() else None
        vias = set(self.mirrors()) | ({occupant.via} if occupant.via else set())
        return sorted(v for v in vias if v != own and v in self.synced_mirrors)

    def _broadcast(self, stanza, only=None, skip_mirror=None, for_mirrors=None,
                   for_compact=None):
        """
        Send C{stanza} to every occupant of this site and one copy to each
        mirror (a mirror passes C{only} when one of its occupants does);
        C{for_mirrors}, when given, is the mirrors' version, and
        C{for_compact} makes the version of the mirrors that read the
        compact profile.
        """
        local = [address for o in self.occupants.values()
                 if o.via is None and (only is None or only(o))
                 for address in o.addresses()]
        vias = [via for via in self.mirrors()
                if via != skip_mirror and via in self.synced_mirrors
                and (only is None or any(only(o) for o in self.occupants.values()
                                         if o.via == via))]
        prepared = self.host.prepare(stanza) if local or (vias and for_mirrors is None) else None
        self._send_to_each(prepared, local)
        if for_compact is not None:
            compact_vias = [via for via in vias if self.host.speaks_compact(via)]
            if compact_vias:
                self._send_to_each(self.host.prepare(for_compact()),
                                   [self.host.mirror_address(via) for via in compact_vias])
                vias = [via for via in vias if via not in compact_vias]
        if for_mirrors is not None and vias:
            prepared = self.host.prepare(for_mirrors)
        self._send_to_each(prepared, [self.host.mirror_address(via) for via in vias])

    # -- presence

    def handle_presence(self, stanza, sender, nick, request=None, created=False, rejoin=False):
        """
        A presence to C{room/nick} from C{sender}.

        @param request: the parsed L{JoinRequest} when the stanza carries the
            MUC C{<x/>}, else C{None}.
        @param rejoin: a mirror joins its user again at a netjoin.
        """
        kind = stanza.getAttribute("type")
        occupant = self.occupant_by_sender(sender)
        if kind == "error":
            if occupant is not None and occupant.others:
                self._leave_session(occupant, sender.address, None)
            elif occupant is not None:
                self._remove_after_error(occupant)
            return
        if kind == "unavailable":
            if occupant is not None and occupant.others:
                self._leave_session(occupant, sender.address, template(stanza))
            elif occupant is not None:
                self._leave(occupant, stanza)
            return
        if kind == "probe":
            self._answer_probe(occupant, nick)
            return
        if kind is not None:
            raise StanzaError("bad-request", by=self.jid)
        if occupant is None:
            if request is None:
                raise StanzaError("item-not-found", text=NOT_IN_ROOM, by=self.jid)
            if self._kicks.replay(sender, nick, rejoin, self.host):
                return
            self._join(stanza, sender, nick, request, created)
        elif occupant.nick == nick:
            if occupant.via is not None:
                _follow_mirror_device(occupant, sender, self.jid)
            _set_session_presence(occupant, sender.address, template(stanza))
            if request is not None and occupant.via is None:
                # A join from someone the room thinks is in already: the
                # client lost its state (e.g. a server restart).  Give it
                # the whole join sequence again, as Prosody does.
                self._send_occupant_list(occupant, sender.address)
                self._publicise(occupant)
                self._send_history(occupant, request.history, sender.address)
                self._send_subject(occupant, sender.address)
            else:
                self._publicise(occupant, shown_by_mirror=_shown_by_mirror(occupant, stanza))
        elif occupant.others:
            # Prosody splits the session off into the new nick; here the
            # user's devices keep one nick (docs/conformance.md).
            raise StanzaError("not-acceptable", text="Another of your devices is in the "
                              "room under this nick", by=self.jid)
        else:
            self._change_nick(occupant, nick, stanza)

    def _answer_probe(self, prober, nick):
        """An occupant asks for another's current presence (XEP-0045 has
        no word on it; Prosody answers occupants only)."""
        if prober is None:
            raise StanzaError("not-acceptable", type="cancel", text=NOT_IN_ROOM, by=self.jid)
        target = self.occupants.get(nick)
        if target is not None:
            self._send_to(prober, self._presence_of(target, prober))
        elif registration.reserved_by(self, nick) is not None:
            self._send_to(prober, self._absent_member_presence(nick, prober))

    def _absent_member_presence(self, nick, viewer):
        """A registered nick nobody uses now, as Prosody answers a probe
        for it: unavailable, with the member's affiliation."""
        bare = registration.reserved_by(self, nick)
        presence = make_stanza("presence", frm=self.occupant_jid(nick), type="unavailable")
        item = presence.addElement((ns.MUC_USER, "x")).addElement("item")
        item["affiliation"] = self.affiliations.get(bare, "none")
        item["role"] = "none"
        item["nick"] = nick
        if self.may_see_real_jids(viewer) or self.get_affiliation(viewer.real_jid) in (
                "owner", "admin"):
            item["jid"] = bare
        return presence

    def _check_nick(self, nick):
        if not nick.strip():
            raise StanzaError("not-allowed", type="modify",
                              text="Invisible Nicknames are forbidden", by=self.jid)

    def _join(self, stanza, sender, nick, request, created):
        self._check_nick(nick)
        if sender.via is not None and not self.config.distributed:
            raise StanzaError("not-allowed", text="This room does not accept mirrors",
                              by=self.jid)
        affiliation = self.get_affiliation(sender.real_jid)
        self._check_join_allowed(affiliation, request)
        registration.check_nick(self, nick, sender.real_jid.userhost())
        current = self.occupants.get(nick)
        if current is not None:
            if not _may_share(current, sender):
                raise StanzaError("conflict", by=self.jid)
            self._join_session(current, stanza, sender, request)
            return
        occupant = Occupant(nick, sender.real_jid, self.default_role(affiliation),
                            template(stanza), address=sender.address, via=sender.via)
        if occupant.via is not None and (occupant.via not in self.synced_mirrors
                                         or not self._has_users_of(occupant.via)):
            # A mirror with none of its users here may hold no copy (it
            # drops one nobody uses): its first user's join syncs it.
            self._sync_mirror(occupant.via, joining=occupant)
        elif occupant.via is not None and occupant.role == "moderator" \
                and not self.mirror_sees_real_jids(occupant.via):
            # DMUC2: the mirror's first moderator may see real JIDs, which
            # its copy lacks: send them before the joiner's presence.
            self._update_mirror_roster(occupant.via, occupant)
        self._add(occupant)
        self_codes = []
        if created:
            self_codes.append("201")
        if self.config.whois == "anyone":
            self_codes.append("100")
        if occupant.via is None:
            self._send_occupant_list(occupant)
        self._publicise(occupant, self_codes=self_codes)
        if occupant.via is None:
            # A mirror serves history and subject from its own copy.
            self._send_history(occupant, request.history)
            self._send_subject(occupant)
        log.debug("{nick} ({jid}) joined {room}{via}", nick=nick,
                  jid=sender.real_jid.full(), room=self.jid,
                  via=" through " + occupant.via if occupant.via else "")

    # -- mirrors (DMUC)

    def _sync_mirror(self, via, joining):
        """
        A mirror's first user joins: push the configuration and the roster
        to the mirror room (docs/protocol.md 2).  The mirror asks for history
        itself.
        """
        self.synced_mirrors.add(via)
        self.host.mirror_synced(via)
        self.host.send(self.config_push(via))
        self._send_roster(via, self.roster_for_mirror(via, joining))
        log.info("{room}: mirror {via} synchronised ({count} occupants)",
                 room=self.jid, via=via, count=len(self.occupants))

    def _update_mirror_roster(self, via, joining):
        roster = self.roster_for_mirror(via, joining)
        roster["update"] = "true"
        self._send_roster(via, roster)

    def _send_roster(self, via, roster):
        """
        A roster push, in pages when it is larger than an older mirror
        takes in one (docs/protocol.md 22): each page but the last says
        C{more}, and the mirror reads them all as one roster.
        """
        pages = [list(roster.elements())]
        if larger_than(roster, paging.ONE_STANZA):
            pages = list(paging.pages(pages[0]))
        for number, items in enumerate(pages, 1):
            iq = make_stanza("iq", to=via, frm=self.jid, type="set", id=self.host.new_id())
            page = iq.addElement((ns.DMUC_SYNC, "roster"))
            page.attributes.update(roster.attributes)
            if number < len(pages):
                page["more"] = "1"
            for item in items:
                page.addChild(item)
            self.host.send(iq)

    def roster_for_mirror(self, via, joining=None):
        """
        The roster a mirror gets (docs/protocol.md 2): the occupants present
        (before C{joining}, whose occupancy decides what the mirror may see).
        """
        roster = domish.Element((ns.DMUC_SYNC, "roster"))
        show_jid = (self.config.whois == "anyone" or self.mirror_sees_real_jids(via)
                    or (joining is not None and joining.role == "moderator"))
        for occupant in self.occupants.values():
            item = roster.addElement("item")
            item["name"] = occupant.nick
            item["affiliation"] = self.get_affiliation(occupant.real_jid)
            item["role"] = occupant.role
            if show_jid:
                item["jid"] = occupant.real_jid.full()
            _add_presence_state(item, occupant, self.occupant_id(occupant))
        return roster

    def config_push(self, via):
        iq = make_stanza("iq", to=via, frm=self.jid, type="set", id=self.host.new_id())
        if self.host.speaks_compact(via):
            iq.addChild(compact.config(self.config))
        else:
            iq.addElement((ns.DMUC_SYNC, "config")).addChild(
                forms.config_form(self.config, self.jid, compact=True))
        return iq

    def mirror_knows_occupant_id(self, message):
        """Whether a mirror can put back the occupant-id of the history
        item C{message} from its roster: its sender is in the room under
        that nick, with that occupant-id, and shown (the compact profile)."""
        occupant = self.occupants.get(parse_jid(message.getAttribute("from")).resource or "")
        element = child(message, "occupant-id", ns.OCCUPANT_ID)
        return (occupant is not None and element is not None
                and element.getAttribute("id") == self.occupant_id(occupant)
                and self.config.broadcasts(occupant.role))

    def history_for_mirror(self, request, after=None):
        """
        The history a mirror asked for, oldest first, ready to send.

        @param after: the last stanza-id the mirror holds (at a netjoin):
            only what came since, so a resync costs what changed.  An id
            the room no longer has means everything the request allows.
        """
        entries = self.history
        ids = [e.stanza_id for e in entries]
        if after in ids:
            entries = entries[ids.index(after) + 1:]
        entries = history.select(entries, request, self.host.now(),
                                 self.config.history_length)
        return [self._history_message(entry) for entry in entries]

    def accept_split_messages(self, via, messages, allowed_domains):
        """
        What a mirror's users wrote during a split, after the netjoin:
        stored in timestamp order (once: origin-id), delivered to everyone
        but that mirror with the original <delay/>.  The room cannot apply
        moderation after the fact; it refuses only banned or foreign
        authors.
        """
        for message in messages:
            envelope = child(message, "fmuc", ns.FMUC)
            real = parse_jid(envelope.getAttribute("from")) if envelope is not None else None
            nick = (message.getAttribute("from") or "").partition("/")[2]
            if real is None or not nick or real.host not in allowed_domains:
                log.warn("{room}: refused a split message from {via}: bad author",
                         room=self.jid, via=via)
                continue
            if self.get_affiliation(real) == "outcast":
                continue
            holder = self.occupants.get(nick)
            if holder is not None and holder.real_jid.userhost() != real.userhost():
                nick = notices.displaced_nick(nick)   # not the holder's words
            author = Occupant(nick, real, "participant", address=via + "/" + nick, via=via)
            self._broadcast_message(author, message, skip_mirror=via)

    def mirror_netjoin(self, peer):
        """
        The link to C{peer} is back: push the config and roster again to
        the mirrors whose users we dropped, so that a mirror that did not
        notice the split (one-way loss) learns it must join them again.
        """
        healed = sorted(v for v in self.split_mirrors if v.split("@")[-1] == peer)
        if healed:
            site = ", ".join(sorted({self._split_sites.pop(v, peer) for v in healed}))
            self._tell_local_occupants_notice(notices.netjoin_notice(self.jid, site))
        for via in healed:
            self.split_mirrors.discard(via)
            if via not in self.synced_mirrors:
                self._sync_mirror(via, joining=None)

    def mirror_split(self, peer):
        """
        The link to mirror service C{peer} is down (docs/protocol.md 6): its
        users leave everyone else's view with status 333, and it is sent
        nothing more until it joins them again at the netjoin.
        """
        gone = [o for o in self.occupants.values()
                if o.via and o.via.split("@")[-1] == peer]
        site = _site_of(gone)
        for via in {o.via for o in gone}:
            self.synced_mirrors.discard(via)
            self.split_mirrors.add(via)
            self._split_sites[via] = site
        for occupant in gone:
            self._remove(occupant)
            occupant.presence = notices.split_presence_template(site)
            self._tell_local_occupants(occupant, ("333",), unavailable=True)
            for via in self.mirrors():
                if via in self.synced_mirrors:
                    self._send_to_mirror(via, self._presence_of(
                        occupant, via, ("333",), unavailable=True))
        if gone:
            self._tell_local_occupants_notice(notices.split_notice(
                self.jid, site, [o.nick for o in gone]))
            log.info("{room}: {count} occupant(s) of {peer} gone with the split",
                     room=self.jid, count=len(gone), peer=peer)
        if self.is_empty() and not self.config.persistent:
            self.host.forget(self)

    def _tell_local_occupants_notice(self, message):
        message["id"] = self.host.new_id()
        local = [address for o in self.occupants.values() if o.via is None
                 for address in o.addresses()]
        if local:
            self._send_to_each(self.host.prepare(message), local)

    def _check_mirror_left(self, via):
        """After its last user left, tell the mirror and send it nothing
        more (docs/protocol.md 4)."""
        if via is None or via in self.mirrors() or via not in self.synced_mirrors:
            return
        self.synced_mirrors.discard(via)
        presence = make_stanza("presence", to=via, frm=self.jid)
        presence.addElement((ns.FMUC, "fmuc")).addElement("left")
        self.host.send(presence)
        log.info("{room}: mirror {via} has no users left", room=self.jid, via=via)

    def _has_users_of(self, via):
        return any(o.via == via for o in self.occupants.values())

    def _check_join_allowed(self, affiliation, request):
        """The pre-join checks, in the order Prosody runs them."""
        if self.config.members_only and affiliation_rank(affiliation) <= 0:
            raise StanzaError("registration-required", by=self.jid)
        if affiliation == "outcast":
            raise StanzaError("forbidden", by=self.jid)
        if self.config.password and request.password != self.config.password:
            raise StanzaError("not-authorized", by=self.jid)
        if (self.config.max_users and len(self.occupants) >= self.config.max_users
                and affiliation_rank(affiliation) < AFFILIATION_RANK["admin"]):
            raise StanzaError("service-unavailable", type="wait", by=self.jid)
        limits.check_service_room(self.host.limits, self.host.occupant_count(), self.jid)

    def _add(self, occupant):
        self.occupants[occupant.nick] = occupant
        for address in occupant.addresses():
            self._nick_by_address[address] = occupant.nick

    def _note_renamed_address(self, old, new):
        """Stanzas from C{old} are C{new}'s until its mirror has moved (the
        older names of the occupant too); C{new} itself is no alias."""
        renamed = {o: (new if n == old else n) for o, n in self._renamed_addresses.items()}
        renamed[old] = new
        renamed.pop(new, None)
        self._renamed_addresses = renamed

    def _remove(self, occupant):
        self.occupants.pop(occupant.nick, None)
        for address in occupant.addresses():
            self._nick_by_address.pop(address, None)
        if self._renamed_addresses:
            self._renamed_addresses = {old: new for old, new in self._renamed_addresses.items()
                                       if new not in occupant.addresses()}
        occupant.role = None

    def _send_occupant_list(self, joiner, address=None):
        """The others the room shows, to the joining session (C{address},
        by default the occupant's only one), and the absent members when
        the room shows them (presence broadcast C{none}), as Prosody."""
        for other in list(self.occupants.values()):
            if other is not joiner and self.config.broadcasts(other.role):
                self._send_to_session(address or joiner.address,
                                      self._presence_of(other, joiner))
        if self.config.broadcasts(None):
            for presence in self._absent_members(joiner):
                self._send_to_session(address or joiner.address, presence)

    def _absent_members(self, viewer):
        present = {o.bare_jid for o in self.occupants.values()}
        anonymous = not (self.may_see_real_jids(viewer) or self.get_affiliation(
            viewer.real_jid) in ("owner", "admin"))
        for bare, affiliation in sorted(self.affiliations.items()):
            nick = self.reserved_nicks.get(bare)
            if bare in present or "@" not in bare or not (nick or not anonymous):
                continue
            presence = make_stanza("presence", type="unavailable",
                                   frm=self.occupant_jid(nick) if nick else self.jid)
            item = presence.addElement((ns.MUC_USER, "x")).addElement("item")
            item["affiliation"], item["role"] = affiliation, "none"
            if nick:
                item["nick"] = nick
            if not anonymous:
                item["jid"] = bare
            yield presence

    def _send_history(self, occupant, request, address=None):
        entries = history.select(self.history, request, self.host.now(),
                                 self.config.default_history)
        for entry in entries:
            self._send_to_session(address or occupant.address, self._history_message(entry))

    def _history_message(self, entry):
        # Older versions stored a split message with its <delay/>: one only.
        message = strip_children(history.to_message(entry), ns.DELAY)
        delay = message.addElement((ns.DELAY, "delay"))
        delay["from"] = self.jid
        delay["stamp"] = format_timestamp(entry.timestamp)
        return message

    def _send_subject(self, occupant, address=None):
        self._send_to_session(address or occupant.address,
                              self._subject_message(with_delay=True))

    def subject_for_mirror(self):
        """The subject as the last item of a mirror's history answer (with
        its time), or C{None} while nobody has set one."""
        if self.subject is None and self.subject_nick is None:
            return None
        return self._subject_message(with_delay=True)

    def _subject_message(self, with_delay):
        frm = self.occupant_jid(self.subject_nick) if self.subject_nick else self.jid
        message = make_stanza("message", frm=frm, type="groupchat")
        message.addElement("subject", content=self.subject or "")
        if with_delay and self.subject_time is not None:
            delay = message.addElement((ns.DELAY, "delay"))
            delay["from"] = self.jid
            delay["stamp"] = format_timestamp(self.subject_time)
        return message

    def _leave(self, occupant, stanza):
        occupant.presence = template(stanza)
        self._remove(occupant)
        self._publicise(occupant)
        self._after_leave(occupant)

    def _join_session(self, occupant, stanza, sender, request):
        """
        Another device of the occupant's user joins its nick (Prosody's
        multi-session occupant): it gets the join sequence, every session
        its own presence again (110), the others an update of the
        occupant, which stays one.
        """
        occupant.add_session(sender.real_jid, template(stanza))
        self._nick_by_address[sender.address] = occupant.nick
        self._send_occupant_list(occupant, sender.address)
        self._publicise(occupant, self_codes=("100",) if self.config.whois == "anyone" else ())
        self._send_history(occupant, request.history, sender.address)
        self._send_subject(occupant, sender.address)
        log.debug("{jid} joined {room} as another session of {nick}",
                  jid=sender.real_jid.full(), room=self.jid, nick=occupant.nick)

    def _leave_session(self, occupant, address, presence):
        """
        One of several sessions leaves (or bounced: C{presence} C{None}):
        it sees itself go, the other sessions their presence again, the
        others an update of the occupant, who is still in (Prosody).
        """
        leaving = occupant.others.get(address)
        real_jid = leaving.real_jid if leaving is not None else occupant.real_jid
        occupant.drop_session(address)
        self._nick_by_address.pop(address, None)
        if presence is None:
            presence = make_stanza("presence")
        # This one announcement still lists the leaving session's JID, as
        # Prosody's does; the session itself gets its own leave.
        occupant.others[address] = Session(real_jid, presence)
        try:
            self._publicise(occupant, leaving=address)
        finally:
            del occupant.others[address]

    def _remove_after_error(self, occupant):
        """
        The occupant's client bounced a stanza: it is gone (Prosody's
        "kickable" errors).  Others see it leave with status 333.
        """
        occupant.presence = None
        self._remove(occupant)
        self._publicise(occupant, codes=("333",))
        self._after_leave(occupant)

    def _after_leave(self, *gone):
        for via in sorted({o.via for o in gone if o.via}):
            self._check_mirror_left(via)
        if self.is_empty() and not self.config.persistent:
            self.host.forget(self)

    def _change_nick(self, occupant, nick, stanza):
        self._check_nick(nick)
        if nick in self.occupants:
            raise StanzaError("conflict", by=self.jid)
        registration.check_nick(self, nick, occupant.bare_jid)
        old_jid = self.occupant_jid(occupant.nick)
        # A mirror occupant hears of it at its occupant JID, and its mirror
        # tells its other users from that (as for any self-presence).
        viewers = [o for o in self.occupants.values() if o.via is None or o is occupant]
        for viewer in viewers + self._mirrors_told_about(occupant):
            codes = ("303",) if viewer is not occupant else ("303", "110")
            presence = self._presence_of(occupant, viewer, codes, nick=nick,
                                         unavailable=True)
            presence["from"] = old_jid
            if viewer is occupant:
                # Prosody builds this one by hand, without an occupant-id.
                _drop_occupant_id(presence)
            presence["to"] = (self.host.mirror_address(viewer) if isinstance(viewer, str)
                              else viewer.address)
            self.host.send(presence)
        self._nick_by_address.pop(occupant.address, None)
        del self.occupants[occupant.nick]
        occupant.nick = nick
        occupant.presence = template(stanza)
        old_address, occupant.address = occupant.address, _address_after_rename(occupant)
        if occupant.address != old_address:
            self._note_renamed_address(old_address, occupant.address)
        occupant.id_shown = False   # no mirror knows the new nick yet
        self._add(occupant)
        self._publicise(occupant)

    # -- groupchat

    def handle_groupchat(self, stanza, sender, nomirror=False):
        """
        @param nomirror: the mirror already delivered it to its users
            (fire-and-forget): send it no copy.
        """
        # Before we give it an id: the mirror builds the copy from what
        # it sent, so only a message it gave an id can be acknowledged.
        ackable = room_copy.may_ack(stanza)
        if not stanza.getAttribute("id"):
            # Prosody ids id-less messages first, so errors carry it too.
            stanza["id"] = self.host.new_id()
        occupant = self.occupant_by_sender(sender)
        if occupant is None:
            raise StanzaError("not-acceptable", type="cancel", text=NOT_IN_ROOM)
        if occupant.via is None:
            # A mirror bounds its own users: what it sends may come in
            # bunches after a slow link, and is placed already.
            limits.check_message_rate(self.host.limits, occupant, self.host.now(), self.jid,
                                      occupant.real_jid.full())
        if role_rank(occupant.role) <= ROLE_RANK["visitor"]:
            raise StanzaError(
                "forbidden", text="You do not currently have permission to speak in this chat")
        subject = child(stanza, "subject", stanza.uri)
        if subject is not None and not _has_child(stanza, "body", "thread"):
            self._change_subject(occupant, str(subject))
            return
        self._broadcast_message(occupant, stanza,
                                skip_mirror=occupant.via if nomirror else None,
                                sent=self._late_send_time(occupant, stanza),
                                ackable=ackable)

    def _late_send_time(self, occupant, stanza):
        """
        When a mirror user's message was sent, if it arrives so late that it
        must have been held in the link (a split, or a stalled link); else
        C{None}.  The mirror says when in the envelope.
        """
        envelope = child(stanza, "fmuc", ns.FMUC)
        if occupant.via is None or envelope is None or not envelope.getAttribute("sent"):
            return None
        try:
            sent = parse_timestamp(envelope.getAttribute("sent"))
        except ValueError:
            return None
        return sent if self.host.now() - sent > LATE_AFTER else None

    def _broadcast_message(self, occupant, stanza, skip_mirror=None, sent=None,
                           ackable=False):
        """
        @param sent: the original time of a message that arrives late: it
            keeps it, in history and for users (XEP-0203 <delay/>).
        @param ackable: the occupant's mirror asked for an acknowledgement
            in place of the copy (L{room_copy.ack}).
        """
        timestamp = self.host.now()
        late = sent
        written = self._written_during_split(occupant, stanza)
        if written is not None:
            # Its users keep the time it was written (a <delay/> now from
            # this room); the mirror had it all along.
            timestamp, origin_id, late = written
            if self._holds(origin_id, occupant):
                return   # already had it (a resync repeated)
            skip_mirror = occupant.via
        elif sent is not None:
            origin_id = room_copy.origin_id(stanza)
            if self._holds(origin_id, occupant):
                return   # its split copy came first
            timestamp = sent
        stanza_id = self.host.new_id()
        message = room_copy.room_copy(stanza, self.jid, occupant.nick,
                                      self.occupant_id(occupant), stanza_id, late=late)
        if history.is_historic(message):
            # History keeps the time apart: the <delay/> of a late message
            # is for its live delivery (a backlog gets one of its own).
            stored = strip_children(copy_element(message), ns.DELAY)
            self._remember(history.entry_of(stored, stanza_id, timestamp, occupant.nick,
                                            occupant.real_jid.full()))
        if (ackable and written is None and sent is None and skip_mirror is None
                and occupant.via in self.synced_mirrors):
            # The mirror holds the message: it builds this very copy from
            # the id and time (issue 11), in this order among the others.
            self.host.send_ack(self.jid, occupant.via, room_copy.origin_id(stanza),
                               stanza_id, timestamp)
            skip_mirror = occupant.via
        # Mirrors get the time the room gave the message, so that every
        # node's history has one order (docs/protocol.md 6, docs/monitor.md).
        for_mirrors = room_copy.with_time(message, timestamp)
        # A mirror knows the occupant-id of an occupant whose presence it
        # was sent; one the room does not broadcast it may not have seen.
        self._broadcast(message, skip_mirror=skip_mirror, for_mirrors=for_mirrors,
                        for_compact=lambda: compact.compact_copy(
                            copy_element(for_mirrors),
                            omit_occupant_id=self.config.broadcasts(occupant.role)))

    def _holds(self, origin_id, occupant):
        """Whether history has C{occupant}'s message of origin-id
        C{origin_id} (a repeat).  Another user's of the same origin-id is
        not: a client chooses its origin-ids, and one that copied
        another's must not make the room drop its message."""
        held = self.history.with_origin(origin_id)
        return (held is not None
                and held.real_jid.partition("/")[0] == occupant.real_jid.userhost())

    def _written_during_split(self, occupant, message):
        """
        A message a mirror kept during a split comes with its original
        <delay/> (from the mirror room) and an origin-id (docs/protocol.md 6).
        @return: (timestamp, origin id, the time it was written), or
            C{None} for a live message.
        """
        if occupant.via is None:
            return None
        delay = child(message, "delay", ns.DELAY)
        origin = child(message, "origin-id", ns.STANZA_ID)
        if delay is None or origin is None or delay.getAttribute("from") != occupant.via:
            return None
        try:
            stamp = parse_timestamp(delay.getAttribute("stamp", ""))
        except ValueError:
            return None
        return min(stamp, self.host.now()), origin.getAttribute("id"), stamp

    def _remember(self, entry):
        limit = self.config.history_length
        # Messages written at a mirror during a split arrive late with
        # their own time: history stays in timestamp order.
        self.history.insert(entry)
        self.history.trim(limit)
        if self.config.persistent and limit:
            self.host.store_message(self, entry)
        if self.config.archiving:
            # The archive (XEP-0313) keeps what the history length drops.
            self.host.archive_message(self, entry)

    def _change_subject(self, occupant, text):
        allowed = (occupant.role == "moderator"
                   or (self.config.change_subject and occupant.role == "participant"))
        if not allowed:
            raise StanzaError("forbidden", text="You are not allowed to change the subject")
        self.subject = text or None
        self.subject_nick = occupant.nick
        self.subject_time = self.host.now()
        self._broadcast(self._subject_message(with_delay=False))
        self._save()

    # -- private messages and IQs between occupants

    def handle_private_message(self, stanza, sender, nick):
        occupant = self.occupant_by_sender(sender)
        kind = stanza.getAttribute("type")
        if occupant is None:
            if kind != "error":
                raise StanzaError("not-acceptable", type="cancel", text=NOT_IN_ROOM, by=self.jid)
            return
        if kind == "groupchat":
            raise StanzaError("bad-request", by=self.jid)
        if kind == "error":
            return
        if occupant.via is None:
            limits.check_message_rate(self.host.limits, occupant, self.host.now(), self.jid,
                                      occupant.real_jid.full())
        target = self.occupants.get(nick)
        if target is None:
            raise StanzaError("item-not-found", text="Recipient not in room", by=self.jid)
        message = copy_element(stanza)
        strip_children(message, ns.MUC, ns.MUC_USER, ns.FMUC, ns.DMUC3, ns.DMUC_COMPACT)
        message.addElement((ns.MUC_USER, "x"))
        self._stamp_occupant_id(message, occupant)
        message["from"] = self.occupant_jid(occupant.nick)
        self._send_to(target, message)

    def handle_iq_to_occupant(self, iq, sender, nick):
        kind = iq.getAttribute("type")
        if kind in ("result", "error"):
            self._route_iq_response(iq, sender, nick)
            return
        occupant = self.occupant_by_sender(sender)
        if occupant is None:
            raise StanzaError("not-acceptable", type="cancel", text=NOT_IN_ROOM, by=self.jid)
        target = self.occupants.get(nick)
        if target is None:
            raise StanzaError("item-not-found", text="Recipient not in room", by=self.jid)
        if target is occupant and _is_ping(iq) and kind == "get":
            # XEP-0410 self-ping: answered by the room.
            self.host.send(make_stanza("iq", to=sender.address, frm=iq["to"],
                                       type="result", id=iq.getAttribute("id")))
            return
        routed_id = self.host.new_id()
        self._pending_iqs.add(routed_id, (iq.getAttribute("id"), sender.address,
                                          target.address))
        forwarded = _without_envelope(copy_element(iq))
        forwarded.children = [c for c in forwarded.children
                              if not room_copy.is_room_marker(c, self.jid)]
        forwarded["id"] = routed_id
        forwarded["from"] = self.occupant_jid(occupant.nick)
        to = target.address
        if goes_to_bare_jid(forwarded) and target.via is None:
            # A mirror routes it to its own user's bare JID itself.
            to = target.real_jid.userhost()
        forwarded["to"] = to
        self.host.send(forwarded)

    def _route_iq_response(self, iq, sender, nick):
        pending = self._pending_iqs.get(iq.getAttribute("id"))
        if pending is None:
            return
        original_id, requester, target = pending
        if sender.address != target and sender.real_jid.userhost() != target.split("/")[0]:
            return
        responder = self.occupant_by_address(target)
        if responder is None:
            return
        self._pending_iqs.discard(iq["id"])
        response = _without_envelope(copy_element(iq))
        response["id"] = original_id
        response["from"] = self.occupant_jid(responder.nick)
        response["to"] = requester
        self.host.send(response)

    # -- invitations (XEP-0045 7.8.2)

    def handle_invite(self, stanza, sender, invite):
        inviter = self.occupant_by_sender(sender)
        role = inviter.role if inviter else self.default_role(
            self.get_affiliation(sender.real_jid))
        if role_rank(role) <= ROLE_RANK["visitor"]:
            raise StanzaError("forbidden")
        invitee = parse_jid(invite.getAttribute("to"))
        if invitee is None:
            raise StanzaError("jid-malformed")
        if self.config.members_only:
            needed = "member" if self.config.allow_invites else "admin"
            if affiliation_rank(self.get_affiliation(sender.real_jid)) < AFFILIATION_RANK[needed]:
                raise StanzaError("forbidden", by=self.jid)
            if self.get_affiliation(invitee) == "none":
                self.affiliations[invitee.userhost()] = "member"
                self._save()
        reason = child_text(invite, "reason", ns.MUC_USER) or ""
        shown_from = sender.real_jid.full()
        if self.config.whois == "moderators" and inviter is not None:
            shown_from = self.occupant_jid(inviter.nick)
        message = make_stanza("message", to=invitee.full(), frm=self.jid)
        x = message.addElement((ns.MUC_USER, "x"))
        element = x.addElement("invite")
        element["from"] = shown_from
        element.addElement("reason", content=reason)
        if self.config.password:
            x.addElement("password", content=self.config.password)
        conference = message.addElement(("jabber:x:conference", "x"), content=reason)
        conference["jid"] = self.jid
        body = "%s invited you to the room %s" % (shown_from, self.jid)
        message.addElement("body", content=body + (" (%s)" % reason if reason else ""))
        # A user of a mirror's site gets it from the mirror room (the host
        # decides where it goes: docs/decisions.md).
        self.host.send_invitation(self, message, invitee)

    def handle_decline(self, stanza, sender, decline):
        declinee = parse_jid(decline.getAttribute("to"))
        if declinee is None:
            raise StanzaError("jid-malformed")
        reason = child_text(decline, "reason", ns.MUC_USER) or ""
        message = make_stanza("message", to=declinee.full(), frm=self.jid)
        element = message.addElement((ns.MUC_USER, "x")).addElement("decline")
        element["from"] = sender.real_jid.full()
        element.addElement("reason", content=reason)
        self.host.send(message)

    # -- administration (muc#admin)

    def set_role(self, actor, nick, role, reason):
        """Change an occupant's role; C{none} kicks (307)."""
        target = self.occupants.get(nick)
        if target is None:
            raise StanzaError("item-not-found", type="modify")
        if role not in ROLE_RANK:
            raise StanzaError("not-acceptable")
        self._check_may_set_role(actor, target, role)
        actor_nick = self._actor_nick(actor)
        if role == "none":
            self._remove(target)
            # Prosody builds a fresh unavailable for one who did not leave
            # by itself: the occupant's show and status are not repeated.
            target.presence = None
            self._publicise(target, codes=("307",), actor_nick=actor_nick,
                            actor_jid=actor.real_jid.full(), reason=reason)
            if target.via is not None:
                self._kicks.kicked(target, self._presence_of(
                    target, target, ("307", "110"), unavailable=True, actor_nick=actor_nick,
                    actor_jid=actor.real_jid.full(), reason=reason))
            self._after_leave(target)
            return
        target.role = role
        self._publicise(target, actor_nick=actor_nick, actor_jid=actor.real_jid.full(),
                        reason=reason)

    def _check_may_set_role(self, actor, target, role):
        actor_affiliation = self.get_affiliation(actor.real_jid)
        target_affiliation = self.get_affiliation(target.real_jid)
        if affiliation_rank(actor_affiliation) < affiliation_rank(target_affiliation):
            raise StanzaError("not-allowed")
        if "moderator" in (target.role, role) and actor_affiliation not in ("owner", "admin"):
            raise StanzaError("not-allowed")
        acting = self.occupant_by_sender(actor)
        if acting is None or acting.role != "moderator":
            raise StanzaError("not-allowed")

    # -- nick registration (dmuc.muc.registration)

    def register(self, bare, nick):
        """C{bare} reserves C{nick}; a user without an affiliation becomes
        a member.  Prosody sets the affiliation again either way, and so
        announces it."""
        self.reserved_nicks[bare] = nick
        affiliation = self.affiliations.get(bare, "none")
        self._change_affiliation(parse_jid(bare), "member" if affiliation == "none"
                                 else affiliation, None, None)

    def unregister(self, bare, affiliation):
        """The registration goes, and with it a membership (not a higher
        affiliation): status 321 where that removes the user."""
        self.reserved_nicks.pop(bare, None)
        self._change_affiliation(parse_jid(bare), "none" if affiliation == "member"
                                 else affiliation, None, None)

    def _actor_nick(self, actor):
        acting = self.occupant_by_sender(actor)
        return acting.nick if acting is not None else None

    def set_affiliation(self, actor, jid, affiliation, reason):
        """
        Change the affiliation of a bare JID (or domain), with Prosody's
        rules: owners may do anything but remove the last owner; admins may
        only change members and outcasts.
        """
        if affiliation not in AFFILIATION_RANK:
            raise StanzaError("not-acceptable")
        bare = jid.userhost()
        self._check_may_set_affiliation(actor, bare, affiliation)
        self._change_affiliation(jid, affiliation, actor, reason)

    def _change_affiliation(self, jid, affiliation, actor, reason):
        """
        Set it, and tell everyone it concerns.  C{actor} is C{None} when
        the room itself changes it (a nick registration).
        """
        bare = jid.userhost()
        previous = self.affiliations.get(bare, "none")
        if affiliation == "none":
            self.affiliations.pop(bare, None)
            # Prosody keeps a registration only with an affiliation.
            self.reserved_nicks.pop(bare, None)
        else:
            self.affiliations[bare] = affiliation
        downgrade = affiliation_rank(previous) > affiliation_rank(affiliation)
        affected = [o for o in self.occupants.values()
                    if o.bare_jid == bare or (not jid.user and affiliation == "outcast"
                                              and o.real_jid.host == jid.host)]
        self._apply_affiliation(affected, affiliation, downgrade, actor, reason)
        if not affected:
            self._announce_affiliation(bare, affiliation, reason)
        self._save()

    def _check_may_set_affiliation(self, actor, bare, affiliation):
        actor_affiliation = self.get_affiliation(actor.real_jid)
        current = self.affiliations.get(bare, "none")
        if actor_affiliation == "owner":
            if (actor.real_jid.userhost() == bare and affiliation != "owner"
                    and [j for j, a in self.affiliations.items() if a == "owner"] == [bare]):
                raise StanzaError("conflict")
            return
        if (actor_affiliation != "admin" or affiliation in ("owner", "admin")
                or current in ("owner", "admin")):
            raise StanzaError("not-allowed")

    def _apply_affiliation(self, affected, affiliation, downgrade, actor, reason):
        new_role = self.default_role(affiliation)
        actor_nick = self._actor_nick(actor) if actor is not None else None
        actor_jid = actor.real_jid.full() if actor is not None else None
        for occupant in affected:
            if occupant.role != new_role and (
                    downgrade or role_rank(occupant.role) < role_rank(new_role)):
                occupant.role = new_role
            codes = ()
            if occupant.role is None:
                codes = ("301",) if affiliation == "outcast" else ("321",)
                self._remove(occupant)
                occupant.presence = None   # a fresh unavailable, as a kick's
            self._publicise(occupant, codes=codes, actor_nick=actor_nick,
                            actor_jid=actor_jid, reason=reason)
        gone = [o for o in affected if o.role is None]
        if gone:
            self._after_leave(*gone)

    def _announce_affiliation(self, bare, affiliation, reason):
        message = make_stanza("message", frm=self.jid)
        item = message.addElement((ns.MUC_USER, "x")).addElement("item")
        item["affiliation"] = affiliation
        item["jid"] = bare
        if reason:
            item.addElement("reason", content=reason)
        if self.config.whois == "moderators":
            self._broadcast(message, only=lambda o: o.role == "moderator")
        else:
            self._broadcast(message)

    def affiliation_list(self, actor, affiliation):
        """The muc#admin affiliation list, for those allowed to read it."""
        actor_rank = affiliation_rank(self.get_affiliation(actor.real_jid))
        allowed = ((actor_rank >= AFFILIATION_RANK["admin"]
                    and actor_rank >= affiliation_rank(affiliation))
                   or (self.config.members_only and self.config.whois == "anyone"
                       and actor_rank >= AFFILIATION_RANK["member"]))
        if not allowed:
            raise StanzaError("forbidden")
        return sorted(j for j, a in self.affiliations.items() if a == affiliation)

    def role_list(self, actor, role):
        acting = self.occupant_by_sender(actor)
        current = acting.role if acting else self.default_role(
            self.get_affiliation(actor.real_jid))
        if current != "moderator":
            raise StanzaError("forbidden")
        return [o for o in self.occupants.values() if (o.role or "none") == role]

    # -- ownership (muc#owner)

    def check_owner(self, actor):
        if self.get_affiliation(actor.real_jid) != "owner":
            raise StanzaError("forbidden", text="Only owners can configure rooms")

    def configure(self, new):
        """
        Apply a new configuration.

        @return: the status codes to announce with L{announce_config} once
            the owner has had the result (Prosody's order).
        """
        old = self.config
        self.config = new
        codes = set()
        if new.whois != old.whois:
            codes.add("172" if new.whois == "anyone" else "173")
        if {k: v for k, v in new.to_dict().items() if k != "whois"} != \
                {k: v for k, v in old.to_dict().items() if k != "whois"}:
            codes.add("104")
        self.history.trim(new.history_length)
        if new.members_only and not old.members_only:
            self._remove_non_members()
        self.host.configured(self, old)
        if new.presence_broadcast != old.presence_broadcast:
            # After the push: mirrors decide by the new setting too.
            self._show_or_hide(old)
        return sorted(codes)

    def _show_or_hide(self, old):
        """Occupants of a role the room now shows appear to the others;
        those of a role it now hides leave their view."""
        for occupant in list(self.occupants.values()):
            was, now = old.broadcasts(occupant.role), self.config.broadcasts(occupant.role)
            if was != now:
                # As Prosody: the others see it come or go, the occupant
                # itself gets its presence again.
                self._tell_others(occupant, (), unavailable=not now)
                self._tell_sessions(occupant, ("110",))
                occupant.id_shown = now
            occupant.shown_role = occupant.role

    def announce_config(self, codes):
        """Tell the occupants the configuration changed (104, 172, 173)."""
        if not codes:
            return
        message = make_stanza("message", frm=self.jid, type="groupchat")
        x = message.addElement((ns.MUC_USER, "x"))
        for code in codes:
            x.addElement("status")["code"] = code
        self._broadcast(message)

    def _remove_non_members(self):
        gone = []
        for occupant in list(self.occupants.values()):
            if self.get_affiliation(occupant.real_jid) == "none":
                self._remove(occupant)
                self._publicise(occupant, codes=("322",))
                gone.append(occupant)
        for via in sorted({o.via for o in gone if o.via}):
            self._check_mirror_left(via)

    def destroy(self, alternate=None, reason=None):
        """
        Everyone leaves with the destroy notice, each hearing only of
        itself (Prosody's room:clear() empties the room before it tells
        anyone); the room is forgotten, a persistent one leaves a
        tombstone.  A mirror user's notice goes to its mirror occupant
        JID, so the mirror gets one per user and nothing else.
        """
        leaving = list(self.occupants.values())
        for occupant in leaving:
            self._remove(occupant)
        for occupant in leaving:
            presence = destroy_presence(
                self.occupant_jid(occupant.nick), self.get_affiliation(occupant.real_jid),
                occupant.real_jid.full(), alternate, reason,
                occupant_id=self.occupant_id(occupant))
            if occupant.others:
                _add_session_items(presence, occupant)
            self._send_to(occupant, presence)
        self.synced_mirrors.clear()
        self.host.destroyed(self, alternate, reason)

    # -- discovery

    def disco_info(self):
        """(identity name, features, roominfo form element)."""
        name = self.config.name or self.jid.split("@")[0]
        features = forms.room_features(self.config)
        form = forms.roominfo_form(self.config, len(self.occupants), self.subject)
        return name, features, form


@functools.lru_cache(maxsize=4096)
def _occupant_id(bare_jid, salt):
    # An HMAC for every presence and message sent costs more than sending
    # it; the same few occupants speak again and again.
    digest = hmac.new(bare_jid.encode("utf-8"), salt.encode("ascii"),
                      hashlib.sha256).digest()
    return base64.b64encode(digest).decode("ascii")


def _site_of(occupants):
    """The other site as its users know it: their domain(s)."""
    return ", ".join(sorted({o.real_jid.host for o in occupants}))


def _add_presence_state(item, occupant, occupant_id):
    """
    What a roster item carries beyond XEP-0045's item (docs/decisions.md,
    "Protocol additions"): the occupant-id and the occupant's own presence
    (show, status, caps, avatar hash...), so that a mirror shows its users
    the occupant exactly as the master's users see it.
    """
    item["occupant-id"] = occupant_id
    if occupant.presence is not None and any(True for _ in occupant.presence.elements()):
        presence = item.addElement((ns.CLIENT, "presence"))
        for element in occupant.presence.elements():
            presence.addChild(copy_element(element))


def _without_envelope(stanza):
    """C{stanza} without the DMUC envelope a mirror put on it: the real
    JID in it is for the master, never for the occupant it goes on to."""
    return strip_children(stanza, ns.FMUC, ns.DMUC_COMPACT, ns.DMUC3)


def _shown_by_mirror(occupant, presence):
    """
    Whether a status change came from a mirror that showed it to its users
    itself (C{<nomirror/>}, the compact profile's C{n='1'}): then the
    change crosses the link once, up (issue 11).  Only for an occupant
    the mirror presents as one session; the mirror's own join of a user
    (DMUC3's literal one) still gets its self-presence.
    """
    return (occupant.via is not None and not occupant.others
            and occupant.address != occupant.real_jid.full()
            and child(presence, "nomirror", ns.FMUC) is not None)


def _may_share(occupant, sender):
    """
    Whether C{sender} joins C{occupant}'s nick as another of its sessions:
    the same user, both of this site.  A mirror presents its user's
    devices as one session (docs/decisions.md), so a nick held through a
    mirror and a direct join stay apart: a conflict, as for anyone else.
    """
    return (occupant.via is None and sender.via is None
            and sender.real_jid.userhost() == occupant.bare_jid)


def _address_after_rename(occupant):
    """
    Where a renamed occupant is addressed: a mirror occupant JID holds the
    nick (C{mirror-room/Nick}), so it follows the new nick, as the mirror
    moves its user there; a user of this site, or a DMUC3 literal join,
    keeps its real JID.
    """
    if occupant.via is None:
        return occupant.real_jid.full()
    if occupant.address == occupant.real_jid.full():
        return occupant.address
    return "%s/%s" % (occupant.via, occupant.nick)


def _follow_mirror_device(occupant, sender, room_jid):
    """
    A mirror occupant's presence naming another device of the same user
    in its envelope: the device the occupant was known by left and this
    one took its place at the mirror (docs/decisions.md).  Another user
    at the same occupant JID is refused: a mirror never sends one.
    """
    if sender.real_jid.userhost() != occupant.bare_jid:
        raise StanzaError("conflict", by=room_jid)
    occupant.real_jid = sender.real_jid


def _set_session_presence(occupant, address, presence):
    """A status update from one session: what others see changes only
    for the primary one (Prosody shows the primary session's presence)."""
    session = occupant.others.get(address)
    if session is not None:
        session.presence = presence
    else:
        occupant.presence = presence


def _add_session_items(presence, occupant):
    """
    Those who may see real JIDs see one item per session, the primary's
    first (Prosody's build_item_list), each with the same attributes.
    """
    for x in presence.elements(ns.MUC_USER, "x"):
        item = child(x, "item", ns.MUC_USER)
        position = x.children.index(item)
        for offset, session in enumerate(occupant.others.values(), 1):
            extra = copy_element(item)
            extra["jid"] = session.real_jid.full()
            x.children.insert(position + offset, extra)
            extra.parent = x


def _drop_occupant_id(stanza):
    strip_children(stanza, ns.OCCUPANT_ID)
    strip_children(stanza, ns.DMUC_COMPACT)   # its compact stand-in


def _has_child(stanza, *names):
    return any(c.name in names for c in stanza.elements() if c.uri == stanza.uri)


def _is_ping(iq):
    return any(c.uri == ns.PING and c.name == "ping" for c in iq.elements())


class MirrorKicks:
    """
    Kicks of mirror occupants, remembered for a day: the 307 the mirror
    was sent may be lost with a failing link the master has not noticed
    yet, and the mirror then joins the user again at the netjoin as if
    nothing happened (issue 13).  Such a rejoin (marked by the mirror) is
    answered with the kick again; a join of the user's own clears it.
    """

    MEMORY = 24 * 3600

    def __init__(self, clock):
        self.clock = clock
        self._kicks = {}   # (mirror room, nick) -> (when, bare JID, self-presence)

    def kicked(self, occupant, presence):
        now = self.clock.seconds()
        self._kicks = {k: v for k, v in self._kicks.items() if now - v[0] < self.MEMORY}
        self._kicks[occupant.via, occupant.nick] = (now, occupant.real_jid.userhost(), presence)

    def replay(self, sender, nick, rejoin, host):
        """
        A join from C{sender} at C{nick}: the kick again if it is a
        mirror's rejoin of the user it kicked.  @return: whether it was.
        """
        if sender.via is None:
            return False
        kick = self._kicks.pop((sender.via, nick), None)
        if (not rejoin or kick is None or kick[1] != sender.real_jid.userhost()
                or self.clock.seconds() - kick[0] >= self.MEMORY):
            return False
        presence = copy_element(kick[2])
        presence["to"] = sender.address
        host.send(presence)
        return True

