"""
The master service as users meet it: real Prosody 0.12, dmuc run by
twistd as an external component, real slixmpp clients over c2s.

The differential scenarios (test_conformance.py) cover the join, message,
subject, private message, kick, ban and refusal flows against Prosody's own
MUC; these tests cover the rest of XEP-0045 as the service offers it,
restarts, and bad input.
"""

import os
import sqlite3
import subprocess
import sys

from twisted.trial import unittest

from tests.harness.client import connect
from tests.harness.dmuc_process import DmucProcess, start_dmuc
from tests.harness.prosody import start_prosody, temp_directory
from tests.harness.xml import NS, error_condition, find, findall, matcher, status_codes

SERVICE = "conference.fairfax.test"
SECRET = "e2e-secret"
ROOM = "chat@" + SERVICE


def join_xml(nick, extra="", room=ROOM):
    return ("<presence to='%s/%s'><x xmlns='%s'>%s</x></presence>"
            % (room, nick, NS.MUC, extra))


class MasterSite:
    """A Prosody with the master service attached, for one test."""

    def __init__(self, testcase, secret=SECRET):
        self.testcase = testcase
        self.directory = temp_directory(testcase)
        self.server = start_prosody(testcase, "fairfax.test", base_dir=self.directory,
                                    components={SERVICE: SECRET}, s2s_port=0)
        self.sections = {
            "xmpp": {"host": self.server.ip, "port": self.server.component_port},
            "master": {"jid": SERVICE, "secret": secret,
                       "database": os.path.join(self.directory, "master.sqlite")}}

    def start_dmuc(self):
        self.dmuc = start_dmuc(self.testcase, os.path.join(self.directory, "dmuc"),
                               self.sections)
        return self.dmuc

    def client(self, user):
        return connect(self.testcase, self.server, user, resource="res")


class ServiceTestCase(unittest.TestCase):

    def setUp(self):
        self.site = MasterSite(self)
        self.site.start_dmuc()
        self.kevin = self.site.client("kevin")
        self.wayne = self.site.client("wayne")

    def set_up_with_two_occupants(self):
        ServiceTestCase.setUp(self)
        self.join(self.kevin, "Kevin")
        self.join(self.wayne, "Wayne")

    def join(self, client, nick, extra="", room=ROOM):
        """Join and return the self-presence (status 110)."""
        client.send(join_xml(nick, extra, room))
        return client.wait_for(lambda s: 110 in status_codes(s)
                               and s.get("from") == "%s/%s" % (room, nick))

    def iq(self, client, xml):
        return client.iq(xml)

    def admin(self, client, item):
        return client.iq("<iq type='set' to='%s'><query xmlns='%s'>%s</query></iq>"
                         % (ROOM, NS.MUC_ADMIN, item))

    def configure(self, *fields):
        values = "".join("<field var='%s'><value>%s</value></field>" % f for f in fields)
        return self.kevin.iq(
            "<iq type='set' to='%s'><query xmlns='%s'><x xmlns='jabber:x:data' "
            "type='submit'><field var='FORM_TYPE'><value>%s#roomconfig</value></field>"
            "%s</x></query></iq>" % (ROOM, NS.MUC_OWNER, NS.MUC, values))


class DiscoveryAndPingTests(ServiceTestCase):

    def test_service_disco_and_ping(self):
        info = self.kevin.iq("<iq type='get' to='%s'><query xmlns='%s'/></iq>"
                             % (SERVICE, NS.DISCO_INFO))
        features = {f.get("var") for f in findall(info, "disco_info:query/disco_info:feature")}
        self.assertTrue({NS.MUC, "http://tridsys.com/protocol/dmuc",
                         "urn:xmpp:dmuc:0", NS.PING} <= features)
        identity = find(info, "disco_info:query/disco_info:identity")
        self.assertEqual((identity.get("category"), identity.get("type")),
                         ("conference", "text"))
        pong = self.kevin.iq("<iq type='get' to='%s'><ping xmlns='%s'/></iq>"
                             % (SERVICE, NS.PING))
        self.assertEqual(pong.get("type"), "result")

    def test_room_disco_and_listing(self):
        self.join(self.kevin, "Kevin")
        self.configure(("muc#roomconfig_roomname", "Plans"))
        items = self.wayne.iq("<iq type='get' to='%s'><query xmlns='%s'/></iq>"
                              % (SERVICE, NS.DISCO_ITEMS))
        listed = [(i.get("jid"), i.get("name"))
                  for i in findall(items, "disco_items:query/disco_items:item")]
        self.assertEqual(listed, [(ROOM, "Plans")])
        info = self.wayne.iq("<iq type='get' to='%s'><query xmlns='%s'/></iq>"
                             % (ROOM, NS.DISCO_INFO))
        fields = {f.get("var"): [v.text for v in f]
                  for f in findall(info, "disco_info:query/data:x/data:field")}
        self.assertEqual(fields["FORM_TYPE"], [NS.MUC + "#roominfo"])
        self.assertEqual(fields["muc#roominfo_occupants"], ["1"])
        self.assertIn(fields["muc#roomconfig_distributed"], (["1"], ["true"]))


