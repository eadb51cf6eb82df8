"""
dmuc.compat must stay needed and stay enough (see its docstring).

Both checks run in fresh interpreters, since this process has the shim
installed already.
"""

import subprocess
import sys

from twisted.trial import unittest

WOKKEL_MODULES = ("wokkel.muc", "wokkel.disco", "wokkel.ping", "wokkel.data_form",
                  "wokkel.delay", "wokkel.pubsub", "wokkel.component")


def run_python(code):
    return subprocess.run([sys.executable, "-c", code], capture_output=True,
                          text=True, timeout=120)


class CompatTests(unittest.TestCase):

    def test_still_needed(self):
        """Without the shim, wokkel does not import on this Twisted.  When
        this fails, a fixed wokkel or Twisted is in use: delete dmuc.compat."""
        result = run_python("import wokkel.muc")
        self.assertNotEqual(result.returncode, 0, "wokkel.muc imports without "
                            "dmuc.compat: the shim is no longer needed")
        self.assertRegex(result.stderr, "(ImportError|ModuleNotFoundError)")

    def test_enough_to_import(self):
        result = run_python("import dmuc\n" + "".join(
            "import %s\n" % name for name in WOKKEL_MODULES))
        self.assertEqual(result.returncode, 0, result.stderr)

    def test_enough_for_wokkels_own_tests(self):
        """wokkel's own tests of the modules dmuc uses pass with the shim."""
        result = run_python(
            "import sys, dmuc\n"
            "from twisted.scripts.trial import run\n"
            "sys.argv = ['trial', 'wokkel.test.test_data_form',"
            " 'wokkel.test.test_disco', 'wokkel.test.test_muc',"
            " 'wokkel.test.test_ping', 'wokkel.test.test_delay',"
            " 'wokkel.test.test_subprotocols']\n"
            "run()\n")
        self.assertIn("PASSED", result.stdout, result.stdout[-3000:])
