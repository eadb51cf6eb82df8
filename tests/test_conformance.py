"""
Differential conformance: the master service against Prosody's mod_muc.

Every scenario runs on one real Prosody 0.12 that hosts both its own MUC
(C{rooms.fairfax.test}) and the dmuc master service as an external
component (C{conference.fairfax.test}), with real slixmpp clients.  The
stanzas each client receives must match after normalising
(tests/conformance.py); differences we keep are in docs/conformance.md.
"""

from twisted.trial import unittest

from tests.conformance import Step, normalise_all, play
from tests.harness.client import connect
from tests.harness.dmuc_process import start_dmuc
from tests.harness.prosody import start_prosody, temp_directory

PROSODY_MUC = "rooms.fairfax.test"
DMUC_MUC = "conference.fairfax.test"
SECRET = "conformance-secret"

MUC_NS = "http://jabber.org/protocol/muc"


def join(user, nick, extra=""):
    return Step(user, "<presence to='{room}/%s'><x xmlns='%s'>%s</x></presence>"
                % (nick, MUC_NS, extra))


def leave(user, nick, status=""):
    return Step(user, "<presence type='unavailable' to='{room}/%s'>%s</presence>"
                % (nick, status and "<status>%s</status>" % status))


def say(user, body):
    return Step(user, "<message to='{room}' type='groupchat'><body>%s</body></message>"
                % body)


def admin(user, item):
    return Step(user, "<iq type='set' id='admin1' to='{room}'><query "
                "xmlns='http://jabber.org/protocol/muc#admin'>%s</query></iq>" % item)


def configure(user, *fields):
    values = "".join("<field var='%s'><value>%s</value></field>" % f for f in fields)
    return Step(user, "<iq type='set' id='config1' to='{room}'><query "
                "xmlns='http://jabber.org/protocol/muc#owner'><x xmlns='jabber:x:data' "
                "type='submit'><field var='FORM_TYPE'><value>"
                "http://jabber.org/protocol/muc#roomconfig</value></field>%s</x>"
                "</query></iq>" % values)


