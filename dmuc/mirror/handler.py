"""
The mirror service's protocol edge (docs/protocol.md 1-5, 7).

Stanzas come from two sides: local users (of C{local_domains}) addressing
mirror rooms, and master rooms addressing mirror rooms or their occupants.
L{MirrorMUC} tells them apart, checks them (strict XEP-0106 addresses,
local domains only, master traffic only from the room's own master,
client-supplied envelopes stripped), and hands them to the L{MirrorRoom}.
"""

from twisted.internet import defer
from twisted.logger import Logger
from twisted.words.xish import domish

from dmuc.master.handler import parse_join
from dmuc.muc.occupant_iq import RoutedIq, RoutedIqs, goes_to_bare_jid
from dmuc.muc import (
    archive, compact, invitations, limits, paging, registration, restart, room_copy)
from dmuc.muc.limits import Limits
from dmuc.muc.presence import template
from dmuc.mirror.archive import MirrorArchiveHost
from dmuc.mirror.leaving import LeavesInFlight
from dmuc.mirror.room import MirrorRoom, PendingJoin, name_ourselves
from dmuc.xmpp import namespaces as ns
from dmuc.xmpp.addressing import MalformedAddress, master_room_jid, mirror_room_jid
from dmuc.xmpp.component import ComponentHandler
from dmuc.xmpp.multicast import Multicast
from dmuc.xmpp.timestamps import format_timestamp
from dmuc.xmpp.stanzas import (
    StanzaError, child, child_text, copy_element, error_condition, error_reply, make_stanza,
    parse_jid, payload, result_reply, strip_children)

log = Logger(namespace="dmuc.mirror")

DMUC_FEATURES = (ns.DMUC3, ns.DMUC_SYNC)


