"""
The room configuration form (muc#roomconfig) and the room information form
(muc#roominfo): L{RoomConfig} to and from data forms (XEP-0004).
"""

from wokkel import data_form

from dmuc.muc import archive
from dmuc.muc.model import RoomConfig
from dmuc.xmpp import namespaces as ns
from dmuc.xmpp.stanzas import StanzaError

MAX_USERS_OPTIONS = ("10", "20", "30", "50", "100", "none")
# Prosody 0.12's own field for invitations to a members-only room; XEP-0045's
# muc#roomconfig_allowinvites is accepted in submissions and shown in disco.
ALLOW_MEMBER_INVITES = "{http://prosody.im/protocol/muc}roomconfig_allowmemberinvites"

# RoomConfig attribute -> (form var, field type, label)
CONFIG_FIELDS = (
    ("name", "muc#roomconfig_roomname", "text-single", "Title"),
    ("description", "muc#roomconfig_roomdesc", "text-single", "Description"),
    ("persistent", "muc#roomconfig_persistentroom", "boolean",
     "Persistent (room should remain even when it is empty)"),
    ("public", "muc#roomconfig_publicroom", "boolean",
     "Include room information in public lists"),
    ("members_only", "muc#roomconfig_membersonly", "boolean",
     "Only allow members to join"),
    ("moderated", "muc#roomconfig_moderatedroom", "boolean",
     "Moderated (require permission to speak)"),
    ("password", "muc#roomconfig_roomsecret", "text-private", "Password"),
    ("whois", "muc#roomconfig_whois", "list-single",
     "Addresses (JIDs) of room occupants may be viewed by:"),
    ("max_users", "muc#roomconfig_maxusers", "list-single",
     "Maximum number of occupants"),
    ("change_subject", "muc#roomconfig_changesubject", "boolean",
     "Allow anyone to set the room's subject"),
    ("allow_invites", ALLOW_MEMBER_INVITES, "boolean",
     "Allow members to invite new members"),
    ("language", "muc#roomconfig_lang", "text-single",
     "Language tag for room (e.g. 'en', 'de', 'fr' etc.)"),
    ("presence_broadcast", "muc#roomconfig_presencebroadcast", "list-multi",
     "Only show participants with roles:"),
    ("history_length", "muc#roomconfig_historylength", "text-single",
     "Maximum number of history messages returned by room"),
    ("default_history", "muc#roomconfig_defaulthistorymessages", "text-single",
     "Default number of history messages returned by room"),
    ("distributed", "muc#roomconfig_distributed", "boolean",
     "Allow mirrors of this room at other sites (DMUC)"),
    ("archiving", archive.CONFIG_VAR, "boolean", "Enable archiving?"),
)

ROLES = ("none", "visitor", "participant", "moderator")

_BY_VAR = {var: (attr, ftype) for attr, var, ftype, _ in CONFIG_FIELDS}
_BY_VAR["muc#roomconfig_allowinvites"] = ("allow_invites", "boolean")


def config_form(config, jid, form_type="form", compact=False, unless_equal=None):
    """
    The configuration form of a room, filled with its current values.

    @param form_type: C{form} for an owner, C{result}... or C{form} inside a
        DMUC C{<config/>} push (the mirror reads it like a submission).
    @param compact: only the fields' vars, types and values: what a DMUC
        push needs.  The title, instructions, labels and options are for
        people; they made a first mirror sync 3 KB larger on the link.
    @param unless_equal: with C{compact}, a L{RoomConfig} whose values
        need not be sent (the defaults both ends know).
    """
    if compact:
        form = data_form.Form(form_type, formNamespace=ns.MUC_ROOMCONFIG)
        for attr, var, ftype, _ in CONFIG_FIELDS:
            value = getattr(config, attr)
            if unless_equal is None or value != getattr(unless_equal, attr):
                form.addField(_field(attr, var, ftype, None, value, options=False))
        return form.toElement()
    form = data_form.Form(
        form_type, title="Configuration for " + jid,
        instructions=["Complete and submit this form to configure the room."],
        formNamespace=ns.MUC_ROOMCONFIG)
    for attr, var, ftype, label in CONFIG_FIELDS:
        form.addField(_field(attr, var, ftype, label, getattr(config, attr)))
    return form.toElement()


def _field(attr, var, ftype, label, value, options=True):
    if attr == "presence_broadcast":
        choices = [data_form.Option(r) for r in ROLES] if options else []
        return data_form.Field(ftype, var, values=list(value), label=label, options=choices)
    if not options and attr in ("whois", "max_users"):
        return data_form.Field(ftype, var, str(value) if value else "none")
    if attr == "whois":
        options = [data_form.Option("moderators", "Moderators only"),
                   data_form.Option("anyone", "Anyone")]
        return data_form.Field(ftype, var, value, label=label, options=options)
    if attr == "max_users":
        options = [data_form.Option(v) for v in MAX_USERS_OPTIONS]
        return data_form.Field(ftype, var, str(value) if value else "none",
                               label=label, options=options)
    if ftype == "boolean":
        return data_form.Field(ftype, var, "1" if value else "0", label=label)
    return data_form.Field(ftype, var, str(value), label=label)


