"""
The master-side service: a complete XEP-0045 MUC component whose rooms
accept mirrors (the DMUC extension).  L{room} holds the rules,
L{handler} the protocol edge and the trust checks.
"""

from dmuc.master.handler import MasterMUC
from dmuc.xmpp.service import ComponentService


def MasterService(xmpp, master, monitor, reactor, s2s=None):
    """The master MUC service as configured by L{MasterConfig} and
    L{MonitorConfig}; C{s2s} is the process's L{S2SServer} if any."""
    return ComponentService(
        "master", xmpp, master.jid, master.secret, master.database,
        lambda store: MasterMUC(master.jid, store, reactor,
                                trusted_mirrors=master.trusted_mirrors, monitor=monitor,
                                tombstone_expiry=master.tombstone_expiry,
                                redirect_to_mirrors=master.redirect_to_mirrors,
                                max_history_messages=master.max_history_messages,
                                limits=master.limits
                                ).keeping_archives_for(
            master.archive_expires),
        reactor, connection=master.connection, direct_peers=master.direct_peers, s2s=s2s)
