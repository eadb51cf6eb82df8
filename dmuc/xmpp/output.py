"""
Stanzas that wait for storage: what a service sends after asking for a
write (a message's echo after storing it, a configuration's result after
saving it) must not leave before the write has ended, or a crash in
between would lose what a user was told is done.  Everything sent after
such a write waits too, so no stanza overtakes another: the order the
service sent in is the order that leaves.
"""

from collections import deque


class OutputGate:
    """
    Passes stanzas on to C{send} in the order given, holding back those
    given after a barrier (L{wait_for}) until the barrier's Deferred fires.
    With no barrier pending, a stanza goes at once: no copy, no delay.
    """

    def __init__(self, send):
        self._send = send
        self._held = deque()    # stanzas and _Barriers, in the order given

    def wait_for(self, d):
        """What is sent from now on waits until C{d} fires (whatever it
        fires with; C{d} is left as it was)."""
        if d.called:
            return
        barrier = _Barrier()
        self._held.append(barrier)

        def passed(result):
            barrier.passed = True
            self._release()
            return result
        d.addBoth(passed)

    def send(self, stanza):
        if self._held:
            self._held.append(stanza)
        else:
            self._send(stanza)

    def open(self):
        """Send everything held now, barriers or not (the service stops:
        its store finishes what was asked before it closes)."""
        held, self._held = self._held, deque()
        for item in held:
            if not isinstance(item, _Barrier):
                self._send(item)

    def _release(self):
        while self._held:
            item = self._held[0]
            if isinstance(item, _Barrier):
                if not item.passed:
                    return
                self._held.popleft()
            else:
                self._held.popleft()
                self._send(item)


class _Barrier:
    passed = False
