"""Configuration: validated at start, every problem named by file, section, key."""

import os
import subprocess
import sys

from twisted.trial import unittest

from dmuc import config
from dmuc.muc.limits import Limits
from tests.harness.prosody import temp_directory

GOOD = """
[xmpp]
host = 127.0.0.1
port = 5347

[master]
jid = conference.fairfax.test
secret = s3cret   ; a comment
database = {db}
trusted_mirrors = mirror.raleigh.test
                  mirror.other.test=other.test,third.test
"""


class LoadTests(unittest.TestCase):

    def write(self, text):
        directory = temp_directory(self)
        path = os.path.join(directory, "dmuc.ini")
        with open(path, "w") as f:
            f.write(text.format(db=os.path.join(directory, "master.sqlite")))
        return path

    def assertConfigError(self, text, *fragments):
        path = self.write(text)
        with self.assertRaises(config.ConfigError) as e:
            config.load(path)
        message = str(e.exception)
        self.assertTrue(message.startswith(path + ": "), message)
        for fragment in fragments:
            self.assertIn(fragment, message)
        self.assertNotIn("\n", message)

    def test_good_config(self):
        loaded = config.load(self.write(GOOD))
        self.assertEqual(loaded.xmpp.port, 5347)
        self.assertEqual(loaded.master.jid, "conference.fairfax.test")
        self.assertEqual(loaded.master.secret, "s3cret")
        self.assertEqual(loaded.master.trusted_mirrors, {
            "mirror.raleigh.test": ("raleigh.test",),
            "mirror.other.test": ("other.test", "third.test")})

    def test_defaults(self):
        loaded = config.load(self.write("[master]\njid = c.example.org\nsecret = x\n"))
        self.assertEqual((loaded.xmpp.host, loaded.xmpp.port), ("127.0.0.1", 5347))
        self.assertEqual(loaded.master.database, os.path.abspath("dmuc-master.sqlite"))

    def test_each_service_has_its_own_status_file_by_default(self):
        loaded = config.load(self.write("[master]\njid = c.example.org\nsecret = x\n"))
        self.assertEqual(loaded.monitor.status_file, os.path.abspath("dmuc-status-{service}.json"))
        self.assertEqual(loaded.monitor.status_file_for("c.example.org"),
                         os.path.abspath("dmuc-status-c.example.org.json"))

    def test_one_status_file_for_two_services_is_refused(self):
        self.assertConfigError(
            "[master]\njid = c.example.org\nsecret = x\n"
            "[mirror]\njid = m.example.org\nsecret = x\nlocal_domains = example.org\n"
            "[monitor]\nstatus_file = /tmp/status.json\n",
            "[monitor] status_file:", "{service}")

    def test_max_history_messages(self):
        loaded = config.load(self.write("[master]\njid = c.example.org\nsecret = x\n"))
        self.assertEqual(loaded.master.max_history_messages, 1000)
        loaded = config.load(self.write("[master]\njid = c.example.org\nsecret = x\n"
                                        "max_history_messages = 50\n"))
        self.assertEqual(loaded.master.max_history_messages, 50)
        self.assertConfigError("[master]\njid = c.example.org\nsecret = x\n"
                               "max_history_messages = lots\n",
                               "[master] max_history_messages:")

    def test_limits_have_protective_defaults_and_reach_the_services(self):
        loaded = config.load(self.write(
            "[master]\njid = c.example.org\nsecret = x\n"
            "[mirror]\njid = m.example.org\nsecret = x\nlocal_domains = example.org\n"
            "messages_per_second = 0.5\nmax_occupants = 0\n"))
        self.assertEqual(loaded.master.limits, Limits(
            messages_per_second=5, message_burst=50, max_presence_size=8192,
            max_occupants_per_room=1000, max_occupants=10000, max_rooms_per_user=100))
        self.assertEqual(loaded.mirror.limits, Limits(
            messages_per_second=0.5, message_burst=50, max_presence_size=8192,
            max_occupants=0))

    def test_limits_are_checked_at_start(self):
        head = "[master]\njid = c.example.org\nsecret = x\n"
        self.assertConfigError(head + "messages_per_second = -1\n",
                               "[master] messages_per_second:", "0 (no limit) or more")
        self.assertConfigError(head + "message_burst = 0\n", "[master] message_burst:")
        self.assertConfigError(head + "max_presence_size = big\n",
                               "[master] max_presence_size:", "whole number")
        self.assertConfigError("[mirror]\njid = m.example.org\nsecret = x\n"
                               "local_domains = example.org\nmax_rooms_per_user = 3\n",
                               "[mirror] max_rooms_per_user: unknown key")

    def test_metrics_off_unless_configured(self):
        loaded = config.load(self.write("[master]\njid = c.example.org\nsecret = x\n"))
        self.assertIsNone(loaded.metrics)
        loaded = config.load(self.write("[master]\njid = c.example.org\nsecret = x\n"
                                        "[metrics]\nlisten = 127.0.0.1:9154\n"))
        self.assertEqual(loaded.metrics.listen, ("127.0.0.1", 9154))

    def test_metrics_listen_must_be_an_address(self):
        self.assertConfigError("[master]\njid = c.example.org\nsecret = x\n"
                               "[metrics]\nlisten = 9154\n",
                               "[metrics] listen:", "127.0.0.1:9154")
        self.assertConfigError("[master]\njid = c.example.org\nsecret = x\n"
                               "[metrics]\n", "[metrics] listen: missing")

    def test_tombstone_expiry(self):
        loaded = config.load(self.write("[master]\njid = c.example.org\nsecret = x\n"))
        self.assertEqual(loaded.master.tombstone_expiry, 31 * 86400)
        loaded = config.load(self.write(GOOD + "tombstone_expiry = 3600\n"))
        self.assertEqual(loaded.master.tombstone_expiry, 3600)
        loaded = config.load(self.write(GOOD + "tombstone_expiry = 0\n"))
        self.assertEqual(loaded.master.tombstone_expiry, 0)

    def test_bad_tombstone_expiry(self):
        self.assertConfigError(GOOD + "tombstone_expiry = a month\n",
                               "[master] tombstone_expiry:", "a month")
        self.assertConfigError(GOOD + "tombstone_expiry = -5\n",
                               "[master] tombstone_expiry:", "-5")

    def test_redirect_to_mirrors(self):
        loaded = config.load(self.write("[master]\njid = c.example.org\nsecret = x\n"))
        self.assertIs(loaded.master.redirect_to_mirrors, False)
        loaded = config.load(self.write(GOOD + "redirect_to_mirrors = yes\n"))
        self.assertIs(loaded.master.redirect_to_mirrors, True)
        self.assertConfigError(GOOD + "redirect_to_mirrors = sometimes\n",
                               "[master] redirect_to_mirrors:", "sometimes")

    def test_archive_expires(self):
        loaded = config.load(self.write(GOOD))
        self.assertEqual(loaded.master.archive_expires, 7 * 86400)
        loaded = config.load(self.write(GOOD + "archive_expires = 30d\n"))
        self.assertEqual(loaded.master.archive_expires, 30 * 86400)
        loaded = config.load(self.write(GOOD + "archive_expires = never\n"))
        self.assertIsNone(loaded.master.archive_expires)
        self.assertConfigError(GOOD + "archive_expires = soon\n",
                               "[master] archive_expires:", "soon")
        self.assertConfigError(GOOD + "archive_expires = 0\n",
                               "[master] archive_expires:", "0")

    def test_unknown_key(self):
        self.assertConfigError(GOOD + "colour = blue\n", "[master] colour: unknown key")

    def test_unknown_section(self):
        self.assertConfigError(GOOD + "[extra]\na = b\n", "[extra]: unknown section")

    def test_missing_secret(self):
        self.assertConfigError("[master]\njid = c.example.org\n",
                               "[master] secret: missing")

    def test_empty_secret(self):
        self.assertConfigError("[master]\njid = c.example.org\nsecret =\n",
                               "[master] secret: missing (required with connection = component")

    def test_bad_port(self):
        self.assertConfigError(GOOD.replace("5347", "99999"), "[xmpp] port:", "99999")
        self.assertConfigError(GOOD.replace("5347", "many"), "[xmpp] port:", "many")

    def test_bad_jid(self):
        self.assertConfigError(GOOD.replace("conference.fairfax.test", "user@host/r"),
                               "[master] jid:")

    def test_bad_trusted_mirror(self):
        self.assertConfigError(GOOD.replace("mirror.raleigh.test", "bad@mirror/x"),
                               "[master] trusted_mirrors:")

    def test_database_is_directory(self):
        self.assertConfigError(GOOD.replace("{db}", "/tmp"), "[master] database:",
                               "directory")

    def test_database_not_sqlite(self):
        path = os.path.join(temp_directory(self), "junk.sqlite")
        with open(path, "w") as f:
            f.write("not a database")
        self.assertConfigError(GOOD.replace("{db}", path), "[master] database:",
                               "not a SQLite database")

    def test_no_service(self):
        self.assertConfigError("[xmpp]\nport = 5347\n", "no service configured")

    def test_not_ini(self):
        self.assertConfigError("this is not ini\n", "not a valid INI file")

    def test_missing_file(self):
        with self.assertRaises(config.ConfigError) as e:
            config.load("/nonexistent/dmuc.ini")
        self.assertIn("/nonexistent/dmuc.ini: cannot read", str(e.exception))


