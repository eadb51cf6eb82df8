"""
The dmuc configuration file: an INI file, validated completely at start.

Every problem is reported as one L{ConfigError} whose message names the file,
the section and the key, e.g.::

    /etc/dmuc.ini: [master] secret: missing (every service needs the
    component secret shared with the XMPP server)

Each service section is optional, but at least one must be present.  The
keys of each section are declared in L{SCHEMA}: adding a key means adding a
line there and a field to the section's dataclass.
"""

import configparser
import os
from dataclasses import dataclass, field, fields

from dmuc.muc.archive import parse_duration
from dmuc.xmpp.stanzas import parse_jid

SERVICE_SECTIONS = ("master", "mirror")


class ConfigError(Exception):
    """The configuration cannot be used; the message says why and where."""


# -- value parsers: each takes the raw string and returns the value or raises
#    ValueError with a message that completes "[section] key: ..."


def _string(raw):
    return raw.strip()


def _secret(raw):
    value = raw.strip()
    if not value:
        raise ValueError("empty (the component secret must match the one in "
                         "the XMPP server's Component block)")
    return value


def _port(raw):
    try:
        port = int(raw)
    except ValueError:
        raise ValueError("%r is not a port number" % (raw,))
    if not 1 <= port <= 65535:
        raise ValueError("%d is not a port number (1-65535)" % (port,))
    return port


def _listen(raw):
    """C{host:port} for a local listener (the metrics endpoint)."""
    host, colon, port = raw.strip().rpartition(":")
    if not colon or not host:
        raise ValueError("%r is not an address such as 127.0.0.1:9154" % (raw,))
    return host.strip("[]"), _port(port)


def _domain_jid(raw):
    jid = parse_jid(raw.strip())
    if jid is None or jid.user or jid.resource or "." not in jid.host:
        raise ValueError("%r is not a component domain such as "
                         "conference.example.org" % (raw,))
    return jid.host


def _database(raw):
    path = os.path.abspath(os.path.expanduser(raw.strip()))
    if os.path.isdir(path):
        raise ValueError("%s is a directory, not a database file" % (path,))
    if os.path.exists(path):
        with open(path, "rb") as f:
            header = f.read(16)
        if header and header != b"SQLite format 3\x00":
            raise ValueError("%s exists and is not a SQLite database" % (path,))
        if not os.access(path, os.W_OK):
            raise ValueError("%s is not writable" % (path,))
    else:
        parent = _existing_parent(os.path.dirname(path))
        if not os.access(parent, os.W_OK):
            raise ValueError("cannot create %s: %s is not writable"
                             % (path, parent))
    return path


def _existing_parent(path):
    while not os.path.exists(path):
        path = os.path.dirname(path)
    if not os.path.isdir(path):
        raise ValueError("%s is not a directory" % (path,))
    return path


def _domains(raw):
    domains = tuple(_plain_domain(d) for d in raw.replace(",", " ").split())
    if not domains:
        raise ValueError("empty (name at least one domain whose users may join)")
    return domains


def _boolean(raw):
    value = raw.strip().lower()
    if value in ("true", "yes", "on", "1"):
        return True
    if value in ("false", "no", "off", "0"):
        return False
    raise ValueError("%r is not true or false" % (raw,))


def _path(raw):
    return os.path.abspath(os.path.expanduser(raw.strip()))


def _seconds(raw):
    try:
        value = float(raw)
    except ValueError:
        raise ValueError("%r is not a number of seconds" % (raw,))
    if value <= 0:
        raise ValueError("%r must be more than 0 seconds" % (raw,))
    return value


def _expiry(raw):
    """Seconds, 0 included: 0 keeps nothing (Prosody's
    C{muc_tombstones = false})."""
    try:
        value = float(raw)
    except ValueError:
        raise ValueError("%r is not a number of seconds" % (raw,))
    if not value >= 0 or value == float("inf"):
        raise ValueError("%r must be 0 or more seconds" % (raw,))
    return value


def _archive_expires(raw):
    """How long room archives keep a message: C{1w}, C{30d}, seconds, or
    C{never} (C{None}); as Prosody's C{muc_log_expires_after}."""
    value = parse_duration(raw)
    if value == 0:
        raise ValueError("%r keeps nothing; turn archiving off in the rooms instead" % (raw,))
    return value


def _split_mode(raw):
    value = raw.strip()
    if value not in ("local", "readonly"):
        raise ValueError("%r is not local or readonly" % (raw,))
    return value


