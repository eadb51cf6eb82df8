"""Plain records that cross the storage boundary."""

from dataclasses import dataclass, field


@dataclass
class RoomRecord:
    """
    What survives a restart of one room.

    @ivar jid: the room's bare JID, e.g. C{chat@conference.fairfax.test}.
    @ivar config: the room configuration as C{RoomConfig.to_dict()} gives it
        (JSON-serialisable values only).
    @ivar affiliations: bare JID (or domain) -> C{owner}, C{admin},
        C{member} or C{outcast}.  C{none} is never stored.
    @ivar subject: the current subject text, or C{None}.
    @ivar subject_nick: the nick that set it, or C{None} for the room.
    @ivar subject_time: when it was set (seconds since the epoch), or C{None}.
    @ivar unreadable: why the stored row could not be read (and the rest is
        empty), or C{None}: one bad row must not keep the others from loading.
    """

    jid: str
    config: dict = field(default_factory=dict)
    affiliations: dict = field(default_factory=dict)
    subject: str | None = None
    subject_nick: str | None = None
    subject_time: float | None = None
    unreadable: str | None = None


@dataclass
class SplitMessage:
    """
    A message a mirror's user wrote during a netsplit, kept for the master
    until it has taken it (the mirror's outbox: docs/protocol.md 22).

    @ivar nick: the author's nick in the room.
    @ivar user: the author's full real JID.
    @ivar timestamp: when it was written.
    @ivar xml: the message as the author sent it, with its origin-id.
    """

    nick: str
    user: str
    timestamp: float
    xml: str


@dataclass
class HistoryEntry:
    """
    One stored groupchat message.

    @ivar stanza_id: the XEP-0359 id the room gave it (unique per room).
    @ivar timestamp: when the room received it (seconds since the epoch, UTC).
    @ivar nick: the sender's nick at the time.
    @ivar real_jid: the sender's full real JID.
    @ivar xml: the message as broadcast, serialised, without C{to} and without
        the C{delay} element (added when history is sent).
    """

    stanza_id: str
    timestamp: float
    nick: str
    real_jid: str
    xml: str


@dataclass
class Tombstone:
    """
    What is left of a destroyed persistent room (Prosody's
    C{muc_tombstones}): until C{expires}, the room's JID answers C{gone}.

    @ivar jid: the destroyed room's bare JID.
    @ivar expires: when the name is free again (seconds since the epoch).
    @ivar alternate: the alternate venue the owner named, or C{None}.
    @ivar reason: the reason the owner gave, or C{None}.
    """

    jid: str
    expires: float
    alternate: str | None = None
    reason: str | None = None


class StorageError(Exception):
    """
    A store could not do what was asked: the database cannot be opened, is
    not a database, or refused the change.  The message names the path when
    there is one, so an operator can tell which file is at fault.
    """