STANDALONE = """
[master]
jid = conference.fairfax.test
connection = s2s
database = {db}

[s2s]
require_encryption = false
secure_auth = false
routes = fairfax.test=192.0.2.1:5269
         raleigh.test=192.0.2.2:5269,192.0.2.3:5270
"""


class S2SConfigTests(unittest.TestCase):
    """The [s2s] section and the services' connection keys."""

    write = LoadTests.write
    assertConfigError = LoadTests.assertConfigError

    def test_standalone_master_needs_no_secret(self):
        loaded = config.load(self.write(STANDALONE))
        self.assertEqual(loaded.master.connection, "s2s")
        self.assertEqual(loaded.s2s.routes, {
            "fairfax.test": (("192.0.2.1", 5269),),
            "raleigh.test": (("192.0.2.2", 5269), ("192.0.2.3", 5270))})

    def test_routes_separated_by_commas(self):
        # Commas separate one domain's addresses: a second domain after
        # a comma would be read as a host called "raleigh.test=192...".
        self.assertConfigError(
            STANDALONE.replace("\n         raleigh", ",raleigh"), "[s2s] routes:",
            "raleigh.test=192.0.2.2", "white space")

    def test_connection_s2s_without_section(self):
        self.assertConfigError(STANDALONE.split("[s2s]")[0], "[master] connection:",
                               "needs an [s2s] section")

    def test_encryption_required_without_certificate(self):
        self.assertConfigError(STANDALONE.replace("require_encryption = false\n", ""),
                               "[s2s] certificate: missing")

    def test_component_without_secret(self):
        self.assertConfigError(STANDALONE.replace("connection = s2s", "connection = component"),
                               "[master] secret: missing")

    def test_unknown_connection(self):
        self.assertConfigError(STANDALONE.replace("connection = s2s", "connection = bosh"),
                               "[master] connection:", "'bosh' is not component", "or s2s")

