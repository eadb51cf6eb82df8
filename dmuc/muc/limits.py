"""
What an operator bounds (issue 13, docs/limits.md): how fast an occupant
may send messages, how large a presence may be, how many occupants a room
and the service may hold and how many rooms a user may own.  The master
and the mirror each apply them to their own users, with the same pieces.

Each refusal is an error a client understands and is logged once per
flood, not once per stanza.
"""

from dataclasses import dataclass

from twisted.logger import Logger

from dmuc.xmpp.stanzas import StanzaError, larger_than

log = Logger(namespace="dmuc.limits")


@dataclass
class Limits:
    """
    The operator's bounds; 0 means none.  The constructor's defaults bound
    nothing (tests and embedders choose); the configuration's defaults
    (dmuc/config.py) protect a small server.

    @ivar messages_per_second: an occupant's sustained message rate.
    @ivar message_burst: how many messages an occupant may send at once
        before the rate applies (the bucket's size).
    @ivar max_presence_size: a user's presence, serialised, in bytes.
    @ivar max_occupants_per_room: the most occupants a room may hold;
        an owner's C{muc#roomconfig_maxusers} may only lower it.
    @ivar max_occupants: the most occupants of all rooms together.
    @ivar max_rooms_per_user: the most rooms one user may own.
    """

    messages_per_second: float = 0
    message_burst: int = 50
    max_presence_size: int = 0
    max_occupants_per_room: int = 0
    max_occupants: int = 0
    max_rooms_per_user: int = 0


class TokenBucket:
    """
    C{burst} tokens, refilled at C{rate} a second; each message takes one
    (as Prosody's and ejabberd's traffic shapers work).

    @ivar flooding: a message was refused since the bucket was last full:
        a flood is logged once, however long it goes on at the rate (each
        refill lets one more message through).
    """

    def __init__(self, rate, burst, now):
        self.rate, self.burst = rate, max(1, burst)
        self.tokens, self.stamp = float(self.burst), now
        self.flooding = False

    def take(self, now):
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= self.burst:
            self.flooding = False   # calm again
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False


FLOOD_TEXT = "You are sending messages too fast; wait a moment and send it again"


def check_message_rate(limits, holder, now, room_jid, who):
    """
    Take a token from the bucket kept on C{holder} (an occupant: it goes
    with it) or refuse the message with C{resource-constraint} (type
    wait), as ejabberd does.  The first refusal of a flood is logged.
    """
    if not limits.messages_per_second:
        return
    bucket = getattr(holder, "bucket", None)
    if bucket is None:
        bucket = holder.bucket = TokenBucket(limits.messages_per_second,
                                             limits.message_burst, now)
    if bucket.take(now):
        return
    if not bucket.flooding:
        bucket.flooding = True
        log.warn("{room}: {who} sends messages faster than {rate}/s (burst {burst}); "
                 "refusing them until the rate drops", room=room_jid, who=who,
                 rate=limits.messages_per_second, burst=limits.message_burst)
    raise StanzaError("resource-constraint", type="wait", text=FLOOD_TEXT, by=room_jid)


def check_presence_size(limits, presence, room_jid):
    """A presence over C{max_presence_size} is refused with
    C{policy-violation}: every occupant would get it, and the room keeps
    it for every later joiner."""
    if limits.max_presence_size and larger_than(presence, limits.max_presence_size):
        raise StanzaError("policy-violation", by=room_jid,
                          text="Presence too large for this room (more than %d bytes)"
                          % limits.max_presence_size)


def check_service_room(limits, count, room_jid):
    """A join when the service holds C{max_occupants} already."""
    if limits.max_occupants and count >= limits.max_occupants:
        raise StanzaError("resource-constraint", type="wait", by=room_jid,
                          text="This service holds as many occupants as it may; "
                               "try again later")


def check_rooms_owned(limits, owned, room_jid):
    """A new room by a user who owns C{max_rooms_per_user} already."""
    if limits.max_rooms_per_user and owned >= limits.max_rooms_per_user:
        raise StanzaError("not-allowed", by=room_jid,
                          text="You own as many rooms as this service allows (%d)"
                          % limits.max_rooms_per_user)