SCENARIOS = {
    "create_and_join": [join("kevin", "Kevin")],
    "second_join_with_history": [
        join("kevin", "Kevin"), say("kevin", "first"), say("kevin", "second"),
        join("wayne", "Wayne", "<history maxstanzas='1'/>"),
        join("keith", "Keith")],
    "nick_conflict": [join("kevin", "Kevin"), join("wayne", "Kevin")],
    "message": [join("kevin", "Kevin"), join("wayne", "Wayne"),
                say("wayne", "hello there"), say("kevin", "hi Wayne")],
    "subject": [
        join("kevin", "Kevin"), join("wayne", "Wayne"),
        Step("kevin", "<message to='{room}' type='groupchat'><subject>Plans</subject></message>"),
        Step("wayne", "<message to='{room}' type='groupchat'><subject>Mine</subject></message>"),
        join("keith", "Keith")],
    "private_message": [
        join("kevin", "Kevin"), join("wayne", "Wayne"),
        Step("wayne", "<message to='{room}/Kevin' type='chat'><body>psst</body></message>"),
        Step("wayne", "<message to='{room}/Nobody' type='chat'><body>hello?</body></message>")],
    "kick": [
        join("kevin", "Kevin"), join("wayne", "Wayne"),
        admin("kevin", "<item nick='Wayne' role='none'><reason>Behave</reason></item>"),
        admin("wayne", "<item nick='Kevin' role='none'/>")],
    "ban": [
        join("kevin", "Kevin"), join("wayne", "Wayne"),
        admin("kevin", "<item jid='{jid[wayne]}' affiliation='outcast'>"
                       "<reason>Spam</reason></item>"),
        join("wayne", "Wayne")],
    "members_only_refusal": [
        join("kevin", "Kevin"),
        configure("kevin", ("muc#roomconfig_membersonly", "1")),
        join("wayne", "Wayne")],
    "password_refusal": [
        join("kevin", "Kevin"),
        configure("kevin", ("muc#roomconfig_passwordprotectedroom", "1"),
                  ("muc#roomconfig_roomsecret", "sesame")),
        join("wayne", "Wayne"),
        join("keith", "Keith", "<password>wrong</password>"),
        join("keith", "Keith", "<password>sesame</password>")],
    "outsider": [
        join("kevin", "Kevin"),
        say("wayne", "let me in"),
        Step("wayne", "<message to='{room}/Kevin' type='chat'><body>psst</body></message>"),
        Step("wayne", "<presence type='probe' to='{room}/Kevin'/>"),
        Step("wayne", "<presence to='{room}/Wayne'/>")],
    "nick_change": [
        join("kevin", "Kevin"), join("wayne", "Wayne"),
        Step("wayne", "<presence to='{room}/Wayne2'/>"),
        Step("wayne", "<presence to='{room}/Kevin'/>"),
        say("wayne", "renamed")],
    "rejoin_same_session": [
        join("kevin", "Kevin"), say("kevin", "earlier"), join("wayne", "Wayne"),
        join("wayne", "Wayne")],
    "history_hints": [
        join("kevin", "Kevin"),
        say("kevin", "kept"),
        Step("kevin", "<message to='{room}' type='groupchat'><body>not kept</body>"
                      "<no-store xmlns='urn:xmpp:hints'/></message>"),
        Step("kevin", "<message to='{room}' type='groupchat'><reactions "
                      "xmlns='urn:xmpp:reactions:0' id='x1'><reaction>+1</reaction></reactions>"
                      "<store xmlns='urn:xmpp:hints'/></message>"),
        join("wayne", "Wayne")],
    "self_ping": [
        join("kevin", "Kevin"),
        Step("kevin", "<iq type='get' id='sp1' to='{room}/Kevin'><ping xmlns='urn:xmpp:ping'/></iq>"),
        Step("wayne", "<iq type='get' id='sp2' to='{room}/Wayne'><ping xmlns='urn:xmpp:ping'/></iq>")],
    "voice_request": [
        join("kevin", "Kevin"),
        configure("kevin", ("muc#roomconfig_moderatedroom", "1")),
        join("wayne", "Wayne"), join("keith", "Keith"),
        Step("wayne", "<message to='{room}'><x xmlns='jabber:x:data' type='submit'>"
                      "<field var='FORM_TYPE'><value>http://jabber.org/protocol/muc#request</value>"
                      "</field><field var='muc#role' type='list-single'><value>participant</value>"
                      "</field></x></message>"),
        Step("kevin", "<message to='{room}'><x xmlns='jabber:x:data' type='submit'>"
                      "<field var='FORM_TYPE'><value>http://jabber.org/protocol/muc#request</value>"
                      "</field><field var='muc#role'><value>participant</value></field>"
                      "<field var='muc#jid'><value>{full[wayne]}</value></field>"
                      "<field var='muc#roomnick'><value>Wayne</value></field>"
                      "<field var='muc#request_allow'><value>true</value></field></x></message>")],
    "destroy": [
        join("kevin", "Kevin"),
        configure("kevin", ("muc#roomconfig_persistentroom", "1")),
        join("wayne", "Wayne"), join("keith", "Keith"),
        Step("kevin", "<iq type='set' id='destroy1' to='{room}'><query "
                      "xmlns='http://jabber.org/protocol/muc#owner'><destroy "
                      "jid='elsewhere@fairfax.test'><reason>Moved</reason></destroy>"
                      "</query></iq>"),
        join("wayne", "Wayne"),
        join("kevin", "Kevin"),
        Step("keith", "<iq type='get' id='info1' to='{room}'><query "
                      "xmlns='http://jabber.org/protocol/disco#info'/></iq>")],
    "nick_registration": [
        join("kevin", "Kevin"),
        admin("kevin", "<item jid='{jid[wayne]}' affiliation='member'/>"),
        Step("keith", "<iq type='get' id='r0' to='{room}'><query xmlns='jabber:iq:register'/></iq>"),
        Step("wayne", "<iq type='get' id='r1' to='{room}'><query xmlns='jabber:iq:register'/></iq>"),
        Step("wayne", "<iq type='set' id='r2' to='{room}'><query xmlns='jabber:iq:register'>"
                      "<x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE'><value>"
                      "http://jabber.org/protocol/muc#register</value></field><field "
                      "var='muc#register_roomnick'><value>Wayne2</value></field></x></query></iq>"),
        Step("wayne", "<iq type='get' id='r3' to='{room}'><query xmlns='jabber:iq:register'/></iq>"),
        Step("wayne", "<iq type='get' id='r4' to='{room}'><query "
                      "xmlns='http://jabber.org/protocol/disco#info' node='x-roomuser-item'/></iq>"),
        join("keith", "Wayne2"),
        Step("kevin", "<presence type='probe' to='{room}/Wayne2'/>"),
        join("wayne", "Wayne2"),
        Step("wayne", "<iq type='set' id='r5' to='{room}'><query xmlns='jabber:iq:register'>"
                      "<remove/></query></iq>")],
    "presence_broadcast": [
        join("kevin", "Kevin"),
        Step("kevin", "<iq type='set' id='pb1' to='{room}'><query "
                      "xmlns='http://jabber.org/protocol/muc#owner'><x xmlns='jabber:x:data' "
                      "type='submit'><field var='FORM_TYPE'><value>http://jabber.org/protocol/"
                      "muc#roomconfig</value></field>"
                      "<field var='muc#roomconfig_moderatedroom'><value>1</value>"
                      "</field><field var='muc#roomconfig_presencebroadcast'><value>moderator"
                      "</value><value>participant</value></field></x></query></iq>"),
        join("wayne", "Wayne"),
        join("keith", "Keith"),
        admin("kevin", "<item nick='Wayne' role='participant'/>"),
        admin("kevin", "<item nick='Wayne' role='visitor'/>"),
        # Only Keith is hidden now: Prosody's order among several would be
        # Lua table order.
        admin("kevin", "<item nick='Wayne' role='participant'/>"),
        Step("kevin", "<iq type='set' id='pb2' to='{room}'><query "
                      "xmlns='http://jabber.org/protocol/muc#owner'><x xmlns='jabber:x:data' "
                      "type='submit'><field var='FORM_TYPE'><value>http://jabber.org/protocol/"
                      "muc#roomconfig</value></field>"
                      "<field var='muc#roomconfig_presencebroadcast'><value>moderator"
                      "</value><value>participant</value><value>visitor</value>"
                      "</field></x></query></iq>"),
        leave("keith", "Keith"),
        admin("kevin", "<item jid='{jid[keith]}' affiliation='admin'/>"),
        join("keith", "Keith")],
    "absent_members": [
        join("kevin", "Kevin"),
        configure("kevin", ("muc#roomconfig_presencebroadcast", "none")),
        admin("kevin", "<item jid='absent@fairfax.test' affiliation='member'/>"),
        admin("kevin", "<item jid='{jid[keith]}' affiliation='admin'/>"),
        join("wayne", "Wayne"),
        # An admin joining sees the absent members ("none" is shown).
        join("keith", "Keith")],
    "mediated_invitation": [
        join("kevin", "Kevin"),
        Step("kevin", "<message to='{room}'><x xmlns='http://jabber.org/protocol/muc#user'>"
                      "<invite to='{jid[wayne]}'><reason>Come along</reason></invite></x>"
                      "</message>"),
        Step("wayne", "<message to='{room}'><x xmlns='http://jabber.org/protocol/muc#user'>"
                      "<decline to='{jid[kevin]}'><reason>Busy</reason></decline></x>"
                      "</message>")],
    "status_changes": [
        join("kevin", "Kevin"), join("wayne", "Wayne"), join("keith", "Keith"),
        Step("wayne", "<presence to='{room}/Wayne'><show>away</show><status>lunch</status>"
                      "</presence>"),
        Step("keith", "<presence to='{room}/Keith'><show>dnd</show></presence>"),
        Step("kevin", "<presence to='{room}/Kevin'><show>xa</show></presence>"),
        Step("wayne", "<presence to='{room}/Wayne'/>")],
    "leave": [
        join("kevin", "Kevin"), join("wayne", "Wayne"),
        Step("wayne", "<presence to='{room}/Wayne'><show>away</show><status>brb</status></presence>"),
        leave("wayne", "Wayne", "bye"), leave("kevin", "Kevin")],
}