class TwistdTests(unittest.TestCase):

    def test_a_storage_that_fails_at_start_stops_with_status_1(self):
        # A service manager restarts what exits 0, and says nothing.
        import sqlite3
        directory = temp_directory(self)
        database = os.path.join(directory, "master.sqlite")
        connection = sqlite3.connect(database)
        # A rooms table of another shape than dmuc's: no room can be read.
        connection.execute("CREATE TABLE rooms (jid TEXT PRIMARY KEY, settings TEXT)")
        connection.commit()
        connection.close()
        path = os.path.join(directory, "dmuc.ini")
        with open(path, "w") as f:
            f.write("[master]\njid = conference.fairfax.test\nsecret = s\n"
                    "database = %s\n[xmpp]\nport = 1\n" % database)
        twistd = os.path.join(os.path.dirname(sys.executable), "twistd")
        result = subprocess.run([twistd, "-n", "--pidfile=", "--logfile=-", "dmuc", "-c", path],
                                capture_output=True, text=True, timeout=60, cwd=directory)
        self.assertEqual(result.returncode, 1, result.stdout[-2000:])
        self.assertIn("master service conference.fairfax.test: cannot start", result.stdout)

    def test_version_is_dmucs(self):
        import dmuc
        import twisted
        twistd = os.path.join(os.path.dirname(sys.executable), "twistd")
        result = subprocess.run([twistd, "dmuc", "--version"],
                                capture_output=True, text=True, timeout=60)
        self.assertEqual(result.returncode, 0, result.stderr)
        line, = result.stdout.strip().splitlines()
        self.assertTrue(line.startswith("dmuc %s (Twisted %s, wokkel "
                                        % (dmuc.__version__, twisted.__version__)), line)

    def test_twistd_refuses_bad_config_with_one_line(self):
        path = os.path.join(temp_directory(self), "dmuc.ini")
        with open(path, "w") as f:
            f.write("[master]\njid = conference.fairfax.test\n")
        twistd = os.path.join(os.path.dirname(sys.executable), "twistd")
        result = subprocess.run([twistd, "-n", "dmuc", "-c", path],
                                capture_output=True, text=True, timeout=60)
        self.assertEqual(result.returncode, 1)
        self.assertEqual(result.stderr.strip().splitlines(), [
            "dmuc: configuration error: %s: [master] secret: missing (required with "
            "connection = component: the component secret shared with the XMPP server)"
            % path])
