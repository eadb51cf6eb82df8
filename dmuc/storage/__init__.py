"""
Persistent room state: configuration, affiliations, subject and history,
and the tombstones of destroyed rooms.

L{IRoomStore} is the interface; L{dmuc.storage.memory} and
L{dmuc.storage.sqlite} implement it and pass the same tests.
"""

from dmuc.storage.records import (
    HistoryEntry, RoomRecord, SplitMessage, StorageError, Tombstone)
from dmuc.storage.interface import IRoomStore

__all__ = ["HistoryEntry", "RoomRecord", "SplitMessage", "StorageError", "IRoomStore",
           "Tombstone"]
