"""The storage interface every backend implements."""

from zope.interface import Interface


class IRoomStore(Interface):
    """
    Persistent rooms and their history.  Every method returns a Deferred.
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

    def load_history(room_jid, limit):
        """
        @return: Deferred firing with the C{limit} newest L{HistoryEntry} of
            the room, oldest first.
        """

    def close():
        """
        Release connections.  @return: Deferred.
        """
