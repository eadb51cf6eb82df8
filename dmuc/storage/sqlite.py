"""
An L{IRoomStore} in one SQLite file, through L{twisted.enterprise.adbapi}.

The pool holds a single connection: SQLite allows one writer at a time.
Operations run in the order they were asked for, one interaction at a
time.  Writes asked for while the database is busy, or in the same
reactor turn, are batched into one transaction (a commit costs more than
the statements of a history append); each write has its own savepoint in
it, so one that fails is undone alone and fails only its own Deferred.
"""

import json
import os
import sqlite3
from collections import deque

from twisted.enterprise import adbapi
from twisted.internet import defer
from twisted.logger import Logger
from twisted.python import failure
from zope.interface import implementer

from dmuc.storage.interface import IRoomStore
from dmuc.storage.records import (
    HistoryEntry, RoomRecord, SplitMessage, StorageError, Tombstone)

log = Logger(namespace="dmuc.storage")

SCHEMA = (
    """
    CREATE TABLE IF NOT EXISTS rooms (
        jid TEXT PRIMARY KEY,
        config TEXT NOT NULL,
        subject TEXT,
        subject_nick TEXT,
        subject_time REAL
    )
    """,
    """
    CREATE TABLE IF NOT EXISTS affiliations (
        room_jid TEXT NOT NULL,
        jid TEXT NOT NULL,
        affiliation TEXT NOT NULL,
        PRIMARY KEY (room_jid, jid)
    )
    """,
    """
    CREATE TABLE IF NOT EXISTS history (
        room_jid TEXT NOT NULL,
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        stanza_id TEXT NOT NULL,
        timestamp REAL NOT NULL,
        nick TEXT NOT NULL,
        real_jid TEXT NOT NULL,
        xml TEXT NOT NULL
    )
    """,
    "CREATE INDEX IF NOT EXISTS history_room_seq ON history (room_jid, seq)",
    "CREATE UNIQUE INDEX IF NOT EXISTS history_room_stanza_id"
    " ON history (room_jid, stanza_id)",
    # A mirror's outbox: what its users wrote during a split, until the
    # master has taken it.
    """
    CREATE TABLE IF NOT EXISTS outbox (
        room_jid TEXT NOT NULL,
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        nick TEXT NOT NULL,
        user TEXT NOT NULL,
        timestamp REAL NOT NULL,
        xml TEXT NOT NULL
    )
    """,
    "CREATE INDEX IF NOT EXISTS outbox_room_seq ON outbox (room_jid, seq)",
    """
    CREATE TABLE IF NOT EXISTS tombstones (
        jid TEXT PRIMARY KEY,
        expires REAL NOT NULL,
        alternate TEXT,
        reason TEXT
    )
    """,
)


# The room archives (XEP-0313): every archived message, apart from the
# history table, which keeps only the history length.
ARCHIVE_SCHEMA = (
    """
    CREATE TABLE IF NOT EXISTS archive (
        room_jid TEXT NOT NULL,
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        stanza_id TEXT NOT NULL,
        timestamp REAL NOT NULL,
        nick TEXT NOT NULL,
        real_jid TEXT NOT NULL,
        xml TEXT NOT NULL
    )
    """,
    "CREATE UNIQUE INDEX IF NOT EXISTS archive_room_stanza_id"
    " ON archive (room_jid, stanza_id)",
    "CREATE INDEX IF NOT EXISTS archive_room_time ON archive (room_jid, timestamp)",
    "CREATE INDEX IF NOT EXISTS archive_time ON archive (timestamp)",
)

#: The first retry of held writes after this many seconds, then doubling.
RETRY_FIRST = 1.0
RETRY_MAX = 30.0