class MirrorMUC(MirrorArchiveHost, ComponentHandler):
    """
    The mirror room service for one component domain.

    @ivar rooms: mirror room bare JID -> L{MirrorRoom}.
    """

    def __init__(self, domain, local_domains, store, clock, fire_and_forget=False,
                 name="dmuc mirror rooms", split_mode="local", monitor=None, limits=None):
        """@param limits: the operator's bounds for our users (L{Limits}):
        by default none."""
        ComponentHandler.__init__(self, domain, store, clock, monitor)
        self.limits = limits or Limits()
        self.split_mode = split_mode
        self.local_domains = tuple(local_domains)
        self.fire_and_forget = fire_and_forget
        self.name = name
        self.rooms = {}
        self._masters = {}        # master service -> its features / False / [waiting joins]
        self._forwarded_iqs = RoutedIqs(clock)  # IQs routed to or for occupants
        self._uploads = {}        # our id -> (room JID, how many split messages it carries)
        # room JID -> the id of its latest history request: a resync
        # started again (the master restarted) makes earlier answers stale.
        self._history_wanted = {}
        self._history_parts = {}  # our history request's id -> pages come so far
        self._roster_parts = {}   # room JID -> pages of a roster push come so far
        self._stopping = set()     # master services that said they stop
        self._saved_shapes = {}   # room JID -> what of it a crash may not lose, as saved
        self._leaving = LeavesInFlight()
        self.multicast = Multicast(self, self.local_domains)

    def connectionInitialized(self):
        ComponentHandler.connectionInitialized(self)
        # Whether our server takes one stanza for many of our users.
        self.multicast.probe()
        # What the masters of the rooms we hold offer (the compact profile)
        # is not kept across a restart: ask now, not at the next join.
        for host in sorted({r.master_jid.rpartition("@")[2] for r in self.rooms.values()
                            if r.synced}):
            if not isinstance(self._masters.get(host), list):
                # A room we mirror from there proves it speaks DMUC.
                self._masters.setdefault(host, frozenset([ns.DMUC_SYNC]))
                self._ask_master_features(host)
        # What our users wrote during a split and a crash kept from the
        # master (an upload cut short) goes up now; a room still split
        # sends it at the netjoin.
        for room in list(self.rooms.values()):
            if room.split_messages and not room.split:
                self._upload_split_messages(room)

    def send_to_all(self, prepared, addresses):
        """A L{prepare}d stanza to each of C{addresses} (our users' full
        JIDs): by multicast where the local server lets us."""
        self.multicast.send(prepared, addresses)

    @defer.inlineCallbacks
    def load(self):
        """Bring back the mirror rooms' copies (config, roster, history)."""
        records = yield self.store.load_rooms()
        # A copy that cannot be read (it may hold what its users wrote
        # during a split) is refused, not copied anew over it.
        yield self.load_each(records, self._load_room)
        log.info("{domain}: loaded {count} mirror room(s)", domain=self.domain,
                 count=len(self.rooms))
        for room in self.rooms.values():
            host = room.master_jid.split("@")[-1]
            self.monitors.watch(host)
            if room.split:
                # Stopped during a split: resync at the first answer.
                self.monitors.monitors[host].assume_split()

    @defer.inlineCallbacks
    def _load_room(self, record):
        entries = yield self.store.load_history(
            record.jid, record.config.get("room_config", {}).get("history_length", 20))
        outbox = yield self.store.load_outbox(record.jid)
        room = self.rooms[record.jid] = MirrorRoom.from_record(record, self, entries, outbox)
        older = len(record.config.get("split_messages", ()))
        if older:
            # An older dmuc kept them in the record: the outbox has them
            # now, and the record is written without them.
            for message in room.split_messages[:older]:
                self.keep_split_message(room, message)
            self.save_soon(room, "save the room copy")

    # -- host interface of MirrorRoom (send, now, new_id: ComponentHandler)

    def save(self, room):
        # The copy holds the whole roster and changes at every presence:
        # one write per room and SAVE_DELAY, all flushed at stop.  What a
        # crash may not lose is written at once: which of our users are in
        # (else they would be out of the room without knowing it), the
        # split and what they wrote during it.
        self.save_soon(room, "save the room copy")
        shape = room.crash_relevant_state()
        if self._saved_shapes.get(room.jid) != shape:
            self._saved_shapes[room.jid] = shape
            self.flush()
            # The room saves before it tells (a join's sequence, a
            # leave): what it tells leaves once the copy is written.
            self.send_after_writes()

    def keep_split_message(self, room, message):
        """@return: a Deferred that fires (never fails: a failure is
        logged) when the write ended."""
        written = self.store.append_outbox(room.jid, message)
        self.stored(written, room, "keep a message for the master")
        return written

    def drop_split_messages(self, room, count):
        self.stored(self.store.delete_outbox(room.jid, count), room,
                    "forget messages the master has")

    def store_message(self, room, entry):
        self.stored(self.store.append_history(room.jid, entry, room.config.history_length),
                    room, "store a message")

    def forget_message(self, room, entry):
        self.stored(self.store.delete_history_entry(room.jid, entry.stanza_id), room,
                    "replace a message")

    def user_left(self, room, occupant):
        self.maybe_idle(room)
        for stanza in self._leaving.answered(room.jid, occupant.nick):
            self._replay_presence(stanza)

    def _replay_presence(self, stanza):
        """A user's presence held while its leave was in flight, taken
        now as if it had just come."""
        try:
            self._dispatch(stanza, "presence", parse_jid(stanza["from"]),
                           parse_jid(stanza["to"]))
        except StanzaError as e:
            self._reply_error(stanza, e)

    def maybe_idle(self, room):
        """A mirror room nobody here uses any more is dropped: the master
        sends it nothing more (<left/>), and a new join syncs afresh."""
        if room.is_idle() and self.rooms.get(room.jid) is room:
            del self.rooms[room.jid]
            self.cancel_save(room.jid)
            self.stored(self.store.delete_room(room.jid), room, "delete the room copy")
            # The copy of the archive would miss what is said until the
            # next sync: a copy with holes would answer wrongly.
            self.delete_archive(room)

    # -- dispatch

    def _dispatch(self, stanza, name, sender, recipient):
        if self.multicast.refused(stanza, sender):
            return
        if recipient.user is None and name != "iq" and sender.user is not None:
            # The compact profile sends a room's broadcast to the service:
            # the master room it comes from names our room.  With a
            # resource it is for one of our occupants: a bounce of a
            # message that went up from the service's JID.
            room_jid = mirror_room_jid(sender.userhost(), self.domain)
            if room_jid in self.rooms:
                recipient = parse_jid(room_jid + ("/" + recipient.resource
                                                  if recipient.resource else ""))
        if recipient.user is None:
            self._to_service(stanza, name, sender)
            return
        try:
            master_jid = master_room_jid(recipient.user)
        except MalformedAddress:
            log.warn("{domain}: refused {name} from {jid} to the malformed address {to}",
                     domain=self.domain, name=name, jid=sender.full(), to=recipient.full())
            raise StanzaError("jid-malformed", text="Not a mirror room address")
        room_jid = recipient.userhost()
        if room_jid not in self.rooms:
            self.check_loadable(room_jid)
        master_host = master_jid.split("@", 1)[1]
        if sender.host == master_host:
            self._from_master(stanza, name, sender, recipient, master_jid, room_jid)
        elif sender.host in self.local_domains:
            try:
                self._from_user(stanza, name, sender, recipient, master_jid, room_jid)
            except StanzaError as error:
                if stanza.getAttribute("type") not in ("error", "result"):
                    log.info("refused {user}'s {name} to {to}: {condition}{text}",
                             user=sender.full(), name=name, to=recipient.full(),
                             condition=error.condition,
                             text=" (%s)" % error.text if error.text else "")
                raise _named_by_room(error, recipient, room_jid)
        else:
            log.warn("{room}: refused {name} from {jid}: not a user of {domains}",
                     room=room_jid, name=name, jid=sender.full(),
                     domains=", ".join(self.local_domains))
            if name == "presence" and _is_join(stanza):
                # Whoever may join the room does so at the master.
                raise invitations.redirect_error(master_jid, room_jid)
            raise StanzaError("not-allowed", text="This mirror serves only its local users")

    # -- the service itself

    def _to_service(self, stanza, name, sender):
        kind = stanza.getAttribute("type")
        if name == "iq" and kind in ("result", "error"):
            if not self.multicast.answer(stanza):
                self._master_disco_answer(stanza, sender)
            return
        if name == "presence":
            self._master_notice(stanza, sender)
            return
        if name != "iq":
            return
        query = payload(stanza)
        if kind == "set" and query is not None and (query.uri, query.name) == (
                ns.DMUC_SYNC, "invite"):
            self._deliver_invitation(stanza, sender)
            return
        key = (kind, query.uri if query is not None else None)
        if key == ("get", ns.DISCO_INFO):
            reply = result_reply(stanza)
            info = reply.addElement((ns.DISCO_INFO, "query"))
            identity = info.addElement("identity")
            identity["category"], identity["type"], identity["name"] = (
                "conference", "text", self.name)
            for feature in (ns.DISCO_INFO, ns.DISCO_ITEMS, ns.MUC, ns.PING):
                info.addElement("feature")["var"] = feature
            self.send(reply)
        elif key == ("get", ns.DISCO_ITEMS):
            reply = result_reply(stanza)
            items = reply.addElement((ns.DISCO_ITEMS, "query"))
            for jid in sorted(self.rooms):
                room = self.rooms[jid]
                if room.synced and room.config.public:
                    item = items.addElement("item")
                    item["jid"] = jid
                    item["name"] = room.config.name or room.master_jid
            self.send(reply)
        elif key == ("get", ns.PING):
            self.send_at_once(result_reply(stanza))
        else:
            raise StanzaError("service-unavailable")

    def _deliver_invitation(self, iq, sender):
        """A master room's mediated invitation for one of our users: sent
        from the mirror room, which the user's client will join."""
        message, master_room = invitations.relayed_invitation(iq, sender, self.local_domains)
        self.send(invitations.as_from_mirror_room(message, master_room, self.domain))
        self.send(result_reply(iq))

    # -- master feature check (docs/protocol.md 1), once per master service

    def _with_master_features(self, master_host, proceed, refuse):
        state = self._masters.get(master_host)
        if state is None and any(r.synced and r.master_jid.endswith("@" + master_host)
                                 for r in self.rooms.values()):
            # A room we already mirror from there (say, loaded after a
            # restart) proves the master speaks DMUC; what else it offers
            # (the compact profile) we learn meanwhile.
            state = self._masters[master_host] = frozenset([ns.DMUC_SYNC])
            self._ask_master_features(master_host)
        if isinstance(state, frozenset):
            proceed()
        elif state is False:
            refuse(None)
        elif isinstance(state, list):
            state.append((proceed, refuse))
        else:
            self._masters[master_host] = [(proceed, refuse)]
            self._ask_master_features(master_host)

    def _ask_master_features(self, master_host):
        iq = make_stanza("iq", to=master_host, frm=self.domain, type="get",
                         id="disco-" + self.new_id())
        iq.addElement((ns.DISCO_INFO, "query"))
        self.send(iq)

    def occupant_count(self):
        """Our own users in every room, for the metrics."""
        return sum(len(room.local_users()) for room in self.rooms.values())

    def describe_rooms(self):
        """The room copies and who is in them (ours with their JIDs), for
        an operator (C{dmuc rooms})."""
        return [{"room": jid, "master": room.master_jid, "split": room.split, "occupants": [
                    {"nick": o.nick, "role": o.role, "affiliation": o.affiliation,
                     "jid": o.user.full() if o.user is not None else (o.jid or ""),
                     "via": "" if o.user is not None else room.master_jid}
                    for o in sorted(room.roster.values(), key=lambda o: o.nick)]}
                for jid, room in sorted(self.rooms.items())]

    def _master_offers(self, room, feature):
        features = self._masters.get(parse_jid(room.master_jid).host)
        return isinstance(features, frozenset) and feature in features

    def master_speaks_compact(self, master_host):
        features = self._masters.get(master_host)
        return isinstance(features, frozenset) and ns.DMUC_COMPACT in features

    def _master_disco_answer(self, stanza, sender):
        waiting = self._masters.get(sender.host)
        query = child(stanza, "query", ns.DISCO_INFO)
        features = set()
        if query is not None and stanza.getAttribute("type") == "result":
            features = {f.getAttribute("var") for f in query.elements(ns.DISCO_INFO, "feature")}
        ok = any(f in features for f in DMUC_FEATURES)
        if not isinstance(waiting, list):
            if isinstance(waiting, frozenset) and ok:
                self._masters[sender.host] = frozenset(features)
            return
        if stanza.getAttribute("type") != "result":
            # The question never reached the service (S2S to its domain
            # failed, or it is down): say so, with what the server said.
            del self._masters[sender.host]   # ask again at the next join
            unreachable = _unreachable(stanza, sender.host)
            log.warn("cannot reach {master}: {why}; joins to its rooms fail until it "
                     "answers (asked again at the next join)", master=sender.host,
                     why=unreachable.text)
            for _, refuse in waiting:
                refuse(unreachable)
            return
        self._masters[sender.host] = frozenset(features) if ok else False
        if ok:
            log.info("{master}: speaks DMUC", master=sender.host)
        else:
            log.warn("{master} answers without DMUC (no {feature} feature): joins to its "
                     "rooms are refused; is it a dmuc master service?", master=sender.host,
                     feature=ns.DMUC_SYNC)
        for proceed, refuse in waiting:
            proceed() if ok else refuse(None)

    # -- from local users

    def _from_user(self, stanza, name, user, recipient, master_jid, room_jid):
        _strip_envelopes(stanza)
        room = self.rooms.get(room_jid)
        nick = recipient.resource
        if name == "presence":
            if stanza.getAttribute("type") is None:
                limits.check_presence_size(self.limits, stanza, room_jid)
            self._user_presence(stanza, user, nick, room, master_jid, room_jid)
        elif name == "message":
            room_copy.strip_room_claims(stanza, master_jid)
            self._user_message(stanza, user, nick, room)
        elif nick is None and (registration.is_registration_iq(stanza) or (
                room is None and _is_disco_info(stanza))):
            # A room we hold no copy of is described by the master.
            self._forward_users_own_iq(stanza, user, master_jid, room_jid)
        else:
            self._user_iq(stanza, user, nick, room)

    def _forward_users_own(self, stanza, user, master_jid, room_jid):
        """A user's own stanza to the room outside any occupancy, up from
        the mirror room with the envelope; only an IQ has an answer."""
        if stanza.name == "iq":
            self._forward_users_own_iq(stanza, user, master_jid, room_jid)
            return
        up = copy_element(stanza)
        up["from"], up["to"] = room_jid, master_jid
        self._envelope(up, user.full())
        self.send(up)

    def _forward_users_own_iq(self, stanza, user, master_jid, room_jid):
        """Nick registration, the reserved-nick query and disco#info of a
        room we hold no copy of are the master's to answer, for our users
        in the room or not."""
        if self.monitors.is_split(master_jid.split("@", 1)[1]):
            raise StanzaError("recipient-unavailable", by=room_jid,
                              text="The room's site is unreachable (network split)")
        up = copy_element(stanza)
        our_id = self.new_id()
        self._forwarded_iqs.add(our_id, RoutedIq(
            stanza.getAttribute("id"), user.full(), master_jid, room_jid, room_jid))
        up["id"], up["from"], up["to"] = our_id, room_jid, master_jid
        self._envelope(up, user.full())
        self.send(up)

    def _answer_users_own_iq(self, stanza, room_jid, master_jid):
        routed = self._forwarded_iqs.answer(stanza.getAttribute("id"),
                                            stanza.getAttribute("from"), room_jid)
        if routed is None:
            return False
        answer = copy_element(stanza)
        answer["id"], answer["from"], answer["to"] = (
            routed.their_id, routed.answer_from, routed.requester)
        for error in answer.elements(None, "error"):
            name_ourselves(error, master_jid, room_jid)
        self.send(answer)
        return True

    def _user_presence(self, stanza, user, nick, room, master_jid, room_jid):
        kind = stanza.getAttribute("type")
        current = room.occupant_of(user) if room else None
        if nick is None:
            if current is None:
                return
            nick = current.nick
        if current is None:
            if kind is not None or child(stanza, "x", ns.MUC) is None:
                if kind is None:
                    raise StanzaError("item-not-found", type="cancel",
                                      text="You are not currently connected to this chat")
                if kind == "probe":
                    # Only occupants may probe, in Prosody as at the master.
                    raise StanzaError("not-acceptable", type="cancel",
                                      text="You are not currently connected to this chat")
                return
            if room is not None and room.take_as_session(user, nick, parse_join(stanza),
                                                         stanza):
                return
            limits.check_service_room(self.limits, self.occupant_count(), room_jid)
            self._start_join(stanza, user, nick, master_jid, room_jid)
            return
        if self._leaving.hold(room.jid, current.nick, copy_element(stanza)):
            return
        if current.nick != nick and kind is None:
            self._change_nick(stanza, user, nick, room, current)
            return
        if current.nick != nick and kind != "unavailable":
            raise StanzaError("not-acceptable", by=room.jid)
        if current.others and self._session_presence(stanza, user, room, current):
            return
        joining_again = kind is None and child(stanza, "x", ns.MUC) is not None
        if room.split:
            if joining_again:
                room.refresh_locally(current, parse_join(stanza), stanza)
            else:
                room.local_presence(current, stanza)
            return
        if joining_again:
            # The same session joins again: its client lost its state.  The
            # master sees a status update; the user gets the whole sequence
            # when the master confirms it.
            room.pending[nick] = PendingJoin(user, parse_join(stanza), template(stanza),
                                             refresh=True)
            stanza = strip_children(copy_element(stanza), ns.MUC)
        elif kind is None:
            # Should the master have forgotten the user (a restart), the
            # user joins again with this presence, not the one before.
            current.presence = template(stanza)
            if self._shows_status_itself(room, current):
                self._send_up(stanza, user, room, current.nick, nomirror=True)
                room.show_status_change(current)
                return
        elif kind == "unavailable":
            self._leaving.sent(room.jid, current.nick)
        self._send_up(stanza, user, room, current.nick)

    def _shows_status_itself(self, room, occupant):
        """
        Whether our user's status change is shown here at once and goes up
        marked so (C{n='1'}), the master sending nothing back: the change
        crosses the link once.  Only with a master that speaks the compact
        profile (an older one would send its copy anyway), and for an
        occupant in the room with nothing of its own in flight: in ordered
        mode a message the user sent before, not placed by the master yet,
        is shown first (the master's answer then comes after it).
        """
        return (self.master_speaks_compact(parse_jid(room.master_jid).host)
                and occupant.nick not in room.pending
                and occupant.nick not in room.renaming
                and (self.fire_and_forget or not room.awaits_master(occupant.nick)))

    def _change_nick(self, stanza, user, nick, room, occupant):
        """
        Our user asks for another nick: the master renames it (status 303)
        as any occupant, and the mirror follows when the 303 comes
        (L{MirrorRoom.handle_self_presence}).  What this copy already
        knows is refused here, so that the refusal costs the link nothing.
        """
        if occupant.others:
            # As at the master: the user's devices keep one nick.
            raise StanzaError("not-acceptable", text="Another of your devices is in the "
                              "room under this nick", by=room.jid)
        if room.split or occupant.nick in room.pending:
            # Refused rather than carried to the netjoin, where the nick may
            # be taken by then: the user keeps its nick and loses nothing.
            raise StanzaError("recipient-unavailable", type="wait", by=room.jid,
                              text="Nick changes are not possible while the room's site "
                              "is unreachable (network split); try again later")
        if nick in room.roster or nick in room.pending:
            raise StanzaError("conflict", by=room.jid)
        room.renaming[occupant.nick] = nick
        self._send_up(stanza, user, room, occupant.nick)

    def _session_presence(self, stanza, user, room, occupant):
        """
        A presence from one of several devices sharing our user's occupant
        (docs/decisions.md): a device leaving, or any but the one the
        master knows updating its status, is dealt with here.  When the
        device the master knew leaves, the master hears of the one that
        took its place: its presence, with it in the envelope.

        @return: whether it was dealt with here.
        """
        kind = stanza.getAttribute("type")
        if kind in ("unavailable", "error"):
            known_left = room.leave_session(
                occupant, user, stanza if kind == "unavailable" else None)
            if known_left and not room.split:
                up = (copy_element(occupant.presence) if occupant.presence is not None
                      else make_stanza("presence"))
                up["to"] = room.local_jid(occupant.nick)
                self._send_up(up, occupant.user, room, occupant.nick)
            return True
        if user == occupant.user:
            return False
        if child(stanza, "x", ns.MUC) is not None:
            # The device joins again (its client lost its state).
            room.join_session(occupant, user, parse_join(stanza), template(stanza))
        else:
            room.session_presence(occupant, user, stanza)
        return True

    def _start_join(self, stanza, user, nick, master_jid, room_jid):
        master_host = master_jid.split("@", 1)[1]
        request = parse_join(stanza)

        def proceed():
            room = self.rooms.get(room_jid)
            if room is None:
                room = self.rooms[room_jid] = MirrorRoom(master_jid, room_jid, self)
                self.monitors.watch(master_host)
            if room.split:
                room.local_join(user, nick, request, template(stanza))
                return
            room.pending[nick] = PendingJoin(user, request, template(stanza))
            up = copy_element(stanza)
            strip_children(up, ns.MUC)
            x = up.addElement((ns.MUC, "x"))
            if request.password:
                x.addElement("password", content=request.password)
            self._send_up(up, user, room, nick)

        def refuse(unreachable=None):
            error = unreachable or StanzaError(
                "service-unavailable", text="The room's service %s does not offer DMUC, so "
                "this mirror cannot join you to it" % master_host)
            log.info("refused {user}'s join of {room}: {why}", user=user.full(),
                     room=master_jid, why=error.text)
            self.send(error_reply(stanza, error))

        if self.monitors.is_split(master_host) and room_jid not in self.rooms:
            raise StanzaError("recipient-unavailable",
                              text="The room's site is unreachable (network split)")
        self._with_master_features(master_host, proceed, refuse)

    def _send_up(self, stanza, user, room, nick, nomirror=False, sent=None, ack=False):
        """Forward a user's stanza to the master: from the mirror occupant
        JID, to the master room (or occupant), with the envelope (and
        C{<nomirror/>} for a fire-and-forget message; C{sent}: when our
        user sent a room message, so that one held in the link keeps its
        time; C{ack}: the master may answer with an acknowledgement instead
        of the copy: docs/decisions.md, "Protocol additions")."""
        up = copy_element(stanza)
        up["from"] = room.local_jid(nick)
        to = parse_jid(stanza.getAttribute("to"))
        up["to"] = room.master_jid + ("/" + to.resource if to and to.resource else "")
        if stanza.name == "presence" and to is not None and to.resource is None:
            up["to"] = room.master_occupant(nick)
        known = None
        if up.name == "message" and up.getAttribute("type") == "groupchat":
            # A room message comes from an occupant the master has: it
            # knows the device behind it (the one in our copy's roster).
            occupant = room.roster.get(nick)
            known = occupant.user.full() if occupant is not None and occupant.user else None
        self._envelope(up, user.full(), known, sent=sent, ack=ack, nomirror=nomirror)
        if up.name == "message" and up["to"] == room.master_jid \
                and compact.is_compact_upload(up) and self._master_offers(room, ns.DMUC_SERVICE_FROM):
            # The master knows the room from the message's to: the long
            # occupant JID need not cross the link (docs/protocol.md 12).
            up["from"] = "%s/%s" % (self.domain, nick)
        self.send(up)

    def _envelope(self, up, user, known=None, sent=None, ack=False, nomirror=False):
        """
        The envelope of a stanza going up for our user C{user} (docs/protocol.md
        7): compact (dmuc/muc/compact.py) when the master offers it, where
        C{known}, the device the master surely knows behind the occupant,
        need not be named.
        """
        master_host = parse_jid(up["to"]).host
        if self.master_speaks_compact(master_host):
            compact.add_envelope(up, user, known, sent=sent, ack=ack, nomirror=nomirror)
            return
        envelope = up.addElement((ns.FMUC, "fmuc"))
        envelope["from"] = user
        if sent is not None:
            envelope["sent"] = format_timestamp(sent)
        if ack:
            envelope[room_copy.ACK_REQUEST] = "1"
        if nomirror:
            up.addElement((ns.FMUC, "nomirror"))

    def _user_message(self, stanza, user, nick, room):
        kind = stanza.getAttribute("type")
        sender = room.occupant_of(user) if room else None
        if sender is None and nick is None and invitations.is_invite_or_decline(stanza):
            # Anyone may invite or decline, in the room or not (Prosody).
            master_jid = master_room_jid(parse_jid(stanza["to"]).user)
            self._forward_users_own(stanza, user, master_jid, parse_jid(stanza["to"]).userhost())
            return
        if sender is None:
            if kind == "groupchat" and not stanza.getAttribute("id"):
                # Prosody ids id-less messages first (so does the master),
                # so the error carries one too.
                stanza["id"] = self.new_id()
            if kind != "error":
                raise StanzaError("not-acceptable", type="cancel",
                                  text="You are not currently connected to this chat")
            return
        if kind != "error":
            limits.check_message_rate(self.limits, sender, self.now(), room.jid, user.full())
        if kind == "groupchat":
            if nick is not None:
                raise StanzaError("bad-request")
            if room.split:
                if self.split_mode != "local":
                    raise StanzaError("recipient-unavailable", text="The room is read-only "
                                      "while its site is unreachable (network split)")
                room.local_message(stanza, sender)
                return
            fire = self.fire_and_forget and child(stanza, "subject", stanza.uri) is None
            ack = False
            if child(stanza, "subject", stanza.uri) is None:
                minted = not stanza.getAttribute("id")
                if minted:
                    # As Prosody (and the master) would: the copy we may
                    # build from the master's acknowledgement has it too.
                    stanza["id"] = self.new_id()
                room.track_in_flight(stanza, sender, id_is_ours=minted, shown=fire)
                ack = not fire and room.wants_ack(sender)
            self._send_up(stanza, user, room, sender.nick, nomirror=fire, sent=self.now(),
                          ack=ack)
            if fire:
                room.fan_out_local_message(stanza, sender)
            return
        if nick is None:
            self._send_up(stanza, user, room, sender.nick)
            return
        target = room.roster.get(nick)
        if target is not None and target.user is not None:
            # Two users of this mirror talk without crossing the link.
            message = copy_element(stanza)
            strip_children(message, ns.MUC, ns.MUC_USER)
            message.addElement((ns.MUC_USER, "x"))
            if sender.occupant_id:
                # The sender's, as the master stamps it (XEP-0421).
                message.addElement((ns.OCCUPANT_ID, "occupant-id"))["id"] = sender.occupant_id
            message["from"] = room.local_jid(sender.nick)
            for address in target.addresses():   # every device of the user
                message["to"] = address
                self.send(message)
            return
        _refuse_if_split(room)
        self._send_up(stanza, user, room, sender.nick)

    def _user_iq(self, stanza, user, nick, room):
        kind = stanza.getAttribute("type")
        if nick is None and kind == "get" and room is not None:
            query = payload(stanza)
            if query is not None and query.uri in (ns.DISCO_INFO, ns.DISCO_ITEMS):
                self._room_disco(stanza, room, query)
                return
        if nick is None and kind in ("get", "set") and _is_archive_query(stanza):
            if room is None:
                raise StanzaError("item-not-found")
            if kind == "get":
                self.send(archive.query_form_reply(stanza))
            else:
                self.archive_query(stanza, room, payload(stanza), user)
            return
        if kind in ("result", "error"):
            # An answer to a request we routed; any other is dropped, as
            # Prosody drops answers it did not ask for.  It may come from
            # a bare JID (a vCard), which is no occupant.
            if room is not None:
                self._route_answer(stanza, user, room)
            return
        sender = room.occupant_of(user) if room else None
        if sender is None:
            if room is None and nick is None:
                raise StanzaError("item-not-found")
            raise StanzaError("not-acceptable", type="cancel",
                              text="You are not currently connected to this chat")
        if nick == sender.nick and restart.is_self_ping_request(stanza):
            # XEP-0410 self-ping: the room answers, from what it knows.
            room.answer_self_ping(stanza, sender)
            return
        target = room.roster.get(nick) if nick else None
        if target is not None and target.user is not None:
            self._route_to_user(stanza, room.local_jid(sender.nick), user.full(), room,
                                target.nick, target.user)
            return
        _refuse_if_split(room)
        up = copy_element(stanza)
        our_id = self.new_id()
        self._forwarded_iqs.add(our_id, RoutedIq(
            stanza.getAttribute("id"), user.full(),
            room.master_occupant(nick) if nick else room.master_jid,
            room.local_jid(nick), room.jid))
        up["id"] = our_id
        self._send_up(up, user, room, sender.nick)

    def _route_to_user(self, iq, frm, requester, room, nick, user):
        """
        A request for the occupant C{nick} of one of our users (C{user}),
        from C{frm} (an occupant JID of this mirror room): to the user's
        client, or for a vCard to the user's account (bare JID), where its
        server answers (Prosody's handle_iq_to_occupant).  The request
        gets our own id, and its answer is taken only from where it went
        (L{RoutedIqs}).

        @param requester: where the answer goes: a local user's full JID,
            or the master occupant JID of a user of another site.
        """
        our_id = self.new_id()
        self._forwarded_iqs.add(our_id, RoutedIq(
            iq.getAttribute("id"), requester, user.full(), room.local_jid(nick), room.jid))
        routed = copy_element(iq)
        routed["id"] = our_id
        routed["from"] = frm
        routed["to"] = user.userhost() if goes_to_bare_jid(iq) else user.full()
        self.send(routed)

    def _route_answer(self, stanza, responder, room):
        """
        An answer from one of our users (or its server, for a vCard) to a
        request routed by L{_route_to_user}: with the asker's id, from
        the answering occupant's JID, to the asker (a local user, or the
        master room for a user of another site).

        @return: whether it answered a request of ours.
        """
        routed = self._forwarded_iqs.answer(stanza.getAttribute("id"), responder.full(),
                                            room.jid)
        if routed is None:
            return False
        answer = copy_element(stanza)
        answer["id"] = routed.their_id
        answer["from"] = routed.answer_from
        answer["to"] = routed.requester
        if routed.requester.startswith(room.master_jid + "/"):
            # Up to the master, as every IQ of an occupant (docs/protocol.md 3):
            # for the occupant's user, whoever of its answered.
            self._envelope(answer, routed.responder)
        self.send(answer)
        return True

    def _room_disco(self, iq, room, query):
        reply = result_reply(iq)
        if query.uri == ns.DISCO_ITEMS:
            reply.addElement((ns.DISCO_ITEMS, "query"))
            self.send(reply)
            return
        name, features, form = room.disco_info()
        info = reply.addElement((ns.DISCO_INFO, "query"))
        identity = info.addElement("identity")
        identity["category"], identity["type"], identity["name"] = "conference", "text", name
        for feature in features:
            info.addElement("feature")["var"] = feature
        info.addChild(form)
        self.send(reply)

    # -- from the master

    def _from_master(self, stanza, name, sender, recipient, master_jid, room_jid):
        if sender.userhost() != master_jid:
            # Only the room itself speaks for the room (docs/protocol.md 7).
            log.warn("{room}: refused {name} from {jid}: not the master room {master}",
                     room=room_jid, name=name, jid=sender.full(), master=master_jid)
            raise StanzaError("not-allowed", text="Not this room's master")
        if (name == "iq" and recipient.resource is None
                and stanza.getAttribute("type") in ("error", "result")
                and self._answer_users_own_iq(stanza, room_jid, master_jid)):
            return
        room = self.rooms.get(room_jid)
        if room is None:
            if name == "iq" and stanza.getAttribute("type") in ("error", "result"):
                self._answer_for_dropped_room(stanza, room_jid)
            elif stanza.getAttribute("type") not in ("error", "result"):
                log.debug("{room}: no such mirror room; ignored a {name}", room=room_jid,
                          name=name)
            return
        if not self._expand_compact(stanza, sender, room):
            return
        if recipient.resource is not None:
            self._to_mirror_occupant(stanza, name, sender, recipient.resource, room)
        else:
            self._to_mirror_room(stanza, name, sender, room)

    def _answer_for_dropped_room(self, iq, room_jid):
        """
        The answer to a request we sent up for one of our users, after the
        room copy went: the owner's destroy is answered after the notices
        that emptied the copy (Prosody's order).  The request is known by
        its id alone, as for a live room.
        """
        routed = self._forwarded_iqs.answer(iq.getAttribute("id"), iq.getAttribute("from"),
                                            room_jid)
        if routed is None:
            return
        answer = copy_element(iq)
        answer["id"] = routed.their_id
        answer["from"] = routed.answer_from
        answer["to"] = routed.requester
        self.send(answer)

    def _to_mirror_room(self, stanza, name, sender, room):
        kind = stanza.getAttribute("type")
        if name == "iq":
            self._sync_iq(stanza, room, kind)
        elif name == "presence":
            envelope = child(stanza, "fmuc", ns.FMUC)
            if sender.resource is None and envelope is not None \
                    and child(envelope, "left", ns.FMUC) is not None:
                log.info("{room}: the master has no users of ours left", room=room.jid)
                room.synced = False
                room.history_requested = False
                self.maybe_idle(room)
            elif sender.resource is not None:
                room.handle_broadcast_presence(stanza, sender.resource)
        elif name == "message":
            if room_copy.is_ack(stanza):
                room.handle_ack(stanza)
            elif kind == "groupchat":
                room.handle_groupchat(stanza)
            elif kind != "error" and not self.archive_result(room, stanza):
                room.fan_out_room_message(stanza)

    def _expand_compact(self, stanza, sender, room):
        """
        What the master sent in the compact profile (dmuc/muc/compact.py),
        made what the room's code reads: an acknowledgement, a room
        message's copy, an occupant's presence.
        @return: whether the stanza is good to use.
        """
        occupant = room.roster.get(sender.resource) if sender.resource else None
        occupant_id = occupant.occupant_id if occupant is not None else None
        if stanza.name == "presence":
            if compact.has_brief_occupant_id(stanza) \
                    and not compact.expand_occupant_id(stanza, occupant_id):
                log.warn("{room}: the master's presence of {nick} relies on an occupant-id "
                         "we do not have; passed on without one", room=room.jid,
                         nick=sender.resource)
            return True
        try:
            if compact.is_compact_ack(stanza):
                compact.expand_ack(stanza)
            elif compact.is_compact_copy(stanza):
                compact.expand_copy(stanza, room.master_jid, occupant_id)
        except ValueError as e:
            log.warn("{room}: ignored a malformed message from the master ({why}): {xml}",
                     room=room.jid, why=e, xml=stanza.toXml()[:300])
            return False
        return True

    def _history_part(self, iq, part):
        """A page of the history answer to come (docs/protocol.md 22),
        kept until the answer: read with it, after its roster."""
        kept = self._history_parts.get(part.getAttribute("part"))
        if kept is None:
            raise StanzaError("unexpected-request", text="No history request of that id")
        kept.append(part)
        self.send(result_reply(iq))

    def _history_items(self, room, pages):
        """The messages of a history answer's pages, compact ones made
        full (after the roster: the occupant-ids come from it)."""
        items = []
        messages = (m for page in pages if page is not None for m in page.elements())
        for message in messages:
            nick = compact.history_item_nick(message)
            occupant = room.roster.get(nick) if nick else None
            try:
                compact.expand_history_item(
                    message, room.master_jid,
                    occupant.occupant_id if occupant is not None else None)
            except ValueError as e:
                log.warn("{room}: dropped a malformed history item from the master ({why}): "
                         "{xml}", room=room.jid, why=e, xml=message.toXml()[:300])
                continue
            items.append(message)
        return items

    def _sync_iq(self, iq, room, kind):
        if kind in ("result", "error") and self.archive_fin(iq):
            return
        upload = self._uploads.pop(iq.getAttribute("id"), None)
        if upload is not None:
            self._upload_answered(room, iq, upload[1])
            return
        if kind == "result":
            parts = self._history_parts.pop(iq.getAttribute("id"), [])
            answer = child(iq, "room", ns.DMUC_SYNC)
            if answer is not None and not self._latest_history_answer(room, iq):
                return
            if answer is not None:
                pages = parts + [answer]
                roster = joined_roster([child(p, "roster", ns.DMUC_SYNC) for p in pages])
                if roster is not None:
                    room.apply_roster(roster)
                resync = room.resyncing
                items = self._history_items(room, [child(p, "history", ns.MUC) for p in pages])
                room.apply_history(items)
                if resync and room.resync_started is not None:
                    size = sum(len(s.toXml().encode("utf-8")) for s in parts + [iq]) \
                        if self.metered else 0
                    self.resyncs.add(self.now() - room.resync_started, len(items), size)
                self._upload_split_messages(room)
            return
        if kind == "error":
            self._history_parts.pop(iq.getAttribute("id"), None)
            return
        query = payload(iq)
        if kind == "set" and query is not None and (query.uri, query.name) == (
                ns.DMUC_SYNC, "room") and query.getAttribute("part"):
            self._history_part(iq, query)
            return
        if kind == "set" and query is not None and compact.is_compact_config(query):
            room.apply_config(compact.parse_config(query))
            self.send(result_reply(iq))
            return
        if kind == "set" and query is not None and query.uri == ns.DMUC_SYNC:
            if query.name == "config":
                form = child(query, "x", ns.DATA_FORMS)
                if form is not None:
                    room.apply_config(form)
            elif query.name == "roster":
                if query.getAttribute("more") in ("true", "1"):
                    # A page of a roster over the page size: read with
                    # the last one (docs/protocol.md 22).
                    self._roster_parts.setdefault(room.jid, []).append(query)
                    self.send(result_reply(iq))
                    return
                query = joined_roster(self._roster_parts.pop(room.jid, []) + [query])
                if query.getAttribute("update") in ("true", "1"):
                    # More of what we hold (real JIDs), not a new sync.
                    room.apply_roster(query)
                    self.send(result_reply(iq))
                    return
                if room.master_forgot_us():
                    log.warn("{room}: the master dropped our users (a split we did "
                             "not see); joining them again", room=room.jid)
                    room.keep_in_flight()
                    self.send(result_reply(iq))
                    self._resync(room)
                    room.apply_roster(query)
                    return
                room.apply_roster(query)
            else:
                raise StanzaError("feature-not-implemented")
            self.send(result_reply(iq))
            if query.name == "roster" and not room.history_requested:
                self._request_history(room)
            return
        raise StanzaError("service-unavailable")

    def _latest_history_answer(self, room, iq):
        """Whether C{iq} answers the room's latest history request.  An
        earlier one's answer is dropped: it came from before a resync
        started again, and the later answer holds all it has."""
        if self._history_wanted.get(room.jid) == iq.getAttribute("id"):
            del self._history_wanted[room.jid]
            return True
        log.info("{room}: dropped the answer to an earlier history request; a later one is "
                 "under way", room=room.jid)
        return False

    def _request_history(self, room):
        room.history_requested = True
        iq = make_stanza("iq", to=room.master_jid, frm=room.jid, type="get",
                         id=self.new_id())
        query = iq.addElement((ns.DMUC_SYNC, "room"))
        query["id"] = room.master_jid
        last = room.last_master_stanza_id() if room.resyncing else None
        if last is not None:
            query["after"] = last
        if room.resyncing:
            # We dropped the other sites' occupants at the split; the master
            # pushes its roster only if it noticed the split too.
            query.addElement("roster")
        wanted = query.addElement((ns.MUC, "history"))
        if last is None:
            wanted["maxstanzas"] = str(room.config.history_length)
        # else everything since, as far as the master's history goes: our
        # copy of its length may be older than a change the split hid.
        # A history of any size comes in pages (docs/protocol.md 22).
        query["paged"] = "1"
        self._history_parts[iq["id"]] = []
        self._history_wanted[room.jid] = iq["id"]
        self.send(iq)

    def _upload_split_messages(self, room):
        """
        After a netjoin: what our users wrote during the split goes to the
        master (docs/protocol.md 6), one page at a time (22): the next when
        the master has taken this one.
        """
        if any(jid == room.jid for jid, _ in self._uploads.values()):
            return   # one page in flight at a time: each answer frees its own
        page = next(paging.pages(room.split_upload()), None)
        if page is None:
            return
        iq = make_stanza("iq", to=room.master_jid, frm=room.jid, type="set", id=self.new_id())
        history = iq.addElement((ns.DMUC_SYNC, "room"))
        history["id"] = room.master_jid
        holder = history.addElement((ns.MUC, "history"))
        for message in page:
            holder.addChild(message)
        self._uploads[iq["id"]] = (room.jid, len(page))
        self.send(iq)

    def _forget_uploads(self, room):
        """An upload whose answer a split may have lost: what it carried
        is still kept and goes up again at the netjoin (the master takes
        each message once)."""
        for iq_id in [i for i, (jid, _) in self._uploads.items() if jid == room.jid]:
            del self._uploads[iq_id]

    def _upload_answered(self, room, iq, count):
        if iq.getAttribute("type") == "result":
            room.split_messages_delivered(count)
            self._upload_split_messages(room)
            self.maybe_idle(room)
            return
        # Kept: they go up again at the next resync.
        log.warn("{room}: the master refused {count} messages our users wrote during the "
                 "split ({condition}); kept, to send again at the next netjoin",
                 room=room.jid, count=count, condition=error_condition(iq))

    # -- the link monitor

    def split(self, peer, reason):
        for room in list(self.rooms.values()):
            if room.master_jid.split("@")[-1] == peer:
                self._forget_uploads(room)
                room.enter_split(keep_messages=self.split_mode == "local",
                                 stopped=peer in self._stopping)
                for stanza in self._leaving.unanswerable(room.jid):
                    self._replay_presence(stanza)

    def netjoin(self, peer):
        self._stopping.discard(peer)
        for room in list(self.rooms.values()):
            if room.master_jid.split("@")[-1] != peer or not room.split:
                continue
            self._resync(room)

    def _resync(self, room):
        joins = room.begin_resync()
        if not joins:
            room.resyncing = False
            # Our users all left during the split: the master still gets
            # what they wrote, then the room goes.
            self._upload_split_messages(room)
            self.maybe_idle(room)
            return
        for nick, user, presence in joins:
            self._send_rejoin(room, nick, user, presence)
        # The master may not have noticed the split (one-way loss) and push
        # no roster: ask for what we missed now.
        self._request_history(room)

    def _send_rejoin(self, room, nick, user, presence):
        """Join our user again at the master, as it was (the room has
        the pending join, marked as a rejoin)."""
        up = copy_element(presence) if presence is not None else make_stanza("presence")
        up.addElement((ns.MUC, "x"))
        if self._master_offers(room, ns.DMUC_REJOIN):
            # Ours, not the user's: a kick the master made while the
            # link was down is then told, not undone (protocol.md 6).
            # An older master would show the mark to everyone.
            up.addElement((ns.DMUC_SYNC, "rejoin"))
        up["to"] = room.master_occupant(nick)
        self._send_up(up, user, room, nick)

    def rejoin_session(self, room, occupant):
        """The master dropped C{occupant} for an error of the device it
        knew; another device of the user, now the one the master knows,
        joins in its place (L{MirrorRoom.handle_self_presence})."""
        room.pending[occupant.nick] = PendingJoin(occupant.user, None, occupant.presence,
                                                  rejoin=True)
        self._send_rejoin(room, occupant.nick, occupant.user, occupant.presence)

    # -- a master that stops or restarts (docs/monitor.md)

    def _master_notice(self, presence, sender):
        """
        A master service says it stops (status 332): a split until it
        answers again.  It says it started: it counts none of our users
        any more, whatever we thought (docs/decisions.md).
        """
        if sender.user is not None or not self._rooms_of(sender.host):
            return
        if restart.is_stop_notice(presence):
            log.info("{master} is stopping", master=sender.host)
            self._stopping.add(sender.host)
            self.monitors.peer_stopped(sender.host, "%s is stopping" % sender.host)
        elif restart.is_start_notice(presence):
            log.info("{master} started again", master=sender.host)
            self._stopping.discard(sender.host)
            for room in self._rooms_of(sender.host):
                self._master_forgot(room, restarted=True)

    def _rooms_of(self, master_host):
        return [r for r in list(self.rooms.values())
                if r.master_jid.split("@")[-1] == master_host]

    def _master_forgot(self, room, restarted=False):
        """
        The master no longer counts our users (it restarted): what they
        sent meanwhile is kept, and they join again as at a netjoin.  A
        split room resyncs at the netjoin.  C{restarted}: the master said
        it started; what was on its way to the old process (rejoins, a
        history request, a page of split messages) may have gone with it
        unanswered, so a resync under way starts again, and an upload goes
        on from the first page the master did not confirm.  Without that
        word (a "not in room" answer), a resync under way is what the
        answer is about, and goes on.
        """
        if room.split or not (room.synced or room.resyncing):
            return
        if room.resyncing and not restarted:
            return
        self._forget_uploads(room)
        if not room.local_users() and not room.resyncing:
            self._upload_split_messages(room)
            return
        log.warn("{room}: the master forgot our users (it restarted{during}); joining them "
                 "again", room=room.jid, during=" during our resync" if room.resyncing else "")
        room.keep_in_flight()
        self._resync(room)

    def _not_in_master_room(self, stanza, nick, room):
        """
        An error from the master saying one of our users is not in the
        room: the master restarted without our knowing.  The user is not
        shown it (it is no fault of the user's); the room resyncs, and the
        message or presence goes up again with it.
        @return: whether the error was taken care of here.
        """
        occupant = room.roster.get(nick)
        if occupant is None or occupant.user is None or room.split:
            return False
        if not restart.says_not_in_room(stanza):
            return False
        self._master_forgot(room)
        return True

    def shutdown(self):
        """The service stops: our users are told, as the master tells its
        own (status 332); their occupancy is kept for the restart."""
        for room in list(self.rooms.values()):
            for occupant in room.local_users():
                for address in occupant.addresses():   # every device
                    presence = restart.shutdown_presence(
                        room.local_jid(occupant.nick), occupant.affiliation,
                        occupant.user.full())
                    presence["to"] = address
                    self.send(presence)

    def _to_mirror_occupant(self, stanza, name, sender, nick, room):
        kind = stanza.getAttribute("type")
        if kind == "error" and self._not_in_master_room(stanza, nick, room):
            return
        if name == "message" and kind == "error" and room.split and _is_bounce(stanza):
            return   # the split took care of the message (kept, or refused)
        if name == "presence":
            if kind == "error":
                room.handle_join_error(stanza, nick)
            else:
                room.handle_self_presence(stanza, nick)
            return
        if name == "iq" and kind in ("result", "error"):
            routed = self._forwarded_iqs.answer(stanza.getAttribute("id"),
                                                stanza.getAttribute("from"), room.jid)
            if routed is not None:
                answer = room.translate(stanza)
                answer["id"] = routed.their_id
                answer["from"] = routed.answer_from
                answer["to"] = routed.requester
                self.send(answer)
            return
        if name == "iq" and kind in ("get", "set"):
            self._master_iq_to_user(stanza, nick, room)
            return
        if not room.deliver_to_nick(stanza, nick) and kind not in ("error", "result"):
            raise StanzaError("recipient-unavailable")

    def _master_iq_to_user(self, iq, nick, room):
        """A request the master routed to one of our users' occupants
        (from a user of another site): as a local one, answered to the
        master from that occupant's mirror JID."""
        user = room.user_of_nick(nick)
        if user is None:
            raise StanzaError("recipient-unavailable")
        request = room.translate(iq)
        self._route_to_user(request, request["from"], iq["from"], room, nick, user)


