"""
The master MUC service's protocol edge.

L{MasterMUC} is the wokkel handler attached to the component connection.
It checks addressing, parses what a stanza asks for, finds or creates the
room and calls it, and turns L{StanzaError}s into error replies.  It is
also the rooms' host (L{Room.host}): sending, time, ids and storage.  A
stanza that makes a handler fail gets C{internal-server-error}, is logged
with its sender, and the service goes on serving everyone else.
"""

import bisect
import secrets

from twisted.internet import defer
from twisted.logger import Logger
from twisted.words.xish import domish

from dmuc.muc import registration, voice
from dmuc.master.room import NOT_IN_ROOM, Room
from dmuc.master.tombstones import DEFAULT_EXPIRY, Tombstones
from dmuc.muc import compact, forms, invitations, restart, room_copy
from dmuc.muc import archive, limits, paging
from dmuc.muc.limits import Limits
from dmuc.muc.history import History
from dmuc.muc.model import HistoryRequest, JoinRequest, Sender
from dmuc.xmpp import namespaces as ns
from dmuc.xmpp.addressing import (
    MalformedAddress, domain_of, master_room_jid, mirror_room_jid)
from dmuc.xmpp.component import ComponentHandler
from dmuc.xmpp.stanzas import (
    StanzaError, child, child_text, error_condition, error_reply, make_stanza, parse_jid, payload,
    result_reply, strip_children)
from dmuc.xmpp.timestamps import parse_timestamp

log = Logger(namespace="dmuc.master")

KICKABLE_ERRORS = {
    "gone", "internal-server-error", "item-not-found", "jid-malformed",
    "recipient-unavailable", "redirect", "remote-server-not-found",
    "remote-server-timeout", "service-unavailable"}

# Seconds the master remembers an invitation it asked a mirror to deliver.
RELAY_TIMEOUT = 60


#: [master] max_history_messages by default: Prosody has no bound unless
#: its operator sets one, and a room's owner could then make the process
#: grow without limit.
DEFAULT_MAX_HISTORY = 1000