class ConformanceTests(unittest.TestCase):
    """Each scenario: the same stanzas from Prosody's MUC and from dmuc."""

    def setUp(self):
        directory = temp_directory(self)
        self.server = start_prosody(
            self, "fairfax.test", base_dir=directory, muc_domains=(PROSODY_MUC,),
            muc_modules=("muc_mam",),
            components={DMUC_MUC: SECRET}, s2s_port=0)
        start_dmuc(self, directory + "/dmuc", {
            "xmpp": {"host": self.server.ip, "port": self.server.component_port},
            "master": {"jid": DMUC_MUC, "secret": SECRET,
                       "database": directory + "/dmuc/master.sqlite"}})
        self.clients = {user: connect(self, self.server, user, resource="res")
                        for user in ("kevin", "wayne", "keith")}

    def compare(self, name, steps=None):
        steps = steps or SCENARIOS[name]
        expected = normalise_all(play(self.clients, PROSODY_MUC, name, steps), PROSODY_MUC)
        actual = normalise_all(play(self.clients, DMUC_MUC, name, steps), DMUC_MUC)
        for user in self.clients:
            self.assertTrue(expected[user] or user != "kevin",
                            "the scenario produced nothing to compare")
            self.assertEqual(
                actual[user], expected[user],
                "%s sees a difference in %s:\nprosody:\n  %s\ndmuc:\n  %s" % (
                    user, name, "\n  ".join(expected[user]), "\n  ".join(actual[user])))

    def test_second_device(self):
        """
        Two devices, one nick: wayne's phone joins wayne's nick, talks,
        gets a private message, and leaves; then the first device leaves.
        """
        self.clients["phone"] = connect(self, self.server, "wayne", resource="phone")
        self.compare("second_device", [
            join("kevin", "Kevin"), join("wayne", "Wayne"), say("kevin", "hello"),
            join("phone", "Wayne"), say("phone", "from the phone"),
            Step("kevin", "<message to='{room}/Wayne' type='chat'><body>pm</body></message>"),
            Step("phone", "<presence to='{room}/Wayne'><show>away</show></presence>"),
            leave("phone", "Wayne"), say("wayne", "still here"), leave("wayne", "Wayne")])

    def test_first_device_leaves_first(self):
        """The device that joined first leaves; the phone stays, then goes."""
        self.clients["phone"] = connect(self, self.server, "wayne", resource="phone")
        self.compare("first_device_leaves_first", [
            join("kevin", "Kevin"), join("wayne", "Wayne"),
            Step("phone", "<presence to='{room}/Wayne'><x xmlns='%s'/><show>dnd</show>"
                          "</presence>" % MUC_NS),
            leave("wayne", "Wayne", "laptop off"), say("phone", "phone only"),
            admin("kevin", "<item nick='Wayne' role='none'><reason>out</reason></item>")])


def _make_test(name):
    def test(self):
        self.compare(name)
    test.__name__ = "test_" + name
    test.__doc__ = "Scenario %r: dmuc matches Prosody's mod_muc." % (name,)
    return test


for _name in SCENARIOS:
    setattr(ConformanceTests, "test_" + _name, _make_test(_name))