class AdministrationTests(ServiceTestCase):

    setUp = ServiceTestCase.set_up_with_two_occupants

    def test_config_form_round_trip(self):
        form = self.kevin.iq("<iq type='get' to='%s'><query xmlns='%s'/></iq>"
                             % (ROOM, NS.MUC_OWNER))
        fields = {f.get("var") for f in findall(form, "muc_owner:query/data:x/data:field")}
        self.assertIn("muc#roomconfig_distributed", fields)
        self.assertIn("muc#roomconfig_persistentroom", fields)
        refused = self.wayne.iq("<iq type='get' to='%s'><query xmlns='%s'/></iq>"
                                % (ROOM, NS.MUC_OWNER))
        self.assertEqual(error_condition(refused), ("auth", "forbidden"))
        result = self.configure(("muc#roomconfig_whois", "anyone"))
        self.assertEqual(result.get("type"), "result")
        notice = self.wayne.wait_for(lambda s: s.get("from") == ROOM and status_codes(s))
        self.assertEqual(status_codes(notice), {172})

    def test_roles_and_affiliations(self):
        self.assertEqual(self.configure(("muc#roomconfig_moderatedroom", "1")).get("type"),
                         "result")
        self.assertEqual(self.admin(self.kevin, "<item nick='Wayne' role='visitor'/>")
                         .get("type"), "result")
        seen = self.wayne.wait_for(
            lambda s: s.get("from") == ROOM + "/Wayne"
            and (find(s, "muc_user:x/muc_user:item") or {}).get("role") == "visitor")
        self.assertEqual(status_codes(seen), {110})
        self.wayne.send("<message to='%s' type='groupchat'><body>hi</body></message>" % ROOM)
        refused = self.wayne.wait_for(matcher("message", type="error"))
        self.assertEqual(error_condition(refused), ("auth", "forbidden"))
        # voice, then membership, admin and ownership
        self.admin(self.kevin, "<item nick='Wayne' role='participant'/>")
        for affiliation in ("member", "admin", "owner"):
            reply = self.admin(self.kevin, "<item jid='wayne@fairfax.test' affiliation='%s'/>"
                               % affiliation)
            self.assertEqual(reply.get("type"), "result", affiliation)
        owners = self.wayne.iq("<iq type='get' to='%s'><query xmlns='%s'>"
                               "<item affiliation='owner'/></query></iq>" % (ROOM, NS.MUC_ADMIN))
        self.assertEqual(sorted(i.get("jid") for i in findall(owners, "muc_admin:query/muc_admin:item")),
                         ["kevin@fairfax.test", "wayne@fairfax.test"])
        moderators = self.kevin.iq("<iq type='get' to='%s'><query xmlns='%s'>"
                                   "<item role='moderator'/></query></iq>" % (ROOM, NS.MUC_ADMIN))
        self.assertEqual(sorted(i.get("nick") for i in
                                findall(moderators, "muc_admin:query/muc_admin:item")),
                         ["Kevin", "Wayne"])

    def test_iq_between_occupants(self):
        reply = self.wayne.iq("<iq type='get' to='%s/Kevin'><query xmlns='jabber:iq:version'/></iq>"
                              % ROOM)
        # Kevin's slixmpp answers (with an error: no version plugin); what
        # matters is that the answer comes back from Kevin's occupant JID.
        self.assertEqual(reply.get("from"), ROOM + "/Kevin")
        request = self.kevin.wait_for(matcher("iq", type="get"))
        self.assertEqual(request.get("from"), ROOM + "/Wayne")

    def test_destroy(self):
        reply = self.kevin.iq("<iq type='set' to='%s'><query xmlns='%s'><destroy>"
                              "<reason>done</reason></destroy></query></iq>" % (ROOM, NS.MUC_OWNER))
        self.assertEqual(reply.get("type"), "result")
        gone = self.wayne.wait_for(matcher("presence", type="unavailable"))
        self.assertEqual(find(gone, "muc_user:x/muc_user:destroy/muc_user:reason").text, "done")
        info = self.wayne.iq("<iq type='get' to='%s'><query xmlns='%s'/></iq>"
                             % (ROOM, NS.DISCO_INFO))
        self.assertEqual(error_condition(info), ("cancel", "item-not-found"))