@implementer(IRoomStore)
class SQLiteRoomStore:
    """
    Rooms, affiliations and history in the SQLite database at C{path}.

    Call L{open} at service start so a bad path fails there, with a message
    naming it; other methods open the store themselves if needed.

    @ivar path: the database file.
    """

    def __init__(self, path, reactor=None):
        """
        @param path: the database file; it and its directory are created if
            missing.
        @param reactor: the reactor the pool reports results on; the global
            one if C{None}.
        """
        self.path = path
        self._reactor = reactor
        self._pool = None
        self._queue = deque()   # _Operation, in the order asked for
        self._busy = False      # an interaction is running in the pool
        self._last_write = None # the _Operation of the last write asked for
        self._awaited = deque() # writes someone waits for (L{written}), in order
        self._next_call = None  # the delayed call that starts the next one
        #: Why writes fail for now (a read-only database, a full disk), or
        #: C{None}: they are held, in order, and tried again (L{_hold}).
        self.fault = None
        self._retry_delay = RETRY_FIRST

    def open(self):
        """
        Create the directory, the file and the schema if missing.

        @return: Deferred firing with this store, or failing with
            L{StorageError} if the path cannot hold a database.
        """
        try:
            pool = self._get_pool()
        except StorageError:
            return defer.fail()
        d = pool.runWithConnection(lambda connection: None)
        d.addCallbacks(lambda _: self, self._open_failed)
        return d

    def written(self):
        """
        A Deferred that fires (with C{None}, never failing) once every
        write asked for so far has ended: committed, failed, or held for a
        fault (L{fault}).  A service acknowledges what it was asked only
        after this: a crash after the acknowledgement cannot lose it.
        Writes end in the order they were asked for, so the last one is
        the one to wait for.
        """
        last = self._last_write
        if last is None or last.ended:
            return defer.succeed(None)
        while self._awaited and self._awaited[0].ended:
            self._awaited.popleft()
        if not last.waiters:
            self._awaited.append(last)
        d = defer.Deferred()
        last.waiters.append(d)
        return d

    @property
    def held_writes(self):
        """Writes waiting for a fault to clear (for metrics and status)."""
        return len(self._queue) if self.fault else 0

    def close(self):
        """
        Release the connection; what was asked for before is still done
        (the pool's thread finishes it before it stops).
        """
        if self._next_call is not None:
            self._next_call.cancel()
            self._next_call = None
        if self.fault is not None:
            log.error("storage: closing {path} with {count} writes not done: {fault}",
                      path=self.path, count=self.held_writes, fault=self.fault)
            self.fault = None
        if self._pool is not None:
            while self._queue:
                self._start(self._pool)
            pool, self._pool = self._pool, None
            pool.close()
        # What was asked for is done now (or lost with the pool): nothing
        # may wait for it any longer.
        while self._awaited:
            _end(self._awaited.popleft())
        return defer.succeed(None)

    def load_rooms(self):
        return self._run(False, _load_rooms)

    def save_room(self, record):
        return self._run(True, _save_room, record)

    def delete_room(self, room_jid):
        return self._run(True, _delete_room, room_jid)

    def append_history(self, room_jid, entry, max_length):
        return self._run(True, _append_history, room_jid, entry, max_length)

    def delete_history_entry(self, room_jid, stanza_id):
        return self._run(True, _delete_history_entry, room_jid, stanza_id)

    def load_history(self, room_jid, limit):
        return self._run(False, _load_history, room_jid, limit)

    def append_outbox(self, room_jid, message):
        return self._run(True, _append_outbox, room_jid, message)

    def delete_outbox(self, room_jid, count):
        return self._run(True, _delete_outbox, room_jid, count)

    def load_outbox(self, room_jid):
        return self._run(False, _load_outbox, room_jid)

    def save_tombstone(self, tombstone):
        return self._run(True, _save_tombstone, tombstone)

    def load_tombstones(self):
        return self._run(False, _load_tombstones)

    def delete_tombstone(self, room_jid):
        return self._run(True, _delete_tombstone, room_jid)

    def append_archive(self, room_jid, entry):
        return self._run(True, _append_archive, room_jid, entry)

    def load_archive(self, room_jid):
        return self._run(False, _load_archive, room_jid)

    def delete_archive_entry(self, room_jid, stanza_id):
        return self._run(True, _delete_archive_entry, room_jid, stanza_id)

    def delete_archive(self, room_jid):
        return self._run(True, _delete_archive, room_jid)

    def expire_archive(self, before):
        return self._run(True, _expire_archive, before)

    def _get_pool(self):
        """
        The connection pool, started on first use.  No connection is made
        here; the first interaction makes it, and L{_open_connection} creates
        the schema then.
        """
        if self._pool is None:
            self._make_directory()
            options = {}
            if self._reactor is not None:
                options["cp_reactor"] = self._reactor
            self._pool = adbapi.ConnectionPool(
                "sqlite3", self.path, check_same_thread=False,
                cp_min=1, cp_max=1, cp_openfun=_open_connection, **options)
        return self._pool

    def _make_directory(self):
        parent = os.path.dirname(os.path.abspath(self.path))
        try:
            os.makedirs(parent, exist_ok=True)
        except OSError as e:
            raise StorageError(
                f"cannot create directory for database {self.path}: {e}"
            ) from e

    def _open_failed(self, failure):
        # Drop the pool so its thread does not outlive a store that never
        # opened, and a later open() tries again from scratch.
        self.close()
        failure.trap(sqlite3.Error)
        raise StorageError(
            f"cannot open database {self.path}: {failure.value}"
        ) from failure.value

    def _run(self, write, interaction, *args):
        """
        Queue C{interaction(transaction, *args)}: a read runs alone, in
        its own transaction; a write joins the writes queued next to it
        (L{_run_writes}).  Its changes are kept if it returns and undone
        if it raises.
        """
        try:
            self._get_pool()
        except StorageError:
            return defer.fail()
        operation = _Operation(write, interaction, args)
        if write:
            self._last_write = operation
            if self.fault is not None:
                _end(operation)         # held, like those before it
        self._queue.append(operation)
        self._schedule()
        return operation.deferred

    def _schedule(self):
        # At the end of this reactor turn, so the writes it asks for go
        # in one transaction.
        if self._busy or self._next_call is not None or not self._queue:
            return
        if self._reactor is None:
            from twisted.internet import reactor
            self._reactor = reactor
        self._next_call = self._reactor.callLater(0, self._start_next)

    def _start_next(self):
        self._next_call = None
        if self._busy or not self._queue:
            return
        try:
            pool = self._get_pool()
        except StorageError:
            reason = failure.Failure()
            operations, self._queue = list(self._queue), deque()
            for operation in operations:
                operation.deferred.errback(reason)
                _end(operation)
            return
        self._start(pool)

    def _start(self, pool):
        """Start the next read, or every write next in the queue."""
        operations = [self._queue.popleft()]
        if operations[0].write:
            while self._queue and self._queue[0].write:
                operations.append(self._queue.popleft())
            d = pool.runInteraction(_run_writes, [(o.interaction, o.args) for o in operations])
        else:
            d = pool.runInteraction(operations[0].interaction, *operations[0].args)
            d.addCallback(lambda result: [(True, result)])
        self._busy = True
        d.addBoth(self._finished, operations)

    def _finished(self, outcome, operations):
        self._busy = False
        if isinstance(outcome, failure.Failure):
            outcome = [(False, outcome)] * len(operations)
        held = [o for o, (ok, result) in zip(operations, outcome)
                if not ok and o.write and _transient(result)]
        if held:
            self._hold(held, next(r for ok, r in outcome if not ok and _transient(r)))
        elif self.fault is not None and any(o.write for o in operations):
            log.info("storage: {path} takes writes again; the held ones are written",
                     path=self.path)
            self.fault, self._retry_delay = None, RETRY_FIRST
        for operation, (ok, result) in zip(operations, outcome):
            if operation in held:
                continue
            if ok:
                operation.deferred.callback(result)
            else:
                operation.deferred.errback(self._database_error(result))
        for operation in operations:
            _end(operation)
        if not held:
            self._schedule()

    def _hold(self, operations, reason):
        """
        Writes the database refused for a reason that can pass (read-only,
        full, locked, an I/O error): kept in memory, first in the queue,
        and tried again after a delay that doubles up to L{RETRY_MAX}.
        Nothing asked for is dropped; one line tells the operator.
        """
        self._queue.extendleft(reversed(operations))
        if self.fault is None:
            self.fault = str(reason.value)
            log.error("storage: cannot write to {path} ({fault}); holding writes in memory "
                      "and trying again until it works (rooms keep working; a stop or crash "
                      "before then loses what is held)", path=self.path, fault=self.fault)
        if self._reactor is None:
            from twisted.internet import reactor
            self._reactor = reactor
        self._next_call = self._reactor.callLater(self._retry_delay, self._start_next)
        self._retry_delay = min(self._retry_delay * 2, RETRY_MAX)

    def _database_error(self, reason):
        if not reason.check(sqlite3.Error):
            return reason
        error = StorageError(f"database {self.path}: {reason.value}")
        error.__cause__ = reason.value
        return failure.Failure(error)