class MasterMUC(archive.ArchiveHost, ComponentHandler):
    """
    The master MUC service for one component domain.

    @ivar domain: the service's JID, e.g. C{conference.fairfax.test}.
    @ivar rooms: room bare JID -> L{Room}, every live or persistent room.
    """

    def __init__(self, domain, store, clock, name="dmuc chat rooms",
                 trusted_mirrors=None, monitor=None, tombstone_expiry=DEFAULT_EXPIRY,
                 redirect_to_mirrors=False, compact=True,
                 max_history_messages=DEFAULT_MAX_HISTORY, limits=None):
        """
        @param trusted_mirrors: mirror service domain -> the user domains it
            may speak for (docs/protocol.md 8).
        @param redirect_to_mirrors: send a user of a mirror-served domain
            who joins a room directly to its mirror room (DMUC1).
        @param tombstone_expiry: seconds a destroyed persistent room answers
            C{gone} (L{Tombstones}); 0 for never.
        @param compact: offer mirrors the compact profile
            (dmuc/muc/compact.py); without it we speak as dmuc did before.
        @param max_history_messages: the most messages of history a room
            keeps, whatever its owner asks (Prosody's option of that name).
        @param limits: the operator's other bounds (L{Limits}): by default
            none.
        """
        self.max_history_messages = max_history_messages
        self.limits = limits or Limits()
        ComponentHandler.__init__(self, domain, store, clock, monitor)
        self.trusted_mirrors = dict(trusted_mirrors or {})
        self.name = name
        self.rooms = {}
        self.tombstones = Tombstones(self, tombstone_expiry)
        self.offers_compact = compact
        self._compact_mirrors = set()   # mirror services that wrote compactly
        self._acks = {}                 # mirror service -> [(room JID, <a/>)] to send
        self._acks_flush = None
        self._held = []                 # stanzas for others, sent after the acks
        self.redirect_to_mirrors = redirect_to_mirrors
        self._relayed_invitations = {}   # IQ id -> the invitation a mirror delivers

    @property
    def tombstone_expiry(self):
        return self.tombstones.expiry

    @tombstone_expiry.setter
    def tombstone_expiry(self, seconds):
        self.tombstones.expiry = seconds

    # -- start-up

    @defer.inlineCallbacks
    def load(self):
        """Bring back the persistent rooms and their history from storage."""
        records = yield self.store.load_rooms()
        yield self.load_each(records, self._load_room)
        yield self.tombstones.load()
        log.info("{domain}: loaded {count} persistent room(s)",
                 domain=self.domain, count=len(self.rooms))

    @defer.inlineCallbacks
    def _load_room(self, record):
        room = Room.from_record(record, self)
        self.bounded(room.config)
        entries = yield self.store.load_history(record.jid, room.config.history_length)
        room.history = History(entries)
        self.rooms[record.jid] = room

    # -- the room host interface (send, now, new_id: ComponentHandler)

    def stored(self, d, room, what):
        # Whatever the master writes, what it sends next tells someone it
        # is done (a message's echo and its copy to the mirrors, a
        # configuration's result, a destruction's presences): it waits
        # for the write, so a crash cannot take back what was told.
        ComponentHandler.stored(self, d, room, what)
        self.send_after_writes()

    def save(self, room):
        if room.config.persistent:
            self.stored(self.store.save_room(room.to_record()), room, "save the room")

    def store_message(self, room, entry):
        self.stored(self.store.append_history(room.jid, entry,
                                              room.config.history_length),
                    room, "store a message")

    def configured(self, room, old_config):
        for via in sorted(room.synced_mirrors):
            self.send(room.config_push(via))
        if room.config.persistent:
            self.save(room)
            if not old_config.persistent:
                for entry in room.history:
                    self.store_message(room, entry)
        elif old_config.persistent:
            self.stored(self.store.delete_room(room.jid), room, "delete the room")
            if room.is_empty():
                self.forget(room)

    def mirror_synced(self, via):
        """A mirror depends on us now: watch the link to its service."""
        self.monitors.watch(via.split("@")[-1])

    # -- stop and start (docs/monitor.md): occupants are not kept over a
    # restart, so everyone who counts on them is told.

    _announced = False

    def connectionInitialized(self):
        ComponentHandler.connectionInitialized(self)
        if not self._announced:
            # Once per process: after a reconnection to Prosody we still
            # count our occupants.
            self._announced = True
            for mirror in sorted(self.trusted_mirrors):
                self.send(restart.start_notice(self.domain, mirror))

    def shutdown(self):
        """
        The service stops: each occupant of this site gets its own leave
        with status 332; each mirror service with users here one notice
        (the same 332), after which it treats our rooms as split.
        """
        mirrors = set()
        for room in list(self.rooms.values()):
            for occupant in list(room.occupants.values()):
                if occupant.via is not None:
                    mirrors.add(occupant.via.split("@")[-1])
                    if occupant.address != occupant.real_jid.full():
                        continue   # the mirror tells its user (a DMUC3 joiner: we do)
                for address in occupant.addresses():   # every device
                    presence = restart.shutdown_presence(
                        room.occupant_jid(occupant.nick),
                        room.get_affiliation(occupant.real_jid), occupant.real_jid.full())
                    presence["to"] = address
                    self.send(presence)
        for mirror in sorted(mirrors):
            self.send(restart.stop_notice(self.domain, mirror))
        log.info("{domain}: stopping; occupants told (332), and mirror services {mirrors}",
                 domain=self.domain, mirrors=", ".join(sorted(mirrors)) or "(none)")

    def split(self, peer, reason):
        for room in list(self.rooms.values()):
            room.mirror_split(peer)

    def netjoin(self, peer):
        # The mirror drives the resync (it joins its users again); the
        # master only makes sure it knows it has to.
        for room in list(self.rooms.values()):
            room.mirror_netjoin(peer)

    def forget(self, room):
        """The room is gone: destroyed, or temporary and empty."""
        if self.rooms.get(room.jid) is room:
            del self.rooms[room.jid]
        if room.config.persistent:
            self.stored(self.store.delete_room(room.jid), room, "delete the room")
        # As Prosody's mod_muc_mam: a room's archive goes with the room.
        self.delete_archive(room)
        log.info("{room}: room removed", room=room.jid)

    def destroyed(self, room, alternate, reason):
        """An owner destroyed the room: forgotten, and a persistent one
        leaves a tombstone."""
        self.forget(room)
        self.tombstones.bury(room, alternate, reason)

    # -- dispatch

    def _dispatch(self, stanza, name, sender, recipient):
        if recipient.user is None:
            self._to_service(stanza, name, sender)
            return
        room_jid = recipient.userhost()
        room = self.rooms.get(room_jid)
        if room is None:
            self.check_loadable(room_jid)
        if room is None and self.tombstones.check(room_jid, stanza):
            return
        jid = self._occupant_address(stanza, name, sender, room_jid)
        sender = self._sender(stanza, jid, room_jid)
        if sender is None:
            self._from_mirror_room(room, stanza, name, jid)
            return
        if room is None:
            if name == "presence" and self._is_join(stanza):
                self._create(stanza, sender, recipient)
                return
            if stanza.getAttribute("type") == "error":
                return
            raise StanzaError("item-not-found", by=self.domain)
        if recipient.resource is not None:
            if name == "presence" and self._redirected(room, stanza, sender):
                return
            self._to_occupant(room, stanza, name, sender, recipient.resource)
        else:
            self._to_room(room, stanza, name, sender)

    # -- trust (docs/protocol.md 7, 8)

    def _occupant_address(self, stanza, name, jid, room_jid):
        """
        The mirror occupant JID behind a compact room message that a
        trusted mirror sent from its service's own JID with the nick as
        resource (docs/protocol.md 12): the room is the message's C{to},
        so the long occupant JID need not cross the link.  Anything else
        keeps its sender.
        """
        if not (name == "message" and jid.user is None and jid.resource and self.offers_compact
                and jid.host in self.trusted_mirrors and compact.is_compact_upload(stanza)):
            return jid
        jid = parse_jid("%s/%s" % (mirror_room_jid(room_jid, jid.host), jid.resource))
        stanza["from"] = jid.full()
        return jid

    def _sender(self, stanza, jid, room_jid):
        """
        Who a stanza for C{room_jid} really comes from.

        @return: a L{Sender}, or C{None} for a mirror room's own traffic
            (sync IQs and their answers).
        @raise StanzaError: C{not-allowed} for mirror traffic that is not
            trusted, C{jid-malformed} for a malformed mirror address.
        """
        allowed = self.trusted_mirrors.get(jid.host)
        if allowed is not None and self.offers_compact and compact.is_compact_upload(stanza):
            self._expand_compact(stanza, jid, room_jid)
        elif allowed is not None and child(stanza, "fmuc", ns.FMUC) is not None:
            self._compact_mirrors.discard(jid.host)   # an older mirror after all
        envelope = child(stanza, "fmuc", ns.FMUC)
        if allowed is None:
            if envelope is not None or compact.is_compact_upload(stanza):
                self._refuse(_untrusted_envelope(jid), jid, room_jid)
            literal = child(stanza, "dmuc", ns.DMUC3)
            if literal is not None:
                return self._literal_join_sender(literal, jid, room_jid)
            return Sender.local(jid)
        if jid.user is None:
            self._refuse("a mirror service wrote to a room from its own JID", jid, room_jid)
        try:
            mirrored = master_room_jid(jid.user)
        except MalformedAddress:
            log.warn("{room}: refused a malformed mirror address {jid}",
                     room=room_jid, jid=jid.full())
            raise StanzaError("jid-malformed", text="Malformed mirror room address")
        if mirrored != room_jid:
            self._refuse("a mirror room wrote to another room", jid, room_jid)
        if jid.resource is None and (envelope is None or not (
                registration.is_users_own_iq(stanza)
                or invitations.is_invite_or_decline(stanza))):
            return None
        if envelope is None:
            if stanza.getAttribute("type") in ("error", "result"):
                return self._known_mirror_occupant(jid)
            self._refuse("mirror traffic without the fmuc envelope", jid, room_jid)
        real = parse_jid(envelope.getAttribute("from"))
        if real is None or real.user is None:
            log.warn("{room}: refused a malformed real JID {real!r} from {jid}",
                     room=room_jid, real=envelope.getAttribute("from"), jid=jid.full())
            raise StanzaError("jid-malformed", text="Malformed real JID in the envelope")
        if real.host not in allowed:
            self._refuse("mirror %s spoke for %s, outside %s" % (
                jid.host, real.full(), ", ".join(allowed)), jid, room_jid)
        return Sender(real, jid.full(), jid.userhost())

    def _expand_compact(self, stanza, jid, room_jid):
        """A trusted mirror's compact envelope, made the full one; the
        mirror has said it speaks the compact profile."""
        room = self.rooms.get(room_jid)
        known = room.mirror_user(jid.full()) if room is not None else None
        try:
            compact.expand_upload(stanza, known.full() if known is not None else None)
        except compact.UnknownUser:
            # As for any stanza from someone not in the room; its client
            # joins again (the master forgot the mirror's users: a restart).
            raise StanzaError("not-acceptable", type="cancel", text=NOT_IN_ROOM)
        except ValueError as e:
            log.warn("{room}: refused a stanza from mirror occupant {jid}: {why}",
                     room=room_jid, jid=jid.full(), why=e)
            raise StanzaError("bad-request", text="Malformed DMUC envelope: %s" % (e,))
        self._compact_mirrors.add(jid.host)

    def bounded(self, config):
        """C{config} within the operator's bounds: its history within
        L{max_history_messages}, its size within C{max_occupants_per_room}."""
        config.history_length = min(config.history_length, self.max_history_messages)
        config.default_history = min(config.default_history, config.history_length)
        cap = self.limits.max_occupants_per_room
        if cap:
            config.max_users = min(config.max_users or cap, cap)
        return config

    def _check_presence_size(self, presence, sender, room_jid):
        """A user's own presence, bounded; a mirror bounds its users' (and
        adds its envelope)."""
        if sender.via is None and presence.getAttribute("type") is None:
            limits.check_presence_size(self.limits, presence, room_jid)

    def rooms_owned(self, bare_jid):
        return sum(1 for room in self.rooms.values()
                   if room.affiliations.get(bare_jid) == "owner")

    def occupant_count(self):
        """Occupants of every room, for the metrics."""
        return sum(len(room.occupants) for room in self.rooms.values())

    def describe_rooms(self):
        """The rooms and who is in them, for an operator (C{dmuc rooms})."""
        return [{"room": jid, "occupants": [
                    {"nick": o.nick, "role": o.role,
                     "affiliation": room.get_affiliation(o.real_jid),
                     "jid": o.real_jid.full(), "via": o.via or ""}
                    for o in sorted(room.occupants.values(), key=lambda o: o.nick)]}
                for jid, room in sorted(self.rooms.items())]

    def speaks_compact(self, via):
        """Whether the mirror (room) C{via} wrote to us in the compact
        profile, and so reads it (dmuc/muc/compact.py)."""
        return via.rpartition("@")[2] in self._compact_mirrors

    def mirror_address(self, via):
        """Where a room's broadcast for the mirror room C{via} goes: the
        compact profile sends it to the mirror service, which knows the
        mirror room from the sender (the master room)."""
        return via.rpartition("@")[2] if self.speaks_compact(via) else via

    # -- acknowledgements, several to a stanza

    def send_ack(self, room_jid, via, origin_id, stanza_id, timestamp):
        """
        Acknowledge a message of the mirror room C{via} (L{room_copy.ack}).
        In the compact profile the acknowledgements made while we read one
        burst from the link go in one stanza: it is sent before anything
        else for that mirror and at the latest when the reactor turns, so
        nothing waits and the room's order is kept.  What we send others
        (our own users' copies) in the meantime waits behind them in this
        turn: the origin mirror's users are a link away from their
        message, ours are not (L{send}).
        """
        if not self.speaks_compact(via):
            self.send(room_copy.ack(room_jid, via, origin_id, stanza_id, timestamp))
            return
        host = via.rpartition("@")[2]
        if any(domain_of(held.getAttribute("to") or "") == host for held in self._held):
            self._release_held()   # they came first in the room's order
        pending = self._acks.get(host)
        if pending and pending[-1][0] != room_jid:
            self._flush_acks(host)
        self._acks.setdefault(host, []).append(
            (room_jid, compact.ack(origin_id, stanza_id, timestamp)))
        if self._acks_flush is None:
            self._acks_flush = self.clock.callLater(0, self._flush_all_acks)

    def send(self, stanza):
        """
        Send, after the acknowledgements due to the stanza's mirror service.
        While any are due, a stanza for somewhere without any is held to
        the end of the turn: each destination keeps its own order (a
        service with acknowledgements due never has a stanza held).
        """
        if self._acks or self._held:
            host = domain_of(stanza.getAttribute("to") or "")
            if host in self._acks:
                self._flush_acks(host)
            elif self._acks:
                self._held.append(stanza)
                return
            else:
                self._release_held()
        ComponentHandler.send(self, stanza)

    def _flush_acks(self, host):
        pending = self._acks.pop(host, [])
        if pending:
            ComponentHandler.send(self, compact.acks(pending[0][0], host,
                                                     [element for _, element in pending]))

    def _flush_all_acks(self):
        self._acks_flush = None
        for host in list(self._acks):
            self._flush_acks(host)
        self._release_held()

    def release_output(self):
        # The service stops: what waits for the turn goes now, before the
        # writes' barriers are opened behind it.
        if self._acks_flush is not None and self._acks_flush.active():
            self._acks_flush.cancel()
        self._flush_all_acks()
        ComponentHandler.release_output(self)

    def _release_held(self):
        held, self._held = self._held, []
        for stanza in held:
            ComponentHandler.send(self, stanza)

    def _known_mirror_occupant(self, jid):
        # Answers (results, errors) from a mirror occupant carry no
        # envelope; the occupant is known by its address.
        room = self.rooms.get(master_room_jid(jid.user))
        occupant = room.occupant_by_address(jid.full()) if room else None
        if occupant is None:
            return Sender(jid, jid.full(), jid.userhost())
        return Sender(occupant.real_jid, occupant.address, occupant.via)

    def _literal_join_sender(self, literal, jid, room_jid):
        """DMUC3 example 4: the user's own JID, naming its mirror."""
        mirror = literal.getAttribute("from")
        allowed = self.trusted_mirrors.get(mirror)
        if allowed is None or jid.host not in allowed:
            self._refuse("a DMUC3 join named the untrusted mirror %r" % (mirror,),
                         jid, room_jid)
        return Sender(jid, jid.full(), mirror)

    def _refuse(self, why, jid, room_jid):
        log.warn("{room}: refused: {why} (from {jid})", room=room_jid, why=why,
                 jid=jid.full())
        raise StanzaError("not-allowed", text="Not a trusted mirror for this sender")

    def _from_mirror_room(self, room, stanza, name, mirror):
        """A mirror room's own traffic: the history request, the messages
        written during a split, sync answers."""
        kind = stanza.getAttribute("type")
        if name != "iq" or kind in ("result", "error"):
            if kind == "error":
                log.warn("{mirror} answered with an error: {cond}", mirror=mirror.full(),
                         cond=error_condition(stanza))
                if name == "iq" and room is not None and mirror.full() in room.synced_mirrors:
                    # A sync push it could not take (it holds no copy: a
                    # restart, a split during its first sync): its next
                    # user's join syncs it afresh.
                    log.info("{room}: {mirror} is no longer counted as synced",
                             room=room.jid, mirror=mirror.full())
                    room.synced_mirrors.discard(mirror.full())
            return
        query = payload(stanza)
        if room is None:
            raise StanzaError("item-not-found", by=self.domain)
        if kind == "set" and query is not None and query.uri == ns.MAM and room.config.distributed:
            # A mirror fetching what its copy of the archive lacks.
            self._answer_from_archive(room, stanza, archive.parse_query(query))
            return
        if query is None or (query.uri, query.name) != (ns.DMUC_SYNC, "room"):
            raise StanzaError("service-unavailable")
        if not room.config.distributed:
            raise StanzaError("not-allowed", text="This room does not accept mirrors")
        if kind == "set":
            element = child(query, "history", ns.MUC)
            messages = list(element.elements()) if element is not None else []
            room.accept_split_messages(mirror.full(), messages,
                                       self.trusted_mirrors[mirror.host])
            self.send(result_reply(stanza))
            return
        request = HistoryRequest()
        element = child(query, "history", ns.MUC)
        if element is not None:
            request = _history_request(element)
        reply = result_reply(stanza)
        answer = reply.addElement((ns.DMUC_SYNC, "room"))
        answer["id"] = room.jid
        paged = query.getAttribute("paged") in ("1", "true")
        roster_parts = []
        if child(query, "roster", ns.DMUC_SYNC) is not None:
            # A mirror resynchronising after a split it saw and we may not
            # have: it dropped the other sites' occupants and needs them.
            roster = room.roster_for_mirror(mirror.userhost())
            pages = list(paging.pages(list(roster.elements()))) if paged else []
            if len(pages) > 1:
                roster_parts, roster = pages[:-1], _roster_of(pages[-1])
            answer.addChild(roster)
        brief = self.speaks_compact(mirror.full())
        messages = list(room.history_for_mirror(request, query.getAttribute("after")))
        subject = room.subject_for_mirror()
        if subject is not None:
            # Last, whatever the request's limits: the mirror's users see
            # the room's subject from the first join on, and one changed
            # during a split.
            messages.append(subject)
        for message in messages:
            if brief:
                compact.history_item(message, room.jid, room.mirror_knows_occupant_id(message))
            # Inside a foreign element a stanza names its namespace.
            message.uri = message.defaultUri = ns.CLIENT
        if paged:
            # All pages but the last go ahead of the answer, on the same
            # stream: the mirror has them all when the answer comes.
            for items in roster_parts:
                self.send(_sync_part(stanza, _roster_of(items), self.new_id()))
            *parts, last = list(paging.pages(messages)) or [[]]
            for part in parts:
                self.send(_sync_part(stanza, _history_of(part), self.new_id()))
            messages = last
        _add_history(answer, messages)
        self.send(reply)

    def _is_join(self, stanza):
        return (stanza.getAttribute("type") is None
                and child(stanza, "x", ns.MUC) is not None)

    def _create(self, stanza, sender, recipient):
        if recipient.resource is None:
            raise StanzaError("item-not-found", by=self.domain)
        self._check_presence_size(stanza, sender, recipient.userhost())
        limits.check_rooms_owned(self.limits, self.rooms_owned(sender.real_jid.userhost()),
                                 recipient.userhost())
        room = Room(recipient.userhost(), self)
        self.bounded(room.config)
        room.affiliations[sender.real_jid.userhost()] = "owner"
        request = parse_join(stanza)
        if request.password:
            room.config.password = request.password
        self.rooms[room.jid] = room
        try:
            room.handle_presence(stanza, sender, recipient.resource, request,
                                 created=True)
        except Exception:
            del self.rooms[room.jid]
            raise
        log.info("{room}: created by {jid}", room=room.jid, jid=sender.real_jid.full())

    # -- invitations and joins across sites (docs/decisions.md)

    def _mirror_room_for(self, room, user):
        """The mirror room that serves C{user}, when C{room} allows mirrors
        and a trusted mirror speaks for the user's domain; else C{None}."""
        if not room.config.distributed:
            return None
        mirror = invitations.serving_mirror(self.trusted_mirrors, user)
        return mirror_room_jid(room.jid, mirror) if mirror else None

    def send_invitation(self, room, message, invitee):
        """
        A room's mediated invitation (the host interface of L{Room}): to a
        user of a mirror's site through the mirror, which sends it from
        the mirror room; clients join the room that sent an invitation.
        An older mirror refuses the request, and the invitation then goes
        as it is.
        """
        if self._mirror_room_for(room, invitee) is None:
            self.send(message)
            return
        mirror = invitations.serving_mirror(self.trusted_mirrors, invitee)
        iq_id = self.new_id()
        self._relayed_invitations[iq_id] = (mirror, message)
        # An answer lost in a split frees nothing else: forget it.
        self.clock.callLater(RELAY_TIMEOUT, self._relayed_invitations.pop, iq_id, None)
        self.send(invitations.relay_request(message, self.domain, mirror, iq_id))

    def _invitation_relayed(self, iq, sender):
        pending = self._relayed_invitations.get(iq.getAttribute("id"))
        if pending is None or pending[0] != sender.full():
            return
        del self._relayed_invitations[iq["id"]]
        if iq.getAttribute("type") == "error":
            log.info("{mirror} did not deliver an invitation ({cond}); sent direct",
                     mirror=sender.full(), cond=error_condition(iq))
            self.send(pending[1])

    def _redirected(self, room, stanza, sender):
        """
        With C{redirect_to_mirrors}, a user of a mirror-served domain
        joining the room directly gets a C{<redirect/>} to its mirror room
        and a XEP-0249 invitation there (DMUC1); one already in the room
        (another device, a rejoin) is left alone.

        @return: whether the join was answered so.
        """
        if (not self.redirect_to_mirrors or sender.via is not None
                or not self._is_join(stanza) or room.occupant_by_sender(sender) is not None
                or any(o.bare_jid == sender.real_jid.userhost()
                       for o in room.occupants.values())):
            return False
        target = self._mirror_room_for(room, sender.real_jid)
        if target is None:
            return False
        self.send(error_reply(stanza, invitations.redirect_error(target, room.jid)))
        self.send(invitations.direct_invitation(room.jid, sender.real_jid.full(), target,
                                                room.config.password))
        log.info("{room}: sent {jid} to the mirror room {target}", room=room.jid,
                 jid=sender.real_jid.full(), target=target)
        return True

    # -- stanzas to the service itself

    def _to_service(self, stanza, name, sender):
        if name != "iq":
            if name == "message" and stanza.getAttribute("type") != "error":
                raise StanzaError("service-unavailable")
            return
        kind = stanza.getAttribute("type")
        if kind in ("result", "error"):
            self._invitation_relayed(stanza, sender)
            return
        query = payload(stanza)
        key = (kind, query.uri if query is not None else None,
               query.name if query is not None else None)
        if key == ("get", ns.DISCO_INFO, "query"):
            self._reply_service_info(stanza, query)
        elif key == ("get", ns.DISCO_ITEMS, "query"):
            self._reply_service_items(stanza, query)
        elif key == ("get", ns.PING, "ping"):
            self.send_at_once(result_reply(stanza))
        elif key == ("get", ns.MUC_UNIQUE, "unique"):
            # XEP-0307: a name for a new room, as Prosody's mod_muc_unique.
            reply = result_reply(stanza)
            reply.addElement((ns.MUC_UNIQUE, "unique"), content=secrets.token_hex(9))
            self.send(reply)
        else:
            raise StanzaError("service-unavailable")

    def _reply_service_info(self, iq, query):
        if query.getAttribute("node"):
            raise StanzaError("item-not-found")
        reply = result_reply(iq)
        info = reply.addElement((ns.DISCO_INFO, "query"))
        identity = info.addElement("identity")
        identity["category"] = "conference"
        identity["type"] = "text"
        identity["name"] = self.name
        features = [ns.DISCO_INFO, ns.DISCO_ITEMS, ns.MUC, ns.DMUC3, ns.DMUC_SYNC,
                    ns.DMUC_REJOIN, ns.PING, ns.MUC_UNIQUE]
        if self.offers_compact:
            features += [ns.DMUC_COMPACT, ns.DMUC_SERVICE_FROM]
        for feature in features:
            info.addElement("feature")["var"] = feature
        self.send(reply)

    def _reply_service_items(self, iq, query):
        """
        The public rooms, in pages (XEP-0059): every answer is bounded, in
        items and in bytes, so that a service of many long-named rooms
        never sends Prosody a stanza it closes the stream for (issue 13).
        A client that does not page gets the first page and the count.
        """
        public = [jid for jid in sorted(self.rooms) if self.rooms[jid].config.public]
        wanted, start = _items_page_request(child(query, "set", ns.RSM), public)
        reply = result_reply(iq)
        items = reply.addElement((ns.DISCO_ITEMS, "query"))
        shown, size = [], 0
        for jid in public[start:start + wanted]:
            item = domish.Element((ns.DISCO_ITEMS, "item"))
            item["jid"] = jid
            if self.rooms[jid].config.name:
                item["name"] = self.rooms[jid].config.name
            size += len(item.toXml())
            if shown and size > paging.PAGE_SIZE:
                break
            items.addChild(item)
            shown.append(jid)
        if child(query, "set", ns.RSM) is not None or len(shown) < len(public):
            page = items.addElement((ns.RSM, "set"))
            if shown:
                first = page.addElement("first", content=shown[0])
                first["index"] = str(start)
                page.addElement("last", content=shown[-1])
            page.addElement("count", content=str(len(public)))
        self.send(reply)

    # -- stanzas to a room's bare JID

    def _to_room(self, room, stanza, name, sender):
        kind = stanza.getAttribute("type")
        if name == "presence":
            # Some clients send presence updates to the room JID.
            occupant = room.occupant_by_sender(sender)
            if occupant is not None:
                self._check_presence_size(stanza, sender, room.jid)
                room.handle_presence(stanza, sender, occupant.nick,
                                     parse_join(stanza))
        elif name == "message":
            self._message_to_room(room, stanza, sender, kind)
        else:
            self._iq_to_room(room, stanza, sender, kind)

    def _message_to_room(self, room, stanza, sender, kind):
        if kind == "groupchat":
            nomirror = child(stanza, "nomirror", ns.FMUC) is not None
            room.handle_groupchat(stanza, sender, nomirror=nomirror)
            return
        if kind == "error":
            occupant = room.occupant_by_sender(sender)
            if occupant is not None and error_condition(stanza) in KICKABLE_ERRORS:
                room.handle_presence(stanza, sender, occupant.nick)
            return
        x = child(stanza, "x", ns.MUC_USER)
        if x is not None:
            action = payload(x)
            if action is not None and action.name == "invite" and action.getAttribute("to"):
                room.handle_invite(stanza, sender, action)
            elif action is not None and action.name == "decline" and action.getAttribute("to"):
                room.handle_decline(stanza, sender, action)
            else:
                raise StanzaError("bad-request")
            return
        fields = voice.request_fields(stanza)
        if fields is not None:
            voice.handle(room, sender, fields)
            return
        raise StanzaError("service-unavailable")

    def _iq_to_room(self, room, iq, sender, kind):
        if kind in ("result", "error"):
            return
        query = payload(iq)
        if query is None:
            raise StanzaError("bad-request")
        handler = {
            ("get", ns.DISCO_INFO): self._room_info,
            ("get", ns.DISCO_ITEMS): self._room_items,
            ("get", ns.MUC_ADMIN): self._admin_get,
            ("set", ns.MUC_ADMIN): self._admin_set,
            ("get", ns.MUC_OWNER): self._owner_get,
            ("set", ns.MUC_OWNER): self._owner_set,
            ("get", ns.PING): self._room_ping,
            ("get", registration.REGISTER): self._register,
            ("set", registration.REGISTER): self._register,
            ("get", ns.MAM): self._archive_form,
            ("set", ns.MAM): self._archive_query,
        }.get((kind, query.uri))
        if handler is None:
            raise StanzaError("service-unavailable")
        handler(room, iq, query, sender)

    def _archive_form(self, room, iq, query, sender):
        self.send(archive.query_form_reply(iq))

    def _archive_query(self, room, iq, query, sender):
        archive.check_may_query(room.get_affiliation(sender.real_jid),
                                room.config.members_only)
        self._answer_from_archive(room, iq, archive.parse_query(query))

    def _answer_from_archive(self, room, iq, query):
        d = self.load_archive(room.jid)
        d.addCallback(lambda entries: self.answer_archive_query(
            iq, query, entries, lambda entry: archive.archived_message(entry, room.jid)))
        d.addErrback(self.archive_query_failed, iq)

    def _room_ping(self, room, iq, query, sender):
        self.send(result_reply(iq))

    def _register(self, room, iq, query, sender):
        self.send(registration.handle_iq(room, iq, query, sender))

    def _room_info(self, room, iq, query, sender):
        node = query.getAttribute("node")
        if node == registration.RESERVED_NICK_NODE:
            self.send(registration.reserved_nick_info(room, iq, sender))
            return
        if node:
            # Prosody answers any other node with an empty result.
            reply = result_reply(iq)
            reply.addElement((ns.DISCO_INFO, "query"))["node"] = node
            self.send(reply)
            return
        name, features, form = room.disco_info()
        reply = result_reply(iq)
        info = reply.addElement((ns.DISCO_INFO, "query"))
        identity = info.addElement("identity")
        identity["category"] = "conference"
        identity["type"] = "text"
        identity["name"] = name
        for feature in features:
            info.addElement("feature")["var"] = feature
        info.addChild(form)
        self.send(reply)

    def _room_items(self, room, iq, query, sender):
        reply = result_reply(iq)
        reply.addElement((ns.DISCO_ITEMS, "query"))
        self.send(reply)

    def _admin_get(self, room, iq, query, sender):
        item = child(query, "item", ns.MUC_ADMIN)
        if item is None:
            raise StanzaError("bad-request")
        affiliation = item.getAttribute("affiliation")
        role = item.getAttribute("role")
        reply = result_reply(iq)
        answer = reply.addElement((ns.MUC_ADMIN, "query"))
        if affiliation and not role and affiliation in _AFFILIATIONS:
            for jid in room.affiliation_list(sender, affiliation):
                entry = answer.addElement("item")
                entry["affiliation"] = affiliation
                entry["jid"] = jid
                if room.reserved_nicks.get(jid):
                    entry["nick"] = room.reserved_nicks[jid]
        elif role and not affiliation and role in _ROLES:
            for occupant in room.role_list(sender, role):
                entry = answer.addElement("item")
                entry["affiliation"] = room.get_affiliation(occupant.real_jid)
                entry["role"] = occupant.role
                entry["jid"] = occupant.real_jid.full()
                entry["nick"] = occupant.nick
        else:
            raise StanzaError("bad-request")
        self.send(reply)

    def _admin_set(self, room, iq, query, sender):
        item = child(query, "item", ns.MUC_ADMIN)
        if item is None:
            raise StanzaError("bad-request")
        jid_text, nick = item.getAttribute("jid"), item.getAttribute("nick")
        affiliation, role = item.getAttribute("affiliation"), item.getAttribute("role")
        reason = child_text(item, "reason", ns.MUC_ADMIN)
        jid = None
        if jid_text is not None:
            jid = parse_jid(jid_text)
            if jid is None:
                raise StanzaError("jid-malformed")
            if jid.resource is not None:
                raise StanzaError("jid-malformed", text="Bare JID expected, got full JID")
        if jid is None and nick is not None and nick in room.occupants:
            jid = room.occupants[nick].real_jid.userhostJID()
        elif role and nick is None and jid is not None:
            occupant = next(
                (o for o in room.occupants.values() if o.bare_jid == jid.userhost()), None)
            if occupant is not None:
                nick = occupant.nick
        if affiliation and jid is not None and not role:
            room.set_affiliation(sender, jid, affiliation, reason)
        elif role and nick is not None and not affiliation:
            room.set_role(sender, nick, role, reason)
        else:
            raise StanzaError("bad-request")
        self.send(result_reply(iq))

    def _owner_get(self, room, iq, query, sender):
        room.check_owner(sender)
        reply = result_reply(iq)
        reply.addElement((ns.MUC_OWNER, "query")).addChild(
            forms.config_form(room.config, room.jid))
        self.send(reply)

    def _owner_set(self, room, iq, query, sender):
        room.check_owner(sender)
        action = payload(query)
        if action is None:
            raise StanzaError("bad-request")
        if action.name == "destroy":
            room.destroy(action.getAttribute("jid"),
                         child_text(action, "reason", ns.MUC_OWNER))
            log.info("{room}: destroyed by {jid}", room=room.jid, jid=sender.real_jid.full())
        elif action.name == "x" and action.uri == ns.DATA_FORMS:
            kind = action.getAttribute("type")
            codes = []
            if kind == "submit":
                if list(action.elements()):
                    codes = room.configure(self.bounded(
                        forms.parse_config_submission(action, room.config)))
            elif kind != "cancel":
                raise StanzaError("bad-request", text="Not a submitted form")
            self.send(result_reply(iq))
            room.announce_config(codes)
            return
        else:
            raise StanzaError("service-unavailable")
        self.send(result_reply(iq))

    # -- stanzas to an occupant JID

    def _to_occupant(self, room, stanza, name, sender, nick):
        if name == "presence":
            self._check_presence_size(stanza, sender, room.jid)
            request = parse_join(stanza) if child(stanza, "x", ns.MUC) is not None else None
            rejoin = child(stanza, "rejoin", ns.DMUC_SYNC) is not None and sender.via is not None
            strip_children(stanza, ns.DMUC_SYNC)
            room.handle_presence(stanza, sender, nick, request, rejoin=rejoin)
        elif name == "message":
            if (stanza.getAttribute("type") == "error"
                    and error_condition(stanza) in KICKABLE_ERRORS):
                occupant = room.occupant_by_sender(sender)
                if occupant is not None:
                    room.handle_presence(stanza, sender, occupant.nick)
                return
            room.handle_private_message(stanza, sender, nick)
        else:
            room.handle_iq_to_occupant(stanza, sender, nick)