def _is_join(presence):
    return presence.getAttribute("type") is None and child(presence, "x", ns.MUC) is not None


def _is_archive_query(iq):
    query = payload(iq)
    return query is not None and (query.uri, query.name) == (ns.MAM, "query")


def _is_disco_info(stanza):
    query = payload(stanza)
    return (stanza.getAttribute("type") == "get" and query is not None
            and query.uri == ns.DISCO_INFO)


def _refuse_if_split(room):
    """Users of other sites are out of reach during a split."""
    if room.split:
        raise StanzaError("recipient-unavailable", by=room.jid,
                          text="Not reachable during a network split")


def _named_by_room(error, recipient, room_jid):
    """
    An error the mirror room makes about a user's stanza names the room in
    C{by}, as Prosody's rooms do, unless it comes from the room's own JID
    anyway (a stanza to the bare room).

    @type error: L{StanzaError}
    @param recipient: the JID the user's stanza was addressed to.
    """
    if error.by is None and recipient.resource is not None:
        error.by = room_jid
    return error


def _is_bounce(stanza):
    error = child(stanza, "error", stanza.uri)
    return error is not None and any(
        e.name in ("remote-server-not-found", "remote-server-timeout")
        for e in error.elements())


def joined_roster(pages):
    """The roster the pages of a push or answer make (docs/protocol.md 22):
    every item in order, with the last page's attributes; C{None} if no
    page has a roster."""
    pages = [p for p in pages if p is not None]
    if not pages:
        return None
    if len(pages) == 1:
        return pages[0]
    roster = domish.Element((ns.DMUC_SYNC, "roster"))
    roster.attributes.update(pages[-1].attributes)
    roster.attributes.pop("more", None)
    for page in pages:
        for item in list(page.elements()):
            roster.addChild(item)
    return roster


def _strip_envelopes(stanza):
    """A client's own <fmuc/> or <dmuc/> is never forwarded (docs/protocol.md 7),
    nor a DMUC <time/>, which decides where a message goes in history."""
    strip_children(stanza, ns.FMUC, ns.DMUC3, ns.DMUC_SYNC, ns.DMUC_COMPACT)


def _unreachable(answer, master_host):
    """The error a user gets when the master's service cannot be asked:
    the server's condition, and its words (Prosody's bounce names the S2S
    failure), as Prosody tells a user whose server cannot reach a room."""
    condition = error_condition(answer) or "remote-server-not-found"
    error = child(answer, "error", answer.uri)
    text = child_text(error, "text", ns.STANZAS) if error is not None else None
    kind = error.getAttribute("type", "cancel") if error is not None else "cancel"
    return StanzaError(condition, type=kind, text="The room's server %s cannot be reached "
                       "(%s%s)" % (master_host, condition, ": " + text if text else ""))
