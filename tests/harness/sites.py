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
import random
import socket

from tests.harness.dmuc_process import DmucProcess
from tests.harness.prosody import ProsodyServer, require_prosody
from tests.harness.relay import LinkRelay

FAIRFAX, RALEIGH = "fairfax.test", "raleigh.test"
MASTER, MIRROR = "conference.fairfax.test", "mirror.raleigh.test"
FAIRFAX_IP, RALEIGH_IP = "127.0.0.2", "127.0.0.3"
TO_RALEIGH_IP, TO_FAIRFAX_IP = "127.0.0.4", "127.0.0.5"
FIXED_ADDRESSES = (FAIRFAX_IP, RALEIGH_IP, TO_RALEIGH_IP, TO_FAIRFAX_IP)
S2S_PORT = 5269


def free_addresses():
    """
    Four loopback addresses whose S2S port is free, in a random 127.x.y.0
    block, so that test runs side by side on one machine (S2S needs the
    fixed port 5269) do not collide.
    """
    for _ in range(50):
        block = "127.%d.%d." % (random.randint(16, 250), random.randint(0, 255))
        addresses = tuple(block + str(n) for n in (2, 3, 4, 5))
        if all(_port_free(a, S2S_PORT) for a in addresses):
            return addresses
    raise RuntimeError("no free loopback block for two sites")


def _port_free(address, port):
    with socket.socket() as probe:
        try:
            probe.bind((address, port))
        except OSError:
            return False
    return True


class TwoSites:
    """
    The processes of two sites; L{start} starts them all, L{stop} stops
    them (in a test, use L{start_two_sites}).

    @ivar fairfax, raleigh: the L{ProsodyServer}s.
    @ivar master, mirror: the L{DmucProcess}es.
    @ivar relay: the L{LinkRelay} between the sites.
    """

    def __init__(self, base_dir, fire_and_forget=False, c2s_ports=(0, 0),
                 addresses=FIXED_ADDRESSES, monitor=None, split_mode="local",
                 muc_domains=((), ()), log_level="debug", muc_modules=(),
                 pki=None, secure_auth=True):
        """
        @param addresses: fairfax's, raleigh's, and the relay's towards
            raleigh and towards fairfax (tests pass L{free_addresses}()).
        @param monitor: the [monitor] section for both dmuc processes.
        @param muc_domains: domains for Prosody's own mod_muc at fairfax
            and at raleigh (the benchmarks' stock rooms).
        @param log_level: Prosody's (see L{ProsodyServer}).
        @param muc_modules: modules of those mod_muc components, e.g.
            C{("muc_mam",)}.
        @param pki: a L{tests.harness.pki.TestCA} for both Prosody
            servers: S2S then requires TLS, as at a real site, with
            certificates from it for every domain (see L{ProsodyServer});
            by default S2S is plain text.  The relay then still forwards
            and counts bytes, but sees no stanza after STARTTLS: tests
            that count what crosses the link need plain text.
        @param secure_auth: both servers' C{s2s_secure_auth} with C{pki}.
        """
        require_prosody()
        self.fairfax_ip, self.raleigh_ip, to_raleigh, to_fairfax = addresses
        self.base_dir = base_dir
        os.makedirs(base_dir, exist_ok=True)
        hosts = os.path.join(base_dir, "hosts")
        with open(hosts, "w") as f:
            f.write(" ".join((to_raleigh, RALEIGH, MIRROR) + tuple(muc_domains[1])) + "\n")
            f.write(" ".join((to_fairfax, FAIRFAX, MASTER) + tuple(muc_domains[0])) + "\n")
        self.fairfax = ProsodyServer(base_dir, FAIRFAX, ip=self.fairfax_ip, hosts_file=hosts,
                                     components={MASTER: "master-secret"},
                                     c2s_port=c2s_ports[0], muc_domains=muc_domains[0],
                                     log_level=log_level, muc_modules=muc_modules,
                                     pki=pki, secure_auth=secure_auth)
        self.raleigh = ProsodyServer(base_dir, RALEIGH, ip=self.raleigh_ip, hosts_file=hosts,
                                     components={MIRROR: "mirror-secret"},
                                     c2s_port=c2s_ports[1], muc_domains=muc_domains[1],
                                     log_level=log_level, muc_modules=muc_modules,
                                     pki=pki, secure_auth=secure_auth)
        self.relay = LinkRelay({
            (to_raleigh, S2S_PORT): ((self.raleigh_ip, S2S_PORT), "fairfax>raleigh"),
            (to_fairfax, S2S_PORT): ((self.fairfax_ip, S2S_PORT), "raleigh>fairfax"),
        })
        self.master = DmucProcess(os.path.join(base_dir, "dmuc-fairfax"), {
            "xmpp": {"host": self.fairfax_ip, "port": self.fairfax.component_port},
            "master": {"jid": MASTER, "secret": "master-secret",
                       "database": os.path.join(base_dir, "dmuc-fairfax", "master.sqlite"),
                       "trusted_mirrors": MIRROR},
            "monitor": dict(monitor or {}, status_file=os.path.join(
                base_dir, "dmuc-fairfax", "status.json"))})
        self.mirror = DmucProcess(os.path.join(base_dir, "dmuc-raleigh"), {
            "xmpp": {"host": self.raleigh_ip, "port": self.raleigh.component_port},
            "mirror": {"jid": MIRROR, "secret": "mirror-secret",
                       "local_domains": RALEIGH,
                       "fire_and_forget": "true" if fire_and_forget else "false",
                       "database": os.path.join(base_dir, "dmuc-raleigh", "mirror.sqlite"),
                       "split_mode": split_mode},
            "monitor": dict(monitor or {}, status_file=os.path.join(
                base_dir, "dmuc-raleigh", "status.json"))})

    def start(self, dmuc=True):
        """
        @param dmuc: also start the master and the mirror (the benchmarks'
            stock runs leave them out, so that nothing of theirs crosses).
        """
        self.relay.start()
        self.fairfax.start()
        self.raleigh.start()
        if dmuc:
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
    kwargs.setdefault("addresses", free_addresses())
    sites = TwoSites(base_dir, **kwargs)
    testcase.addCleanup(sites.stop)
    sites.start()
    return sites
