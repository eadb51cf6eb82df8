"""
Certificates for real-server tests, made at test time by a test CA.

A L{TestCA} is a fresh root certificate authority (from C{trustme}) that
exists only for one test: it writes its own certificate, and certificates
with keys for the DNS names a test asks for, as PEM files.  Every
L{TestCA} is a different root, so a second one is the "untrusted CA" of
refusal tests: servers that trust the first do not trust what the second
issues.

What Prosody 0.12 needs from these files (see L{tests.harness.prosody}):
  - one certificate for every domain it serves over S2S: the VirtualHost
    AND each component or mod_muc domain.  Without its own, a component
    borrows its parent domain's certificate (certmanager falls back to
    C{conference.fairfax.test}'s parent C{fairfax.test}), and a peer with
    C{s2s_secure_auth} refuses it, since it does not name the component;
  - the certificate file named C{DOMAIN.crt} with its key beside it as
    C{DOMAIN.key} in the C{certificates} directory, the certificate
    first in the chain file (Prosody's index reads only files whose first
    line is C{-----BEGIN CERTIFICATE-----});
  - the CA certificate as C{ssl = { cafile = ... }} to trust peers.

trustme's leaf certificates name their domains as DNS subjectAltNames
(Prosody accepts those for XMPP), carry serverAuth and clientAuth (both
ends of an S2S stream show a certificate) and are valid from now for
years; the keys are ECDSA P-256, which Prosody 0.12's LuaSec handles.
"""

import os

import trustme


class TestCA:
    """
    A test certificate authority that writes PEM files into a directory.

    @ivar directory: where L{ca_path} and, by default, issued files go.
    @ivar ca_path: the CA certificate (PEM), for a peer's C{cafile}.
    """

    # Not a test class, whatever its name says (pytest collects Test*).
    __test__ = False

    def __init__(self, directory, name="dmuc test CA"):
        """
        Make a new root CA and write its certificate.

        @param directory: created if missing.
        @param name: the CA's organisation name, shown in certificates
            and in Prosody's logs, so that tests can tell two CAs apart.
        """
        self.directory = os.path.abspath(directory)
        os.makedirs(self.directory, exist_ok=True)
        self._ca = trustme.CA(organization_name=name)
        self.ca_path = os.path.join(self.directory, "ca.crt")
        self._ca.cert_pem.write_to_path(self.ca_path)

    def issue(self, *domains, directory=None):
        """
        Issue a certificate for C{domains} and write it with its key.

        The files are named after the first domain, C{DOMAIN.crt} (the
        certificate followed by the chain up to, not including, the root)
        and C{DOMAIN.key}, as Prosody's C{certificates} directory expects.
        The key is readable by its owner only: Prosody runs as the user
        who runs the tests (root in CI, with C{run_as_root}).

        @param domains: the DNS names the certificate is valid for; at
            least one.
        @param directory: where to write them; this CA's directory by
            default.
        @return: the paths C{(certificate, key)}.
        """
        if not domains:
            raise ValueError("a certificate needs at least one domain")
        directory = os.path.abspath(directory or self.directory)
        os.makedirs(directory, exist_ok=True)
        leaf = self._ca.issue_cert(*domains)
        cert_path = os.path.join(directory, domains[0] + ".crt")
        key_path = os.path.join(directory, domains[0] + ".key")
        _write(cert_path,
               b"".join(blob.bytes() for blob in leaf.cert_chain_pems), 0o644)
        _write(key_path, leaf.private_key_pem.bytes(), 0o600)
        return cert_path, key_path

    def __repr__(self):
        return "<TestCA %s>" % (self.ca_path,)


def _write(path, data, mode):
    """Write C{data} to a new C{path} with permissions C{mode}."""
    if os.path.exists(path):
        os.remove(path)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(descriptor, "wb") as output:
        output.write(data)
