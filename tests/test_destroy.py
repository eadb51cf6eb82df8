"""
Room destruction as Prosody 0.12 does it (XEP-0045 10.9, muc.lib.lua
C{room:destroy}, mod_muc.lua's tombstones), at the master and through a
mirror: each occupant hears only of its own departure, the owner gets the
result wherever it is, and a destroyed persistent room answers C{gone}
until its tombstone expires.
"""

from twisted.internet import defer
from twisted.trial import unittest

from dmuc.master.handler import MasterMUC
from dmuc.xmpp import namespaces as ns
from tests.stanza_helpers import (
    DOMAIN, ROOM, MasterFixture, error_condition, item, status_codes, to)
from tests.two_site_helpers import MROOM, TwoSites
from tests.two_site_helpers import ROOM as SITES_ROOM

KEVIN = "kevin@fairfax.test/desk"
WAYNE = "wayne@fairfax.test/laptop"
RWAYNE = "wayne@raleigh.test/laptop"
RKEITH = "keith@raleigh.test/phone"
ALTERNATE = "new@" + DOMAIN
MONTH = 31 * 86400


def destroy_xml(owner, room, alternate=ALTERNATE, reason="Moved"):
    inner = "<reason>%s</reason>" % reason if reason else ""
    jid = " jid='%s'" % alternate if alternate else ""
    return ("<iq type='set' id='d1' from='%s' to='%s'><query xmlns='%s'>"
            "<destroy%s>%s</destroy></query></iq>" % (owner, room, ns.MUC_OWNER, jid, inner))


def persistent_xml(owner, room):
    return ("<iq type='set' id='cfg' from='%s' to='%s'><query xmlns='%s'>"
            "<x xmlns='jabber:x:data' type='submit'>"
            "<field var='FORM_TYPE'><value>%s</value></field>"
            "<field var='muc#roomconfig_persistentroom'><value>1</value></field>"
            "</x></query></iq>" % (owner, room, ns.MUC_OWNER, ns.MUC_ROOMCONFIG))


def destroy_element(presence):
    for x in presence.elements(ns.MUC_USER, "x"):
        for element in x.elements(ns.MUC_USER, "destroy"):
            return element
    return None


def gone_text(stanza):
    """The text content of <gone/> and of <text/> in an error."""
    error = next(stanza.elements(None, "error"))
    gone = next(error.elements(ns.STANZAS, "gone"))
    text = next(error.elements(ns.STANZAS, "text"), None)
    return str(gone), str(text) if text is not None else None


class DestroyPresenceMixin:

    def assertOwnDestroyPresence(self, stanzas, room_jid, nick, real_jid,
                                 affiliation="none", alternate=ALTERNATE, reason="Moved"):
        """C{stanzas} hold exactly one presence: the occupant's own, as
        Prosody builds it in room:clear()."""
        presences = [s for s in stanzas if s.name == "presence"]
        self.assertEqual(len(presences), 1, [p.toXml() for p in presences])
        own = presences[0]
        self.assertEqual(own["from"], "%s/%s" % (room_jid, nick))
        self.assertEqual(own.getAttribute("type"), "unavailable")
        self.assertEqual(status_codes(own), ["110"])
        self.assertEqual((item(own)["affiliation"], item(own)["role"],
                          item(own).getAttribute("jid")), (affiliation, "none", real_jid))
        destroy = destroy_element(own)
        self.assertIsNotNone(destroy)
        self.assertEqual(destroy.getAttribute("jid"), alternate)
        reasons = [str(r) for r in destroy.elements(ns.MUC_USER, "reason")]
        self.assertEqual(reasons, [reason] if reason else [])
        # A fresh unavailable presence: nothing of the occupant's last one.
        self.assertEqual([c.name for c in own.elements() if c.uri != ns.OCCUPANT_ID],
                         ["x"])


