"""
A mirror room's archive (XEP-0313): answered from the mirror's own copy,
so scrolling back costs the link nothing for what the mirror holds.

The copy holds every message the mirror room has seen since its first
sync (the history it got then, and every message after).  A query that
reaches past the oldest of them makes the mirror fetch the older ones
from the master room, with a MAM query of its own (from the mirror room
JID: docs/decisions.md, "Protocol additions"), and keep them: each older
page crosses the link once.  Once the master says it has nothing older
(C{complete}), the copy is the whole archive and the mirror stops asking.
"""

from twisted.internet import defer
from twisted.logger import Logger

from dmuc.muc import archive
from dmuc.storage.records import HistoryEntry
from dmuc.xmpp import namespaces as ns
from dmuc.xmpp.stanzas import child, copy_element, make_stanza
from dmuc.xmpp.timestamps import parse_timestamp

log = Logger(namespace="dmuc.mirror")

# One fetch asks the master for a full page; one query makes at most this
# many fetches (a time range far back may need several).
MAX_FETCHES = 20
# Without the master's answer in this time, the query is answered from
# what the copy holds.
FETCH_TIMEOUT = 30


class _Fetch:
    """One MAM query of the mirror room to its master room, under way."""

    def __init__(self, room):
        self.room = room
        self.entries = []
        self.deferred = defer.Deferred()
        self.timeout = None


class MirrorArchiveHost(archive.ArchiveHost):
    """
    The mirror service's part of the archive, mixed into L{MirrorMUC}.
    """

    def archive_query(self, iq, room, query, user):
        """
        A local user's MAM query of a mirror room: checked as the master
        would (the copy knows the affiliations of those in the room),
        answered from the copy once what it lacks is fetched.
        """
        occupant = room.occupant_of(user)
        archive.check_may_query(occupant.affiliation if occupant else "none",
                                room.config.members_only)
        self._answer_archive(iq, room, archive.parse_query(query), MAX_FETCHES)

    def _answer_archive(self, iq, room, query, fetches):
        d = self.load_archive(room.jid)

        def answer(entries):
            if fetches and self._may_fetch(room) and archive.needs_older(entries, query):
                fetched = self._fetch_older(room, entries)
                fetched.addCallback(lambda more: self._answer_archive(
                    iq, room, query, fetches - 1 if more else 0))
                return fetched
            self.answer_archive_query(
                iq, query, entries,
                lambda entry: room.translate(
                    archive.archived_message(entry, room.master_jid, room.jid)),
                count_known=room.archive_complete or not _reaches_back(entries, query))
        d.addCallback(answer)
        d.addErrback(self.archive_query_failed, iq)

    def _may_fetch(self, room):
        return not room.archive_complete and not room.split and room.synced

    def _fetch_older(self, room, entries):
        """
        Ask the master room for the page before the oldest message of the
        copy it gave an id.

        @return: Deferred firing with whether anything new came.
        """
        oldest = next((e for e in entries if room.is_master_copy(e)), None)
        iq = make_stanza("iq", to=room.master_jid, frm=room.jid, type="set",
                         id=self.new_id())
        query = iq.addElement((ns.MAM, "query"))
        query["queryid"] = iq["id"]
        rsm = query.addElement((ns.RSM, "set"))
        rsm.addElement("max", content=str(archive.MAX_PAGE))
        rsm.addElement("before", content=oldest.stanza_id if oldest else None)
        fetch = _Fetch(room)
        fetch.timeout = self.clock.callLater(FETCH_TIMEOUT, self._fetch_done, iq["id"],
                                             None)
        self._archive_fetches()[iq["id"]] = fetch
        self.send(iq)
        return fetch.deferred

    _fetches = None   # our query id -> L{_Fetch}

    def _archive_fetches(self):
        if self._fetches is None:
            self._fetches = {}
        return self._fetches

    def archive_result(self, room, message):
        """
        A result of one of our fetches, from the master room.

        @return: whether C{message} was one (and so is dealt with).
        """
        result = child(message, "result", ns.MAM)
        if result is None:
            return False
        fetch = self._archive_fetches().get(result.getAttribute("queryid"))
        if fetch is None or fetch.room is not room:
            return True
        entry = _entry(result, room.master_jid)
        if entry is not None:
            fetch.entries.append(entry)
        return True

    def archive_fin(self, iq):
        """
        The end (or the refusal) of one of our fetches.

        @return: whether C{iq} answered one.
        """
        if iq.getAttribute("id") not in self._archive_fetches():
            return False
        fin = child(iq, "fin", ns.MAM) if iq.getAttribute("type") == "result" else None
        if fin is None and iq.getAttribute("type") == "error":
            log.info("{room}: the master does not serve its archive to mirrors",
                     room=self._archive_fetches()[iq["id"]].room.jid)
        self._fetch_done(iq["id"], fin)
        return True

    def _fetch_done(self, fetch_id, fin):
        fetch = self._archive_fetches().pop(fetch_id, None)
        if fetch is None:
            return
        if fetch.timeout is not None and fetch.timeout.active():
            fetch.timeout.cancel()
        room = fetch.room
        for entry in fetch.entries:
            self.archive_message(room, entry)
        if fin is not None and fin.getAttribute("complete") in ("true", "1"):
            room.archive_complete = True
            self.save(room)
        # Nothing new and not complete (an error, a timeout, an older
        # master): answer from what is held.
        fetch.deferred.callback(bool(fetch.entries) and fin is not None)


def _reaches_back(entries, query):
    """Whether messages older than the copy's could match the query's
    filters (and so count)."""
    return not entries or query.start is None or query.start <= entries[0].timestamp


def _entry(result, master_jid):
    """
    A forwarded message of the master's archive as the copy keeps it: as
    the master broadcast it (its occupant JID, its stanza-id), so that it
    reads like the messages that came live.
    """
    forwarded = child(result, "forwarded", ns.FORWARD)
    message = child(forwarded, "message", ns.CLIENT) if forwarded is not None else None
    delay = child(forwarded, "delay", ns.DELAY) if forwarded is not None else None
    stanza_id = result.getAttribute("id")
    if message is None or delay is None or not stanza_id:
        return None
    try:
        timestamp = parse_timestamp(delay.getAttribute("stamp", ""))
    except ValueError:
        return None
    stored = copy_element(message)
    stored.attributes.pop("to", None)
    marker = stored.addElement((ns.STANZA_ID, "stanza-id"))
    marker["id"] = stanza_id
    marker["by"] = master_jid
    return HistoryEntry(stanza_id=stanza_id, timestamp=timestamp,
                        nick=(stored.getAttribute("from") or "").partition("/")[2],
                        real_jid="", xml=stored.toXml())

