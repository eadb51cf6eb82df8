"""
Real Prosody servers for tests, on loopback addresses only.

Each L{ProsodyServer} is a private Prosody 0.12 instance: its own config
file, data directory, pid file, log file and ports, in a directory of its
own.  By default everything is plain text (no TLS, no certificates) so
that tests can read the log and the bytes on an S2S link.

Given a L{tests.harness.pki.TestCA} (C{pki=}), an instance is configured
for S2S as a real site is: a certificate from that CA for its VirtualHost
and for every component and mod_muc domain, C{mod_tls} loaded,
C{s2s_require_encryption = true}, C{s2s_secure_auth} as asked (true by
default), and the CA as C{ssl = { cafile = ... }} to trust peers.  What
worked with Prosody 0.12, and the pitfalls:
  - C{certificates = DIR} with C{DOMAIN.crt} and C{DOMAIN.key} per domain
    is enough; no per-host C{ssl} block.  Every S2S domain needs its own
    certificate: a component without one silently uses its parent
    domain's, which secure peers refuse.
  - C{modules_enabled} lists modules explicitly here, and C{tls} is not
    loaded automatically: without it Prosody offers no STARTTLS, and with
    encryption required S2S then fails on both sides.
  - Peers are verified against C{cafile} only when Prosody checks them
    (secure auth, or SASL EXTERNAL); with secure auth off, an untrusted
    peer still gets in by dialback over TLS.
C2S stays optional-TLS with plain authentication allowed, so the slixmpp
clients of L{tests.harness.client} connect unchanged.

Every process started here is also killed when the test process exits,
and (where C{setpriv} exists) when it dies without running exit handlers,
so a crashed test run does not leave Prosody behind.
"""

import atexit
import contextlib
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time

PROSODY_MISSING = (
    "Prosody 0.12 is not installed: run 'apt-get install -y prosody' "
    "(make test does this for you)")

#: The S2S port other servers reach without SRV records.
DEFAULT_S2S_PORT = 5269

#: Ports for test servers, below Linux's default ephemeral range.
_PORT_RANGE = (20000, 32768)
_START_ATTEMPTS = 3
_POLL_INTERVAL = 0.02
_STOP_TIMEOUT = 5.0

# Our own generator, so tests that seed the global one change nothing here.
_random = random.Random()
# Every Prosody process started and not yet reaped.
_running = set()


class ProsodyMissing(AssertionError):
    """Prosody is not installed: a broken test setup, not a skip."""


class ProsodyError(Exception):
    """A Prosody instance failed to start or a prosodyctl command failed."""


class _PortTaken(ProsodyError):
    """Prosody could not listen on a port: another process has it."""


def require_prosody():
    """
    Fail unless the C{prosody} and C{prosodyctl} executables are found.

    @raise ProsodyMissing: with the install instructions as its message.
    @return: the path of the C{prosody} executable.
    """
    prosody = shutil.which("prosody")
    if prosody is None or shutil.which("prosodyctl") is None:
        raise ProsodyMissing(PROSODY_MISSING)
    return prosody


def free_ports(ip, count):
    """
    Return C{count} distinct TCP ports that are free on C{ip} right now.

    They are held open together, so they differ, and they come from below
    the kernel's ephemeral range, so no outgoing connection (a client, a
    readiness probe) can take one as its source port before Prosody binds
    it.  Another process may still bind one first: L{ProsodyServer.start}
    notices and picks new ports.
    """
    floor, ceiling = _PORT_RANGE[0], _ephemeral_floor()
    candidates = _random.sample(range(floor, ceiling), ceiling - floor)
    ports = []
    with contextlib.ExitStack() as held:
        for port in candidates:
            sock = held.enter_context(
                socket.socket(socket.AF_INET, socket.SOCK_STREAM))
            try:
                sock.bind((ip, port))
            except OSError:
                continue
            ports.append(port)
            if len(ports) == count:
                return ports
    raise ProsodyError("no %d free ports on %s" % (count, ip))


def _ephemeral_floor():
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as ports:
            low = int(ports.read().split()[0])
    except (OSError, ValueError, IndexError):
        low = _PORT_RANGE[1]
    return max(low, _PORT_RANGE[0] + 1000)


def _accepts(ip, port):
    try:
        with socket.create_connection((ip, port), timeout=0.5):
            return True
    except OSError:
        return False


