"""
The room archive (XEP-0313 MAM on a MUC room), shared by the master and
the mirror: a query parsed at the edge (L{parse_query}), the page chosen
by plain functions over a room's archived messages (L{select}), and the
stanzas that answer it (L{result_message}, L{fin_reply}).

The rules are Prosody 0.12's mod_muc_mam with its internal archive store:
pages of 20 by default and at most 50, RSM C{after} / C{before} (an empty
C{<before/>} is the newest page), the form's C{start}, C{end},
C{after-id}, C{before-id} and C{ids} (C{with} is ignored, as Prosody
ignores it for rooms), the ids are the stanza-ids the room gave its
messages, and a page is sent oldest first unless C{<flip-page/>} asks
otherwise.
"""

from dataclasses import dataclass, field

from twisted.logger import Logger
from wokkel import data_form

from dmuc.muc.history import order_key, to_message
from dmuc.xmpp import namespaces as ns
from dmuc.xmpp.stanzas import StanzaError, child, make_stanza, result_reply
from dmuc.xmpp.timestamps import format_timestamp, parse_timestamp

_log = Logger(namespace="dmuc.archive")

DEFAULT_PAGE = 20
MAX_PAGE = 50

# The room configuration field that turns archiving on and off, and the
# status codes Prosody announces when it is submitted.
CONFIG_VAR = "muc#roomconfig_enablearchiving"
ENABLED_CODE, DISABLED_CODE = "170", "171"


@dataclass
class ArchiveQuery:
    """
    What a MAM query asks for.

    @ivar queryid: echoed in every result, or C{None}.
    @ivar start: only messages at or after this time (seconds), or C{None}.
    @ivar end: only messages at or before this time, or C{None}.
    @ivar ids: only these stanza-ids, or C{None}.
    @ivar after: the page starts after this id (RSM or C{after-id}).
    @ivar before: the page ends before this id (RSM or C{before-id}).
    @ivar backwards: RSM C{<before/>}: the page is the newest that fits,
        counted back from C{before} (or from the newest message).
    @ivar max: the page size, at most L{MAX_PAGE}.
    @ivar flip: C{<flip-page/>}: send the page newest first.
    """

    queryid: str | None = None
    start: float | None = None
    end: float | None = None
    ids: tuple | None = None
    after: str | None = None
    before: str | None = None
    backwards: bool = False
    max: int = DEFAULT_PAGE
    flip: bool = False


@dataclass
class Page:
    """
    The answer to a query.

    @ivar entries: the L{HistoryEntry}s of the page, oldest first.
    @ivar complete: no further message matches beyond this page, in the
        direction of the query.
    @ivar count: how many messages match the query's filters in all, or
        C{None} when unknown (a mirror's copy that lacks older messages).
    """

    entries: list = field(default_factory=list)
    complete: bool = True
    count: int = 0


def parse_query(query):
    """
    @param query: the C{<query xmlns='urn:xmpp:mam:2'/>} of an IQ set.
    @rtype: L{ArchiveQuery}
    @raise StanzaError: C{bad-request} for a form of another type or a
        bad time.
    """
    parsed = ArchiveQuery(queryid=query.getAttribute("queryid"))
    form = child(query, "x", ns.DATA_FORMS)
    if form is not None:
        _apply_form(parsed, data_form.Form.fromElement(form))
    rsm = child(query, "set", ns.RSM)
    if rsm is not None:
        _apply_rsm(parsed, rsm)
    parsed.flip = child(query, "flip-page", ns.MAM) is not None
    return parsed


def _apply_form(parsed, form):
    # wokkel takes FORM_TYPE as the form's namespace only when its field
    # says type='hidden'; some clients leave the type out.
    form_type = form.formNamespace
    if form_type is None and "FORM_TYPE" in form.fields:
        form_type = str((form.fields["FORM_TYPE"].values or [""])[0])
    if form_type != ns.MAM:
        raise StanzaError("bad-request", type="modify",
                          text="Unexpected FORM_TYPE, expected '%s'" % ns.MAM)
    values = {var: f.values for var, f in form.fields.items()
              if f.values and var != "FORM_TYPE"}
    parsed.start = _time(values, "start")
    parsed.end = _time(values, "end")
    parsed.after = _first(values, "after-id")
    parsed.before = _first(values, "before-id")
    if "ids" in values:
        parsed.ids = tuple(str(v) for v in values["ids"])


def _apply_rsm(parsed, rsm):
    size = child(rsm, "max", ns.RSM)
    if size is not None:
        try:
            parsed.max = max(0, int(str(size).strip()))
        except ValueError:
            raise StanzaError("bad-request", type="modify", text="Invalid RSM max")
    parsed.max = min(parsed.max, MAX_PAGE)
    after = child(rsm, "after", ns.RSM)
    if after is not None and str(after).strip():
        parsed.after = str(after).strip()
    before = child(rsm, "before", ns.RSM)
    if before is not None:
        parsed.backwards = True
        if str(before).strip():
            parsed.before = str(before).strip()