def _trusted_mirrors(raw):
    """
    C{mirror.raleigh.test} or C{mirror.raleigh.test=raleigh.test,other.test},
    entries separated by white space (one per line reads best).  Without
    C{=} a mirror may speak for its parent domain only (docs/protocol.md 8).
    """
    mirrors = {}
    for entry in raw.split():
        name, _, domains = entry.partition("=")
        mirror = _domain_jid(name)
        if domains:
            allowed = tuple(_plain_domain(d) for d in domains.split(",") if d)
        else:
            allowed = (mirror.split(".", 1)[1],)
        if not allowed:
            raise ValueError("%r names no domain after '='" % (entry,))
        mirrors[mirror] = allowed
    return mirrors


def _plain_domain(raw):
    jid = parse_jid(raw)
    if jid is None or jid.user or jid.resource:
        raise ValueError("%r is not a domain" % (raw,))
    return jid.host


def _connection(raw):
    value = raw.strip()
    if value not in ("component", "s2s"):
        raise ValueError("%r is not component (through the XMPP server, XEP-0114) "
                         "or s2s (dmuc's own server-to-server)" % (raw,))
    return value


def _optional_domains(raw):
    return tuple(_plain_domain(d) for d in raw.replace(",", " ").split())


def _optional_file(raw):
    value = raw.strip()
    if not value:
        return None
    path = os.path.abspath(os.path.expanduser(value))
    if not os.path.isfile(path):
        raise ValueError("%s: no such file" % (path,))
    if not os.access(path, os.R_OK):
        raise ValueError("%s is not readable" % (path,))
    return path


def _ca_file(raw):
    value = raw.strip()
    if value == "system":
        return SYSTEM_CA_FILE if os.path.isfile(SYSTEM_CA_FILE) else None
    return _optional_file(value)


def _routes(raw):
    """
    C{domain=host:port}, several addresses separated by commas, entries
    by white space: C{conference.fairfax.test=192.0.2.1:5269}.
    """
    routes = {}
    for entry in raw.split():
        name, equals, addresses = entry.partition("=")
        if not equals or not addresses:
            raise ValueError("%r is not domain=host:port" % (entry,))
        targets = []
        for address in addresses.split(","):
            host, colon, port = address.rpartition(":")
            if not colon or not host:
                raise ValueError("%r: %r is not host:port" % (entry, address))
            if "=" in host:
                raise ValueError("%r: %r is not a host; separate domains by white space "
                                 "(commas separate one domain's addresses)" % (entry, host))
            targets.append((host.strip("[]"), _port(port)))
        routes[_plain_domain(name)] = tuple(targets)
    return routes


def _compress(raw):
    value = raw.strip()
    if value == "direct_peers":
        return None           # filled in from the services' direct_peers
    if value == "none":
        return ()
    return _optional_domains(value)


def _count(raw):
    try:
        value = int(raw)
    except ValueError:
        raise ValueError("%r is not a whole number" % (raw,))
    if value < 1:
        raise ValueError("%d must be at least 1" % (value,))
    return value


def _rate(raw):
    try:
        value = float(raw)
    except ValueError:
        raise ValueError("%r is not a number (per second; 0 for no limit)" % (raw,))
    if value < 0:
        raise ValueError("%r must be 0 (no limit) or more" % (raw,))
    return value


def _limit(raw):
    """A whole number, 0 for no limit."""
    try:
        value = int(raw)
    except ValueError:
        raise ValueError("%r is not a whole number (0 for no limit)" % (raw,))
    if value < 0:
        raise ValueError("%d must be 0 (no limit) or more" % (value,))
    return value


# What both services bound (dmuc/muc/limits.py, docs/limits.md), with
# defaults that keep one user from filling a small server.
_LIMITS = {
    "messages_per_second": (_rate, "5"),
    "message_burst": (_count, "50"),
    "max_presence_size": (_limit, "8192"),
    "max_occupants": (_limit, "10000"),
}


def _optional_secret(raw):
    return raw.strip()


SYSTEM_CA_FILE = "/etc/ssl/certs/ca-certificates.crt"

REQUIRED = object()

