"""
The differential conformance harness: one scripted scenario, played once
against a room of Prosody's own mod_muc and once against a room of the
dmuc master service on the same server, and what each client received,
normalised, side by side.

Normalising removes what legitimately differs between two runs or two
implementations and nothing else:

  - the MUC service's host name (C{rooms...} for Prosody, C{conference...}
    for dmuc) becomes C{MUC};
  - stanza C{id}s, C{xml:lang}, and time stamps become placeholders;
  - XEP-0421 occupant ids become C{OID1}, C{OID2}... in order of first
    appearance, so the same user keeps the same id;
  - XEP-0359 C{<stanza-id/>}: dmuc adds it to every stored message, Prosody
    only with mod_muc_mam (docs/conformance.md);
  - the order of child elements (XMPP gives it no meaning); the order of
    the stanzas themselves is kept and compared, except within a run of
    other occupants' presences in a join (Prosody sends them in Lua table
    order, which is unspecified).
"""

import re
import xml.etree.ElementTree as ET

from tests.harness.xml import NS, XML_NS, qname

PLACEHOLDER_ATTRIBUTES = {"id": "ID", "stamp": "STAMP"}
DROPPED_ELEMENTS = {qname(NS.STANZA_ID, "stanza-id")}
OCCUPANT_ID = qname("urn:xmpp:occupant-id:0", "occupant-id")


class Step:
    """
    One action of a scenario: C{user} sends C{xml} (C{{room}} and C{{muc}}
    are filled in).  After it, the sender and then every client wait for a
    disco round trip to the MUC service, so everything the step caused has
    arrived before the next step.
    """

    def __init__(self, user, xml):
        self.user = user
        self.xml = xml


def play(clients, service, room_node, steps):
    """
    Play C{steps} against C{room_node@service}.

    @param clients: user name -> L{tests.harness.client.Client}.
    @return: user name -> list of received stanzas from the MUC service.
    """
    room = "%s@%s" % (room_node, service)
    received = {user: [] for user in clients}
    for step in steps:
        clients[step.user].send(step.xml.format(room=room, muc=service))
        clients[step.user].barrier(service)
        for user, client in clients.items():
            client.barrier(service)
            received[user].extend(
                s for s in client.take_all() if _domain(s.get("from")) == service)
    return received


def _domain(jid):
    return (jid or "").split("/")[0].split("@")[-1]


class Normaliser:
    """Turns stanzas into comparable text; see the module docstring."""

    def __init__(self, service):
        self.service = service
        self.occupant_ids = {}

    def __call__(self, stanza):
        return self._text(self._normalise(stanza))

    def _normalise(self, element):
        copy = ET.Element(element.tag)
        for key, value in sorted(element.attrib.items()):
            if key == qname(XML_NS, "lang"):
                continue
            if key in PLACEHOLDER_ATTRIBUTES:
                value = PLACEHOLDER_ATTRIBUTES[key]
                if element.tag == OCCUPANT_ID:
                    value = self._occupant_id(element.get("id"))
            copy.set(key, value.replace(self.service, "MUC"))
        copy.text = (element.text or "").replace(self.service, "MUC").strip() or None
        children = [self._normalise(c) for c in element
                    if c.tag not in DROPPED_ELEMENTS]
        for child in sorted(children, key=self._text):
            copy.append(child)
        return copy

    def _occupant_id(self, value):
        return self.occupant_ids.setdefault(value, "OID%d" % (len(self.occupant_ids) + 1))

    @staticmethod
    def _text(element):
        return re.sub(r"\s+", " ", ET.tostring(element, encoding="unicode"))


def normalise_all(received, service):
    normalise = Normaliser(service)
    return {user: _sort_occupant_runs([normalise(s) for s in stanzas])
            for user, stanzas in received.items()}


def _sort_occupant_runs(texts):
    result, run = [], []
    for text in texts + [None]:
        if text is not None and text.startswith("<ns0:presence") and "status code" not in text:
            run.append(text)
            continue
        result.extend(sorted(run))
        run = []
        if text is not None:
            result.append(text)
    return result
