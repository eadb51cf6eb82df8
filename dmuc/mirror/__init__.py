"""
The mirror room service: local rooms that mirror remote master rooms, so
that a constrained link carries each room stanza once per site.
L{room} holds the room copy, L{handler} the protocol edge.
"""

from dmuc.mirror.handler import MirrorMUC
from dmuc.xmpp.service import ComponentService


def MirrorService(xmpp, mirror, monitor, reactor, s2s=None):
    """The mirror service as configured by L{MirrorConfig} and
    L{MonitorConfig}; C{s2s} is the process's L{S2SServer} if any."""
    return ComponentService(
        "mirror", xmpp, mirror.jid, mirror.secret, mirror.database,
        lambda store: MirrorMUC(mirror.jid, mirror.local_domains, store, reactor,
                                fire_and_forget=mirror.fire_and_forget,
                                split_mode=mirror.split_mode, limits=mirror.limits,
                                monitor=monitor).keeping_archives_for(mirror.archive_expires),
        reactor, connection=mirror.connection, direct_peers=mirror.direct_peers, s2s=s2s)
