"""
TLS for dmuc's server-to-server streams: our certificate, and a verdict on
the peer's.

Both sides ask for the peer's certificate but accept any during the
handshake; the verdict comes after it (L{PeerCertificate.verdict}),
against the configured CA file and the domain the peer claims.  That is how
XMPP servers work: an untrusted certificate does not end the stream, it
only rules out SASL EXTERNAL, and whether dialback may still authenticate
the domain is the policy's call (C{secure_auth}, as Prosody's
C{s2s_secure_auth}).

The listener also accepts the ALPN protocol C{xmpp-server}: Prosody offers
it, and a server that lists none answers Twisted 26's handshake with an
internal error.
"""

from OpenSSL import SSL, crypto
from service_identity import VerificationError
from service_identity.pyopenssl import verify_hostname
from twisted.internet.interfaces import (IOpenSSLClientConnectionCreator,
                                         IOpenSSLServerConnectionCreator)
from twisted.logger import Logger
from zope.interface import implementer

log = Logger(namespace="dmuc.s2s")

ALPN = b"xmpp-server"


class TLSConfigError(Exception):
    """The certificate, key or CA file cannot be used; the message says
    which file and why."""


class TLSSettings:
    """
    Our certificate and key (optional: without them we offer no TLS and
    cannot use SASL EXTERNAL), and the CAs we trust for peers.
    """

    def __init__(self, certificate=None, private_key=None, ca_file=None):
        self.certificate = certificate
        self.private_key = private_key
        self.ca_file = ca_file
        self._store = None
        self._context = self._make_context()
        if ca_file:
            self._store = self._make_store()

    @property
    def has_certificate(self):
        """Without one we can still start TLS as the initiating server,
        but cannot offer it, nor authenticate by SASL EXTERNAL."""
        return bool(self.certificate)

    def _make_context(self):
        context = SSL.Context(SSL.TLS_METHOD)
        context.set_min_proto_version(SSL.TLS1_2_VERSION)
        if self.certificate:
            self._load_certificate(context)
        # Ask for the peer's certificate, accept any: the verdict is ours,
        # after the handshake, and an untrusted one may still do dialback.
        context.set_verify(SSL.VERIFY_PEER, lambda *args: True)
        context.set_alpn_select_callback(_select_alpn)
        context.set_session_id(b"dmuc-s2s")
        return context

    def _load_certificate(self, context):
        try:
            context.use_certificate_chain_file(self.certificate)
        except SSL.Error as e:
            raise TLSConfigError("%s: not a PEM certificate chain (%s)"
                                 % (self.certificate, _reason(e)))
        try:
            context.use_privatekey_file(self.private_key or self.certificate)
            context.check_privatekey()
        except SSL.Error as e:
            raise TLSConfigError("%s: not the private key of %s (%s)"
                                 % (self.private_key, self.certificate, _reason(e)))

    def _make_store(self):
        store = crypto.X509Store()
        try:
            store.load_locations(self.ca_file)
        except (SSL.Error, crypto.Error) as e:
            raise TLSConfigError("%s: cannot load CA certificates (%s)"
                                 % (self.ca_file, _reason(e)))
        return store

    def server(self):
        """A connection creator for C{transport.startTLS} as the
        receiving server; keep it to judge the peer after the handshake."""
        return PeerCertificate(self, None)

    def client(self, domain):
        """The same as the initiating server, sending C{domain} as SNI."""
        return PeerCertificate(self, domain)


@implementer(IOpenSSLServerConnectionCreator, IOpenSSLClientConnectionCreator)
class PeerCertificate:
    """
    The TLS side of one stream: creates its OpenSSL connection and keeps
    it, so the peer's certificate can be judged once the stream restarts.
    """

    def __init__(self, settings, server_name):
        self.settings = settings
        self.server_name = server_name
        self.connection = None

    def _connection(self):
        self.connection = SSL.Connection(self.settings._context, None)
        return self.connection

    def serverConnectionForTLS(self, protocol):
        return self._connection()

    def clientConnectionForTLS(self, protocol):
        connection = self._connection()
        connection.set_alpn_protos([ALPN])
        connection.set_tlsext_host_name(self.server_name.encode("idna"))
        return connection

    def verdict(self, domain):
        """
        Whether the peer's certificate chains to our CAs and names
        C{domain} (a DNS-ID, wildcards as RFC 6125 allows).

        @return: C{(True, "")} or C{(False, why)}.
        """
        if self.connection is None:
            return False, "no TLS"
        certificate = self.connection.get_peer_certificate()
        if certificate is None:
            return False, "no certificate offered"
        if self.settings._store is None:
            return False, "no ca_file configured to check certificates against"
        chain = self.connection.get_peer_cert_chain() or []
        intermediates = [c for c in chain
                         if c.to_cryptography() != certificate.to_cryptography()]
        try:
            crypto.X509StoreContext(self.settings._store, certificate,
                                    chain=intermediates).verify_certificate()
        except crypto.X509StoreContextError as e:
            return False, "certificate not trusted: %s" % (e,)
        try:
            verify_hostname(self.connection, domain)
        except VerificationError:
            return False, "certificate does not name %s" % (domain,)
        except Exception as e:       # malformed names in the certificate
            return False, "certificate names cannot be read: %s" % (e,)
        return True, ""


def _select_alpn(connection, offered):
    if ALPN in offered:
        return ALPN
    return SSL.NO_OVERLAPPING_PROTOCOLS


def _reason(error):
    details = error.args[0] if error.args else error
    if isinstance(details, list) and details:
        return details[-1][-1]
    return str(details)
