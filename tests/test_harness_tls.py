"""
The harness's TLS setup: a test CA, and Prosody 0.12 servers that
federate as real sites do (S2S encryption required, certificates checked
with C{s2s_secure_auth}), or refuse a peer whose certificate they do not
trust.
"""

import os
import stat

from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID
from twisted.trial import unittest

from tests.harness import prosody
from tests.harness.client import connect
from tests.harness.pki import TestCA
from tests.harness.prosody import start_prosody
from tests.harness.sites import (
    MASTER, MIRROR, free_addresses, start_two_sites)
from tests.harness.xml import error_condition, find, matcher, status_codes

FAIRFAX, RALEIGH = "fairfax.test", "raleigh.test"
ROOMS = "rooms.fairfax.test"
ROOM = "chat@" + ROOMS
MUC_JOIN = ("<presence to='%s/%s'><x xmlns='http://jabber.org/protocol/muc'/>"
            "</presence>")


def read_log(server):
    """Prosody's log so far, as text."""
    with open(server.log_path, errors="replace") as log:
        return log.read()


def error_text(stanza):
    """The text of a stanza error, or C{None}."""
    text = find(stanza, "error/stanzas:text")
    return text.text if text is not None else None


def load_certificates(path):
    with open(path, "rb") as pem:
        return x509.load_pem_x509_certificates(pem.read())


class TestCATests(unittest.TestCase):
    """The files a L{TestCA} writes, without a server."""

    def setUp(self):
        self.directory = prosody.temp_directory(self)
        self.ca = TestCA(os.path.join(self.directory, "ca"))

    def test_issue_writes_certificate_and_key_named_after_domain(self):
        certs = os.path.join(self.directory, "certs")
        cert_path, key_path = self.ca.issue(
            "conference.fairfax.test", "fairfax.test", directory=certs)
        self.assertEqual(
            (cert_path, key_path),
            (os.path.join(certs, "conference.fairfax.test.crt"),
             os.path.join(certs, "conference.fairfax.test.key")))
        leaf = load_certificates(cert_path)[0]
        names = leaf.extensions.get_extension_for_class(
            x509.SubjectAlternativeName).value
        self.assertEqual(names.get_values_for_type(x509.DNSName),
                         ["conference.fairfax.test", "fairfax.test"])
        # Both ends of an S2S stream show a certificate.
        usages = leaf.extensions.get_extension_for_class(
            x509.ExtendedKeyUsage).value
        self.assertIn(ExtendedKeyUsageOID.SERVER_AUTH, usages)
        self.assertIn(ExtendedKeyUsageOID.CLIENT_AUTH, usages)
        with open(key_path) as key:
            self.assertIn("PRIVATE KEY", key.read())
        self.assertEqual(stat.S_IMODE(os.stat(key_path).st_mode), 0o600)

    def test_certificate_chains_to_its_own_ca_only(self):
        cert_path, _ = self.ca.issue("fairfax.test")
        leaf = load_certificates(cert_path)[0]
        (root,) = load_certificates(self.ca.ca_path)
        leaf.verify_directly_issued_by(root)
        stranger = TestCA(os.path.join(self.directory, "stranger"),
                          name="stranger")
        (other_root,) = load_certificates(stranger.ca_path)
        self.assertNotEqual(other_root.subject, root.subject)
        self.assertRaises(ValueError, leaf.verify_directly_issued_by,
                          other_root)

    def test_issue_needs_a_domain(self):
        self.assertRaises(ValueError, self.ca.issue)


