"""
The master-side service: a complete XEP-0045 MUC component whose rooms
accept mirrors (the DMUC extension).  L{room} holds the rules,
L{handler} the protocol edge and the trust checks.
"""

from dmuc.master.handler import MasterMUC
from dmuc.xmpp.service import ComponentService


def MasterService(xmpp, master, monitor, reactor):
    """The master MUC service as configured by L{MasterConfig} and
    L{MonitorConfig}."""
    return ComponentService(
        "master", xmpp, master.jid, master.secret, master.database,
        lambda store: MasterMUC(master.jid, store, reactor,
                                trusted_mirrors=master.trusted_mirrors, monitor=monitor,
                                tombstone_expiry=master.tombstone_expiry,
                                redirect_to_mirrors=master.redirect_to_mirrors).keeping_archives_for(
            master.archive_expires),
        reactor)
