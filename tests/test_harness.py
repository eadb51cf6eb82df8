"""
Tests of the test harness itself, with a real Prosody and real clients.

They prove what other network tests rely on: servers start, stop and
restart cleanly, clients see every stanza in order, and Prosody's own
mod_muc behaves as the reference the project compares against.
"""

import os
import shutil
import socket

from twisted.trial import unittest

from tests.harness import prosody
from tests.harness.client import connect
from tests.harness.prosody import ProsodyServer, start_prosody
from tests.harness.sites import free_addresses
from tests.harness.xml import (
    NS, error_condition, find, matcher, parse, qname, status_codes,
    tostring)

ROOM = "chat@rooms.fairfax.test"
MUC_JOIN = "<presence to='%s'><x xmlns='" + NS.MUC + "'/></presence>"


def join(client, nick, room=ROOM):
    """Send a MUC join presence for C{room/nick}."""
    client.send(MUC_JOIN % ("%s/%s" % (room, nick),))


def process_gone(pid):
    """Whether no process (not even a zombie) has the id C{pid}."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


class XMLHelperTests(unittest.TestCase):
    """The XML helpers, without a network."""

    def test_parse_uses_client_namespace(self):
        message = parse("<message to='a@b'><body>hi &amp; bye</body>"
                        "<x xmlns='%s'/></message>" % (NS.MUC_USER,))
        self.assertEqual(message.tag, qname(NS.CLIENT, "message"))
        self.assertEqual(find(message, "body").text, "hi & bye")
        self.assertIsNotNone(find(message, "muc_user:x"))

    def test_tostring_round_trip(self):
        text = ("<presence to='r@m/n' xml:lang='en'><x xmlns='%s'>"
                "<status code='110'/></x></presence>" % (NS.MUC_USER,))
        self.assertEqual(tostring(parse(text)), text)

    def test_status_codes_and_error_condition(self):
        presence = parse(
            "<presence type='error'><x xmlns='%s'><status code='110'/>"
            "<status code='201'/></x><error type='cancel'>"
            "<conflict xmlns='%s'/></error></presence>"
            % (NS.MUC_USER, NS.STANZAS))
        self.assertEqual(status_codes(presence), {110, 201})
        self.assertEqual(error_condition(presence), ("cancel", "conflict"))
        self.assertIsNone(error_condition(parse("<presence/>")))


class ProsodyMUCTests(unittest.TestCase):
    """Two real clients in a room of Prosody's own mod_muc."""

    def setUp(self):
        # s2s_port=0: no S2S here, so stay off the shared port 5269.
        self.server = start_prosody(
            self, "fairfax.test", muc_domains=("rooms.fairfax.test",),
            s2s_port=0)
        self.kevin = connect(self, self.server, "kevin", resource="laptop")
        self.ann = connect(self, self.server, "ann")

    def join_both(self):
        join(self.kevin, "Kevin")
        self.kevin.wait_for(matcher("presence", from_=ROOM + "/Kevin"))
        join(self.ann, "Ann")
        self.ann.wait_for(matcher("presence", from_=ROOM + "/Ann"))
        self.kevin.wait_for(matcher("presence", from_=ROOM + "/Ann"))
        self.ann.barrier(ROOM)
        self.kevin.barrier(ROOM)
        self.ann.take_all()
        self.kevin.take_all()

    def test_connected_jids(self):
        self.assertEqual(self.kevin.jid, "kevin@fairfax.test/laptop")
        self.assertTrue(self.ann.jid.startswith("ann@fairfax.test/"))
        self.assertEqual(self.kevin.take_all(), [])

    def test_join_presences(self):
        join(self.kevin, "Kevin")
        own = self.kevin.wait_for(matcher("presence", from_=ROOM + "/Kevin"))
        self.assertEqual(own.get("to"), self.kevin.jid)
        self.assertEqual(status_codes(own), {110, 201})

        join(self.ann, "Ann")
        seen = self.ann.wait_for(matcher("presence", from_=ROOM + "/Kevin"))
        self.assertEqual(status_codes(seen), set())
        own = self.ann.wait_for(matcher("presence", from_=ROOM + "/Ann"))
        self.assertEqual(status_codes(own), {110})
        self.assertEqual(
            find(own, "muc_user:x/muc_user:item").get("jid"), self.ann.jid)

        arrival = self.kevin.wait_for(matcher("presence", from_=ROOM + "/Ann"))
        self.assertEqual(status_codes(arrival), set())
        self.assertEqual(
            find(arrival, "muc_user:x/muc_user:item").get("role"),
            "participant")

    def test_groupchat_message(self):
        self.join_both()
        self.ann.send("<message to='%s' type='groupchat'>"
                      "<body>Hello, Kevin</body></message>" % (ROOM,))
        for client in (self.kevin, self.ann):
            message = client.wait_for(matcher("message", type="groupchat"))
            self.assertEqual(message.get("from"), ROOM + "/Ann")
            self.assertEqual(message.get("to"), client.jid)
            self.assertEqual(find(message, "body").text, "Hello, Kevin")

    def test_barrier(self):
        """
        After the sender's and the receiver's barrier on the room, every
        message is in the receiver's inbox, in order, and the barrier's own
        reply is not.
        """
        self.join_both()
        for number in range(5):
            self.ann.send("<message to='%s' type='groupchat'>"
                          "<body>%d</body></message>" % (ROOM, number))
        reply = self.ann.barrier(ROOM)
        self.assertEqual(reply.get("type"), "result")
        self.assertIsNotNone(
            find(reply, "disco_info:query/disco_info:identity"
                        "[@category='conference']"))
        self.kevin.barrier(ROOM)
        bodies = [find(message, "body").text
                  for message in self.kevin.take_all()]
        self.assertEqual(bodies, ["0", "1", "2", "3", "4"])
        self.assertEqual(self.kevin.take_all(), [])

    def test_answered_iqs_are_recorded(self):
        """
        Requests slixmpp answers by itself, with an error (nobody handles
        the namespace) or a result (disco), stay in the inbox.
        """
        reply = self.ann.iq("<iq type='get' to='%s'>"
                            "<query xmlns='urn:example:unknown'/></iq>"
                            % (self.kevin.jid,))
        self.assertEqual(error_condition(reply),
                         ("cancel", "feature-not-implemented"))
        reply = self.ann.barrier(self.kevin.jid)
        self.assertEqual(reply.get("type"), "result")
        requests = self.kevin.take_all()
        self.assertEqual(
            [(request.get("from"), request.get("type"), request[0].tag)
             for request in requests],
            [(self.ann.jid, "get", "{urn:example:unknown}query"),
             (self.ann.jid, "get", qname(NS.DISCO_INFO, "query"))])

    def test_scram_login(self):
        """The harness's slixmpp settings log in with SCRAM."""
        client = connect(self, self.server, "scram", mechanism=None)
        self.assertTrue(client.jid.startswith("scram@fairfax.test/"))
        with open(self.server.log_path) as log:
            self.assertIn("mechanism='SCRAM-SHA-", log.read())

    def test_wait_for_timeout_shows_inbox(self):
        self.ann.send("<message to='%s'><body>ping</body></message>"
                      % (self.kevin.jid,))
        self.kevin.wait_for(matcher("message"))
        self.ann.send("<message to='%s'><body>unwanted</body></message>"
                      % (self.kevin.jid,))
        self.ann.barrier(self.kevin.jid)
        error = self.assertRaises(
            AssertionError, self.kevin.wait_for, matcher("presence"), 0.2)
        self.assertIn("timeout", str(error))
        self.assertIn("<body>unwanted</body>", str(error))
        self.assertEqual(len(self.kevin.take_all()), 2)  # message, disco


