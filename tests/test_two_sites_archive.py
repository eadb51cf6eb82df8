"""
XEP-0313 MAM on rooms over real servers: a slixmpp client does what Monal
does (join with C{maxstanzas='0'}, then ask the room's archive for the
newest page and page backwards with RSM) in a room of Prosody 0.12's own
mod_muc with mod_muc_mam, in a room of the dmuc master, and through the
dmuc mirror; all three must show the same backlog, and the mirror fetches
what its copy lacks from the master once.
"""

from twisted.trial import unittest

from tests.harness.client import connect
from tests.harness.prosody import temp_directory
from tests.harness.sites import MASTER, MIRROR, start_two_sites
from tests.harness.xml import find, qname, status_codes

PROSODY_MUC = "rooms.fairfax.test"
MAM = "urn:xmpp:mam:2"
RSM = "http://jabber.org/protocol/rsm"
FORWARD = "urn:xmpp:forward:0"
MUC_NS = "http://jabber.org/protocol/muc"
MESSAGES = 25   # more than the history length (20) a mirror's copy starts with
PAGE = 10


def mam_query(client, room, queryid, rsm):
    """Monal's query of a room; @return: (results, <fin/>)."""
    reply = client.iq(
        "<iq type='set' to='%s'><query xmlns='%s' queryid='%s'><x xmlns='jabber:x:data' "
        "type='submit'><field var='FORM_TYPE' type='hidden'><value>%s</value></field></x>"
        "<set xmlns='%s'><max>%d</max>%s</set></query></iq>"
        % (room, MAM, queryid, MAM, RSM, PAGE, rsm), timeout=15)
    assert reply.get("type") == "result", tostring_safe(reply)
    results = [s for s in client.take_all()
               if s.find(qname(MAM, "result")) is not None
               and s.find(qname(MAM, "result")).get("queryid") == queryid]
    return results, reply.find(qname(MAM, "fin"))


def tostring_safe(element):
    from tests.harness.xml import tostring
    return tostring(element)


def page_seen(room, results, fin):
    """What a client makes of one page, without what must differ (ids,
    times, host names): who said what, and how the page says it ends."""
    seen = []
    ids = []
    for message in results:
        result = message.find(qname(MAM, "result"))
        inner = result.find("%s/{jabber:client}message" % qname(FORWARD, "forwarded"))
        delay = result.find("%s/{urn:xmpp:delay}delay" % qname(FORWARD, "forwarded"))
        assert message.get("from") == room, message.get("from")
        assert delay is not None and delay.get("stamp")
        ids.append(result.get("id"))
        seen.append((inner.get("from").split("/", 1)[1], inner.get("type"),
                     find(inner, "body").text))
    rsm = fin.find(qname(RSM, "set"))
    first, last = rsm.find(qname(RSM, "first")), rsm.find(qname(RSM, "last"))
    assert [first.text, last.text] == [ids[0], ids[-1]], (first.text, last.text, ids)
    count = rsm.find(qname(RSM, "count"))
    return {"messages": seen, "complete": fin.get("complete"),
            "count": count.text if count is not None else None}, first.text


def without_unknown_counts(pages, expected):
    """A mirror leaves the count out while its copy may lack older
    messages (XEP-0059 makes it optional); compare the rest."""
    return [dict(page, count=want["count"]) if page["count"] is None else page
            for page, want in zip(pages, expected)]


class MonalBacklogTests(unittest.TestCase):
    """The same backlog from Prosody's mod_muc_mam, the master and a mirror."""

    def setUp(self):
        self.sites = start_two_sites(self, temp_directory(self),
                                     muc_domains=((PROSODY_MUC,), ()),
                                     muc_modules=("muc_mam",))

    def fill(self, kevin, room):
        kevin.send("<presence to='%s/Kevin'><x xmlns='%s'/></presence>" % (room, MUC_NS))
        kevin.wait_for(lambda s: 110 in status_codes(s), timeout=10)
        for n in range(1, MESSAGES + 1):
            kevin.send("<message to='%s' type='groupchat'><body>m%d</body></message>"
                       % (room, n))
        kevin.wait_for(lambda s: find(s, "body") is not None
                       and find(s, "body").text == "m%d" % MESSAGES, timeout=15)

    def backlog(self, client, room, nick):
        """Join with no history, then page back through the archive."""
        client.send("<presence to='%s/%s'><x xmlns='%s'><history maxstanzas='0'/></x>"
                    "</presence>" % (room, nick, MUC_NS))
        client.wait_for(lambda s: 110 in status_codes(s), timeout=15)
        client.wait_for(lambda s: find(s, "subject") is not None, timeout=15)
        joined = client.take_all()
        assert not [s for s in joined if find(s, "body") is not None], "history was sent"
        pages, before = [], ""
        for number in range(1, 5):
            results, fin = mam_query(client, room, "q%d" % number,
                                     "<before>%s</before>" % before)
            page, before = page_seen(room, results, fin)
            pages.append(page)
            if page["complete"]:
                break
        return pages

    def test_monal_backlog_like_prosody(self):
        kevin = connect(self, self.sites.fairfax, "kevin", resource="desk")
        carol = connect(self, self.sites.fairfax, "carol", resource="phone")
        wayne = connect(self, self.sites.raleigh, "wayne", resource="laptop")
        stock_room, dmuc_room = "stock@" + PROSODY_MUC, "chat@" + MASTER
        mirror_room = "chat\\40%s@%s" % (MASTER, MIRROR)
        self.fill(kevin, stock_room)
        self.fill(kevin, dmuc_room)
        expected = self.backlog(carol, stock_room, "Carol")
        self.assertEqual([len(p["messages"]) for p in expected], [10, 10, 5])
        self.assertEqual(self.backlog(carol, dmuc_room, "Carol"), expected)
        # Wayne through the mirror: the same, though the copy started
        # with the 20 messages of history; the rest came from the master.
        self.sites.relay.reset()
        self.assertEqual(
            without_unknown_counts(self.backlog(wayne, mirror_room, "Wayne"), expected),
            expected)
        fetched = self.sites.relay.crossings()
        self.assertTrue(fetched)
        # Scrolling back again costs the link nothing more than presence.
        self.sites.relay.reset()
        again = []
        before = ""
        for number in range(1, 4):
            results, fin = mam_query(wayne, mirror_room, "again%d" % number,
                                     "<before>%s</before>" % before)
            page, before = page_seen(mirror_room, results, fin)
            again.append(page)
        self.assertEqual(again, expected)
        self.assertEqual(self.sites.relay.crossings(), [])
