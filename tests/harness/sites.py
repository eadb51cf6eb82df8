"""
Two real sites federating over S2S on loopback, through the counting relay:

    fairfax.test  Prosody on .2, dmuc master  conference.fairfax.test
    raleigh.test  Prosody on .3, dmuc mirror  mirror.raleigh.test

of one 127.x.y.0 block.  Each Prosody resolves the other site's domains
(through its own hosts file) to a relay address: .4 leads to raleigh's
Prosody, .5 to fairfax's.  Used by the tests, by C{make run}, C{make demo}
and C{make bench}.

The deployment decides how the dmuc services attach (docs/deploy.md):

    prosody     both are XEP-0114 components of their site's Prosody, and
                everything between the sites is the two Prosodies' S2S;
    direct      as C{prosody}, but master and mirror talk over dmuc's own
                S2S stream, compressed: the master listens on .6, the
                mirror on .7, and the relay leads .8 to the master and .9
                to the mirror;
    mirror_s2s  the mirror has no component: raleigh's Prosody reaches it
                over S2S on .7, fairfax's through the relay's .9;
    standalone  the master has no component: fairfax's Prosody reaches it
                over S2S on .6, raleigh's through the relay's .8.

Every byte between the sites still crosses the relay, counted per
direction.  Without C{pki} every stream is plain text (dialback), so the
relay can parse the stanzas, inflating dmuc's compressed stream; with it
every stream is TLS, as at a real site.

C{DMUC_DEPLOYMENT} in the environment sets the default deployment, so
that the suite of two-site tests runs again in another (C{make test}).
"""

import os
import random
import socket

from dmuc.config import SCHEMA as config_schema
from tests.harness.dmuc_process import DmucProcess
from tests.harness.prosody import ProsodyServer, _lua_string, require_prosody
from tests.harness.relay import LinkRelay

FAIRFAX, RALEIGH = "fairfax.test", "raleigh.test"
MASTER, MIRROR = "conference.fairfax.test", "mirror.raleigh.test"
FIXED_ADDRESSES = tuple("127.0.0.%d" % n for n in range(2, 10))
S2S_PORT = 5269
DEPLOYMENTS = ("prosody", "direct", "mirror_s2s", "standalone")


def default_deployment():
    deployment = os.environ.get("DMUC_DEPLOYMENT") or "prosody"
    if deployment not in DEPLOYMENTS:
        raise ValueError("DMUC_DEPLOYMENT=%r: one of %s" % (deployment, ", ".join(DEPLOYMENTS)))
    return deployment


def free_addresses():
    """
    Eight loopback addresses (.2 to .9) whose S2S port is free, in a
    random 127.x.y.0 block, so that test runs side by side on one machine
    (S2S needs the fixed port 5269) do not collide.
    """
    for _ in range(50):
        block = "127.%d.%d." % (random.randint(16, 250), random.randint(0, 255))
        addresses = tuple(block + str(n) for n in range(2, 10))
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


class _Addresses:
    """The roles of the eight addresses of a block."""

    def __init__(self, addresses):
        if len(addresses) != 8:
            raise ValueError("two sites need eight addresses (.2 to .9), got %r"
                             % (addresses,))
        (self.fairfax, self.raleigh, self.to_raleigh, self.to_fairfax,
         self.master, self.mirror, self.to_master, self.to_mirror) = addresses