class BadInputTests(ServiceTestCase):
    """Malformed stanzas get the right error; the room keeps serving."""

    setUp = ServiceTestCase.set_up_with_two_occupants

    def assertStillServing(self):
        """After a bad stanza, the room still works for everyone."""
        self.kevin.send("<message to='%s' type='groupchat'><body>still here</body></message>"
                        % ROOM)
        message = self.wayne.wait_for(matcher("message", type="groupchat", from_=ROOM + "/Kevin"))
        self.assertEqual(find(message, "body").text, "still here")

    def assertError(self, xml, expected, kind="iq"):
        self.wayne.send(xml)
        reply = self.wayne.wait_for(matcher(kind, type="error"))
        self.assertEqual(error_condition(reply), expected)
        self.assertStillServing()

    def test_unknown_namespace(self):
        self.assertError("<iq type='get' id='u1' to='%s'><foo xmlns='urn:example:unknown'/></iq>"
                         % ROOM, ("cancel", "service-unavailable"))
        self.assertError("<iq type='get' id='u2' to='%s'><foo xmlns='urn:example:unknown'/></iq>"
                         % SERVICE, ("cancel", "service-unavailable"))

    def test_admin_item_without_attributes(self):
        self.assertError("<iq type='set' id='a1' to='%s'><query xmlns='%s'><item/></query></iq>"
                         % (ROOM, NS.MUC_ADMIN), ("modify", "bad-request"))

    def test_admin_item_with_malformed_jid(self):
        self.assertError("<iq type='set' id='a2' to='%s'><query xmlns='%s'><item "
                         "jid='a@b@c' affiliation='member'/></query></iq>"
                         % (ROOM, NS.MUC_ADMIN), ("modify", "jid-malformed"))

    def test_configuration_by_non_owner(self):
        self.assertError(
            "<iq type='set' id='c1' to='%s'><query xmlns='%s'><x xmlns='jabber:x:data' "
            "type='submit'><field var='muc#roomconfig_maxusers'><value>-3</value></field>"
            "</x></query></iq>" % (ROOM, NS.MUC_OWNER), ("auth", "forbidden"))

    def test_huge_body(self):
        self.assertError("<message to='%s' type='groupchat'><body>%s</body></message>"
                         % (ROOM, "x" * 100_000), ("modify", "policy-violation"), "message")

    def test_message_to_missing_room(self):
        self.assertError("<message to='nowhere@%s' type='groupchat'><body>x</body></message>"
                         % SERVICE, ("cancel", "item-not-found"), "message")

    def test_junk_history_attributes_are_ignored(self):
        keith = self.site.client("keith")
        keith.send(join_xml("Keith", "<history maxstanzas='lots' since='yesterday'/>"))
        keith.wait_for(lambda s: 110 in status_codes(s))
        self.assertStillServing()


