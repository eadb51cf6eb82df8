"""Every XML namespace dmuc speaks, in one place."""

CLIENT = "jabber:client"
COMPONENT = "jabber:component:accept"
SERVER = "jabber:server"
STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas"

MUC = "http://jabber.org/protocol/muc"
MUC_USER = MUC + "#user"
MUC_ADMIN = MUC + "#admin"
MUC_OWNER = MUC + "#owner"
MUC_ROOMCONFIG = MUC + "#roomconfig"
MUC_ROOMINFO = MUC + "#roominfo"
MUC_STABLE_ID = MUC + "#stable_id"
MUC_SELF_PING = MUC + "#self-ping-optimization"
MUC_UNIQUE = MUC + "#unique"
HATS = "xmpp:prosody.im/protocol/hats:1"

DISCO_INFO = "http://jabber.org/protocol/disco#info"
DISCO_ITEMS = "http://jabber.org/protocol/disco#items"
DATA_FORMS = "jabber:x:data"
DELAY = "urn:xmpp:delay"
ADDRESS = "http://jabber.org/protocol/address"   # XEP-0033 multicast
MULTICAST = "urn:xmpp:dmuc:multicast"   # multicast recipient lists (dmuc's Prosody module)
STANZA_ID = "urn:xmpp:sid:0"
PING = "urn:xmpp:ping"
HINTS = "urn:xmpp:hints"
OCCUPANT_ID = "urn:xmpp:occupant-id:0"

# DMUC: the envelope (FMUC), the sync IQs and the DMUC3 feature / join marker.
FMUC = "http://isode.com/protocol/fmuc"
DMUC_SYNC = "urn:xmpp:dmuc:0"
DMUC_COMPACT = "urn:xmpp:dmuc:1"   # the compact profile (dmuc/muc/compact.py)
#: A room message goes up from the mirror service's own JID, the nick as resource.
DMUC_SERVICE_FROM = DMUC_COMPACT + "#service-from"
# A master that answers a mirror's marked netjoin rejoin with a kick it made
# while the link was down (docs/protocol.md 6).
DMUC_REJOIN = "urn:xmpp:dmuc:0#rejoin"
DMUC3 = "http://tridsys.com/protocol/dmuc"

# Message archives (XEP-0313) and what their queries and results use.
MAM = "urn:xmpp:mam:2"
MAM_EXTENDED = "urn:xmpp:mam:2#extended"
RSM = "http://jabber.org/protocol/rsm"
FORWARD = "urn:xmpp:forward:0"