class MasterDestroyTests(DestroyPresenceMixin, unittest.TestCase):

    def setUp(self):
        self.f = MasterFixture()
        self.f.join(KEVIN, "Kevin")
        self.f.receive("<presence from='%s' to='%s/Wayne'><x xmlns='%s'/>"
                       "<show>away</show></presence>" % (WAYNE, ROOM, ns.MUC))

    def make_persistent(self):
        self.f.receive(persistent_xml(KEVIN, ROOM))

    def test_each_occupant_hears_only_of_itself(self):
        out = self.f.receive(destroy_xml(KEVIN, ROOM))
        self.assertOwnDestroyPresence(to(out, WAYNE), ROOM, "Wayne", WAYNE)
        kevin = to(out, KEVIN)
        self.assertOwnDestroyPresence(kevin, ROOM, "Kevin", KEVIN, affiliation="owner")
        # Prosody answers the owner after the presences.
        self.assertEqual([s.name for s in kevin], ["presence", "iq"])
        self.assertEqual((kevin[1]["type"], kevin[1]["id"], kevin[1]["from"]),
                         ("result", "d1", ROOM))

    def test_every_device_of_an_occupant_gets_the_notice(self):
        # Prosody's multi-session occupant: one notice per session, each
        # listing every session's JID (build_item_list).
        phone = "wayne@fairfax.test/phone"
        self.f.receive("<presence from='%s' to='%s/Wayne'><x xmlns='%s'/></presence>"
                       % (phone, ROOM, ns.MUC))
        out = self.f.receive(destroy_xml(KEVIN, ROOM))
        for device in (WAYNE, phone):
            own, = to(out, device)
            self.assertEqual((own["type"], status_codes(own)), ("unavailable", ["110"]))
            self.assertIsNotNone(destroy_element(own))
            jids = [i["jid"] for x in own.elements(ns.MUC_USER, "x")
                    for i in x.elements(ns.MUC_USER, "item")]
            self.assertEqual(jids, [WAYNE, phone])

    def test_destroy_without_alternate_or_reason(self):
        out = self.f.receive(destroy_xml(KEVIN, ROOM, alternate=None, reason=None))
        self.assertOwnDestroyPresence(to(out, WAYNE), ROOM, "Wayne", WAYNE,
                                      alternate=None, reason=None)

    def test_temporary_room_leaves_no_tombstone(self):
        self.f.receive(destroy_xml(KEVIN, ROOM))
        out = self.f.receive("<iq type='get' id='i' from='%s' to='%s'><query xmlns='%s'/></iq>"
                             % (WAYNE, ROOM, ns.DISCO_INFO))
        self.assertEqual(error_condition(out[0]), ("cancel", "item-not-found"))
        out = self.f.join(WAYNE, "Wayne")
        self.assertEqual(status_codes(to(out, WAYNE)[0]), ["201", "110"])

    def test_destroyed_persistent_room_answers_gone(self):
        self.make_persistent()
        self.f.receive(destroy_xml(KEVIN, ROOM))
        error, = self.f.join(WAYNE, "Wayne")
        self.assertEqual((error.name, error["type"], error["to"], error["from"]),
                         ("presence", "error", WAYNE, ROOM + "/Wayne"))
        self.assertEqual(error_condition(error), ("cancel", "gone"))
        self.assertEqual(next(error.elements(None, "error"))["by"], DOMAIN)
        self.assertEqual(gone_text(error), ("xmpp:%s?join" % ALTERNATE, "Moved"))

    def test_gone_without_alternate_or_reason(self):
        self.make_persistent()
        self.f.receive(destroy_xml(KEVIN, ROOM, alternate=None, reason=None))
        error, = self.f.join(WAYNE, "Wayne")
        self.assertEqual(error_condition(error), ("cancel", "gone"))
        self.assertEqual(gone_text(error), ("", None))

    def test_every_stanza_to_the_tombstone_is_gone(self):
        self.make_persistent()
        self.f.receive(destroy_xml(KEVIN, ROOM))
        for text in (
                "<iq type='get' id='i' from='%s' to='%s'><query xmlns='%s'/></iq>"
                % (WAYNE, ROOM, ns.DISCO_INFO),
                "<message type='groupchat' from='%s' to='%s'><body>hi</body></message>"
                % (WAYNE, ROOM),
                "<message type='chat' from='%s' to='%s/Kevin'><body>hi</body></message>"
                % (WAYNE, ROOM),
                "<iq type='get' id='o' from='%s' to='%s'><query xmlns='%s'/></iq>"
                % (KEVIN, ROOM, ns.MUC_OWNER)):
            out = self.f.receive(text)
            self.assertEqual(len(out), 1, text)
            self.assertEqual(error_condition(out[0]), ("cancel", "gone"), text)
        # Errors are never answered.
        self.assertEqual(self.f.receive(
            "<message type='error' from='%s' to='%s'><error type='cancel'>"
            "<item-not-found xmlns='%s'/></error></message>" % (WAYNE, ROOM, ns.STANZAS)), [])

    def test_tombstone_is_not_listed(self):
        self.make_persistent()
        self.f.receive(destroy_xml(KEVIN, ROOM))
        out = self.f.receive("<iq type='get' id='i' from='%s' to='%s'><query xmlns='%s'/></iq>"
                             % (WAYNE, DOMAIN, ns.DISCO_ITEMS))
        self.assertEqual(list(next(out[0].elements(ns.DISCO_ITEMS, "query")).elements()), [])

    def test_former_owner_cannot_recreate(self):
        # Prosody lets only a server admin recreate it early; dmuc knows
        # no admins (docs/conformance.md).
        self.make_persistent()
        self.f.receive(destroy_xml(KEVIN, ROOM))
        error, = self.f.join(KEVIN, "Kevin")
        self.assertEqual(error_condition(error), ("cancel", "gone"))

    def test_tombstone_expires_after_31_days(self):
        self.make_persistent()
        self.f.receive(destroy_xml(KEVIN, ROOM))
        self.f.clock.advance(MONTH - 1)
        error, = self.f.join(WAYNE, "Wayne")
        self.assertEqual(error_condition(error), ("cancel", "gone"))
        self.f.clock.advance(2)
        out = self.f.join(WAYNE, "Wayne")
        self.assertEqual(status_codes(to(out, WAYNE)[0]), ["201", "110"])
        self.assertEqual(item(to(out, WAYNE)[0])["affiliation"], "owner")

    def test_configured_expiry(self):
        self.f.muc.tombstone_expiry = 60
        self.make_persistent()
        self.f.receive(destroy_xml(KEVIN, ROOM))
        self.f.clock.advance(61)
        out = self.f.join(WAYNE, "Wayne")
        self.assertEqual(status_codes(to(out, WAYNE)[0]), ["201", "110"])

    def test_expiry_zero_keeps_no_tombstone(self):
        self.f.muc.tombstone_expiry = 0
        self.make_persistent()
        self.f.receive(destroy_xml(KEVIN, ROOM))
        out = self.f.join(WAYNE, "Wayne")
        self.assertEqual(status_codes(to(out, WAYNE)[0]), ["201", "110"])

    @defer.inlineCallbacks
    def test_tombstone_survives_a_restart(self):
        self.make_persistent()
        self.f.receive(destroy_xml(KEVIN, ROOM))
        restarted = MasterFixture(store=self.f.store)   # a new process, same time
        yield restarted.muc.load()
        self.assertNotIn(ROOM, restarted.muc.rooms)
        error, = restarted.join(WAYNE, "Wayne")
        self.assertEqual(error_condition(error), ("cancel", "gone"))
        self.assertEqual(gone_text(error), ("xmpp:%s?join" % ALTERNATE, "Moved"))

    @defer.inlineCallbacks
    def test_expired_tombstone_is_deleted_from_the_store(self):
        self.make_persistent()
        self.f.receive(destroy_xml(KEVIN, ROOM))
        self.f.clock.advance(MONTH + 1)
        self.f.join(WAYNE, "Wayne")
        tombstones = yield self.f.store.load_tombstones()
        self.assertEqual(tombstones, [])

    def test_default_expiry_is_31_days(self):
        self.assertEqual(MasterMUC(DOMAIN, self.f.store, self.f.clock).tombstone_expiry, MONTH)