def _lua_string(value):
    """Quote a Python string as a Lua string literal."""
    escaped = str(value).replace("\\", "\\\\").replace('"', '\\"')
    return '"%s"' % escaped.replace("\n", "\\n")


def _lua_ports(*ports):
    return "{ %s }" % ", ".join(str(port) for port in ports)


class ProsodyServer:
    """
    One private Prosody instance.

    @ivar domain: the VirtualHost users log in to.
    @ivar ip: the loopback address every port of this instance is bound to.
    @ivar c2s_port: the client port.
    @ivar component_port: the XEP-0114 external component port (Prosody
        only opens it when C{components} is not empty).
    @ivar s2s_port: the server-to-server port.
    @ivar config_path: the generated Prosody config file.
    @ivar log_path: Prosody's debug log.
    @ivar output_path: Prosody's stdout and stderr.
    @ivar process: the running L{subprocess.Popen}, or C{None}.
    @ivar accounts: maps the users L{register}ed here to their passwords.
    """

    def __init__(self, base_dir, domain, ip="127.0.0.1", muc_domains=(),
                 components=None, hosts_file=None, extra_config="", muc_modules=(),
                 s2s_port=DEFAULT_S2S_PORT, c2s_port=0, log_level="debug",
                 pki=None, secure_auth=True, cafile=None, host_config="", site_config=None):
        """
        Write the configuration; nothing runs until L{start}.

        @param base_dir: the directory for all instances of a test; this
            one lives in C{base_dir/domain/}.
        @param domain: the VirtualHost for user accounts.
        @param ip: a 127.0.0.0/8 address for all listening ports.
        @param muc_domains: domains served by Prosody's own C{muc}
            component (rooms unlocked, creation open to all).
        @param muc_modules: further modules of those components, e.g.
            C{("muc_mam",)}, or a dict of them by domain.
        @param components: maps XEP-0114 external component domains to
            their secrets.
        @param hosts_file: a hosts file for Prosody's resolver (libunbound
            ignores /etc/hosts), listing every remote domain for S2S.
        @param extra_config: Lua appended to the global section; later
            settings override ours, and it may open sections of its own.
            Keep C{log}: L{start} reads the log to know Prosody is ready.
        @param host_config: Lua for the VirtualHost's own section (a
            C{modules_enabled} there adds to the global list).
        @param s2s_port: 5269, so that S2S works without SRV records; pass
            0 for any free port when the test does no S2S.
        @param c2s_port: a fixed client port (C{make run} uses 5222 so
            people can type it); 0, the default, for any free port.
        @param log_level: the lowest level logged; tests read debug lines,
            benchmarks log C{info} so that logging does not cost them.
        @param pki: a L{tests.harness.pki.TestCA} that issues this
            instance's certificates, for S2S with encryption required; by
            default (C{None}) S2S is plain text with dialback.
        @param secure_auth: Prosody's C{s2s_secure_auth} when C{pki} is
            given: peers must show a certificate from a trusted CA.
        @param cafile: the CA certificate trusted for peers; C{pki}'s own
            by default (refusal tests trust another one).
        @param site_config: the text of one of dmuc's example files
            (C{etc/prosody-*.cfg.lua}), used as an operator adds it to
            prosody.cfg.lua: its global options in the global part (with
            this instance's address and component port in place of the
            example's), its C{Component} blocks after the VirtualHost.  Its
            components take the place of C{components}.
        """
        if not ip.startswith("127."):
            raise ValueError("test servers listen on loopback only: %r"
                             % (ip,))
        self.domain = domain
        self.ip = ip
        self.muc_domains = tuple(muc_domains)
        self.muc_modules = dict(muc_modules) if isinstance(muc_modules, dict) \
            else {d: tuple(muc_modules) for d in self.muc_domains}
        self.site_global, self.site_components = _split_site_config(site_config or "")
        self.components = (dict(re.findall(
            r'Component\s+"([^"]+)"\s+component_secret\s*=\s*"([^"]*)"', self.site_components))
            if site_config else dict(components or {}))
        self.hosts_file = hosts_file
        self.extra_config = extra_config
        self.host_config = host_config
        self.log_level = log_level
        self.directory = os.path.abspath(os.path.join(base_dir, domain))
        self.data_path = os.path.join(self.directory, "data")
        self.config_path = os.path.join(self.directory, "prosody.cfg.lua")
        self.log_path = os.path.join(self.directory, "prosody.log")
        self.output_path = os.path.join(self.directory, "prosody.out")
        self.pid_path = os.path.join(self.directory, "prosody.pid")
        self.certs_path = os.path.join(self.directory, "certs")
        self.fixed_s2s_port = s2s_port
        self.fixed_c2s_port = c2s_port
        self.pki = pki
        self.secure_auth = secure_auth
        self.cafile = cafile or (pki.ca_path if pki is not None else None)
        self.process = None
        self.accounts = {}
        # Ports may change until the first successful start, never after.
        self._ports_pinned = False
        os.makedirs(self.data_path, exist_ok=True)
        os.makedirs(self.certs_path, exist_ok=True)
        if pki is not None:
            self._issue_certificates()
        self._allocate_ports()

    @property
    def s2s_domains(self):
        """Every domain this instance serves over S2S."""
        return ((self.domain,) + self.muc_domains
                + tuple(sorted(self.components)))

    def _issue_certificates(self):
        for domain in self.s2s_domains:
            self.pki.issue(domain, directory=self.certs_path)

    def _allocate_ports(self):
        ports = free_ports(self.ip, 2 if self.fixed_s2s_port else 3)
        self.c2s_port, self.component_port = ports[:2]
        self.c2s_port = self.fixed_c2s_port or self.c2s_port
        self.s2s_port = self.fixed_s2s_port or ports[2]
        with open(self.config_path, "w") as config:
            config.write(self.config_text())

    def config_text(self):
        """Return the Lua configuration of this instance."""
        lines = [
            "-- Generated by tests/harness/prosody.py",
            "data_path = %s" % _lua_string(self.data_path),
            "pidfile = %s" % _lua_string(self.pid_path),
            "log = { %s = %s }" % (self.log_level, _lua_string(self.log_path)),
            # Without pki an empty directory: no TLS, and no error about a
            # missing one.
            "certificates = %s" % _lua_string(self.certs_path),
            "interfaces = { %s }" % _lua_string(self.ip),
            "c2s_ports = %s" % _lua_ports(self.c2s_port),
            "s2s_ports = %s" % _lua_ports(self.s2s_port),
        ] + ([] if self.site_global else [
            # An example file (site_config) sets these itself.
            "component_interface = %s" % _lua_string(self.ip),
            "component_ports = %s" % _lua_ports(self.component_port),
        ]) + [
            "http_ports = { }",
            "https_ports = { }",
            "c2s_direct_tls_ports = { }",
            "s2s_direct_tls_ports = { }",
            "c2s_require_encryption = false",
        ] + self._s2s_security_lines() + [
            "allow_unencrypted_plain_auth = true",
            "authentication = \"internal_plain\"",
            "network_settings = { nagle = false }",
            # vcard: users' vCards (vcard-temp), answered at the bare JID,
            # as rooms ask for an occupant's; unlike vcard_legacy it adds
            # nothing to presences, so what crosses the link stays put.
            "modules_enabled = { \"roster\", \"saslauth\", \"disco\","
            " \"ping\", \"dialback\", \"vcard\"%s }"
            % (", \"tls\"" if self.pki is not None else ""),
        ]
        if os.geteuid() == 0:
            # Without it Prosody refuses to run as root and hangs.
            lines.append("run_as_root = true")
        if self.hosts_file:
            lines.append("unbound = { hoststxt = %s }"
                         % _lua_string(os.path.abspath(self.hosts_file)))
        if self.extra_config:
            lines.append(self.extra_config)
        if self.site_global:
            lines.append(self.site_global
                         .replace("{ 5347 }", _lua_ports(self.component_port))
                         .replace('"127.0.0.1"', _lua_string(self.ip)))
        lines.append("")
        lines.append("VirtualHost %s" % _lua_string(self.domain))
        if self.host_config:
            lines.append(self.host_config)
        for muc_domain in self.muc_domains:
            lines += [
                "",
                "Component %s \"muc\"" % _lua_string(muc_domain),
                "    muc_room_locking = false",
                "    restrict_room_creation = false",
            ]
            if self.muc_modules.get(muc_domain):
                lines.append("    modules_enabled = { %s }"
                             % ", ".join(_lua_string(m) for m in self.muc_modules[muc_domain]))
        if self.site_components:
            lines += ["", self.site_components]
        for component, secret in sorted(self.components.items()) if not self.site_components \
                else ():
            lines += [
                "",
                "Component %s" % _lua_string(component),
                "    component_secret = %s" % _lua_string(secret),
            ]
        return "\n".join(lines) + "\n"

    def _s2s_security_lines(self):
        """The S2S settings: plain text, or those of a real site."""
        if self.pki is None:
            return ["s2s_require_encryption = false",
                    "s2s_secure_auth = false"]
        return [
            "s2s_require_encryption = true",
            "s2s_secure_auth = %s" % ("true" if self.secure_auth else "false"),
            "ssl = { cafile = %s }" % _lua_string(self.cafile),
        ]

    @property
    def running(self):
        """Whether the Prosody process is alive."""
        return self.process is not None and self.process.poll() is None

    @property
    def pid(self):
        """The process id of the running Prosody, or C{None}."""
        return self.process.pid if self.process is not None else None

    def start(self, timeout=10):
        """
        Start Prosody and wait until its c2s port accepts connections,
        and its component port too if external components are configured.

        If another process took one of the ports first, the first start
        tries again on new ones; later starts keep their ports.

        @raise ProsodyMissing: if Prosody is not installed.
        @raise ProsodyError: if Prosody exits, cannot open its ports, or
            is not ready within C{timeout} seconds; the message ends with
            the tail of its log.
        """
        prosody = require_prosody()
        if self.running:
            raise ProsodyError("%s is already running" % (self.domain,))
        for attempt in range(1, _START_ATTEMPTS + 1):
            self._spawn(prosody)
            try:
                self._wait_ready(timeout)
            except _PortTaken:
                self.stop()
                if self._ports_pinned or attempt == _START_ATTEMPTS:
                    raise
                self._allocate_ports()
            except BaseException:
                self.stop()
                raise
            else:
                self._ports_pinned = True
                return

    def _spawn(self, prosody):
        command = [prosody, "-F", "--config", self.config_path]
        if shutil.which("setpriv"):
            # Kill Prosody even if the test process dies by SIGKILL.  The
            # signal comes when the starting *thread* ends: start servers
            # from the test thread, not from a short-lived one.
            command = ["setpriv", "--pdeathsig", "KILL", "--"] + command
        with open(self.output_path, "ab") as output:
            self.process = subprocess.Popen(
                command, stdin=subprocess.DEVNULL, stdout=output,
                stderr=subprocess.STDOUT, start_new_session=True)
        _running.add(self.process)

    def _wait_ready(self, timeout):
        """
        Wait for Prosody's own word that its ports listen, then connect.

        Probing the ports alone is not enough: a port taken by another
        process accepts too, while Prosody only logs an error.
        """
        deadline = time.monotonic() + timeout
        services = {"c2s": self.c2s_port}
        if self.components:
            # Prosody only listens for components when one is configured.
            services["component"] = self.component_port
        expected = {"Activated service '%s' on [%s]:%d" % (name, self.ip, port)
                    for name, port in services.items()}
        log_offset = self._log_size()
        while True:
            lines = self._log_lines(log_offset)
            bind_errors = [line.strip() for line in lines
                           if " portmanager\terror\t" in line]
            if bind_errors:
                raise self._failure(bind_errors[0], _PortTaken)
            if all(any(text in line for line in lines) for text in expected):
                break
            if self.process.poll() is not None:
                raise self._failure("exited with status %d"
                                    % (self.process.returncode,))
            if time.monotonic() > deadline:
                raise self._failure("not ready after %s s" % (timeout,))
            time.sleep(_POLL_INTERVAL)
        for port in services.values():
            if not _accepts(self.ip, port):
                raise self._failure("does not accept on port %d" % (port,))

    def _log_size(self):
        try:
            return os.path.getsize(self.log_path)
        except FileNotFoundError:
            return 0

    def _log_lines(self, offset=0):
        try:
            with open(self.log_path, "rb") as log:
                log.seek(offset)
                return log.read().decode(errors="replace").splitlines()
        except FileNotFoundError:
            return []

    def log_tail(self, lines=40):
        """Return the last lines of Prosody's log and output as text."""
        parts = []
        for path in (self.log_path, self.output_path):
            try:
                with open(path, errors="replace") as log:
                    tail = log.readlines()[-lines:]
            except FileNotFoundError:
                continue
            parts.append("--- %s ---\n%s" % (path, "".join(tail)))
        return "\n".join(parts)

    def _failure(self, reason, error=ProsodyError):
        return error("Prosody for %s: %s\n%s"
                     % (self.domain, reason, self.log_tail()))

    def register(self, user, password):
        """
        Create (or reset) the account C{user@domain}.

        Uses prosodyctl on this instance's config, so it works whether or
        not the server runs.
        """
        require_prosody()
        result = subprocess.run(
            ["prosodyctl", "--config", self.config_path, "register",
             user, self.domain, password],
            stdin=subprocess.DEVNULL, capture_output=True, text=True,
            timeout=30)
        if result.returncode != 0:
            raise ProsodyError("prosodyctl register %s@%s failed (%d):\n%s%s"
                               % (user, self.domain, result.returncode,
                                  result.stdout, result.stderr))
        self.accounts[user] = password

    def create_accounts(self, users, password):
        """
        Create many accounts at once, by writing the files prosodyctl
        would write (internal_plain storage): a prosodyctl run costs
        about 0.25 s, too much for the benchmarks' hundred users.
        """
        host = self.domain.replace(".", "%2e").replace("-", "%2d")
        accounts = os.path.join(self.data_path, host, "accounts")
        os.makedirs(accounts, exist_ok=True)
        for user in users:
            with open(os.path.join(accounts, user + ".dat"), "w") as account:
                account.write("return {\n\t[\"password\"] = %s;\n};\n"
                              % _lua_string(password))
            self.accounts[user] = password

    def stop(self):
        """
        Stop Prosody: SIGTERM, then SIGKILL after 5 seconds.

        Safe to call when it is not running, and more than once.
        """
        process, self.process = self.process, None
        if process is not None:
            _terminate(process)

    def restart(self, timeout=10):
        """Stop Prosody and start it again on the same ports and data."""
        self.stop()
        self.start(timeout=timeout)

    def __repr__(self):
        return "<ProsodyServer %s on %s c2s=%d component=%d s2s=%d>" % (
            self.domain, self.ip, self.c2s_port, self.component_port,
            self.s2s_port)


