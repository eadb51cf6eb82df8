"""
Two real sites federating over S2S on loopback, through the counting relay:

    fairfax.test  Prosody on 127.0.0.2, dmuc master  conference.fairfax.test
    raleigh.test  Prosody on 127.0.0.3, dmuc mirror  mirror.raleigh.test

Each Prosody resolves the other site's domains (through its own hosts
file, HARNESS.md) to a relay address: 127.0.0.4 leads to raleigh,
127.0.0.5 to fairfax.  Used by the tests, by C{make run} and by
C{make demo}.
"""

import os

from tests.harness.dmuc_process import DmucProcess
from tests.harness.prosody import ProsodyServer, require_prosody
from tests.harness.relay import LinkRelay

FAIRFAX, RALEIGH = "fairfax.test", "raleigh.test"
MASTER, MIRROR = "conference.fairfax.test", "mirror.raleigh.test"
FAIRFAX_IP, RALEIGH_IP = "127.0.0.2", "127.0.0.3"
TO_RALEIGH_IP, TO_FAIRFAX_IP = "127.0.0.4", "127.0.0.5"
S2S_PORT = 5269


class TwoSites:
    """
    The processes of two sites; L{start} starts them all, L{stop} stops
    them (in a test, use L{start_two_sites}).

    @ivar fairfax, raleigh: the L{ProsodyServer}s.
    @ivar master, mirror: the L{DmucProcess}es.
    @ivar relay: the L{LinkRelay} between the sites.
    """

    def __init__(self, base_dir, fire_and_forget=False, c2s_ports=(0, 0)):
        require_prosody()
        self.base_dir = base_dir
        os.makedirs(base_dir, exist_ok=True)
        hosts = os.path.join(base_dir, "hosts")
        with open(hosts, "w") as f:
            f.write("%s %s %s\n" % (TO_RALEIGH_IP, RALEIGH, MIRROR))
            f.write("%s %s %s\n" % (TO_FAIRFAX_IP, FAIRFAX, MASTER))
        self.fairfax = ProsodyServer(base_dir, FAIRFAX, ip=FAIRFAX_IP, hosts_file=hosts,
                                     components={MASTER: "master-secret"},
                                     c2s_port=c2s_ports[0])
        self.raleigh = ProsodyServer(base_dir, RALEIGH, ip=RALEIGH_IP, hosts_file=hosts,
                                     components={MIRROR: "mirror-secret"},
                                     c2s_port=c2s_ports[1])
        self.relay = LinkRelay({
            (TO_RALEIGH_IP, S2S_PORT): ((RALEIGH_IP, S2S_PORT), "fairfax>raleigh"),
            (TO_FAIRFAX_IP, S2S_PORT): ((FAIRFAX_IP, S2S_PORT), "raleigh>fairfax"),
        })
        self.master = DmucProcess(os.path.join(base_dir, "dmuc-fairfax"), {
            "xmpp": {"host": FAIRFAX_IP, "port": self.fairfax.component_port},
            "master": {"jid": MASTER, "secret": "master-secret",
                       "database": os.path.join(base_dir, "dmuc-fairfax", "master.sqlite"),
                       "trusted_mirrors": MIRROR}})
        self.mirror = DmucProcess(os.path.join(base_dir, "dmuc-raleigh"), {
            "xmpp": {"host": RALEIGH_IP, "port": self.raleigh.component_port},
            "mirror": {"jid": MIRROR, "secret": "mirror-secret",
                       "local_domains": RALEIGH,
                       "fire_and_forget": "true" if fire_and_forget else "false",
                       "database": os.path.join(base_dir, "dmuc-raleigh", "mirror.sqlite")}})

    def start(self):
        self.relay.start()
        self.fairfax.start()
        self.raleigh.start()
        self.master.start()
        self.mirror.start()
        return self

    def stop(self):
        for part in (self.mirror, self.master):
            part.stop()
        for server in (self.raleigh, self.fairfax):
            server.stop()
        self.relay.stop()


def start_two_sites(testcase, base_dir, **kwargs):
    sites = TwoSites(base_dir, **kwargs)
    testcase.addCleanup(sites.stop)
    sites.start()
    return sites
