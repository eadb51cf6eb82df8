"""
docs/deploy.md as written: two real sites run the example configurations
it shows (etc/prosody-fairfax.cfg.lua and etc/prosody-raleigh.cfg.lua added
to each Prosody as an operator adds them, etc/dmuc-fairfax.ini and
etc/dmuc-raleigh.ini as dmuc's), with what is this machine's put in
(addresses, ports, paths), and S2S as a real site has it: encryption
required, certificates for every domain, the component domains included,
checked (s2s_secure_auth).
"""

import configparser
import os

from twisted.trial import unittest

from tests.harness.client import connect
from tests.harness.pki import TestCA
from tests.harness.prosody import temp_directory
from tests.harness.sites import ETC, MASTER, MIRROR, free_addresses, start_two_sites
from tests.harness.xml import find, status_codes

ROOM = "chat@" + MASTER
MROOM = "chat\\40%s@%s" % (MASTER, MIRROR)


def join_xml(room, nick):
    return "<presence to='%s/%s'><x xmlns='http://jabber.org/protocol/muc'/></presence>" % (
        room, nick)


class ExampleSitesTests(unittest.TestCase):

    def setUp(self):
        base = temp_directory(self)
        self.sites = start_two_sites(self, base, addresses=free_addresses(), etc_files=True,
                                     deployment="prosody",
                                     pki=TestCA(os.path.join(base, "ca")))

    def test_the_examples_run_and_a_room_is_shared(self):
        # What runs is the examples' own: the Prosody Component blocks and
        # the dmuc keys (jid, secret, trusted mirrors, local domains).
        with open(self.sites.fairfax.config_path) as f:
            prosody = f.read()
        self.assertIn('Component "conference.fairfax.test"\n    component_secret = "change-me"',
                      prosody)
        self.assertLess(prosody.index("\ncomponent_ports"), prosody.index('\nVirtualHost "'))
        example = configparser.ConfigParser()
        example.read(os.path.join(ETC, "dmuc-raleigh.ini"))
        running = configparser.ConfigParser()
        running.read(self.sites.mirror.config_path)
        for key in ("jid", "secret", "local_domains", "fire_and_forget"):
            self.assertEqual(running["mirror"][key], example["mirror"][key])

        kevin = connect(self, self.sites.fairfax, "kevin", resource="desk")
        wayne = connect(self, self.sites.raleigh, "wayne", resource="laptop")
        kevin.send(join_xml(ROOM, "Kevin"))
        kevin.wait_for(lambda s: 110 in status_codes(s), timeout=20)
        wayne.send(join_xml(MROOM, "Wayne"))
        wayne.wait_for(lambda s: 110 in status_codes(s), timeout=30)
        kevin.send("<message to='%s' type='groupchat'><body>over TLS</body></message>" % ROOM)
        got = wayne.wait_for(lambda s: find(s, "body") is not None
                             and find(s, "body").text == "over TLS", timeout=20)
        self.assertEqual(got.get("from"), MROOM + "/Kevin")
        wayne.send("<message to='%s' type='groupchat'><body>and back</body></message>" % MROOM)
        got = kevin.wait_for(lambda s: find(s, "body") is not None
                             and find(s, "body").text == "and back", timeout=20)
        self.assertEqual(got.get("from"), ROOM + "/Wayne")
        for server in (self.sites.fairfax, self.sites.raleigh):
            with open(server.log_path) as f:
                self.assertIn("Stream encrypted (TLS", f.read())
