"""
XEP-0313 MAM on rooms, at the master and at a mirror, wired in memory:
what a client querying a room's archive receives, and what the mirror's
answers cost the link.  The same query against Prosody's mod_muc_mam runs
over real servers in tests/test_two_sites_archive.py.
"""

from twisted.trial import unittest

from dmuc.muc import archive
from dmuc.xmpp import namespaces as ns
from dmuc.xmpp.stanzas import StanzaError, child, parse_xml
from dmuc.xmpp.timestamps import format_timestamp
from tests.stanza_helpers import error_condition
from tests.two_site_helpers import MROOM, ROOM, TwoSites

KEVIN = "kevin@fairfax.test/desk"
CAROL = "carol@fairfax.test/home"
WAYNE = "wayne@raleigh.test/laptop"
MUC_X = "<x xmlns='http://jabber.org/protocol/muc'>%s</x>"
NO_HISTORY = "<history maxstanzas='0'/>"


def join(sites, user, nick, room, extra=NO_HISTORY):
    sites.send(user, "<presence to='%s/%s'>%s</presence>" % (room, nick, MUC_X % extra))
    return sites.take(user)


def say(sites, user, body, room):
    sites.send(user, "<message to='%s' type='groupchat'><body>%s</body></message>"
               % (room, body))


def mam_query(sites, user, room, rsm="", form="", queryid="q1", extra=""):
    """A client's MAM query of a room; @return: (results, final IQ)."""
    x = ""
    if form:
        x = ("<x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE' type='hidden'>"
             "<value>urn:xmpp:mam:2</value></field>%s</x>" % form)
    sites.send(user, "<iq type='set' id='mam1' to='%s'><query xmlns='urn:xmpp:mam:2' "
               "queryid='%s'>%s<set xmlns='http://jabber.org/protocol/rsm'>%s</set>%s"
               "</query></iq>" % (room, queryid, x, rsm, extra))
    received = sites.take(user)
    results = [s for s in received if s.name == "message"]
    final, = [s for s in received if s.name == "iq"]
    return results, final


def field(var, value):
    return "<field var='%s'><value>%s</value></field>" % (var, value)


def result_of(message):
    return child(message, "result", ns.MAM)


def forwarded_message(message):
    forwarded = child(result_of(message), "forwarded", ns.FORWARD)
    return child(forwarded, "message", ns.CLIENT)


def bodies(results):
    return [str(child(forwarded_message(m), "body", ns.CLIENT)) for m in results]


def rsm_of(final):
    fin = child(final, "fin", ns.MAM)
    rsm = child(fin, "set", ns.RSM)
    values = {c.name: str(c) for c in rsm.elements()}
    return fin.getAttribute("complete"), values