class MirrorDestroyTests(DestroyPresenceMixin, unittest.TestCase):
    """Wayne (owner) and Keith through the mirror, Kevin at the master."""

    def setUp(self):
        self.sites = TwoSites()
        self.join(RWAYNE, MROOM, "Wayne")
        self.sites.send(RWAYNE, persistent_xml(RWAYNE, MROOM).replace(
            "from='%s' " % RWAYNE, ""))
        self.join("kevin@fairfax.test/desk", SITES_ROOM, "Kevin")
        self.join(RKEITH, MROOM, "Keith")
        for user in (RWAYNE, RKEITH, KEVIN):
            self.sites.take(user)
        self.sites.link_count()

    def join(self, user, room, nick):
        self.sites.send(user, "<presence to='%s/%s'><x xmlns='%s'/></presence>"
                        % (room, nick, ns.MUC))
        return self.sites.take(user)

    def destroy(self, owner, room):
        self.sites.send(owner, destroy_xml(owner, room).replace("from='%s' " % owner, ""))

    def test_owner_through_the_mirror_gets_the_result(self):
        self.destroy(RWAYNE, MROOM)
        wayne = self.sites.take(RWAYNE)
        self.assertOwnDestroyPresence(wayne, MROOM, "Wayne", RWAYNE, affiliation="owner")
        self.assertEqual([s.name for s in wayne], ["presence", "iq"])
        self.assertEqual((wayne[1]["type"], wayne[1]["id"], wayne[1]["from"]),
                         ("result", "d1", MROOM))

    def test_everyone_hears_only_of_themselves(self):
        self.destroy(RWAYNE, MROOM)
        self.assertOwnDestroyPresence(self.sites.take(RKEITH), MROOM, "Keith", RKEITH)
        self.assertOwnDestroyPresence(self.sites.take(KEVIN), SITES_ROOM, "Kevin", KEVIN)

    def test_master_owner_destroys_mirror_users_hear_only_of_themselves(self):
        self.sites.send(RWAYNE, "<iq type='set' id='a' to='%s'><query xmlns='%s'>"
                        "<item affiliation='owner' jid='kevin@fairfax.test'/></query></iq>"
                        % (MROOM, ns.MUC_ADMIN))
        for user in (RWAYNE, RKEITH, KEVIN):
            self.sites.take(user)
        self.destroy(KEVIN, SITES_ROOM)
        self.assertOwnDestroyPresence(self.sites.take(RWAYNE), MROOM, "Wayne", RWAYNE,
                                      affiliation="owner")
        self.assertOwnDestroyPresence(self.sites.take(RKEITH), MROOM, "Keith", RKEITH)
        kevin = self.sites.take(KEVIN)
        self.assertOwnDestroyPresence(kevin, SITES_ROOM, "Kevin", KEVIN, affiliation="owner")
        self.assertEqual(kevin[-1]["type"], "result")

    def test_every_device_of_a_mirror_user_gets_the_notice(self):
        tablet = "keith@raleigh.test/tablet"
        self.join(tablet, MROOM, "Keith")
        self.sites.take(RKEITH)
        self.destroy(RWAYNE, MROOM)
        for device in (RKEITH, tablet):
            own, = [s for s in self.sites.take(device) if s.name == "presence"]
            self.assertEqual((own["from"], own["type"], status_codes(own)),
                             (MROOM + "/Keith", "unavailable", ["110"]))
            self.assertIsNotNone(destroy_element(own))
        self.assertNotIn(MROOM, self.sites.mirror.rooms)

    def test_the_mirror_drops_its_copy(self):
        self.destroy(RWAYNE, MROOM)
        self.assertNotIn(MROOM, self.sites.mirror.rooms)
        self.assertNotIn(SITES_ROOM, self.sites.master.rooms)

    def test_link_carries_one_presence_per_mirror_user(self):
        self.destroy(RWAYNE, MROOM)
        crossed = [(d, s.name, s.getAttribute("to")) for d, s in self.sites.link]
        self.assertEqual(sorted(crossed), sorted([
            ("raleigh>fairfax", "iq", SITES_ROOM),
            ("fairfax>raleigh", "presence", MROOM + "/Wayne"),
            ("fairfax>raleigh", "presence", MROOM + "/Keith"),
            ("fairfax>raleigh", "iq", MROOM + "/Wayne")]))

    def test_later_joins_at_both_sites_are_gone(self):
        self.destroy(RWAYNE, MROOM)
        for user in (RWAYNE, RKEITH, KEVIN):
            self.sites.take(user)
        error, = self.join(RKEITH, MROOM, "Keith")
        self.assertEqual((error["type"], error["from"]), ("error", MROOM + "/Keith"))
        self.assertEqual(error_condition(error), ("cancel", "gone"))
        self.assertEqual(gone_text(error), ("xmpp:%s?join" % ALTERNATE, "Moved"))
        error, = self.join(KEVIN, SITES_ROOM, "Kevin")
        self.assertEqual(error_condition(error), ("cancel", "gone"))
        # The refused join left nothing behind at the mirror.
        self.assertNotIn(MROOM, self.sites.mirror.rooms)