class ProsodyTLSTests(unittest.TestCase):
    """
    Two Prosody servers with a real site's S2S security: C{fairfax.test}
    (with a mod_muc component, C{rooms.fairfax.test}) and C{raleigh.test},
    on addresses of their own.
    """

    def setUp(self):
        self.base = prosody.temp_directory(self)
        self.fairfax_ip, self.raleigh_ip = free_addresses()[:2]
        self.hosts = os.path.join(self.base, "hosts")
        with open(self.hosts, "w") as hosts:
            hosts.write("%s %s %s\n%s %s\n" % (
                self.fairfax_ip, FAIRFAX, ROOMS, self.raleigh_ip, RALEIGH))
        self.ca = TestCA(os.path.join(self.base, "ca"))

    def start_sites(self, raleigh_pki=None, fairfax_secure_auth=True):
        """
        Start both servers, trusting only C{self.ca}.

        @param raleigh_pki: the CA of raleigh's certificates; C{self.ca}
            by default.
        """
        self.fairfax = start_prosody(
            self, FAIRFAX, base_dir=self.base, ip=self.fairfax_ip,
            hosts_file=self.hosts, muc_domains=(ROOMS,), pki=self.ca,
            secure_auth=fairfax_secure_auth)
        self.raleigh = start_prosody(
            self, RALEIGH, base_dir=self.base, ip=self.raleigh_ip,
            hosts_file=self.hosts, pki=raleigh_pki or self.ca,
            cafile=self.ca.ca_path)
        self.kevin = connect(self, self.fairfax, "kevin")
        self.ann = connect(self, self.raleigh, "ann")

    def assertFederates(self):
        """A message and a room join cross the S2S link both ways."""
        self.kevin.send("<message to='%s' type='chat'><body>over TLS</body>"
                        "</message>" % (self.ann.jid,))
        message = self.ann.wait_for(matcher("message"))
        self.assertEqual(message.get("from"), self.kevin.jid)
        self.assertEqual(find(message, "body").text, "over TLS")
        # The component's domain has a certificate of its own.
        self.ann.send(MUC_JOIN % (ROOM, "Ann"))
        own = self.ann.wait_for(matcher("presence", from_=ROOM + "/Ann"))
        self.assertIsNone(own.get("type"))
        self.assertIn(110, status_codes(own))

    def test_federation_authenticated_by_certificates(self):
        """
        With secure auth on both sides, users of the two servers reach
        each other and a room, and every S2S stream (also the mod_muc
        component's) is encrypted and authenticated by SASL EXTERNAL.
        """
        self.start_sites()
        self.assertFederates()
        fairfax, raleigh = read_log(self.fairfax), read_log(self.raleigh)
        for log in (fairfax, raleigh):
            self.assertIn("\tinfo\tStream encrypted (TLS", log)
            self.assertNotIn("certificate is not", log)
        self.assertIn("SASL EXTERNAL with raleigh.test succeeded", fairfax)
        self.assertIn("Outgoing s2s connection fairfax.test->raleigh.test"
                      " complete", fairfax)
        self.assertIn("Accepting SASL EXTERNAL identity from fairfax.test",
                      raleigh)
        self.assertIn("SASL EXTERNAL with rooms.fairfax.test succeeded",
                      raleigh)
        self.assertIn("Accepting SASL EXTERNAL identity from "
                      "rooms.fairfax.test", raleigh)

    def test_untrusted_certificate_refused(self):
        """
        A server whose certificate comes from a CA its peer does not trust
        is refused in both directions: nothing arrives, the senders get
        Prosody 0.12's bounce (C{remote-server-timeout}, with the reason
        as text), and the refusing server logs why.
        """
        stranger = TestCA(os.path.join(self.base, "stranger"),
                          name="stranger")
        self.start_sites(raleigh_pki=stranger)
        self.kevin.send("<message to='%s' type='chat'><body>lost</body>"
                        "</message>" % (self.ann.jid,))
        bounce = self.kevin.wait_for(matcher("message", type="error"))
        self.assertEqual(bounce.get("from"), self.ann.jid)
        self.assertEqual(error_condition(bounce),
                         ("wait", "remote-server-timeout"))
        self.assertEqual(error_text(bounce),
                         "Server-to-server connection failed: Remote "
                         "server's certificate is not trusted")
        self.ann.send(MUC_JOIN % (ROOM, "Ann"))
        refusal = self.ann.wait_for(matcher("presence", type="error"))
        self.assertEqual(refusal.get("from"), ROOM + "/Ann")
        # fairfax closed the stream raleigh opened, and said why.
        self.assertEqual(error_condition(refusal),
                         ("wait", "remote-server-timeout"))
        self.assertEqual(error_text(refusal),
                         "Server-to-server connection failed: not-authorized"
                         " (Your server's certificate is not trusted)")
        self.assertEqual(self.ann.take_all(), [])
        self.assertEqual(self.kevin.take_all(), [])
        fairfax = read_log(self.fairfax)
        self.assertIn("Forbidding insecure connection to/from raleigh.test"
                      " because its certificate is not trusted", fairfax)
        self.assertIn("Incoming s2s stream raleigh.test->rooms.fairfax.test"
                      " closed: Your server's certificate is not trusted",
                      fairfax)

    def test_untrusted_certificate_accepted_without_secure_auth(self):
        """
        With C{secure_auth=False} the same untrusted peer gets in by
        dialback over TLS, as at a Prosody with C{s2s_secure_auth = false}.
        """
        stranger = TestCA(os.path.join(self.base, "stranger"),
                          name="stranger")
        self.start_sites(raleigh_pki=stranger, fairfax_secure_auth=False)
        self.assertFederates()
        fairfax = read_log(self.fairfax)
        self.assertIn("\tinfo\tStream encrypted (TLS", fairfax)
        self.assertNotIn("Forbidding insecure connection", fairfax)
        self.assertNotIn("Accepting SASL EXTERNAL identity from raleigh.test",
                         fairfax)
        self.assertIn("Incoming s2s connection raleigh.test->"
                      "rooms.fairfax.test complete", fairfax)


