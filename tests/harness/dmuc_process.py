"""
dmuc as an operator runs it: C{twistd -n dmuc -c CONFIG} in a process of
its own, attached to a L{ProsodyServer}.  Tests read its log, kill it and
start it again.
"""

import atexit
import os
import signal
import subprocess
import sys
import time

_running = set()
_POLL = 0.02


class DmucError(Exception):
    """dmuc failed to come up; the message holds the end of its log."""


class DmucProcess:
    """
    One dmuc process.

    @ivar config_path: the INI file it runs with.
    @ivar log_path: its twistd log (stdout and stderr).
    """

    def __init__(self, directory, sections):
        """
        @param sections: section name -> {key: value}, written as the INI.
        """
        self.directory = directory
        os.makedirs(directory, exist_ok=True)
        self.config_path = os.path.join(directory, "dmuc.ini")
        self.log_path = os.path.join(directory, "dmuc.log")
        self.process = None
        with open(self.config_path, "w") as f:
            for name, values in sections.items():
                f.write("[%s]\n" % name)
                for key, value in values.items():
                    f.write("%s = %s\n" % (key, value))
                f.write("\n")

    def start(self, ready_lines=1, timeout=20, ready_text="is online"):
        """
        Start and wait until C{ready_lines} services say they are online
        (through their component connection or over dmuc's own S2S).
        """
        twistd = os.path.join(os.path.dirname(sys.executable), "twistd")
        self._log_offset = os.path.getsize(self.log_path) if os.path.exists(self.log_path) else 0
        log = open(self.log_path, "ab")
        self.process = subprocess.Popen(
            [twistd, "-n", "--pidfile=", "dmuc", "-c", self.config_path],
            cwd=self.directory, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        _running.add(self.process)
        self.wait_for_log(ready_text, count=ready_lines, timeout=timeout)

    def log_text(self, since_start=True):
        with open(self.log_path, encoding="utf-8", errors="replace") as f:
            if since_start:
                f.seek(self._log_offset)
            return f.read()

    def wait_for_log(self, text, count=1, timeout=10):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.log_text().count(text) >= count:
                return
            if self.process.poll() is not None:
                break
            time.sleep(_POLL)
        raise DmucError("dmuc did not log %r (exit status %r); log:\n%s"
                        % (text, self.process.poll(), self.log_text()[-4000:]))

    def kill(self):
        """SIGKILL: no clean shutdown, as in a crash."""
        self._stop(signal.SIGKILL)

    def stop(self):
        self._stop(signal.SIGTERM)

    def pause(self):
        """SIGSTOP: the process hangs, its connections stay open."""
        self.process.send_signal(signal.SIGSTOP)

    def resume(self):
        self.process.send_signal(signal.SIGCONT)

    def _stop(self, sig):
        process, self.process = self.process, None
        if process is None:
            return
        if process.poll() is None:
            process.send_signal(signal.SIGCONT)    # in case a test paused it
            process.send_signal(sig)
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        _running.discard(process)


def start_dmuc(testcase, directory, sections, ready_lines=1):
    """Start a L{DmucProcess} for a trial test; stop it in the cleanup."""
    dmuc = DmucProcess(directory, sections)
    testcase.addCleanup(dmuc.stop)
    dmuc.start(ready_lines=ready_lines)
    return dmuc


@atexit.register
def _kill_all():
    for process in list(_running):
        if process.poll() is None:
            process.kill()
            process.wait()