class MasterArchiveTests(unittest.TestCase):
    """A master room answers MAM queries from its archive."""

    def setUp(self):
        self.sites = TwoSites()
        join(self.sites, KEVIN, "Kevin", ROOM, extra="")
        self.times = []
        for n in range(1, 31):
            self.times.append(self.sites.clock.seconds())
            say(self.sites, KEVIN, "m%d" % n, ROOM)
            self.sites.advance(60, step=60)
        self.sites.take(KEVIN)

    def test_newest_page_then_back_like_monal(self):
        join(self.sites, CAROL, "Carol", ROOM)
        results, final = mam_query(self.sites, CAROL, ROOM, "<max>10</max><before/>")
        self.assertEqual(bodies(results), ["m%d" % n for n in range(21, 31)])
        complete, rsm = rsm_of(final)
        self.assertIsNone(complete)
        self.assertEqual(rsm["count"], "30")
        self.assertEqual(rsm["first"], result_of(results[0])["id"])
        self.assertEqual(rsm["last"], result_of(results[-1])["id"])
        self.assertEqual(final["type"], "result")
        self.assertEqual(final["id"], "mam1")
        # Back past the history length (20): the archive keeps them all.
        seen = []
        while complete is None:
            results, final = mam_query(self.sites, CAROL, ROOM,
                                       "<max>10</max><before>%s</before>" % rsm["first"])
            seen = bodies(results) + seen
            complete, rsm = rsm_of(final)
        self.assertEqual(seen, ["m%d" % n for n in range(1, 21)])
        self.assertEqual(complete, "true")

    def test_result_wrapper(self):
        results, final = mam_query(self.sites, CAROL, ROOM, "<max>1</max><before/>",
                                   queryid="abc")
        message, = results
        self.assertEqual(message["from"], ROOM)
        self.assertEqual(message["to"], CAROL)
        result = result_of(message)
        self.assertEqual(result["queryid"], "abc")
        forwarded = child(result, "forwarded", ns.FORWARD)
        delay = child(forwarded, "delay", ns.DELAY)
        self.assertEqual(delay["stamp"], format_timestamp(self.times[-1]))
        inner = forwarded_message(message)
        self.assertEqual(inner["from"], ROOM + "/Kevin")
        self.assertEqual(inner["type"], "groupchat")
        self.assertFalse(inner.hasAttribute("to"))
        # The id is the stanza-id the room gave the message live.
        seen = join(self.sites, CAROL, "Carol", ROOM, extra="<history maxstanzas='1'/>")
        live = [s for s in seen if list(s.elements(None, "body"))]
        marker = next(live[-1].elements(ns.STANZA_ID, "stanza-id"))
        self.assertEqual(result["id"], marker["id"])

    def test_forward_from_an_id_and_by_time(self):
        results, final = mam_query(self.sites, CAROL, ROOM, "<max>3</max>")
        self.assertEqual(bodies(results), ["m1", "m2", "m3"])
        last = rsm_of(final)[1]["last"]
        results, final = mam_query(self.sites, CAROL, ROOM, "<max>2</max><after>%s</after>" % last)
        self.assertEqual(bodies(results), ["m4", "m5"])
        form = (field("start", format_timestamp(self.times[9]))
                + field("end", format_timestamp(self.times[11])))
        results, final = mam_query(self.sites, CAROL, ROOM, "", form=form)
        self.assertEqual(bodies(results), ["m10", "m11", "m12"])
        complete, rsm = rsm_of(final)
        self.assertEqual((complete, rsm["count"]), ("true", "3"))

    def test_unknown_id(self):
        self.sites.send(CAROL, "<iq type='set' id='mam1' to='%s'><query xmlns='urn:xmpp:mam:2'>"
                        "<set xmlns='http://jabber.org/protocol/rsm'><before>nope</before>"
                        "</set></query></iq>" % ROOM)
        reply, = self.sites.take(CAROL)
        self.assertEqual((reply["type"], error_condition(reply)),
                         ("error", ("modify", "item-not-found")))

    def test_outcast_may_not_read(self):
        self.sites.send(KEVIN, "<iq type='set' id='ban' to='%s'><query xmlns="
                        "'http://jabber.org/protocol/muc#admin'><item affiliation='outcast' "
                        "jid='carol@fairfax.test'/></query></iq>" % ROOM)
        self.sites.take(KEVIN)
        self.sites.send(CAROL, "<iq type='set' id='mam1' to='%s'><query "
                        "xmlns='urn:xmpp:mam:2'/></iq>" % ROOM)
        reply, = self.sites.take(CAROL)
        self.assertEqual(error_condition(reply), ("auth", "forbidden"))

    def test_disco_lists_mam(self):
        self.sites.send(CAROL, "<iq type='get' id='d1' to='%s'><query "
                        "xmlns='http://jabber.org/protocol/disco#info'/></iq>" % ROOM)
        reply, = self.sites.take(CAROL)
        features = [f["var"] for f in reply.elements(ns.DISCO_INFO, "query").__next__()
                    .elements(ns.DISCO_INFO, "feature")]
        self.assertIn(ns.MAM, features)

    def test_archiving_off(self):
        self.sites.send(KEVIN, "<iq type='set' id='c1' to='%s'><query xmlns="
                        "'http://jabber.org/protocol/muc#owner'><x xmlns='jabber:x:data' "
                        "type='submit'>%s%s</x></query></iq>"
                        % (ROOM, field("FORM_TYPE", ns.MUC_ROOMCONFIG),
                           field(archive.CONFIG_VAR, "0")))
        self.sites.take(KEVIN)
        say(self.sites, KEVIN, "unarchived", ROOM)
        results, final = mam_query(self.sites, CAROL, ROOM, "<max>1</max><before/>")
        self.assertEqual(bodies(results), ["m30"])

    def test_retention(self):
        self.sites.master.archive_expires = 10 * 60
        results, final = mam_query(self.sites, CAROL, ROOM, "<max>50</max>")
        self.assertEqual(bodies(results), ["m21", "m22", "m23", "m24", "m25", "m26",
                                           "m27", "m28", "m29", "m30"])