class ProsodyServerTests(unittest.TestCase):
    """Starting, stopping and running several Prosody instances."""

    def test_stop_leaves_no_process(self):
        server = start_prosody(self, "fairfax.test", s2s_port=0)
        pid = server.pid
        self.assertFalse(process_gone(pid))
        server.stop()
        self.assertTrue(process_gone(pid))
        self.assertFalse(server.running)
        server.stop()

    def test_restart_keeps_ports_and_accounts(self):
        server = start_prosody(self, "fairfax.test", s2s_port=0)
        ports = (server.c2s_port, server.component_port)
        server.register("kevin", "secret")
        old_pid = server.pid
        server.restart()
        self.assertTrue(process_gone(old_pid))
        self.assertEqual((server.c2s_port, server.component_port), ports)
        kevin = connect(self, server, "kevin", "secret")
        self.assertTrue(kevin.jid.startswith("kevin@fairfax.test/"))

    def test_taken_port(self):
        """
        A first start moves to new ports if one is taken; a restart keeps
        its ports and fails instead.
        """
        server = ProsodyServer(prosody.temp_directory(self), "fairfax.test",
                               s2s_port=0)
        self.addCleanup(server.stop)
        taken = server.c2s_port
        with socket.create_server((server.ip, taken)):
            server.start()
            self.assertNotEqual(server.c2s_port, taken)
        server.stop()
        with socket.create_server((server.ip, server.c2s_port)):
            error = self.assertRaises(prosody.ProsodyError, server.start)
        self.assertIn("Failed to open server port", str(error))
        self.assertFalse(server.running)

    def test_failed_start_shows_log(self):
        server = ProsodyServer(prosody.temp_directory(self), "fairfax.test",
                               s2s_port=0, extra_config="this is not Lua")
        error = self.assertRaises(prosody.ProsodyError, server.start)
        self.assertIn("exited", str(error))
        self.assertIn("prosody.out", str(error))
        self.assertFalse(server.running)

    def test_two_instances_with_s2s(self):
        """
        Two instances on their own loopback addresses share port 5269,
        find each other through the hosts file, and route a message.
        """
        base = prosody.temp_directory(self)
        # Addresses nobody else uses now (make run has its own): port 5269
        # is shared by address.
        fairfax_ip, dulles_ip = free_addresses()[:2]
        hosts = os.path.join(base, "hosts")
        with open(hosts, "w") as hosts_file:
            hosts_file.write("%s fairfax.test rooms.fairfax.test\n"
                             "%s dulles.test\n" % (fairfax_ip, dulles_ip))
        fairfax = start_prosody(
            self, "fairfax.test", base_dir=base, ip=fairfax_ip,
            muc_domains=("rooms.fairfax.test",), hosts_file=hosts)
        dulles = start_prosody(
            self, "dulles.test", base_dir=base, ip=dulles_ip,
            components={"mirror.dulles.test": "secret"}, hosts_file=hosts)
        self.assertEqual((fairfax.s2s_port, dulles.s2s_port), (5269, 5269))
        self.assertNotEqual(fairfax.c2s_port, dulles.c2s_port)
        socket.create_connection((dulles.ip, dulles.component_port)).close()

        kevin = connect(self, fairfax, "kevin")
        ann = connect(self, dulles, "ann")
        kevin.send("<message to='%s' type='chat'><body>over s2s</body>"
                   "</message>" % (ann.jid,))
        message = ann.wait_for(matcher("message"))
        self.assertEqual(message.get("from"), kevin.jid)
        self.assertEqual(find(message, "body").text, "over s2s")

    def test_missing_prosody_fails_clearly(self):
        self.patch(shutil, "which", lambda name: None)
        error = self.assertRaises(
            AssertionError, start_prosody, self, "fairfax.test")
        self.assertEqual(
            str(error),
            "Prosody 0.12 is not installed: run 'apt-get install -y "
            "prosody' (make test does this for you)")