def parse_config_submission(element, current):
    """
    Apply a submitted muc#roomconfig form to a copy of C{current}.

    Unknown fields are ignored (XEP-0045 allows services to skip what they
    do not support); a known field with a bad value is C{not-acceptable}.

    @return: the new L{RoomConfig}.
    @raise StanzaError: C{bad-request} for a form of another type.
    """
    try:
        form = data_form.Form.fromElement(element)
    except data_form.Error as e:   # a field given twice, say
        raise StanzaError("bad-request", text="Malformed form: %s" % (e,))
    if form.formNamespace not in (None, ns.MUC_ROOMCONFIG):
        raise StanzaError("bad-request", text="Form is not of type room configuration")
    values = current.to_dict()
    for var, field in form.fields.items():
        if var == "muc#roomconfig_passwordprotectedroom":
            if not _boolean(var, field.values):
                values["password"] = ""
            continue
        if var not in _BY_VAR:
            continue
        attr, ftype = _BY_VAR[var]
        values[attr] = _convert(attr, ftype, var, field.values)
    config = RoomConfig.from_dict(values)
    config.default_history = min(config.default_history, config.history_length)
    return config


def _convert(attr, ftype, var, raw):
    if attr == "presence_broadcast":
        if any(role not in ROLES for role in raw):
            raise StanzaError("not-acceptable", text="Invalid value for %s" % var)
        return tuple(raw)
    value = raw[0] if raw else ""
    if ftype == "boolean":
        return _boolean(var, raw)
    if attr == "whois":
        if value not in ("moderators", "anyone"):
            raise StanzaError("not-acceptable", text="Invalid value for %s" % var)
        return value
    if attr == "max_users":
        return 0 if value in ("", "none") else _integer(var, value)
    if attr in ("history_length", "default_history"):
        return _integer(var, value)
    return str(value)


def _boolean(var, raw):
    value = (raw[0] if raw else "0")
    if value in ("1", "true", True):
        return True
    if value in ("0", "false", False, ""):
        return False
    raise StanzaError("not-acceptable", text="Invalid value for %s" % var)


def _integer(var, value):
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise StanzaError("not-acceptable", text="Invalid value for %s" % var)
    if number < 0:
        raise StanzaError("not-acceptable", text="Invalid value for %s" % var)
    return number


def roominfo_form(config, occupant_count, subject, extra=()):
    """
    The muc#roominfo form of a room's disco#info.

    @param extra: further (var, value) pairs, e.g. the mirror's
        C{dmuc-source}.
    """
    form = data_form.Form("result", formNamespace=ns.MUC_ROOMINFO)
    form.addField(data_form.Field("text-single", "muc#roominfo_description",
                                  config.description, label="Description"))
    form.addField(data_form.Field("text-single", "muc#roominfo_occupants",
                                  str(occupant_count), label="Number of occupants"))
    form.addField(data_form.Field("text-single", "muc#roomconfig_roomname",
                                  config.name, label="Title"))
    form.addField(data_form.Field("text-single", "muc#roominfo_subject",
                                  subject or "", label="Subject"))
    form.addField(data_form.Field("boolean", "muc#roomconfig_changesubject",
                                  "1" if config.change_subject else "0"))
    form.addField(data_form.Field("boolean", "muc#roomconfig_distributed",
                                  "1" if config.distributed else "0"))
    form.addField(data_form.Field("text-single", "muc#roominfo_lang", config.language))
    form.addField(data_form.Field("boolean", ALLOW_MEMBER_INVITES,
                                  "1" if config.allow_invites else "0",
                                  label="Allow members to invite new members"))
    form.addField(data_form.Field(
        "boolean", "muc#roomconfig_allowinvites",
        "1" if not config.members_only or config.allow_invites else "0",
        label="Allow users to invite other users"))
    for var, value in extra:
        form.addField(data_form.Field("text-single", var, value))
    return form.toElement()


def room_features(config):
    """
    The disco#info features of a room, as Prosody lists them.  Clients use
    the room's stanza-ids (replies, reactions, moderation) only when it
    lists XEP-0359, and self-ping the room (XEP-0410) when it says it
    answers for its occupants.
    """
    return [
        ns.MUC, ns.MUC_STABLE_ID, ns.OCCUPANT_ID, ns.STANZA_ID, ns.MUC_SELF_PING,
        ns.MUC + "#request", "jabber:iq:register",
        "muc_public" if config.public else "muc_hidden",
        "muc_persistent" if config.persistent else "muc_temporary",
        "muc_membersonly" if config.members_only else "muc_open",
        "muc_moderated" if config.moderated else "muc_unmoderated",
        "muc_nonanonymous" if config.whois == "anyone" else "muc_semianonymous",
        "muc_passwordprotected" if config.password else "muc_unsecured",
    ] + archive.features(config)