def _transient(reason):
    """Whether a write failed (a L{failure.Failure}) for a reason that can
    pass (L{_transient_error})."""
    return _transient_error(reason.value)


def _transient_error(error):
    """Whether C{error} can pass: SQLite's read-only, full, busy, locked
    and I/O errors (an operational error), not a constraint or a bug."""
    if not isinstance(error, sqlite3.OperationalError):
        return False
    text = str(error).lower()
    return any(word in text for word in ("readonly", "read-only", "full", "locked", "busy",
                                         "i/o", "unable to open"))


class _Operation:
    """A store call waiting for its turn.

    @ivar ended: a write is committed, failed or held (L{SQLiteRoomStore.written}).
    @ivar waiters: Deferreds fired when it ends.
    """

    def __init__(self, write, interaction, args):
        self.write = write
        self.interaction = interaction
        self.args = args
        self.deferred = defer.Deferred()
        self.ended = False
        self.waiters = []


def _end(operation):
    """Mark C{operation} ended and tell who waits for it (once)."""
    if operation.ended:
        return
    operation.ended = True
    waiters, operation.waiters = operation.waiters, []
    for d in waiters:
        d.callback(None)


def _run_writes(txn, writes):
    """
    Run C{writes}, (interaction, args) pairs, in order in one transaction
    (committed by the pool), each in a savepoint: one that raises is
    rolled back alone.  A room saved again later in the batch is written
    once, with its last record: both calls get that write's outcome.

    @return: a (succeeded, result or L{Failure}) pair per write.
    """
    last_save = {args[0].jid: i for i, (f, args) in enumerate(writes) if f is _save_room}
    outcomes = [None] * len(writes)
    superseded = []
    txn.execute("BEGIN")
    for i, (interaction, args) in enumerate(writes):
        if interaction is _save_room and last_save[args[0].jid] != i:
            superseded.append((i, last_save[args[0].jid]))
            continue
        txn.execute("SAVEPOINT write")
        try:
            outcomes[i] = (True, interaction(txn, *args))
        except Exception as error:
            if _transient_error(error):
                # The rest would fail the same way, each after SQLite's
                # wait for a lock: the batch is held whole (L{_hold}).
                raise
            outcomes[i] = (False, failure.Failure())
            try:
                txn.execute("ROLLBACK TO write")
            except sqlite3.OperationalError:
                # SQLite undid the whole transaction itself (a full disk,
                # an I/O error): the batch failed, with that error.
                raise error
        txn.execute("RELEASE write")
    for i, last in superseded:
        outcomes[i] = outcomes[last]
    return outcomes


