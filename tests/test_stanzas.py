"""
Tests for the stanza helpers that the hot paths lean on: a broadcast
serialised once (L{Prepared}), the size check of inbound stanzas
(L{larger_than}), the JID parser's cache and the origin-id of stored
messages.
"""

from twisted.trial import unittest
from twisted.words.xish import domish

from dmuc.muc import history
from dmuc.storage import HistoryEntry
from dmuc.xmpp import namespaces as ns
from dmuc.xmpp.stanzas import Prepared, larger_than, parse_jid, parse_xml
from tests.stanza_helpers import component_stanza

MESSAGE = ("<message from='chat@conference.fairfax.test/Kevin' type='groupchat' id='m1'>"
           "<body>Tom &amp; Jerry say &lt;hi&gt; ' \" \u00e9</body>"
           "<stanza-id xmlns='urn:xmpp:sid:0' id='s1' by='chat@conference.fairfax.test'/>"
           "<x xmlns='http://jabber.org/protocol/muc#user'><item role='participant'/></x>"
           "</message>")

# Resources may hold what XML must escape in an attribute.
RECIPIENTS = [
    "wayne@fairfax.test/laptop",
    "o'brien@fairfax.test/desk",
    "keith@fairfax.test/a&b<c>\"d'",
    "\u00e9lodie@raleigh.test/t\u00e9l\u00e9phone",
]


def one_by_one(text, jid):
    """What the service sent before: the element, addressed, serialised."""
    stanza = parse_xml(text)
    stanza["to"] = jid
    return stanza.toXml()


class PreparedTests(unittest.TestCase):

    def test_same_bytes_as_serialising_for_each(self):
        prepared = Prepared(parse_xml(MESSAGE))
        for jid in RECIPIENTS:
            self.assertEqual(prepared.to(jid).toXml(), one_by_one(MESSAGE, jid))

    def test_recipient_escaped_and_read_back(self):
        prepared = Prepared(parse_xml(MESSAGE))
        for jid in RECIPIENTS:
            text = prepared.to(jid).toXml()
            self.assertEqual(parse_xml(text)["to"], jid)
        self.assertIn("to='keith@fairfax.test/a&amp;b&lt;c&gt;&quot;d&apos;'",
                      prepared.to(RECIPIENTS[2]).toXml())

    def test_stanza_that_had_a_recipient(self):
        text = MESSAGE.replace("<message ", "<message to='old@fairfax.test/x' ")
        prepared = Prepared(parse_xml(text))
        self.assertEqual(prepared.to(RECIPIENTS[1]).toXml(), one_by_one(text, RECIPIENTS[1]))

    def test_placeholder_in_the_content(self):
        """A stanza that happens to hold the placeholder is serialised for
        each recipient the ordinary way."""
        text = MESSAGE.replace("Tom", Prepared._PLACEHOLDER)
        prepared = Prepared(parse_xml(text))
        self.assertIsNone(prepared._head)
        for jid in RECIPIENTS:
            self.assertEqual(prepared.to(jid).toXml(), one_by_one(text, jid))

    def test_copy_answers_like_the_element(self):
        copy = Prepared(parse_xml(MESSAGE)).to(RECIPIENTS[0])
        self.assertTrue(domish.IElement.providedBy(copy))
        self.assertEqual(copy.name, "message")
        self.assertEqual(copy.getAttribute("to"), RECIPIENTS[0])
        self.assertEqual(copy.getAttribute("type"), "groupchat")
        self.assertIsNone(copy.getAttribute("nothing"))
        self.assertEqual(copy.getAttribute("nothing", "x"), "x")
        self.assertTrue(copy.hasAttribute("from"))
        self.assertFalse(copy.hasAttribute("nothing"))


class LargerThanTests(unittest.TestCase):
    """The bounds decide far from the limit; near it, the exact length."""

    STANZAS = [
        MESSAGE,
        "<presence/>",
        "<iq type='get' id='1'><query xmlns='jabber:iq:roster' xmlns:foo='urn:foo'"
        " foo:bar='&apos;&amp;'/></iq>",
        "<message><body>%s</body><x xmlns='%s' a='%s'/></message>"
        % ("&amp;&lt;" * 300, ns.MUC_USER, "&quot;" * 200),
    ]

    def test_agrees_with_the_serialised_length(self):
        for text in self.STANZAS:
            for stanza in (parse_xml(text), component_stanza(text)):
                exact = len(stanza.toXml())
                for limit in (0, 1, exact // 6, exact // 2, exact - 1, exact, exact + 1,
                              exact * 2, exact * 7):
                    self.assertEqual(larger_than(stanza, limit), exact > limit,
                                     (text[:40], limit, exact))


class ParseJidTests(unittest.TestCase):

    def test_same_text_same_jid(self):
        first = parse_jid("kevin@fairfax.test/desk")
        self.assertIs(parse_jid("kevin@fairfax.test/desk"), first)
        self.assertEqual(first.full(), "kevin@fairfax.test/desk")

    def test_malformed_and_missing(self):
        self.assertIsNone(parse_jid(None))
        self.assertIsNone(parse_jid(""))
        self.assertIsNone(parse_jid("a@b@c/d"))
        self.assertIsNone(parse_jid("a@b@c/d"))


class OriginIdTests(unittest.TestCase):

    def entry(self, xml):
        return HistoryEntry(stanza_id="s1", timestamp=1.0, nick="Kevin", real_jid="", xml=xml)

    def test_origin_id_of_a_stored_message(self):
        with_id = self.entry(MESSAGE.replace(
            "</message>", "<origin-id xmlns='urn:xmpp:sid:0' id='o-1'/></message>"))
        self.assertEqual(history.origin_id(with_id), "o-1")
        self.assertEqual(history.origin_id(self.entry(MESSAGE)), None)
        # Named, but not the element: no origin-id.
        self.assertEqual(history.origin_id(self.entry(
            MESSAGE.replace("Tom", "origin-id"))), None)
        self.assertEqual(history.order_key(with_id), (1.0, "o-1"))

    def test_an_entry_made_from_its_element_keeps_its_origin_id(self):
        message = parse_xml(MESSAGE.replace(
            "</message>", "<origin-id xmlns='urn:xmpp:sid:0' id='o-2'/></message>"))
        entry = history.entry_of(message, "s2", 2.0, "Kevin", "kevin@fairfax.test/desk")
        self.assertEqual((entry.stanza_id, entry.timestamp, entry.nick, entry.real_jid),
                         ("s2", 2.0, "Kevin", "kevin@fairfax.test/desk"))
        self.assertEqual(parse_xml(entry.xml).toXml(), message.toXml())
        self.assertEqual(history.origin_id(entry), "o-2")
        # The same text read back from storage, once the note is gone.
        history._ORIGINS.clear()
        self.assertEqual(history.origin_id(self.entry(entry.xml)), "o-2")
