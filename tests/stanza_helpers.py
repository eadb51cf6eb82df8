"""
Unit-test helpers: a master service on an in-memory stream, storage and
clock, fed with stanzas written as XML text.
"""

from twisted.internet.task import Clock
from twisted.logger import formatEvent, globalLogPublisher
from wokkel.test.helpers import TestableStreamManager

import dmuc  # noqa: F401  (the wokkel shim first)
from dmuc.master.handler import MasterMUC
from dmuc.storage.memory import MemoryRoomStore
from dmuc.xmpp import namespaces as ns
from dmuc.xmpp.stanzas import parse_xml

def logged(testcase, *levels):
    """
    The log lines of the given levels emitted from now until the end of
    C{testcase}, formatted as an operator reads them (a live list).
    """
    lines = []

    def observe(event):
        if event.get("log_level") in levels:
            lines.append(formatEvent(event))
    globalLogPublisher.addObserver(observe)
    testcase.addCleanup(globalLogPublisher.removeObserver, observe)
    return lines


DOMAIN = "conference.fairfax.test"
ROOM = "chat@" + DOMAIN


def component_stanza(text):
    """Parse XML text as a stanza arriving on the component stream."""
    element = parse_xml(text)
    _set_stream_namespace(element, ns.COMPONENT)
    return element


def _set_stream_namespace(element, uri):
    # As received from Prosody: stanza-level elements carry the stream
    # namespace, extensions their own.
    if element.uri is None:
        element.uri = uri
        element.defaultUri = uri
        for node in element.elements():
            _set_stream_namespace(node, uri)


class MasterFixture:
    """
    A L{MasterMUC} wired to a stub stream.  C{sent} holds copies of what it
    sent (copies: rooms reuse one element for several recipients).
    """

    def __init__(self, clock=None, store=None):
        self.clock = clock or Clock()
        self.clock.advance(1_700_000_000)
        self.store = store or MemoryRoomStore()
        self.muc = MasterMUC(DOMAIN, self.store, self.clock)
        self.manager = TestableStreamManager(reactor=self.clock)
        self.manager.stub.xmlstream.send = self._capture
        self.muc.setHandlerParent(self.manager)
        self.sent = []

    def _capture(self, element):
        self.sent.append(parse_xml(element.toXml()))

    def receive(self, text):
        """Deliver one stanza; return what the service sent in answer."""
        before = len(self.sent)
        self.manager.stub.send(component_stanza(text))
        return self.sent[before:]

    def join(self, user, nick, room=ROOM, extra=""):
        return self.receive(
            "<presence from='%s' to='%s/%s'><x xmlns='%s'>%s</x></presence>"
            % (user, room, nick, ns.MUC, extra))

    def say(self, user, body, room=ROOM):
        return self.receive(
            "<message from='%s' to='%s' type='groupchat' id='m1'><body>%s</body></message>"
            % (user, room, body))


def to(stanzas, jid):
    """The stanzas addressed to C{jid}."""
    return [s for s in stanzas if s.getAttribute("to") == jid]


def status_codes(stanza):
    for x in stanza.elements(ns.MUC_USER, "x"):
        return [s["code"] for s in x.elements(ns.MUC_USER, "status")]
    return []


def item(stanza):
    for x in stanza.elements(ns.MUC_USER, "x"):
        for element in x.elements(ns.MUC_USER, "item"):
            return element
    return None


def error_condition(stanza):
    for error in stanza.elements(None, "error"):
        return error.getAttribute("type"), next(
            e.name for e in error.elements() if e.uri == ns.STANZAS and e.name != "text")
    return None