class TwoSites:
    """
    The processes of two sites; L{start} starts them all, L{stop} stops
    them (in a test, use L{start_two_sites}).

    @ivar fairfax, raleigh: the L{ProsodyServer}s.
    @ivar master, mirror: the L{DmucProcess}es.
    @ivar relay: the L{LinkRelay} between the sites.
    @ivar deployment: one of L{DEPLOYMENTS}.
    """

    def __init__(self, base_dir, fire_and_forget=False, c2s_ports=(0, 0),
                 addresses=FIXED_ADDRESSES, monitor=None, split_mode="local",
                 muc_domains=((), ()), log_level="debug", muc_modules=(),
                 pki=None, secure_auth=True, deployment=None, s2s=None,
                 multicast_senders=None, etc_files=False, limits=None):
        """
        @param addresses: eight loopback addresses, .2 to .9 of a block
            (tests pass L{free_addresses}()); see the module docstring.
        @param monitor: the [monitor] section for both dmuc processes.
        @param muc_domains: domains for Prosody's own mod_muc at fairfax
            and at raleigh (the benchmarks' stock rooms).
        @param log_level: Prosody's (see L{ProsodyServer}).
        @param muc_modules: modules of those mod_muc components, e.g.
            C{("muc_mam",)}, or a dict of them by domain.
        @param pki: a L{tests.harness.pki.TestCA} for both Prosody
            servers and dmuc's own S2S: S2S then requires TLS, as at a
            real site, with certificates from it for every domain (see
            L{ProsodyServer}); by default S2S is plain text.  The relay
            then still forwards and counts bytes, but sees no stanza
            after STARTTLS: tests that count what crosses the link need
            plain text.
        @param secure_auth: every server's C{s2s_secure_auth} with C{pki}.
        @param deployment: one of L{DEPLOYMENTS}; by default
            C{DMUC_DEPLOYMENT} from the environment, else C{prosody}.
        @param s2s: more keys for both dmuc processes' [s2s] sections.
        @param multicast_senders: components raleigh's Prosody lets
            multicast (XEP-0033) to its users, with the module dmuc ships
            (C{etc/prosody-modules}); by default it has no multicast.
        @param limits: keys of both services' limits (docs/limits.md), e.g.
            C{{"messages_per_second": "0"}} for a test whose one client
            stands for many users' traffic.
        @param etc_files: run the example configurations docs/deploy.md
            shows (C{etc/prosody-*.cfg.lua}, C{etc/dmuc-*.ini}) as written,
            but for what is this machine's: addresses, ports, paths.
        """
        require_prosody()
        self.deployment = deployment or default_deployment()
        if self.deployment not in DEPLOYMENTS:
            raise ValueError("deployment %r: one of %s" % (self.deployment,
                                                           ", ".join(DEPLOYMENTS)))
        ip = self.ip = _Addresses(addresses)
        self.fairfax_ip, self.raleigh_ip = ip.fairfax, ip.raleigh
        self.base_dir = base_dir
        self.pki = pki
        self.secure_auth = secure_auth
        self._s2s_extra = dict(s2s or {})
        os.makedirs(base_dir, exist_ok=True)
        fairfax_hosts, raleigh_hosts = self._write_hosts_files(muc_domains)
        fairfax_components = {} if self.deployment == "standalone" else {
            MASTER: "master-secret"}
        raleigh_components = {} if self.deployment == "mirror_s2s" else {
            MIRROR: "mirror-secret"}
        self.etc_files = etc_files
        self.fairfax = ProsodyServer(base_dir, FAIRFAX, ip=ip.fairfax, hosts_file=fairfax_hosts,
                                     components=fairfax_components,
                                     site_config=_example("prosody-fairfax.cfg.lua")
                                     if etc_files else None,
                                     c2s_port=c2s_ports[0], muc_domains=muc_domains[0],
                                     log_level=log_level, muc_modules=muc_modules,
                                     pki=pki, secure_auth=secure_auth)
        extra, host = multicast_config(multicast_senders)
        self.raleigh = ProsodyServer(base_dir, RALEIGH, ip=ip.raleigh, hosts_file=raleigh_hosts,
                                     components=raleigh_components,
                                     c2s_port=c2s_ports[1], muc_domains=muc_domains[1],
                                     log_level=log_level, muc_modules=muc_modules,
                                     pki=pki, secure_auth=secure_auth,
                                     extra_config=extra, host_config=host,
                                     site_config=_example("prosody-raleigh.cfg.lua")
                                     if etc_files else None)
        routes = {
            (ip.to_raleigh, S2S_PORT): ((ip.raleigh, S2S_PORT), "fairfax>raleigh"),
            (ip.to_fairfax, S2S_PORT): ((ip.fairfax, S2S_PORT), "raleigh>fairfax"),
        }
        if self.deployment != "prosody":
            # Towards the dmuc processes' own S2S listeners.
            routes[(ip.to_mirror, S2S_PORT)] = ((ip.mirror, S2S_PORT), "fairfax>raleigh")
            routes[(ip.to_master, S2S_PORT)] = ((ip.master, S2S_PORT), "raleigh>fairfax")
        self.relay = LinkRelay(routes)
        master_dir = os.path.join(base_dir, "dmuc-fairfax")
        mirror_dir = os.path.join(base_dir, "dmuc-raleigh")
        master_sections = self._master_sections(master_dir, monitor)
        mirror_sections = self._mirror_sections(mirror_dir, monitor, fire_and_forget, split_mode)
        for sections, name in ((master_sections, "master"), (mirror_sections, "mirror")):
            sections[name].update({key: value for key, value in (limits or {}).items()
                                   if key in config_schema[name]})
        if etc_files:
            master_sections = _as_example("dmuc-fairfax.ini", master_sections)
            mirror_sections = _as_example("dmuc-raleigh.ini", mirror_sections)
        self.master = DmucProcess(master_dir, master_sections)
        self.mirror = DmucProcess(mirror_dir, mirror_sections)

    # -- configuration

    def _write_hosts_files(self, muc_domains):
        """One hosts file per Prosody (libunbound ignores /etc/hosts):
        what each must reach over S2S, and where."""
        ip, deployment = self.ip, self.deployment
        to_master = ip.to_master if deployment == "standalone" else ip.to_fairfax
        to_mirror = ip.to_mirror if deployment == "mirror_s2s" else ip.to_raleigh
        fairfax = [(ip.to_raleigh, (RALEIGH,) + tuple(muc_domains[1])), (to_mirror, (MIRROR,))]
        raleigh = [(ip.to_fairfax, (FAIRFAX,) + tuple(muc_domains[0])), (to_master, (MASTER,))]
        if deployment == "standalone":
            fairfax.append((ip.master, (MASTER,)))      # on fairfax's own site
        if deployment == "mirror_s2s":
            raleigh.append((ip.mirror, (MIRROR,)))      # on raleigh's own site
        paths = []
        for site, entries in (("fairfax", fairfax), ("raleigh", raleigh)):
            path = os.path.join(self.base_dir, "hosts-" + site)
            with open(path, "w") as f:
                for address, names in entries:
                    f.write(" ".join((address,) + names) + "\n")
            paths.append(path)
        return paths

    def _master_sections(self, directory, monitor):
        ip = self.ip
        master = {"jid": MASTER, "database": os.path.join(directory, "master.sqlite"),
                  "trusted_mirrors": MIRROR}
        return self._service_sections(
            "master", master, directory, monitor, prosody=self.fairfax,
            own_s2s=self.deployment == "standalone", listen=ip.master,
            routes={FAIRFAX: ip.fairfax, RALEIGH: ip.to_raleigh, MIRROR: ip.to_raleigh},
            peer=MIRROR, peer_route=ip.to_mirror)

    def _mirror_sections(self, directory, monitor, fire_and_forget, split_mode):
        ip = self.ip
        mirror = {"jid": MIRROR, "local_domains": RALEIGH,
                  "fire_and_forget": "true" if fire_and_forget else "false",
                  "database": os.path.join(directory, "mirror.sqlite"),
                  "split_mode": split_mode}
        return self._service_sections(
            "mirror", mirror, directory, monitor, prosody=self.raleigh,
            own_s2s=self.deployment == "mirror_s2s", listen=ip.mirror,
            routes={RALEIGH: ip.raleigh, FAIRFAX: ip.to_fairfax, MASTER: ip.to_fairfax},
            peer=MASTER, peer_route=ip.to_master)

    def _service_sections(self, name, service, directory, monitor, prosody, own_s2s, listen,
                          routes, peer, peer_route):
        """
        The INI sections of one dmuc process: the service attaches to its
        site's C{prosody} as a component, or (C{own_s2s}) serves its domain
        over S2S itself on C{listen}, with static C{routes}; on a direct
        link it reaches C{peer} over its own S2S through C{peer_route}.
        """
        sections = {}
        if own_s2s:
            service["connection"] = "s2s"
            sections["s2s"] = self._s2s_section(service["jid"], directory, listen, routes)
        else:
            sections["xmpp"] = {"host": prosody.ip, "port": prosody.component_port}
            service["secret"] = prosody.components[service["jid"]]
        if self.deployment == "direct":
            service["direct_peers"] = peer
            sections["s2s"] = self._s2s_section(service["jid"], directory, listen,
                                                {peer: peer_route})
        sections[name] = service
        sections["monitor"] = dict(monitor or {}, status_file=os.path.join(
            directory, "status.json"))
        return sections

    def _s2s_section(self, domain, directory, interface, routes):
        """dmuc's own S2S: listening on C{interface}:5269, with static
        routes (domain -> address) on port 5269."""
        section = {
            "interface": interface,
            "port": S2S_PORT,
            "routes": " ".join("%s=%s:%d" % (d, a, S2S_PORT) for d, a in sorted(routes.items())),
            "dialback_secret": "dialback secret of %s" % (domain,),
        }
        if self.pki is None:
            section.update(require_encryption="false", secure_auth="false")
        else:
            certificate, key = self.pki.issue(domain, directory=os.path.join(directory, "certs"))
            section.update(certificate=certificate, private_key=key,
                           ca_file=self.pki.ca_path, require_encryption="true",
                           secure_auth="true" if self.secure_auth else "false")
        section.update(self._s2s_extra)
        return section

    # -- running

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


