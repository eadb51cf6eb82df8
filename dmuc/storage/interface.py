"""The storage interface every backend implements."""

from zope.interface import Interface


class IRoomStore(Interface):
    """
    Persistent rooms, their history, and the tombstones of destroyed
    rooms.  Every method returns a Deferred.
    """

    def load_rooms():
        """
        @return: Deferred firing with a list of L{RoomRecord}, every stored room.
        """

    def save_room(record):
        """
        Insert or replace a room (config, affiliations, subject).  History is
        not touched.

        @type record: L{RoomRecord}
        """

    def delete_room(room_jid):
        """
        Forget a room and all its history.  Deleting an unknown room is not
        an error.
        """

    def append_history(room_jid, entry, max_length):
        """
        Store one message and keep only the C{max_length} newest entries of
        that room (C{max_length} 0 keeps none).

        @type entry: L{HistoryEntry}
        """

    def delete_history_entry(room_jid, stanza_id):
        """
        Forget one stored message (a mirror replaces its provisional copy
        of a message by the master's).  An unknown id is not an error.
        """

    def append_outbox(room_jid, message):
        """
        Keep one message a mirror's user wrote during a split, after the
        others of that room, until L{delete_outbox} (written at once, one
        row per message: a split of thousands does not rewrite them all).

        @type message: L{SplitMessage}
        """

    def delete_outbox(room_jid, count):
        """Forget the C{count} oldest messages of the room's outbox (the
        master has taken them)."""

    def load_outbox(room_jid):
        """
        @return: Deferred firing with the room's outbox, a list of
            L{SplitMessage}, oldest first.
        """

    def load_history(room_jid, limit):
        """
        @return: Deferred firing with the C{limit} newest L{HistoryEntry} of
            the room, oldest first.
        """

    def save_tombstone(tombstone):
        """
        Insert or replace the tombstone of a destroyed room.

        @type tombstone: L{Tombstone}
        """

    def load_tombstones():
        """
        @return: Deferred firing with a list of L{Tombstone}, every stored
            one (expired ones too: the caller knows the time).
        """

    def delete_tombstone(room_jid):
        """
        Forget a room's tombstone.  An unknown room is not an error.
        """

    def append_archive(room_jid, entry):
        """
        Keep one message in the room's archive (XEP-0313), which is not
        bounded by the history length.  A stanza id already archived for
        the room is ignored: a mirror may fetch a page it partly holds.

        @type entry: L{HistoryEntry}
        """

    def load_archive(room_jid):
        """
        @return: Deferred firing with every archived L{HistoryEntry} of
            the room, oldest first (by timestamp, then as archived).
        """

    def delete_archive_entry(room_jid, stanza_id):
        """
        Forget one archived message.  An unknown id is not an error.
        """

    def delete_archive(room_jid):
        """
        Forget a room's archive (the room is gone).  Not an error for a
        room without one.
        """

    def expire_archive(before):
        """
        Forget archived messages of every room older than C{before}
        (seconds since the epoch).

        @return: Deferred firing with how many were deleted.
        """

    def written():
        """
        @return: Deferred firing (never failing) once every write asked
            for so far has ended: committed, failed, or held in memory for
            a fault that may pass.  What a service acknowledges waits for
            it.
        """

    def close():
        """
        Release connections.  @return: Deferred.
        """
