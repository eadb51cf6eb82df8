"""
The mirror room service: local rooms that mirror remote master rooms, so
that a constrained link carries each room stanza once per site.
L{room} holds the room copy, L{handler} the protocol edge.
"""

from dmuc.mirror.handler import MirrorMUC
from dmuc.xmpp.service import ComponentService


def MirrorService(xmpp, mirror, monitor, reactor):
    """The mirror service as configured by L{MirrorConfig} and
    L{MonitorConfig}."""
    return ComponentService(
        "mirror", xmpp, mirror.jid, mirror.secret, mirror.database,
        lambda store: MirrorMUC(mirror.jid, mirror.local_domains, store, reactor,
                                fire_and_forget=mirror.fire_and_forget,
                                split_mode=mirror.split_mode,
                                monitor=monitor).keeping_archives_for(mirror.archive_expires),
        reactor)
