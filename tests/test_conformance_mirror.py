"""
Differential conformance through a mirror: what a room looks like to users
of two sites, from Prosody's mod_muc and from dmuc.

Two real sites (tests/harness/sites.py), fairfax with the dmuc master and
a stock mod_muc (C{rooms.fairfax.test}), raleigh with the dmuc mirror;
kevin is a fairfax user, wayne and keith are raleigh users.  Each scenario
of tests/test_conformance.py that makes sense across sites is played
twice:

  - reference: everyone joins the stock room, raleigh's users over S2S;
  - dmuc: kevin joins the master room, wayne and keith the same room
    through the mirror (C{name\\40conference.fairfax.test@mirror...}).

What each client receives must match after normalising
(tests/conformance.py), each user's own room JID becoming C{ROOM};
differences we keep are in docs/conformance.md.
"""

import atexit
import difflib

from twisted.trial import unittest

from dmuc.xmpp.addressing import mirror_room_jid
from tests.conformance import View, normalise_views, origin_ids_in, play_views
from tests.harness.client import Client
from tests.harness.prosody import temp_directory
from tests.harness.sites import MASTER, MIRROR, TwoSites, free_addresses
from tests.test_conformance import SCENARIOS, admin, join

STOCK = "rooms.fairfax.test"
FAIRFAX_USERS = ("kevin",)
RALEIGH_USERS = ("wayne", "keith")
PASSWORD = "pw"

#: The scenarios of tests/test_conformance.py played across sites.  Left
#: out, as differences kept (docs/conformance.md):
#:   - kick: it ends with the kicked user, no longer an occupant, trying
#:     a kick; a mirror refuses iqs of its users who are not in the room
#:     (kick_by_occupant below refuses an occupant's instead).
#: Left out while colleagues work on it:
#:   - destroy: after the destroy, the tombstone's C{gone} reaches mirror
#:     users with C{by} the master's service domain, not the mirror's, and
#:     a mirror user's disco#info to the destroyed room gets
#:     C{item-not-found} from the mirror instead of C{gone}.
#: Scenarios added to tests/test_conformance.py are not played here until
#: they are listed: multi-session, vCards, master restart and MAM are in
#: the works.
ACROSS_SITES = [
    "create_and_join", "second_join_with_history", "nick_conflict", "message",
    "subject", "private_message", "ban", "members_only_refusal",
    "password_refusal", "outsider", "rejoin_same_session",
    "history_hints", "self_ping", "voice_request", "nick_registration", "leave",
    "presence_broadcast", "destroy", "mediated_invitation", "nick_change", "status_changes",
]

#: Scenarios of this module only.
MIRROR_SCENARIOS = {
    "kick_by_occupant": [
        join("kevin", "Kevin"), join("wayne", "Wayne"), join("keith", "Keith"),
        admin("kevin", "<item nick='Wayne' role='none'><reason>Behave</reason></item>"),
        admin("keith", "<item nick='Kevin' role='none'/>")],
}


class SharedSites:
    """
    The two sites and a client per user, started once for all the tests
    here (trial has no setUpClass) and stopped when the process exits.
    Each scenario uses rooms of its own name.
    """

    _started = None

    @classmethod
    def get(cls, testcase):
        """The running sites; a failure to start is kept and raised again."""
        if cls._started is None:
            try:
                cls._started = cls(temp_directory(testcase))
            except Exception as e:
                cls._started = e
        if isinstance(cls._started, Exception):
            raise cls._started
        return cls._started

    def __init__(self, base_dir):
        self.sites = TwoSites(base_dir, addresses=free_addresses(),
                              muc_domains=((STOCK,), ()), log_level="info",
                              muc_modules=("muc_mam",))
        self.sites.fairfax.create_accounts(FAIRFAX_USERS, PASSWORD)
        self.sites.raleigh.create_accounts(RALEIGH_USERS, PASSWORD)
        atexit.register(self.sites.stop)
        self.sites.start()
        self.clients = {}
        atexit.register(self._disconnect)
        for users, server in ((FAIRFAX_USERS, self.sites.fairfax),
                              (RALEIGH_USERS, self.sites.raleigh)):
            for user in users:
                self.clients[user] = Client.connect(
                    "%s@%s/res" % (user, server.domain), PASSWORD, server.ip, server.c2s_port)

    def _disconnect(self):
        for client in self.clients.values():
            client.disconnect()

    def stock_views(self, name):
        """Everyone in the stock room at fairfax, raleigh's users over S2S."""
        return {user: View("%s@%s" % (name, STOCK)) for user in self.clients}

    def dmuc_views(self, name):
        """Fairfax's users in the master room, raleigh's in its mirror room."""
        room = "%s@%s" % (name, MASTER)
        views = {user: View(room) for user in FAIRFAX_USERS}
        for user in RALEIGH_USERS:
            views[user] = View(mirror_room_jid(room, MIRROR), sources=(MIRROR, MASTER),
                               barriers=(MIRROR, MASTER))
        return views


class MirrorConformanceTests(unittest.TestCase):
    """Each scenario: the same stanzas from Prosody's MUC and from dmuc,
    for users of both sites."""

    def setUp(self):
        self.shared = SharedSites.get(self)
        for client in self.shared.clients.values():
            client.take_all()

    def compare(self, name):
        steps = MIRROR_SCENARIOS.get(name) or SCENARIOS[name]
        clients = self.shared.clients
        stock_views, dmuc_views = self.shared.stock_views(name), self.shared.dmuc_views(name)
        stock, counts = play_views(clients, stock_views, steps)
        dmuc, _ = play_views(clients, dmuc_views, steps, expected=counts)
        expected = normalise_views(stock, stock_views)
        actual = normalise_views(dmuc, dmuc_views, origin_ids_in(steps))
        self.assertTrue(expected["kevin"], "the scenario produced nothing to compare")
        differences = ["%s sees a difference in %s:\n%s" % (user, name, "\n".join(
            difflib.unified_diff(expected[user], actual[user], "prosody", "dmuc", lineterm="")))
            for user in clients if actual[user] != expected[user]]
        if differences:
            self.fail("\n\n".join(differences))


def _make_test(name):
    def test(self):
        self.compare(name)
    test.__name__ = "test_" + name
    test.__doc__ = "Scenario %r across sites: dmuc matches Prosody's mod_muc." % (name,)
    return test


for _name in ACROSS_SITES + sorted(MIRROR_SCENARIOS):
    setattr(MirrorConformanceTests, "test_" + _name, _make_test(_name))