def _first(values, var):
    return str(values[var][0]) if var in values else None


def _time(values, var):
    if var not in values:
        return None
    try:
        return parse_timestamp(str(values[var][0]))
    except ValueError:
        raise StanzaError("bad-request", type="modify", text="Invalid %s" % var)


def select(entries, query):
    """
    The page a query asks for.

    @param entries: the room's archived L{HistoryEntry}s, oldest first.
    @rtype: L{Page}
    @raise StanzaError: C{item-not-found} when the id the page starts
        from is not in the archive.
    """
    matching = [e for e in entries if _matches(e, query)]
    walk, anchor, stop = matching, query.after, query.before
    if query.backwards:
        walk, anchor, stop = matching[::-1], query.before, query.after
    if anchor is not None:
        walk = walk[_index(walk, anchor) + 1:]
    chosen = []
    for entry in walk:
        if entry.stanza_id == stop or len(chosen) > query.max:
            break
        chosen.append(entry)
    complete = len(chosen) <= query.max
    chosen = chosen[:query.max]
    if query.backwards:
        chosen.reverse()
    return Page(chosen, complete, len(matching))


def _matches(entry, query):
    return ((query.start is None or entry.timestamp >= query.start)
            and (query.end is None or entry.timestamp <= query.end)
            and (query.ids is None or entry.stanza_id in query.ids))


def _index(entries, stanza_id):
    for i, entry in enumerate(entries):
        if entry.stanza_id == stanza_id:
            return i
    raise StanzaError("item-not-found", type="modify")


def needs_older(entries, query):
    """
    Whether messages older than the oldest of C{entries} could belong to
    the page: what a mirror, which holds the newest part of the archive,
    has to fetch from the master first.
    """
    if not entries:
        return True
    oldest = entries[0]
    if query.start is not None and query.start > oldest.timestamp:
        return False
    anchor = query.before if query.backwards else query.after
    ids = {e.stanza_id for e in entries}
    if anchor is not None and anchor not in ids:
        return True   # perhaps one of the older ones
    if query.ids is not None and not set(query.ids) <= ids:
        return True
    if not query.backwards:
        # Counted forward from the start: unless the page starts after an
        # id held here, it starts at the oldest message there is.
        return anchor is None
    page = select(entries, query)
    return page.complete and (not page.entries or page.entries[0] is _first_matching(entries, query))


def _first_matching(entries, query):
    return next((e for e in entries if _matches(e, query)), None)


def within(entries, now, expires):
    """
    The entries an archive still serves: those younger than C{expires}
    seconds (C{None}: kept for ever).  Expired ones are deleted daily; a
    query never shows them in between.
    """
    if expires is None:
        return list(entries)
    cutoff = now - expires
    return [e for e in entries if e.timestamp >= cutoff]


def check_may_query(affiliation, members_only):
    """
    Who may read a room's archive, as Prosody decides it: not an
    outcast, and a member of a members-only room.  Being in the room is
    not needed (a client reads the archive before it joins).

    @raise StanzaError: C{forbidden}.
    """
    if affiliation == "outcast" or (members_only and affiliation in (None, "none")):
        raise StanzaError("forbidden", type="auth")


def archived_message(entry, *room_jids):
    """
    The stored message as a result carries it: without the stanza-id the
    room put on it (the result's id is that id, as in Prosody).

    @param room_jids: the rooms whose stanza-ids are dropped (a mirror's
        copy holds the master's and its own).
    """
    message = to_message(entry)
    message.children = [
        c for c in message.children
        if not (getattr(c, "uri", None) == ns.STANZA_ID and c.name == "stanza-id"
                and c.getAttribute("by") in room_jids)]
    return message


def result_message(entry, message, query, room_jid, to):
    """
    One result of a query: C{message} (the archived message as the
    querier may see it) forwarded with its time, from the room.
    """
    wrapper = make_stanza("message", to=to, frm=room_jid)
    result = wrapper.addElement((ns.MAM, "result"))
    if query.queryid is not None:
        result["queryid"] = query.queryid
    result["id"] = entry.stanza_id
    forwarded = result.addElement((ns.FORWARD, "forwarded"))
    forwarded.addElement((ns.DELAY, "delay"))["stamp"] = format_timestamp(entry.timestamp)
    message.attributes.pop("to", None)
    # Inside a foreign element a stanza names its namespace.
    message.uri = message.defaultUri = ns.CLIENT
    forwarded.addChild(message)
    return wrapper


def in_sending_order(page, query):
    """The page's entries in the order their results are sent."""
    return page.entries[::-1] if query.flip else list(page.entries)


