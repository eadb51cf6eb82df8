"""
Errors a mirror user receives look as they do from Prosody's mod_muc
(found by tests/test_conformance_mirror.py): they name the room the user
knows, the mirror room, in C{by} whenever Prosody names the room, whether
the master or the mirror made them; and a stanza from someone who is not
in the room is answered as Prosody answers it.  The master and the mirror
are wired in memory (tests/two_site_helpers.py).
"""

from twisted.trial import unittest

from tests.stanza_helpers import error_condition
from tests.test_dmuc_flows import KEITH, KEVIN, WAYNE, join
from tests.two_site_helpers import MROOM, ROOM, TwoSites

NOT_IN_ROOM = "You are not currently connected to this chat"


def error_of(stanza):
    """The error element of C{stanza}."""
    return next(stanza.elements(None, "error"))


def error_text(stanza):
    texts = [str(e) for e in error_of(stanza).elements() if e.name == "text"]
    return texts[0] if texts else None


class ErrorsFromTheMasterTests(unittest.TestCase):
    """Errors the master makes reach mirror users with C{by} the mirror
    room: the master room JID is no address of theirs."""

    def setUp(self):
        self.sites = TwoSites()
        join(self.sites, KEVIN, "Kevin", ROOM)

    def test_join_refused_names_the_mirror_room(self):
        error, = join(self.sites, WAYNE, "Kevin")
        self.assertEqual(error_condition(error), ("cancel", "conflict"))
        self.assertEqual(error["from"], MROOM + "/Kevin")
        self.assertEqual(error_of(error).getAttribute("by"), MROOM)

    def test_private_message_to_an_absent_nick_names_the_mirror_room(self):
        join(self.sites, WAYNE, "Wayne")
        self.sites.send(WAYNE, "<message to='%s/Nobody' type='chat'><body>hello?</body>"
                               "</message>" % MROOM)
        error, = self.sites.take(WAYNE)
        self.assertEqual(error_condition(error), ("cancel", "item-not-found"))
        self.assertEqual(error["from"], MROOM + "/Nobody")
        self.assertEqual(error_of(error).getAttribute("by"), MROOM)


class StanzasFromOutsidersTests(unittest.TestCase):
    """A raleigh user who is not in the room (Keith is, so the mirror
    holds the room) gets Prosody's answers, from the mirror."""

    def setUp(self):
        self.sites = TwoSites()
        join(self.sites, KEVIN, "Kevin", ROOM)
        join(self.sites, KEITH, "Keith")
        self.sites.take(KEVIN)

    def answer(self, text):
        self.sites.send(WAYNE, text)
        answer, = self.sites.take(WAYNE)
        return answer

    def test_private_message(self):
        error = self.answer("<message to='%s/Kevin' type='chat'><body>psst</body></message>"
                            % MROOM)
        self.assertEqual(error_condition(error), ("cancel", "not-acceptable"))
        self.assertEqual(error_of(error).getAttribute("by"), MROOM)
        self.assertEqual(self.sites.take(KEVIN), [])

    def test_presence_without_muc_element(self):
        error = self.answer("<presence to='%s/Wayne'/>" % MROOM)
        self.assertEqual(error_condition(error), ("cancel", "item-not-found"))
        self.assertEqual(error_of(error).getAttribute("by"), MROOM)

    def test_probe_is_refused(self):
        error = self.answer("<presence type='probe' to='%s/Kevin'/>" % MROOM)
        self.assertEqual(error["from"], MROOM + "/Kevin")
        self.assertEqual(error_condition(error), ("cancel", "not-acceptable"))
        self.assertEqual(error_text(error), NOT_IN_ROOM)
        self.assertEqual(error_of(error).getAttribute("by"), MROOM)

    def test_self_ping(self):
        error = self.answer("<iq type='get' id='sp' to='%s/Wayne'><ping xmlns='urn:xmpp:ping'/>"
                            "</iq>" % MROOM)
        self.assertEqual(error_condition(error), ("cancel", "not-acceptable"))
        self.assertEqual(error_of(error).getAttribute("by"), MROOM)

    def test_groupchat_refused_with_an_id_and_from_the_room(self):
        # Prosody gives an id-less message an id first, so its error has
        # one; the error comes from the room's own JID, so no 'by'.
        error = self.answer("<message to='%s' type='groupchat'><body>let me in</body></message>"
                            % MROOM)
        self.assertEqual(error_condition(error), ("cancel", "not-acceptable"))
        self.assertTrue(error.getAttribute("id"))
        self.assertEqual(error["from"], MROOM)
        self.assertIsNone(error_of(error).getAttribute("by"))


class MasterUnreachableTests(unittest.TestCase):
    """
    The mirror asks the master's service what it speaks before the first
    join.  When that question cannot reach it (S2S to its domain failed)
    the user and the log say so, with the server's error, as Prosody tells
    a user who joins a room on a server it cannot reach; a service that
    answers without DMUC is another case.
    """

    def setUp(self):
        from twisted.logger import LogLevel
        from tests.stanza_helpers import logged
        self.sites = TwoSites()
        join(self.sites, KEVIN, "Kevin", ROOM)
        self.lines = logged(self, LogLevel.info, LogLevel.warn)

    def test_server_error_reaches_the_user_and_the_log(self):
        self.sites.cut = True
        error, = join(self.sites, WAYNE, "Wayne")
        self.assertEqual(error_condition(error), ("cancel", "remote-server-not-found"))
        self.assertEqual(error["from"], MROOM + "/Wayne")
        self.assertIn("conference.fairfax.test", error_text(error))
        self.assertFalse(any("DMUC" in line for line in self.lines), self.lines)
        self.assertTrue(any("cannot reach conference.fairfax.test" in line
                            and "remote-server-not-found" in line for line in self.lines),
                        self.lines)

    def test_it_is_asked_again_at_the_next_join(self):
        self.sites.cut = True
        join(self.sites, WAYNE, "Wayne")
        self.sites.cut = False
        presence = join(self.sites, WAYNE, "Wayne")
        self.assertIn("110", [s["code"] for p in presence if p.name == "presence"
                              for x in p.elements() if x.name == "x"
                              for s in x.elements() if s.name == "status"])

    def test_a_service_without_dmuc_is_named_so_and_the_refusal_logged(self):
        # What the mirror keeps once a service answered without DMUC.
        self.sites.mirror._masters["conference.fairfax.test"] = False
        error, = join(self.sites, WAYNE, "Wayne")
        self.assertEqual(error_condition(error), ("cancel", "service-unavailable"))
        self.assertIn("does not offer DMUC", error_text(error))
        self.assertTrue(any("refused wayne@raleigh.test/laptop's join" in line
                            for line in self.lines), self.lines)


class RefusalsAreLoggedTests(unittest.TestCase):

    def test_a_refusal_of_the_mirror_is_in_its_log(self):
        from twisted.logger import LogLevel
        from tests.stanza_helpers import logged
        sites = TwoSites()
        join(sites, KEVIN, "Kevin", ROOM)
        join(sites, KEITH, "Keith")
        lines = logged(self, LogLevel.info)
        sites.send(WAYNE, "<message to='%s' type='groupchat' id='m1'><body>hi</body></message>"
                   % MROOM)
        error, = sites.take(WAYNE)
        self.assertEqual(error_condition(error), ("cancel", "not-acceptable"))
        refusals = [line for line in lines if line.startswith("refused ")]
        self.assertEqual(refusals, [
            "refused wayne@raleigh.test/laptop's message to %s: not-acceptable (%s)"
            % (MROOM, NOT_IN_ROOM)])