#: dmuc's Prosody modules (etc/prosody-modules).
PROSODY_MODULES = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))), "etc", "prosody-modules")


#: dmuc's example configurations (etc/).
ETC = os.path.dirname(PROSODY_MODULES)

# What of an example dmuc configuration is this machine's, not the
# example's: where the XMPP server is, and where files go.
_LOCAL_KEYS = {"xmpp": ("host", "port"), "master": ("database",), "mirror": ("database",),
               "monitor": None}


def _example(name):
    with open(os.path.join(ETC, name)) as f:
        return f.read()


def _as_example(name, sections):
    """The example dmuc configuration C{name} as written, with this
    machine's values from C{sections} (the harness's own) for L{_LOCAL_KEYS}."""
    import configparser
    parser = configparser.ConfigParser()
    parser.read_string(_example(name))
    merged = {section: dict(parser[section]) for section in parser.sections()}
    for section, keys in _LOCAL_KEYS.items():
        ours = sections.get(section)
        if ours is None:
            continue
        target = merged.setdefault(section, {})
        target.update(ours if keys is None else {k: ours[k] for k in keys if k in ours})
    return merged


def multicast_config(senders):
    """The global and VirtualHost Lua that loads dmuc's multicast module
    for C{senders}, as docs/deploy.md shows it; empty for C{None}."""
    if senders is None:
        return "", ""
    return ("plugin_paths = { %s }" % _lua_string(PROSODY_MODULES),
            "    modules_enabled = { \"dmuc_multicast\" }\n"
            "    dmuc_multicast_senders = { %s }" % ", ".join(_lua_string(s) for s in senders))
