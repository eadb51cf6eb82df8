"""
The three deployments of dmuc's own S2S (docs/deploy.md), end to end: real
Prosody 0.12 servers as a real site runs them (S2S encryption required,
secure auth, certificates from a test CA), dmuc processes started as an
operator starts them, slixmpp users at both sites, every byte between the
sites through the relay.

- I{standalone}: no Component block for the master; fairfax's users reach
  it over S2S from their own Prosody, raleigh's through the link.
- I{mirror over S2S}: no Component block for the mirror; raleigh's Prosody
  reaches it over S2S.
- I{direct link}: both services are components of their Prosody, and talk
  to each other over one compressed S2S stream of their own, which their
  monitors watch: a killed peer is a split at once, a hung one is caught by
  the pings.
"""

import os
import re
import time

from twisted.trial import unittest

from tests.harness.client import connect
from tests.harness.pki import TestCA
from tests.harness.prosody import temp_directory
from tests.harness.sites import FAIRFAX, MASTER, MIRROR, RALEIGH, start_two_sites
from tests.harness.xml import NS, find, matcher, status_codes

ROOM = "chat@" + MASTER
MROOM = "chat\\40%s@%s" % (MASTER, MIRROR)


def join_xml(room, nick):
    return "<presence to='%s/%s'><x xmlns='%s'/></presence>" % (room, nick, NS.MUC)


def groupchat(room, text):
    return "<message to='%s' type='groupchat'><body>%s</body></message>" % (room, text)


def body(stanza):
    element = find(stanza, "body")
    return element.text if element is not None else None


def read(path):
    with open(path, errors="replace") as f:
        return f.read()


class DeploymentTestCase(unittest.TestCase):

    deployment = None
    tls = True
    monitor = None

    def setUp(self):
        base = temp_directory(self)
        pki = TestCA(os.path.join(base, "ca")) if self.tls else None
        self.sites = start_two_sites(self, base, deployment=self.deployment, pki=pki,
                                     monitor=self.monitor)

    def join(self, client, room, nick):
        client.send(join_xml(room, nick))
        own = client.wait_for(lambda s: 110 in status_codes(s), timeout=10)
        client.wait_for(lambda s: find(s, "subject") is not None, timeout=10)
        return own

    def chat_across_sites(self):
        """Kevin at fairfax in the master room, Wayne at raleigh in the
        mirror room: each sees the other join and speak, as in one room."""
        kevin = connect(self, self.sites.fairfax, "kevin", resource="desk")
        wayne = connect(self, self.sites.raleigh, "wayne", resource="laptop")
        self.join(kevin, ROOM, "Kevin")
        own = self.join(wayne, MROOM, "Wayne")
        self.assertEqual(own.get("from"), MROOM + "/Wayne")
        seen = kevin.wait_for(matcher("presence", from_=ROOM + "/Wayne"), timeout=10)
        self.assertEqual(find(seen, "muc_user:x/muc_user:item").get("jid"),
                         "wayne@raleigh.test/laptop")
        kevin.send(groupchat(ROOM, "hello raleigh"))
        said = wayne.wait_for(matcher("message", from_=MROOM + "/Kevin"), timeout=10)
        self.assertEqual(body(said), "hello raleigh")
        wayne.send(groupchat(MROOM, "hello fairfax"))
        said = kevin.wait_for(matcher("message", from_=ROOM + "/Wayne"), timeout=10)
        self.assertEqual(body(said), "hello fairfax")
        return kevin, wayne

    def dmuc_log(self, process):
        return process.log_text()

    def assertLogged(self, text, pattern):
        self.assertTrue(re.search(pattern, text), "%r not in the log:\n%s"
                        % (pattern, text[-3000:]))


class StandaloneTests(DeploymentTestCase):
    """The master service is an XMPP domain of its own."""

    deployment = "standalone"

    def test_users_of_stock_servers_chat_over_s2s(self):
        self.assertNotIn(MASTER, read(self.sites.fairfax.config_path))
        kevin, wayne = self.chat_across_sites()
        # A raleigh user straight into the master room: raleigh's Prosody
        # to the master over the link, no mirror involved.
        rita = connect(self, self.sites.raleigh, "rita", resource="phone")
        self.join(rita, ROOM, "Rita")
        kevin.wait_for(matcher("presence", from_=ROOM + "/Rita"), timeout=10)
        wayne.wait_for(matcher("presence", from_=MROOM + "/Rita"), timeout=10)
        rita.send(groupchat(ROOM, "straight in"))
        self.assertEqual(body(wayne.wait_for(matcher("message", from_=MROOM + "/Rita"),
                                             timeout=10)), "straight in")
        master = self.dmuc_log(self.sites.master)
        for peer in (FAIRFAX, RALEIGH, MIRROR):
            self.assertLogged(master, r"S2S from %s to %s: authenticated by certificate \(SASL EXTERNAL\)"
                              % (re.escape(peer), re.escape(MASTER)))
        self.assertLogged(master, r"S2S to %s: ready \(as %s; authenticated by certificate; TLS"
                          % (re.escape(FAIRFAX), re.escape(MASTER)))
        self.assertLogged(read(self.sites.fairfax.log_path),
                          r"Accepting SASL EXTERNAL identity from %s" % (re.escape(MASTER),))