# section -> key -> (parser, default).  REQUIRED marks a key with no default.
SCHEMA = {
    "xmpp": {
        "host": (_string, "127.0.0.1"),
        "port": (_port, "5347"),
    },
    "master": {
        "jid": (_domain_jid, REQUIRED),
        "connection": (_connection, "component"),
        "secret": (_optional_secret, ""),
        "direct_peers": (_optional_domains, ""),
        "database": (_database, "dmuc-master.sqlite"),
        "trusted_mirrors": (_trusted_mirrors, ""),
        "redirect_to_mirrors": (_boolean, "false"),
        "max_history_messages": (_count, "1000"),
        **_LIMITS,
        "max_occupants_per_room": (_limit, "1000"),
        "max_rooms_per_user": (_limit, "100"),
        "tombstone_expiry": (_expiry, str(31 * 86400)),
        "archive_expires": (_archive_expires, "1w"),
    },
    "mirror": {
        "jid": (_domain_jid, REQUIRED),
        "connection": (_connection, "component"),
        "secret": (_optional_secret, ""),
        "direct_peers": (_optional_domains, ""),
        "local_domains": (_domains, REQUIRED),
        "fire_and_forget": (_boolean, "false"),
        "database": (_database, "dmuc-mirror.sqlite"),
        "split_mode": (_split_mode, "local"),
        **_LIMITS,
        "archive_expires": (_archive_expires, "1w"),
    },
    "s2s": {
        "interface": (_string, "0.0.0.0"),
        "port": (_port, "5269"),
        "certificate": (_optional_file, ""),
        "private_key": (_optional_file, ""),
        "ca_file": (_ca_file, "system"),
        "require_encryption": (_boolean, "true"),
        "secure_auth": (_boolean, "true"),
        "dialback": (_boolean, "true"),
        "dialback_secret": (_optional_secret, ""),
        "routes": (_routes, ""),
        "compress": (_compress, "direct_peers"),
        "connect_timeout": (_seconds, "20"),
        "queue_limit": (_count, "1000"),
        "idle_timeout": (_seconds, "600"),
        "keepalive_interval": (_seconds, "60"),
    },
    "metrics": {
        "listen": (_listen, REQUIRED),
    },
    "monitor": {
        "ping_interval": (_seconds, "60"),
        "ping_timeout": (_seconds, "20"),
        "split_ping_interval": (_seconds, "10"),
        "status_file": (_path, "dmuc-status-{service}.json"),
    },
}


@dataclass
class XMPPConfig:
    """Where the XMPP server accepts components (XEP-0114)."""

    host: str = "127.0.0.1"
    port: int = 5347


@dataclass
class MasterConfig:
    """The master MUC service."""

    jid: str
    secret: str
    database: str
    trusted_mirrors: dict = field(default_factory=dict)
    connection: str = "component"
    direct_peers: tuple = ()
    redirect_to_mirrors: bool = False
    max_history_messages: int = 1000
    tombstone_expiry: float = 31 * 86400
    archive_expires: float | None = 7 * 86400
    #: The [master] limit keys (_LIMITS and the master's own), read into
    #: one L{Limits}.
    limits: object = None


@dataclass
class MirrorConfig:
    """The mirror room service."""

    jid: str
    secret: str
    local_domains: tuple
    fire_and_forget: bool
    database: str
    split_mode: str = "local"
    connection: str = "component"
    direct_peers: tuple = ()
    archive_expires: float | None = 7 * 86400
    limits: object = None   # the [mirror] limit keys, as one L{Limits}


@dataclass
class S2SConfig:
    """dmuc's own server-to-server endpoint (docs/deploy.md)."""

    interface: str = "0.0.0.0"
    port: int = 5269
    certificate: str | None = None
    private_key: str | None = None
    ca_file: str | None = None
    require_encryption: bool = True
    secure_auth: bool = True
    dialback: bool = True
    dialback_secret: str = ""
    routes: dict = field(default_factory=dict)
    compress: tuple | None = None
    connect_timeout: float = 20
    queue_limit: int = 1000
    idle_timeout: float = 600
    keepalive_interval: float = 60


@dataclass
class MonitorConfig:
    """The link monitor (docs/protocol.md 6); seconds."""

    ping_interval: float = 60
    ping_timeout: float = 20
    split_ping_interval: float = 10
    status_file: str = "dmuc-status-{service}.json"

    def status_file_for(self, service):
        """The status file of the service C{service} (a domain): the
        setting with C{{service}} replaced by it."""
        return self.status_file.replace("{service}", service) if self.status_file else None


@dataclass
class MetricsConfig:
    """The OpenMetrics endpoint, served only when [metrics] is given."""

    listen: tuple = ("127.0.0.1", 9154)


@dataclass
class Config:
    """The whole validated configuration."""

    path: str
    xmpp: XMPPConfig
    master: MasterConfig | None = None
    mirror: MirrorConfig | None = None
    monitor: MonitorConfig = field(default_factory=MonitorConfig)
    s2s: S2SConfig | None = None
    metrics: MetricsConfig | None = None


_SECTION_TYPES = {"xmpp": XMPPConfig, "master": MasterConfig, "mirror": MirrorConfig,
                  "monitor": MonitorConfig, "s2s": S2SConfig, "metrics": MetricsConfig}