def _open_connection(connection):
    """
    Prepare each new connection: write-ahead logging so readers never wait
    for the writer, C{synchronous=NORMAL} which is safe with WAL and much
    cheaper than C{FULL}, and the schema.  The first statement is also where
    a file that is not a database is noticed.
    """
    try:
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("PRAGMA synchronous=NORMAL")
        for statement in SCHEMA + ARCHIVE_SCHEMA:
            connection.execute(statement)
        connection.commit()
    except sqlite3.Error:
        # adbapi forgets a connection whose setup failed; close it here so
        # the file is not held open.
        connection.close()
        raise


def _load_rooms(txn):
    txn.execute(
        "SELECT jid, config, subject, subject_nick, subject_time FROM rooms")
    rooms = {}
    for jid, config, subject, subject_nick, subject_time in txn.fetchall():
        try:
            parsed = json.loads(config)
            if not isinstance(parsed, dict):
                raise ValueError("not a JSON object")
        except ValueError as e:
            rooms[jid] = RoomRecord(jid=jid, unreadable="its stored config is not valid: %s"
                                    % (e,))
            continue
        rooms[jid] = RoomRecord(
            jid=jid, config=parsed, subject=subject,
            subject_nick=subject_nick, subject_time=subject_time)
    txn.execute("SELECT room_jid, jid, affiliation FROM affiliations")
    for room_jid, jid, affiliation in txn.fetchall():
        # An affiliation left by a room deleted outside this store is ignored.
        if room_jid in rooms:
            rooms[room_jid].affiliations[jid] = affiliation
    return list(rooms.values())


def _save_room(txn, record):
    txn.execute(
        "INSERT OR REPLACE INTO rooms"
        " (jid, config, subject, subject_nick, subject_time)"
        " VALUES (?, ?, ?, ?, ?)",
        (record.jid, json.dumps(record.config, sort_keys=True),
         record.subject, record.subject_nick, record.subject_time))
    txn.execute("DELETE FROM affiliations WHERE room_jid = ?", (record.jid,))
    txn.executemany(
        "INSERT INTO affiliations (room_jid, jid, affiliation)"
        " VALUES (?, ?, ?)",
        [(record.jid, jid, affiliation)
         for jid, affiliation in record.affiliations.items()])