class MirrorArchiveTests(unittest.TestCase):
    """A mirror room answers MAM queries from its own copy."""

    def setUp(self):
        self.sites = TwoSites()
        join(self.sites, KEVIN, "Kevin", ROOM, extra="")
        for n in range(1, 41):
            say(self.sites, KEVIN, "m%d" % n, ROOM)
            self.sites.advance(60, step=60)
        # The mirror's copy starts with the history (20) at its first join.
        join(self.sites, WAYNE, "Wayne", MROOM)
        for n in range(41, 46):
            say(self.sites, KEVIN, "m%d" % n, ROOM)
            self.sites.advance(60, step=60)
        self.sites.take(KEVIN)
        self.sites.take(WAYNE)
        self.sites.link_count()

    def test_newest_pages_cost_the_link_nothing(self):
        results, final = mam_query(self.sites, WAYNE, MROOM, "<max>10</max><before/>")
        self.assertEqual(bodies(results), ["m%d" % n for n in range(36, 46)])
        self.assertEqual(self.sites.link_count(), 0)
        message = results[0]
        self.assertEqual(message["from"], MROOM)
        self.assertEqual(forwarded_message(message)["from"], MROOM + "/Kevin")
        self.assertNotIn(ROOM, message.toXml())
        complete, rsm = rsm_of(final)
        self.assertIsNone(complete)
        # The copy cannot tell how many older ones the master holds.
        self.assertNotIn("count", rsm)
        results, final = mam_query(self.sites, WAYNE, MROOM,
                                   "<max>10</max><before>%s</before>" % rsm["first"])
        self.assertEqual(bodies(results), ["m%d" % n for n in range(26, 36)])
        self.assertEqual(self.sites.link_count(), 0)

    def test_same_ids_as_at_the_master(self):
        mine, _ = mam_query(self.sites, WAYNE, MROOM, "<max>5</max><before/>")
        theirs, _ = mam_query(self.sites, KEVIN, ROOM, "<max>5</max><before/>")
        self.assertEqual([result_of(m)["id"] for m in mine],
                         [result_of(m)["id"] for m in theirs])

    def test_older_than_the_copy_fetched_once(self):
        results, final = mam_query(self.sites, WAYNE, MROOM, "<max>50</max><before/>")
        self.assertEqual(bodies(results), ["m%d" % n for n in range(1, 46)])
        self.assertEqual(rsm_of(final)[0], "true")
        self.assertGreater(self.sites.link_count(), 0)
        again, final = mam_query(self.sites, WAYNE, MROOM, "<max>50</max>")
        self.assertEqual(bodies(again), ["m%d" % n for n in range(1, 46)])
        self.assertEqual(self.sites.link_count(), 0)
        self.assertEqual(forwarded_message(again[0])["from"], MROOM + "/Kevin")

    def test_paging_back_past_the_copy(self):
        results, final = mam_query(self.sites, WAYNE, MROOM, "<max>20</max><before/>")
        first = rsm_of(final)[1]["first"]
        results, final = mam_query(self.sites, WAYNE, MROOM,
                                   "<max>20</max><before>%s</before>" % first)
        self.assertEqual(bodies(results), ["m%d" % n for n in range(6, 26)])
        self.assertIsNone(rsm_of(final)[0])
        self.assertEqual(rsm_of(final)[1]["count"], "45")

    def test_live_messages_archived_at_the_mirror(self):
        say(self.sites, WAYNE, "from raleigh", MROOM)
        self.sites.take(WAYNE)
        self.sites.link_count()
        results, final = mam_query(self.sites, WAYNE, MROOM, "<max>1</max><before/>")
        self.assertEqual(bodies(results), ["from raleigh"])
        self.assertEqual(self.sites.link_count(), 0)


class QueryParsingTests(unittest.TestCase):
    """The edge: what clients send, as plain queries."""

    def parse(self, text):
        return archive.parse_query(parse_xml(text))

    def test_monal_last_page(self):
        query = self.parse("<query xmlns='urn:xmpp:mam:2' queryid='x'><x xmlns='jabber:x:data' "
                           "type='submit'><field var='FORM_TYPE'><value>urn:xmpp:mam:2</value>"
                           "</field></x><set xmlns='http://jabber.org/protocol/rsm'>"
                           "<max>200</max><before/></set></query>")
        self.assertEqual((query.queryid, query.backwards, query.before, query.max),
                         ("x", True, None, archive.MAX_PAGE))

    def test_other_form_type(self):
        with self.assertRaises(StanzaError) as caught:
            self.parse("<query xmlns='urn:xmpp:mam:2'><x xmlns='jabber:x:data' type='submit'>"
                       "<field var='FORM_TYPE'><value>urn:xmpp:mam:1</value></field></x></query>")
        self.assertEqual(caught.exception.condition, "bad-request")

    def test_durations(self):
        self.assertEqual(archive.parse_duration("1w"), 7 * 86400)
        self.assertEqual(archive.parse_duration("30d"), 30 * 86400)
        self.assertEqual(archive.parse_duration("3600"), 3600)
        self.assertIsNone(archive.parse_duration("never"))
        self.assertRaises(ValueError, archive.parse_duration, "soon")


class SameMillisecondTests(unittest.TestCase):
    """A burst of messages within one millisecond, as on real servers."""

    def test_mirror_pages_back_in_the_masters_order(self):
        sites = TwoSites()
        join(sites, KEVIN, "Kevin", ROOM, extra="")
        for n in range(1, 26):
            say(sites, KEVIN, "m%d" % n, ROOM)
        join(sites, WAYNE, "Wayne", MROOM)
        results, final = mam_query(sites, WAYNE, MROOM, "<max>10</max><before/>")
        first = rsm_of(final)[1]["first"]
        results, final = mam_query(sites, WAYNE, MROOM,
                                   "<max>10</max><before>%s</before>" % first)
        # The copy held m6-m25; m1-m5 came from the master after them.
        self.assertEqual(bodies(results), ["m%d" % n for n in range(6, 16)])
        self.assertIsNone(rsm_of(final)[0])
        first = rsm_of(final)[1]["first"]
        results, final = mam_query(sites, WAYNE, MROOM,
                                   "<max>10</max><before>%s</before>" % first)
        self.assertEqual(bodies(results), ["m%d" % n for n in range(1, 6)])
        self.assertEqual(rsm_of(final)[0], "true")
