"""
C{twistd dmuc}: options and the service tree.

    twistd -n dmuc --config /etc/dmuc.ini

A bad configuration stops the start with one line on standard error naming
the file, section and key, and exit status 1.
"""

import faulthandler
import sys

from twisted.application import service
from twisted.python import usage

from dmuc import config as dmuc_config


class Options(usage.Options):
    optParameters = [
        ["config", "c", None, "Path of the dmuc configuration file (INI)."],
    ]

    def opt_version(self):
        """Print dmuc's version (with Twisted's and wokkel's) and exit."""
        import platform

        import twisted
        from wokkel import __version__ as wokkel_version

        import dmuc
        print("dmuc %s (Twisted %s, wokkel %s, Python %s)" % (
            dmuc.__version__, twisted.__version__, wokkel_version,
            platform.python_version()))
        raise SystemExit(0)

    def postOptions(self):
        if not self["config"]:
            raise usage.UsageError("--config PATH is required")
        try:
            self["parsed"] = dmuc_config.load(self["config"])
        except dmuc_config.ConfigError as e:
            # One clear line, not twistd's usage text and traceback.
            sys.stderr.write("dmuc: configuration error: %s\n" % (e,))
            raise SystemExit(1)


def makeService(options, reactor=None):
    """Build the services the configuration asks for."""
    if reactor is None:
        from twisted.internet import reactor
    _report_fatal_signals()
    parsed = options["parsed"]
    top = service.MultiService()
    s2s = None
    if parsed.s2s is not None:
        from dmuc.s2s.config import make_server
        s2s = make_server(parsed.s2s, reactor)
        # First, so that it stops last: the services' goodbyes (status
        # 332, stop notices to peers) still leave over it.
        s2s.setServiceParent(top)
    services = []
    if parsed.master is not None:
        from dmuc.master import MasterService
        services.append(MasterService(parsed.xmpp, parsed.master, parsed.monitor, reactor,
                                      s2s=s2s))
    if parsed.mirror is not None:
        from dmuc.mirror import MirrorService
        services.append(MirrorService(parsed.xmpp, parsed.mirror, parsed.monitor, reactor,
                                      s2s=s2s))
    for one in services:
        one.setServiceParent(top)
    if parsed.metrics is not None:
        from dmuc.metrics import MetricsService
        MetricsService(parsed.metrics, [one.handler for one in services],
                       reactor=reactor).setServiceParent(top)
    return top


def _report_fatal_signals():
    """
    A fatal signal inside C code kills the process without a Python
    traceback: SQLite touching its shared-memory file (C{*.sqlite-shm})
    after something else truncated it dies of SIGBUS.  Python's fault
    handler then writes what killed it, and where, to standard error (the
    journal under systemd; twistd's log file does not get it), so the
    operator knows why the service restarted.  Nothing acknowledged is
    lost: the database is whole, and SQLite rebuilds the file at start.
    """
    if not faulthandler.is_enabled():
        try:
            faulthandler.enable(all_threads=True)
        except (AttributeError, ValueError, OSError):
            pass    # standard error is not a file (embedded): nowhere to write