def _delete_history_entry(cursor, room_jid, stanza_id):
    cursor.execute("DELETE FROM history WHERE room_jid = ? AND stanza_id = ?",
                   (room_jid, stanza_id))


def _delete_room(txn, room_jid):
    for table, column in (("rooms", "jid"), ("affiliations", "room_jid"),
                          ("history", "room_jid"), ("outbox", "room_jid")):
        txn.execute(f"DELETE FROM {table} WHERE {column} = ?", (room_jid,))


def _append_history(txn, room_jid, entry, max_length):
    txn.execute(
        "INSERT INTO history"
        " (room_jid, stanza_id, timestamp, nick, real_jid, xml)"
        " VALUES (?, ?, ?, ?, ?, ?)",
        (room_jid, entry.stanza_id, entry.timestamp, entry.nick,
         entry.real_jid, entry.xml))
    # Everything at or below the (max_length + 1)-th newest seq goes; when
    # there are fewer rows the subquery is NULL and nothing is deleted.
    txn.execute(
        "DELETE FROM history WHERE room_jid = ? AND seq <= ("
        " SELECT seq FROM history WHERE room_jid = ?"
        " ORDER BY seq DESC LIMIT 1 OFFSET ?)",
        (room_jid, room_jid, max(0, max_length)))


def _load_history(txn, room_jid, limit):
    # SQLite reads a negative LIMIT as "no limit"; the interface means none.
    txn.execute(
        "SELECT stanza_id, timestamp, nick, real_jid, xml FROM history"
        " WHERE room_jid = ? ORDER BY seq DESC LIMIT ?",
        (room_jid, max(0, limit)))
    newest_first = [HistoryEntry(*row) for row in txn.fetchall()]
    return newest_first[::-1]


def _append_outbox(txn, room_jid, message):
    txn.execute("INSERT INTO outbox (room_jid, nick, user, timestamp, xml) VALUES (?, ?, ?, ?, ?)",
                (room_jid, message.nick, message.user, message.timestamp, message.xml))


def _delete_outbox(txn, room_jid, count):
    txn.execute("DELETE FROM outbox WHERE seq IN (SELECT seq FROM outbox WHERE room_jid = ?"
                " ORDER BY seq LIMIT ?)", (room_jid, max(0, count)))


def _load_outbox(txn, room_jid):
    txn.execute("SELECT nick, user, timestamp, xml FROM outbox WHERE room_jid = ? ORDER BY seq",
                (room_jid,))
    return [SplitMessage(*row) for row in txn.fetchall()]


def _save_tombstone(txn, tombstone):
    txn.execute(
        "INSERT OR REPLACE INTO tombstones (jid, expires, alternate, reason)"
        " VALUES (?, ?, ?, ?)",
        (tombstone.jid, tombstone.expires, tombstone.alternate, tombstone.reason))


def _load_tombstones(txn):
    txn.execute("SELECT jid, expires, alternate, reason FROM tombstones")
    return [Tombstone(*row) for row in txn.fetchall()]


def _delete_tombstone(txn, room_jid):
    txn.execute("DELETE FROM tombstones WHERE jid = ?", (room_jid,))


def _append_archive(txn, room_jid, entry):
    txn.execute(
        "INSERT OR IGNORE INTO archive"
        " (room_jid, stanza_id, timestamp, nick, real_jid, xml)"
        " VALUES (?, ?, ?, ?, ?, ?)",
        (room_jid, entry.stanza_id, entry.timestamp, entry.nick,
         entry.real_jid, entry.xml))


def _load_archive(txn, room_jid):
    txn.execute(
        "SELECT stanza_id, timestamp, nick, real_jid, xml FROM archive"
        " WHERE room_jid = ? ORDER BY timestamp, seq", (room_jid,))
    return [HistoryEntry(*row) for row in txn.fetchall()]


def _delete_archive_entry(txn, room_jid, stanza_id):
    txn.execute("DELETE FROM archive WHERE room_jid = ? AND stanza_id = ?",
                (room_jid, stanza_id))


def _delete_archive(txn, room_jid):
    txn.execute("DELETE FROM archive WHERE room_jid = ?", (room_jid,))


def _expire_archive(txn, before):
    txn.execute("DELETE FROM archive WHERE timestamp < ?", (before,))
    return txn.rowcount