class MirrorOverS2STests(DeploymentTestCase):
    """raleigh's Prosody reaches the mirror over S2S, not XEP-0114."""

    deployment = "mirror_s2s"

    def test_mirror_users_chat_with_the_master_site(self):
        self.assertNotIn(MIRROR, read(self.sites.raleigh.config_path))
        self.chat_across_sites()
        mirror = self.dmuc_log(self.sites.mirror)
        self.assertLogged(mirror, r"S2S from %s to %s: authenticated by certificate \(SASL EXTERNAL\)"
                          % (re.escape(RALEIGH), re.escape(MIRROR)))
        self.assertLogged(mirror, r"S2S to %s: ready \(as %s; authenticated by certificate; TLS"
                          % (re.escape(MASTER), re.escape(MIRROR)))
        self.assertLogged(read(self.sites.raleigh.log_path),
                          r"Accepting SASL EXTERNAL identity from %s" % (re.escape(MIRROR),))


class DirectLinkTests(DeploymentTestCase):
    """Master and mirror share one stream of their own, not the Prosodies'."""

    deployment = "direct"

    def test_services_talk_over_their_own_stream(self):
        self.chat_across_sites()
        master = self.dmuc_log(self.sites.master)
        self.assertLogged(master, r"S2S to %s: ready \(as %s; authenticated by certificate; "
                          r"TLS, zlib\)" % (re.escape(MIRROR), re.escape(MASTER)))
        self.assertLogged(master, r"S2S from %s to %s: authenticated by certificate \(SASL EXTERNAL\)"
                          % (re.escape(MIRROR), re.escape(MASTER)))
        # Neither Prosody carried anything between the two services.
        self.assertNotIn("%s->%s" % (MASTER, MIRROR), read(self.sites.fairfax.log_path))
        self.assertNotIn("%s->%s" % (MIRROR, MASTER), read(self.sites.raleigh.log_path))


class DirectLinkCompressionTests(DeploymentTestCase):
    """
    In plain text the relay can read the direct stream (inflating it):
    the room's traffic crosses once per site, and the wire carries far
    fewer bytes than the stanzas it holds.
    """

    deployment = "direct"
    tls = False

    def test_messages_cross_compressed(self):
        kevin, wayne = self.chat_across_sites()
        keith = connect(self, self.sites.raleigh, "keith", resource="laptop")
        self.join(keith, MROOM, "Keith")
        for client in (kevin, wayne, keith):
            client.barrier(MASTER, timeout=10)
            client.barrier(MIRROR, timeout=10)
        self.sites.relay.reset()
        lines = ["%d: the minutes of meeting %d say item %d is done" % (i, i * 7, i * 3)
                 for i in range(30)]
        for line in lines:
            kevin.send(groupchat(ROOM, line))
        for client in (wayne, keith):
            got = [body(client.wait_for(lambda s: body(s) in lines, timeout=10))
                   for _ in lines]
            self.assertEqual(got, lines)
        messages = [c for c in self.sites.relay.crossings()
                    if c.name == "message" and c.direction == "fairfax>raleigh"]
        # Once for the site, not once per raleigh user.
        self.assertEqual(len(messages), len(lines))
        wire = self.sites.relay.bytes("fairfax>raleigh")
        stanzas = self.sites.relay.stanza_bytes("fairfax>raleigh")
        self.assertLess(wire * 3, stanzas, "compressed %d bytes of stanzas to %d" % (stanzas, wire))


class _DirectLinkWatched(DeploymentTestCase):
    """The monitors watch the direct stream."""

    deployment = "direct"

    def wait_for_state(self, process, state, timeout):
        """Poll C{process}'s log for the master's view of the mirror
        changing to C{state}; return the seconds it took and the line."""
        started = time.monotonic()
        pattern = re.compile(r"%s: link to %s is %s since [^(]*\((.*)\)"
                             % (re.escape(MASTER), re.escape(MIRROR), state))
        while time.monotonic() - started < timeout:
            found = pattern.search(process.log_text())
            if found:
                return time.monotonic() - started, found.group(1)
            time.sleep(0.01)
        self.fail("%s not seen within %.0f s:\n%s" % (state, timeout, process.log_text()[-3000:]))


class DirectLinkCrashTests(_DirectLinkWatched):
    """The ping settings are the defaults (60 s, 20 s): only the stream
    can tell a crash in time."""

    def test_killed_peer_is_split_at_once_and_rejoins(self):
        kevin, wayne = self.chat_across_sites()
        self.sites.mirror.kill()
        took, reason = self.wait_for_state(self.sites.master, "SPLIT", timeout=15)
        # Not a ping: the first would go out after 60 s.
        self.assertIn("broke", reason)
        print("\ndirect link: kill -9 of the mirror seen as a split after %.3f s" % (took,))
        self.sites.mirror.start()
        took, _ = self.wait_for_state(self.sites.master, "UP", timeout=30)
        wayne = connect(self, self.sites.raleigh, "wayne2", resource="laptop")
        self.join(wayne, MROOM, "Wayne2")
        kevin.send(groupchat(ROOM, "you are back"))
        said = wayne.wait_for(lambda s: body(s) == "you are back", timeout=10)
        self.assertEqual(said.get("from"), MROOM + "/Kevin")


class DirectLinkHungPeerTests(_DirectLinkWatched):
    """A hung peer keeps its TCP stream open; the pings catch it."""

    monitor = {"ping_interval": "2", "ping_timeout": "2", "split_ping_interval": "1"}

    def test_hung_peer_is_split_by_the_pings(self):
        self.chat_across_sites()
        self.sites.mirror.pause()
        try:
            took, reason = self.wait_for_state(self.sites.master, "SPLIT", timeout=15)
        finally:
            self.sites.mirror.resume()
        self.assertIn("no answer to a ping", reason)
        print("\ndirect link: SIGSTOP of the mirror seen as a split after %.3f s "
              "(ping_interval 2 s + ping_timeout 2 s)" % (took,))
        # ping_interval + ping_timeout, and a margin for the log polling
        # on a loaded machine.
        self.assertLessEqual(took, 2 + 2 + 2.0)
        self.wait_for_state(self.sites.master, "UP", timeout=15)
