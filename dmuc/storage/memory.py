"""
An L{IRoomStore} kept in memory, for unit tests and for services run without
a database.  Nothing survives a restart.
"""

import copy
import itertools
import dataclasses
import json

from twisted.internet import defer
from zope.interface import implementer

from dmuc.storage.interface import IRoomStore
from dmuc.storage.records import StorageError


@implementer(IRoomStore)
class MemoryRoomStore:
    """
    Rooms and history in plain dicts.  Every method returns a Deferred that
    has already fired, so callers are written exactly as for a real database.

    Records are copied on the way in and on the way out: a caller that keeps
    mutating its L{RoomRecord} (as a live room does) must not change what is
    stored behind the store's back, or tests would pass here and fail against
    SQLite.  The config is kept as JSON text, as the SQLite store keeps it:
    the same values come back, and a copy costs a fraction of a deep copy
    (a mirror saves its room, roster included, at every presence).
    """

    def __init__(self):
        self._rooms = {}
        self._history = {}
        self._outbox = {}
        self._archive = {}
        self._tombstones = {}

    def load_rooms(self):
        return defer.succeed([
            dataclasses.replace(record, config=json.loads(record.config),
                                affiliations=dict(record.affiliations))
            for record in self._rooms.values()])

    def save_room(self, record):
        self._rooms[record.jid] = dataclasses.replace(
            record, config=json.dumps(record.config, sort_keys=True),
            affiliations=dict(record.affiliations))
        return defer.succeed(None)

    def delete_room(self, room_jid):
        self._rooms.pop(room_jid, None)
        self._history.pop(room_jid, None)
        self._outbox.pop(room_jid, None)
        return defer.succeed(None)

    def append_history(self, room_jid, entry, max_length):
        # stanza-id -> entry, oldest first: a long split appends thousands.
        entries = self._history.setdefault(room_jid, {})
        if entry.stanza_id in entries:
            # The SQLite store has a unique index here; fail the same way.
            return defer.fail(StorageError(
                f"room {room_jid}: duplicate stanza id {entry.stanza_id!r}"))
        entries[entry.stanza_id] = copy.copy(entry)
        for stanza_id in list(itertools.islice(entries, _excess(len(entries), max_length))):
            del entries[stanza_id]
        return defer.succeed(None)

    def delete_history_entry(self, room_jid, stanza_id):
        self._history.get(room_jid, {}).pop(stanza_id, None)
        return defer.succeed(None)

    def load_history(self, room_jid, limit):
        entries = list(self._history.get(room_jid, {}).values())
        newest = entries[_excess(len(entries), limit):]
        return defer.succeed([copy.copy(entry) for entry in newest])

    def append_outbox(self, room_jid, message):
        self._outbox.setdefault(room_jid, []).append(dataclasses.replace(message))
        return defer.succeed(None)

    def delete_outbox(self, room_jid, count):
        del self._outbox.get(room_jid, [])[:count]
        return defer.succeed(None)

    def load_outbox(self, room_jid):
        return defer.succeed([dataclasses.replace(m) for m in self._outbox.get(room_jid, [])])

    def save_tombstone(self, tombstone):
        self._tombstones[tombstone.jid] = dataclasses.replace(tombstone)
        return defer.succeed(None)

    def load_tombstones(self):
        return defer.succeed([dataclasses.replace(t) for t in self._tombstones.values()])

    def delete_tombstone(self, room_jid):
        self._tombstones.pop(room_jid, None)
        return defer.succeed(None)

    def append_archive(self, room_jid, entry):
        entries = self._archive.setdefault(room_jid, {})
        entries.setdefault(entry.stanza_id, copy.copy(entry))
        return defer.succeed(None)

    def load_archive(self, room_jid):
        # Dicts keep insertion order: the order archived breaks ties.
        entries = sorted(self._archive.get(room_jid, {}).values(),
                         key=lambda entry: entry.timestamp)
        return defer.succeed([copy.copy(entry) for entry in entries])

    def delete_archive_entry(self, room_jid, stanza_id):
        self._archive.get(room_jid, {}).pop(stanza_id, None)
        return defer.succeed(None)

    def delete_archive(self, room_jid):
        self._archive.pop(room_jid, None)
        return defer.succeed(None)

    def expire_archive(self, before):
        deleted = 0
        for entries in self._archive.values():
            old = [i for i, entry in entries.items() if entry.timestamp < before]
            for stanza_id in old:
                del entries[stanza_id]
            deleted += len(old)
        return defer.succeed(deleted)

    def written(self):
        return defer.succeed(None)

    def close(self):
        return defer.succeed(None)


def _excess(count, keep):
    """
    How many of C{count} oldest items to drop to keep only C{keep}.

    Written out because C{items[-keep:]} keeps everything when C{keep} is 0.
    """
    return max(0, count - max(0, keep))
