"""The [s2s] section (L{dmuc.config.S2SConfig}) made into an L{S2SServer}."""

import os

from dmuc.s2s.server import S2SPolicy, S2SServer
from dmuc.s2s.tls import TLSSettings


def policy_from(section):
    """
    @param section: a validated L{S2SConfig}.
    """
    secret = ""
    if section.dialback:
        # Without a configured secret, a random one per process: keys we
        # made are verified by this same process (XEP-0185); share it
        # (e.g. with Prosody's dialback_secret) only to verify each
        # other's keys.
        secret = section.dialback_secret or os.urandom(24).hex()
    return S2SPolicy(
        tls=TLSSettings(section.certificate, section.private_key, section.ca_file),
        require_encryption=section.require_encryption,
        secure_auth=section.secure_auth,
        dialback_secret=secret,
        compress=frozenset(section.compress or ()),
        routes=dict(section.routes),
        connect_timeout=section.connect_timeout,
        queue_limit=section.queue_limit,
        idle_timeout=section.idle_timeout,
        keepalive_interval=section.keepalive_interval)


def make_server(section, reactor):
    return S2SServer(policy_from(section), section.interface, section.port, reactor)