def fin_reply(iq, page):
    """The IQ result that ends a query: C{<fin/>} with the RSM set."""
    reply = result_reply(iq)
    fin = reply.addElement((ns.MAM, "fin"))
    if page.complete:
        fin["complete"] = "true"
    rsm = fin.addElement((ns.RSM, "set"))
    if page.entries:
        rsm.addElement("first", content=page.entries[0].stanza_id)
        rsm.addElement("last", content=page.entries[-1].stanza_id)
    if page.count is not None:
        rsm.addElement("count", content=str(page.count))
    return reply


def query_form_reply(iq):
    """The answer to an IQ get: the fields a query form may have."""
    reply = result_reply(iq)
    query = reply.addElement((ns.MAM, "query"))
    form = data_form.Form("form", formNamespace=ns.MAM)
    form.addField(data_form.Field("jid-single", "with"))
    for var in ("start", "end", "before-id", "after-id"):
        form.addField(data_form.Field("text-single", var))
    form.addField(data_form.Field("list-multi", "ids"))
    query.addChild(form.toElement())
    return reply


def features(config):
    """The disco#info features a room lists for its archive."""
    return [ns.MAM, ns.MAM_EXTENDED] if config.archiving else []


def parse_duration(text):
    """
    A retention as an operator writes it, Prosody's C{muc_log_expires_after}
    style: C{never}, a number of seconds, or a number with C{d}, C{w},
    C{m} or C{y} (days, weeks, 31-day months, years).

    @return: seconds, or C{None} for C{never}.
    @raise ValueError: anything else.
    """
    text = text.strip().lower()
    if text == "never":
        return None
    units = {"": 1, "s": 1, "d": 86400, "w": 7 * 86400, "m": 31 * 86400,
             "y": int(365.2425 * 86400)}
    number, unit = text.rstrip("sdwmy"), text[len(text.rstrip("sdwmy")):]
    if not number.strip().isdigit() or unit not in units:
        raise ValueError("not a duration: %r (e.g. 1w, 30d, 86400, never)" % text)
    return int(number.strip()) * units[unit]


# Expired messages are deleted at most this often (Prosody: daily); a
# query never shows them in between (L{within}).
EXPIRY_INTERVAL = 86400
DEFAULT_EXPIRES = 7 * 86400   # Prosody's muc_log_expires_after default, 1w


class ArchiveHost:
    """
    The archive's part of a service (master or mirror), mixed into its
    L{ComponentHandler}: it stores, expires and serves room archives.

    @ivar archive_expires: seconds an archived message is kept, or
        C{None} for ever (the operator's C{archive_expires}).
    """

    archive_expires = DEFAULT_EXPIRES
    _archive_expired_at = None

    def keeping_archives_for(self, seconds):
        """Set L{archive_expires} (the operator's); @return: this service."""
        self.archive_expires = seconds
        return self

    def archive_message(self, room, entry):
        """Keep one of C{room}'s messages in its archive."""
        self.stored(self.store.append_archive(room.jid, entry), room, "archive a message")
        self._expire_archives()

    def forget_archived(self, room, stanza_id):
        self.stored(self.store.delete_archive_entry(room.jid, stanza_id), room,
                    "forget an archived message")

    def delete_archive(self, room):
        self.stored(self.store.delete_archive(room.jid), room, "delete the archive")

    def _expire_archives(self):
        now = self.now()
        if self.archive_expires is None or (
                self._archive_expired_at is not None
                and now - self._archive_expired_at < EXPIRY_INTERVAL):
            return
        self._archive_expired_at = now
        d = self.store.expire_archive(now - self.archive_expires)
        d.addErrback(lambda failure: _log.failure(
            "{domain}: could not expire archived messages", failure, domain=self.domain))

    def load_archive(self, room_jid):
        """
        @return: Deferred firing with the room's archived messages that
            have not expired, oldest first.
        """
        d = self.store.load_archive(room_jid)
        # In history's order, which every node agrees on: messages of one
        # millisecond by id, not by when this node happened to store them
        # (a mirror stores older pages it fetched after newer messages).
        d.addCallback(lambda entries: within(sorted(entries, key=order_key), self.now(),
                                             self.archive_expires))
        return d

    def answer_archive_query(self, iq, query, entries, message_of, count_known=True):
        """
        Send the results of C{query} over C{entries}, then the C{<fin/>}.

        @param message_of: L{HistoryEntry} -> the message as the querier
            sees it (addresses of this room).
        @param count_known: false: C{entries} may lack matching older
            messages, so the C{<count/>} (optional, XEP-0059) is left out.
        """
        page = select(entries, query)
        if not count_known:
            page.count = None
        for entry in in_sending_order(page, query):
            self.send(result_message(entry, message_of(entry), query,
                                     iq.getAttribute("to"), iq.getAttribute("from")))
        self.send(fin_reply(iq, page))

    def archive_query_failed(self, failure, iq):
        """An errback: the query's error, or C{internal-server-error}."""
        if failure.check(StanzaError):
            self._reply_error(iq, failure.value)
            return
        _log.failure("{domain}: archive query failed", failure, domain=self.domain)
        self._reply_error(iq, StanzaError("internal-server-error"))
