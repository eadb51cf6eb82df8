"""
The master-side service: a complete XEP-0045 MUC component whose rooms
accept mirrors (the DMUC extension).  L{room} holds the rules,
L{handler} the protocol edge and the trust checks.
"""

from dmuc.master.handler import MasterMUC
from dmuc.xmpp.service import ComponentService


def MasterService(xmpp, master, reactor):
    """The master MUC service as configured by a L{MasterConfig}."""
    return ComponentService(
        "master", xmpp, master.jid, master.secret, master.database,
        lambda store: MasterMUC(master.jid, store, reactor,
                                trusted_mirrors=master.trusted_mirrors),
        reactor)