class TwoSitesTLSTests(unittest.TestCase):
    """The two dmuc sites of L{tests.harness.sites} with C{pki}."""

    def test_mirror_room_over_authenticated_tls(self):
        """
        A raleigh user in the mirror room and a fairfax user in the master
        room talk over S2S between the two components' domains, encrypted
        and authenticated by their own certificates; the relay between
        the sites sees STARTTLS and then no stanza in clear.
        """
        base = prosody.temp_directory(self)
        # Between the two Prosody servers, whatever DMUC_DEPLOYMENT says.
        sites = start_two_sites(self, base, deployment="prosody",
                                pki=TestCA(os.path.join(base, "ca")))
        room = "chat@" + MASTER
        mirror_room = "chat\\40%s@%s" % (MASTER, MIRROR)
        kevin = connect(self, sites.fairfax, "kevin", resource="desk")
        wayne = connect(self, sites.raleigh, "wayne", resource="laptop")
        kevin.send(MUC_JOIN % (room, "Kevin"))
        kevin.wait_for(lambda s: 110 in status_codes(s), timeout=10)
        wayne.send(MUC_JOIN % (mirror_room, "Wayne"))
        own = wayne.wait_for(lambda s: 110 in status_codes(s), timeout=10)
        self.assertEqual(own.get("from"), mirror_room + "/Wayne")
        kevin.wait_for(matcher("presence", from_=room + "/Wayne"), timeout=10)
        kevin.send("<message to='%s' type='groupchat'><body>secret</body>"
                   "</message>" % (room,))
        said = wayne.wait_for(
            matcher("message", from_=mirror_room + "/Kevin"), timeout=10)
        self.assertEqual(find(said, "body").text, "secret")

        fairfax, raleigh = read_log(sites.fairfax), read_log(sites.raleigh)
        self.assertIn("Accepting SASL EXTERNAL identity from %s" % (MIRROR,),
                      fairfax)
        self.assertIn("Accepting SASL EXTERNAL identity from %s" % (MASTER,),
                      raleigh)
        seen = {c.name for c in sites.relay.crossings(stanzas_only=False)}
        self.assertIn("starttls", seen)
        self.assertIn("proceed", seen)
        self.assertEqual(sites.relay.crossings(), [])