def load(path):
    """
    Read and validate the configuration file.

    @raise ConfigError: with a one-line message naming file, section and key.
    @rtype: L{Config}
    """
    parser = configparser.ConfigParser(
        inline_comment_prefixes=(";", "#"), interpolation=None)
    try:
        with open(path, encoding="utf-8") as f:
            parser.read_file(f)
    except OSError as e:
        raise ConfigError("%s: cannot read: %s" % (path, e.strerror or e))
    except configparser.Error as e:
        message = " ".join(str(e).split())
        raise ConfigError("%s: not a valid INI file: %s" % (path, message))
    return _validate(path, parser)


def _validate(path, parser):
    unknown = [s for s in parser.sections() if s not in SCHEMA]
    if unknown:
        raise ConfigError("%s: [%s]: unknown section (known: %s)"
                          % (path, unknown[0], ", ".join(SCHEMA)))
    if not any(parser.has_section(s) for s in SERVICE_SECTIONS):
        raise ConfigError("%s: no service configured: add at least one of %s"
                          % (path, ", ".join("[%s]" % s for s in SERVICE_SECTIONS)))
    sections = {}
    for name, keys in SCHEMA.items():
        if parser.has_section(name) or name in ("xmpp", "monitor"):
            values = _section(path, parser, name, keys)
            if name in SERVICE_SECTIONS:
                values["limits"] = _limits_from(values)
            sections[name] = _SECTION_TYPES[name](**values)
    loaded = Config(path=path, **sections)
    _check_connections(path, loaded)
    return loaded


def _limits_from(values):
    """The limit keys of a service section, taken out of C{values} into
    one L{Limits} (dmuc/muc/limits.py)."""
    from dmuc.muc.limits import Limits
    return Limits(**{f.name: values.pop(f.name) for f in fields(Limits) if f.name in values})


def _check_connections(path, loaded):
    """What one section asks of another: a component needs its secret,
    S2S needs the [s2s] section, and required encryption a certificate."""
    services = [(name, getattr(loaded, name)) for name in SERVICE_SECTIONS
                if getattr(loaded, name) is not None]
    if len(services) > 1 and "{service}" not in loaded.monitor.status_file:
        raise ConfigError("%s: [monitor] status_file: %s would be written by each of %s: put "
                          "{service} in the name (the default is dmuc-status-{service}.json)"
                          % (path, loaded.monitor.status_file,
                             " and ".join("[%s]" % name for name, _ in services)))
    for name, section in services:
        if section.connection == "component" and not section.secret:
            raise ConfigError("%s: [%s] secret: missing (required with connection = "
                              "component: the component secret shared with the XMPP "
                              "server)" % (path, name))
        if (section.connection == "s2s" or section.direct_peers) and loaded.s2s is None:
            key = "connection" if section.connection == "s2s" else "direct_peers"
            raise ConfigError("%s: [%s] %s: needs an [s2s] section (dmuc's own "
                              "server-to-server listener, certificate and routes)"
                              % (path, name, key))
        if section.connection == "s2s" and section.direct_peers:
            raise ConfigError("%s: [%s] direct_peers: every domain is reached over S2S "
                              "already with connection = s2s" % (path, name))
    s2s = loaded.s2s
    if s2s is None:
        return
    if s2s.require_encryption and not s2s.certificate:
        raise ConfigError("%s: [s2s] certificate: missing (required with "
                          "require_encryption = true: peers connecting to us need TLS)"
                          % (path,))
    if s2s.private_key and not s2s.certificate:
        raise ConfigError("%s: [s2s] private_key: given without a certificate" % (path,))
    from dmuc.s2s.tls import TLSConfigError, TLSSettings
    try:
        TLSSettings(s2s.certificate, s2s.private_key, s2s.ca_file)
    except TLSConfigError as e:
        raise ConfigError("%s: [s2s] certificate: %s" % (path, e))
    if s2s.compress is None:
        s2s.compress = tuple(sorted({peer for _, section in services
                                     for peer in section.direct_peers}))


def _section(path, parser, name, keys):
    raw = dict(parser.items(name)) if parser.has_section(name) else {}
    for key in raw:
        if key not in keys:
            raise ConfigError("%s: [%s] %s: unknown key (known: %s)"
                              % (path, name, key, ", ".join(keys)))
    values = {}
    for key, (parse, default) in keys.items():
        if key not in raw and default is REQUIRED:
            raise ConfigError("%s: [%s] %s: missing (required)"
                              % (path, name, key))
        try:
            values[key] = parse(raw.get(key, default))
        except ValueError as e:
            raise ConfigError("%s: [%s] %s: %s" % (path, name, key, e))
    return values