_AFFILIATIONS = ("owner", "admin", "member", "outcast", "none")
_ROLES = ("moderator", "participant", "visitor", "none")


def parse_join(stanza):
    """
    The password and history request of a join presence.

    Malformed history attributes are ignored, as Prosody ignores them
    (C{tonumber} of junk is nil); a negative number counts as absent.
    """
    x = child(stanza, "x", ns.MUC)
    if x is None:
        return JoinRequest()
    password = child_text(x, "password", ns.MUC) or None
    element = child(x, "history", ns.MUC)
    request = _history_request(element) if element is not None else HistoryRequest()
    return JoinRequest(password=password, history=request)


#: Rooms in one disco#items answer at most (and at most PAGE_SIZE bytes).
DISCO_PAGE = 100


def _items_page_request(rsm, jids):
    """
    (how many, from which index) a disco#items request asks for: XEP-0059
    C{max} (at most L{DISCO_PAGE}) and C{after} or C{index}.
    """
    if rsm is None:
        return DISCO_PAGE, 0
    wanted = DISCO_PAGE
    text = child_text(rsm, "max", ns.RSM)
    if text is not None:
        try:
            wanted = min(max(int(text), 0), DISCO_PAGE)
        except ValueError:
            raise StanzaError("bad-request", text="Invalid RSM max")
    after, index = child_text(rsm, "after", ns.RSM), child_text(rsm, "index", ns.RSM)
    if after:
        return wanted, bisect.bisect_right(jids, after)
    if index is not None:
        try:
            return wanted, max(int(index), 0)
        except ValueError:
            raise StanzaError("bad-request", text="Invalid RSM index")
    return wanted, 0


