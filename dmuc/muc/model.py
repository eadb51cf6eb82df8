"""Plain objects for the state of a room."""

from dataclasses import dataclass, field, fields

AFFILIATION_RANK = {"outcast": -1, "none": 0, "member": 1, "admin": 2, "owner": 3}
ROLE_RANK = {"none": 0, "visitor": 1, "participant": 2, "moderator": 3}


def affiliation_rank(affiliation):
    return AFFILIATION_RANK[affiliation or "none"]


def role_rank(role):
    return ROLE_RANK[role or "none"]


@dataclass(frozen=True)
class Sender:
    """
    Who sent a stanza, once the service has checked it.

    @ivar real_jid: the user's full real JID (a L{JID}): what permissions,
        bans and affiliations are decided on.
    @ivar address: where stanzas for this user go: the real JID for a user
        of this site, the mirror occupant JID for a user behind a mirror.
    @ivar via: the mirror room's bare JID (the mirror service JID for a
        DMUC3 literal join), or C{None} for a user of this site.
    """

    real_jid: object
    address: str
    via: str | None = None

    @classmethod
    def local(cls, jid):
        return cls(jid, jid.full(), None)


@dataclass
class Occupant:
    """
    Someone in the room.

    @ivar nick: the occupant's nick (the resource of its occupant JID).
    @ivar real_jid: the full real JID (a L{JID}) of its one session.
    @ivar role: C{moderator}, C{participant} or C{visitor}.
    @ivar presence: the last available presence the occupant sent, with the
        MUC elements removed: the template for what others see.
    @ivar address: where stanzas for this occupant go (see L{Sender}).
    @ivar via: the mirror this occupant is joined through, or C{None}.
    """

    nick: str
    real_jid: object
    role: str
    presence: object = None
    address: str = None
    via: str | None = None
    others: dict = field(default_factory=dict)
    # The role the others last saw: whether a hidden role's change is a
    # leave for them (presence broadcast).
    shown_role: str | None = None
    # Whether every mirror has the occupant's occupant-id under this nick
    # (from a presence or the roster): the compact profile then leaves it
    # out of the presences a mirror gets.
    id_shown: bool = False

    def __post_init__(self):
        if self.address is None:
            self.address = self.real_jid.full()

    @property
    def bare_jid(self):
        return self.real_jid.userhost()

    # -- sessions: Prosody's multi-session occupants (docs/decisions.md)

    def addresses(self):
        """Where stanzas for the whole occupant go: every session, the
        primary (C{address}) first."""
        return [self.address, *self.others]

    def add_session(self, real_jid, presence):
        """Another device of the same user joins this nick."""
        self.others[real_jid.full()] = Session(real_jid, presence)

    def drop_session(self, address):
        """
        A session leaves; when it was the primary one, the oldest other
        session takes its place (whose presence others see from now on).
        @return: whether a session is left.
        """
        if address != self.address:
            self.others.pop(address, None)
            return True
        if not self.others:
            return False
        address, session = next(iter(self.others.items()))
        del self.others[address]
        self.real_jid, self.address, self.presence = (
            session.real_jid, address, session.presence)
        return True

    def presence_of_session(self, address):
        """The presence template of one session (the primary's for any
        address not among the others)."""
        session = self.others.get(address)
        return session.presence if session is not None else self.presence


@dataclass
class Session:
    """A second (third...) device of an occupant's user: its full real
    JID (a L{JID}, also its address) and the last presence it sent."""

    real_jid: object
    presence: object = None


@dataclass
class RoomConfig:
    """
    The owner-settable configuration of a room (muc#roomconfig).

    Defaults are Prosody 0.12's, plus C{distributed} (DMUC1's
    C{muc#roomconfig_distributed}: whether mirrors may join).
    C{archiving} is mod_muc_mam's C{muc#roomconfig_enablearchiving}, on
    by default as Prosody's C{muc_log_by_default}.
    C{max_users} 0 means no limit.
    """

    name: str = ""
    description: str = ""
    persistent: bool = False
    public: bool = True
    members_only: bool = False
    moderated: bool = False
    password: str = ""
    whois: str = "moderators"
    max_users: int = 0
    change_subject: bool = False
    allow_invites: bool = False
    history_length: int = 20
    default_history: int = 20
    distributed: bool = True
    archiving: bool = True
    language: str = ""
    presence_broadcast: tuple = ("moderator", "participant", "visitor")

    def __post_init__(self):
        # Stored as a JSON list, submitted in any order: one form only.
        self.presence_broadcast = tuple(
            r for r in ("none", "visitor", "participant", "moderator")
            if r in self.presence_broadcast)

    def broadcasts(self, role):
        """Whether occupants of C{role} are shown to the others (Prosody's
        C{muc#roomconfig_presencebroadcast}; C{none}: absent members)."""
        return (role or "none") in self.presence_broadcast

    def to_dict(self):
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_dict(cls, values):
        """Build from stored values, ignoring keys this version lacks."""
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in known})


@dataclass
class HistoryRequest:
    """The XEP-0045 C{<history/>} attributes of a join; C{None} = absent."""

    maxstanzas: int | None = None
    maxchars: int | None = None
    seconds: int | None = None
    since: float | None = None

    def is_empty(self):
        return all(v is None for v in (self.maxstanzas, self.maxchars,
                                       self.seconds, self.since))


@dataclass
class JoinRequest:
    """What a join presence asks for, parsed at the edge."""

    password: str | None = None
    history: HistoryRequest = field(default_factory=HistoryRequest)