class DestroyDuringSplitTests(DestroyPresenceMixin, unittest.TestCase):
    """The room is destroyed while the mirror is cut off: its users learn
    it at the netjoin, when the master answers their rejoin with gone."""

    def setUp(self):
        self.sites = TwoSites()
        self.sites.send(KEVIN, "<presence to='%s/Kevin'><x xmlns='%s'/></presence>"
                        % (SITES_ROOM, ns.MUC))
        self.sites.send(KEVIN, persistent_xml(KEVIN, SITES_ROOM).replace(
            "from='%s' " % KEVIN, ""))
        self.sites.send(RWAYNE, "<presence to='%s/Wayne'><x xmlns='%s'/></presence>"
                        % (MROOM, ns.MUC))
        self.sites.take(KEVIN)
        self.sites.take(RWAYNE)

    def test_mirror_users_get_their_destroy_notice_at_the_netjoin(self):
        self.sites.cut = True
        self.sites.advance(120)     # missed pings: both sides split
        self.sites.send(KEVIN, destroy_xml(KEVIN, SITES_ROOM).replace(
            "from='%s' " % KEVIN, ""))
        self.sites.take(RWAYNE)     # the split's own notices
        self.sites.cut = False
        self.sites.advance(60)
        self.assertOwnDestroyPresence(self.sites.take(RWAYNE), MROOM, "Wayne", RWAYNE)
        self.assertNotIn(MROOM, self.sites.mirror.rooms)