def _add_history(holder, messages):
    holder.addChild(_history_of(messages))


def _history_of(messages):
    history = domish.Element((ns.MUC, "history"))
    for message in messages:
        history.addChild(message)
    return history


def _roster_of(items):
    roster = domish.Element((ns.DMUC_SYNC, "roster"))
    for item in items:
        roster.addChild(item)
    return roster


def _sync_part(request, content, iq_id):
    """One page of the answer to C{request} (roster items or history),
    ahead of the answer (docs/protocol.md 22): an IQ set naming the
    request it belongs to."""
    iq = make_stanza("iq", to=request.getAttribute("from"), frm=request.getAttribute("to"),
                     type="set", id=iq_id)
    part = iq.addElement((ns.DMUC_SYNC, "room"))
    part["id"] = parse_jid(request.getAttribute("to")).userhost()
    part["part"] = request.getAttribute("id")
    part.addChild(content)
    return iq


def _history_request(element):
    request = HistoryRequest(
        maxstanzas=_number(element.getAttribute("maxstanzas")),
        maxchars=_number(element.getAttribute("maxchars")),
        seconds=_number(element.getAttribute("seconds")))
    since = element.getAttribute("since")
    if since:
        try:
            request.since = parse_timestamp(since)
        except ValueError:
            pass
    return request


def _number(text):
    try:
        value = int(text)
    except (TypeError, ValueError):
        return None
    return value if value >= 0 else None


def _untrusted_envelope(jid):
    """Why a DMUC envelope from C{jid} is refused, in the operator's
    terms: a mirror this master does not trust, or a client forging it."""
    if jid.user is None or "\\40" in jid.user:
        return ("the mirror service %s is not in [master] trusted_mirrors (add it there if "
                "it is yours)" % jid.host)
    return ("a client sent the DMUC envelope, which only trusted mirror services may use "
            "(a forged sender)")