def _terminate(process):
    try:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(_STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
    finally:
        _running.discard(process)


@atexit.register
def _kill_all():
    """Stop every Prosody still running when the test process exits."""
    for process in list(_running):
        _terminate(process)


def start_prosody(testcase, domain, **kwargs):
    """
    Start a L{ProsodyServer} for a trial test and stop it in its cleanup.

    @param testcase: the running L{twisted.trial.unittest.TestCase}.
    @param kwargs: further L{ProsodyServer} arguments; C{base_dir}
        defaults to L{temp_directory}C{(testcase)}.
    @return: the started server.
    """
    require_prosody()
    base_dir = kwargs.pop("base_dir", None) or temp_directory(testcase)
    server = ProsodyServer(base_dir, domain, **kwargs)
    testcase.addCleanup(server.stop)
    server.start()
    return server


def temp_directory(testcase):
    """
    Return a new absolute directory for the files of one test.

    Under trial this is C{testcase.mktemp()} inside C{_trial_temp}, kept
    until the next run for reading logs.  Elsewhere (pytest) C{mktemp()}
    would write into the working directory, the source tree, so the same
    layout is made under the system temporary directory instead.
    """
    # Trial runs tests inside its temp directory, marked by this file.
    if os.path.exists("_trial_marker"):
        path = os.path.abspath(testcase.mktemp())
    else:
        root = os.path.join(tempfile.gettempdir(), "dmuc-tests")
        parent = os.path.join(root, testcase.id()[-100:])
        os.makedirs(parent, exist_ok=True)
        path = tempfile.mkdtemp(dir=parent)
    os.makedirs(path, exist_ok=True)
    return path


def _split_site_config(text):
    """An example file's global part (before its first Component) and its
    Component blocks."""
    at = re.search(r"^Component ", text, re.M)
    if at is None:
        return text.strip(), ""
    return text[:at.start()].strip(), text[at.start():].strip()