class PersistenceTests(unittest.TestCase):
    """Killing and restarting the component loses nothing persistent."""

    def persistent_room(self, site):
        """Kevin creates the room and makes it persistent; returns him."""
        kevin = site.client("kevin")
        kevin.send(join_xml("Kevin"))
        kevin.wait_for(lambda s: 110 in status_codes(s))
        kevin.iq("<iq type='set' to='%s'><query xmlns='%s'><x xmlns='jabber:x:data' "
                 "type='submit'><field var='muc#roomconfig_persistentroom'><value>1</value>"
                 "</field></x></query></iq>" % (ROOM, NS.MUC_OWNER))
        return kevin

    def test_rooms_affiliations_history_survive_restart(self):
        site = MasterSite(self)
        dmuc = site.start_dmuc()
        kevin = self.persistent_room(site)
        kevin.iq("<iq type='set' to='%s'><query xmlns='%s'><item jid='wayne@fairfax.test' "
                 "affiliation='member'/></query></iq>" % (ROOM, NS.MUC_ADMIN))
        for n in range(5):
            kevin.send("<message to='%s' type='groupchat'><body>kept %d</body></message>"
                       % (ROOM, n))
        # Once the service has answered a later request it has accepted the
        # messages; a SIGTERM right after must not lose their storage.
        kevin.barrier(SERVICE)
        dmuc.stop()
        dmuc.start()

        wayne = site.client("wayne")
        wayne.send(join_xml("Wayne"))
        own = wayne.wait_for(lambda s: 110 in status_codes(s))
        self.assertEqual(find(own, "muc_user:x/muc_user:item").get("affiliation"), "member")
        bodies = []
        while len(bodies) < 5:
            message = wayne.wait_for(matcher("message", type="groupchat"))
            body = find(message, "body")
            if body is not None:
                bodies.append(body.text)
                self.assertIsNotNone(find(message, "delay:delay"))
        self.assertEqual(bodies, ["kept %d" % n for n in range(5)])
        owners = wayne.iq("<iq type='get' to='%s'><query xmlns='%s'><item affiliation='member'/>"
                          "</query></iq>" % (ROOM, NS.MUC_ADMIN))
        self.assertEqual(error_condition(owners), ("auth", "forbidden"))

    def test_component_reconnects_when_prosody_restarts(self):
        site = MasterSite(self)
        dmuc = site.start_dmuc()
        site.server.restart()
        dmuc.wait_for_log("the component is online", count=2, timeout=30)
        self.assertIn("disconnected from", dmuc.log_text())
        self.assertIn("reconnecting in", dmuc.log_text())
        kevin = site.client("kevin")
        kevin.send(join_xml("Kevin"))
        kevin.wait_for(lambda s: 110 in status_codes(s))

    def test_wrong_secret_is_logged(self):
        site = MasterSite(self, secret="not-the-secret")
        dmuc = DmucProcess(os.path.join(site.directory, "dmuc"), site.sections)
        self.addCleanup(dmuc.stop)
        with self.assertRaises(Exception):
            dmuc.start(timeout=3)
        self.assertIn("refused by the XMPP server: not-authorized", dmuc.log_text())
        self.assertIn("reconnecting in", dmuc.log_text())

    def test_the_client_port_is_named(self):
        # Prosody's c2s port answers the component's stream; the log says
        # which port it is, not that the server lacks a Component block.
        site = MasterSite(self)
        site.sections["xmpp"]["port"] = site.server.c2s_port
        dmuc = DmucProcess(os.path.join(site.directory, "dmuc"), site.sections)
        self.addCleanup(dmuc.stop)
        with self.assertRaises(Exception):
            dmuc.start(timeout=3)
        self.assertIn("is its client (c2s) port, not its component port", dmuc.log_text())
        self.assertNotIn("no Component block", dmuc.log_text())

    def test_metrics_endpoint(self):
        import socket
        import urllib.request
        site = MasterSite(self)
        with socket.socket() as probe:
            probe.bind((site.server.ip, 0))
            port = probe.getsockname()[1]
        site.sections["metrics"] = {"listen": "%s:%d" % (site.server.ip, port)}
        site.start_dmuc()
        kevin = site.client("kevin")
        kevin.send(join_xml("Kevin"))
        kevin.wait_for(lambda s: 110 in status_codes(s))
        with urllib.request.urlopen("http://%s:%d/metrics" % (site.server.ip, port),
                                    timeout=10) as answer:
            text = answer.read().decode()
        self.assertIn('dmuc_rooms{service="%s"} 1.0' % SERVICE, text)
        self.assertIn('dmuc_occupants{service="%s"} 1.0' % SERVICE, text)
        # The operator's command asks the same listener, found from the config.
        command = os.path.join(os.path.dirname(sys.executable), "dmuc")
        rooms = subprocess.run([command, "-c", site.dmuc.config_path, "rooms"],
                               capture_output=True, text=True, timeout=30)
        self.assertEqual((rooms.returncode, rooms.stdout.splitlines()),
                         (0, ["%s: 1 room(s)" % SERVICE, "  %s  1 in the room" % ROOM]))
        who = subprocess.run([command, "-c", site.dmuc.config_path, "who", ROOM],
                             capture_output=True, text=True, timeout=30)
        self.assertEqual(who.stdout.split(), ["Kevin", "moderator", "owner",
                                              "kevin@fairfax.test/res"])

    def test_the_systemd_unit_starts_dmuc(self):
        # etc/systemd/dmuc@.service's command line, as written, with the
        # virtualenv and the configuration of this test put in.
        unit = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                            "etc", "systemd", "dmuc@.service")
        with open(unit) as f:
            line, = [l for l in f if l.startswith("ExecStart=")]
        site = MasterSite(self)
        probe = DmucProcess(os.path.join(site.directory, "dmuc"), site.sections)
        command = (line[len("ExecStart="):].strip()
                   .replace("/opt/dmuc/bin/", os.path.dirname(sys.executable) + "/")
                   .replace("/etc/dmuc/%i.ini", probe.config_path).split())
        process = subprocess.Popen(command, cwd=site.directory, stdout=subprocess.PIPE,
                                   stderr=subprocess.STDOUT, text=True)
        self.addCleanup(process.wait, 10)
        self.addCleanup(process.terminate)
        lines = []
        for output in process.stdout:
            lines.append(output)
            if "the component is online" in output:
                break
        self.assertIn("the component is online", "".join(lines))
        kevin = site.client("kevin")
        kevin.send(join_xml("Kevin"))
        kevin.wait_for(lambda s: 110 in status_codes(s))

    def test_database_holds_the_history(self):
        """The SQLite file is the embedded default, at the configured path."""
        site = MasterSite(self)
        site.start_dmuc()
        self.persistent_room(site)
        site.dmuc.stop()
        rows = sqlite3.connect(site.sections["master"]["database"]).execute(
            "select jid from rooms").fetchall()
        self.assertEqual(rows, [(ROOM,)])
