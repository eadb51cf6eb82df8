-- mod_dmuc_multicast: XEP-0033 (Extended Stanza Addressing) multicast on a
-- Prosody 0.12 VirtualHost, for the dmuc mirror component only.
--
-- A dmuc mirror hands its local users every room stanza.  With this module
-- it sends the server one stanza for all of them, to the host's own JID,
-- with an <addresses/> element of 'bcc' addresses; the module delivers a
-- copy to each, without the <addresses/> element (XEP-0033 section 4.3:
-- blind copies are never shown), so clients see the stanza exactly as a
-- direct one.  Prosody then parses one stanza where it parsed one per user.
--
-- Load it on the VirtualHost of the mirror's users, and name the component:
--
--   plugin_paths = { "/path/to/dmuc/etc/prosody-modules" }
--   VirtualHost "raleigh.test"
--       modules_enabled = { "dmuc_multicast" }
--       dmuc_multicast_senders = { "mirror.raleigh.test" }
--
-- Recipient lists (urn:xmpp:dmuc:multicast#lists): a mirror hands the same
-- users every stanza of a room, and reading fifty <address/> elements from
-- each cost Prosody more than delivering the copies.  So a listed sender may
-- name a list, <list xmlns='urn:xmpp:dmuc:multicast' id='N'/> inside the
-- <addresses/>: with addresses beside it, the module delivers to them and
-- keeps them as list N of that sender; alone, it delivers to list N as kept.
-- N is a number below 256 (the mirror replaces its least used list when it
-- needs more), so what a sender may keep is bounded.  A list unknown here (the module was unloaded and
-- loaded again) gets 'item-not-found' and nothing delivered; the lists
-- survive a reload, and a restarted Prosody drops the component's
-- connection, after which the mirror names its lists again.
--
-- Anyone else, the host's own users included, gets 'forbidden': an open
-- multicast service is a spam relay.  The mirror asks first, with a disco#info
-- query of the node urn:xmpp:dmuc:multicast on the host: a listed sender gets
-- the XEP-0033 feature, anyone else 'forbidden' (and the mirror then sends one
-- stanza per user, as without the module).  A stanza with more addresses than
-- dmuc_multicast_max_addresses (default 1000), or an address that is not a
-- valid JID of this host, or of a type other than 'bcc', is refused whole
-- with 'bad-request' and nothing delivered.

local st = require "util.stanza";
local jid = require "util.jid";

local ADDRESS = "http://jabber.org/protocol/address";
local PROBE_NODE = "urn:xmpp:dmuc:multicast";
local LISTS = "urn:xmpp:dmuc:multicast"; -- the <list/> element's namespace
local LISTS_FEATURE = "urn:xmpp:dmuc:multicast#lists";

local senders = module:get_option_set("dmuc_multicast_senders", {});
local max_addresses = module:get_option_number("dmuc_multicast_max_addresses", 1000);
local max_lists = 256; -- as the mirror's MAX_LISTS (dmuc/xmpp/multicast.py)

-- sender host -> list number -> recipients (checked when the list came)
local lists = {};

function module.save()
	return { lists = lists };
end

function module.restore(data)
	lists = data.lists or {};
end

module:add_feature(ADDRESS);

-- The addresses given in a multicast stanza, or nil and why not.
local function given(addresses)
	local list = {};
	for address in addresses:childtags("address", ADDRESS) do
		local to = address.attr.jid and jid.prep(address.attr.jid);
		if address.attr.type ~= "bcc" or address.attr.uri or not to then
			return nil, "Only 'bcc' addresses with a valid JID are accepted";
		end
		if jid.host(to) ~= module.host then
			return nil, "Only addresses of "..module.host.." are accepted";
		end
		list[#list + 1] = to;
		if #list > max_addresses then
			return nil, "More than "..max_addresses.." addresses";
		end
	end
	return list;
end

-- The recipients of a multicast stanza from sender, or nil, the error
-- condition and why not.
local function recipients(sender, addresses)
	local list, why = given(addresses);
	if not list then
		return nil, "bad-request", why;
	end
	local named = addresses:get_child("list", LISTS);
	if not named then
		if #list == 0 then
			return nil, "bad-request", "No addresses";
		end
		return list;
	end
	local number = tonumber(named.attr.id);
	if not number or number % 1 ~= 0 or number < 0 or number >= max_lists then
		return nil, "bad-request", "A list's id is a number below "..max_lists;
	end
	local kept = lists[sender];
	if #list > 0 then
		if not kept then
			kept = {};
			lists[sender] = kept;
		end
		kept[number] = list;
		return list;
	end
	list = kept and kept[number];
	if not list then
		return nil, "item-not-found", "No list "..number.." from "..sender.." here";
	end
	return list;
end

local function multicast(event)
	local origin, stanza = event.origin, event.stanza;
	local addresses = stanza:get_child("addresses", ADDRESS);
	if not addresses or stanza.attr.type == "error" then
		return; -- not ours: let the host deal with it
	end
	local sender = jid.host(stanza.attr.from);
	if not senders:contains(sender) then
		module:log("warn", "Refused a multicast stanza from %s: not in dmuc_multicast_senders",
			tostring(stanza.attr.from));
		origin.send(st.error_reply(stanza, "auth", "forbidden",
			"This server's multicast is for its dmuc mirror only"));
		return true;
	end
	local list, condition, why = recipients(sender, addresses);
	if not list then
		module:log("warn", "Refused a multicast stanza from %s: %s", stanza.attr.from, why);
		local reply = st.error_reply(stanza, condition == "bad-request" and "modify" or "cancel",
			condition, why);
		-- The sender's own copy of the list element tells it which list to
		-- name again.
		local named = addresses:get_child("list", LISTS);
		if named then
			reply:add_child(st.clone(named));
		end
		origin.send(reply);
		return true;
	end
	local named = addresses:get_child("list", LISTS);
	module:log("debug", "Multicast of a %s from %s to %d users%s", stanza.name,
		stanza.attr.from, #list, named and (" (list "..named.attr.id..")") or "");
	-- One stanza readdressed for each recipient, as mod_muc's
	-- route_to_occupant does: a copy per recipient would cost more than
	-- the delivery (whoever keeps a stanza, as mod_smacks does, copies it).
	stanza:remove_children("addresses", ADDRESS);
	for _, to in ipairs(list) do
		stanza.attr.to = to;
		module:send(stanza, origin);
	end
	return true;
end

-- The mirror's question: may I multicast here?
module:hook("host-disco-info-node", function(event)
	if event.node ~= PROBE_NODE then
		return;
	end
	local stanza = event.stanza;
	if not senders:contains(jid.host(stanza.attr.from)) then
		event.origin.send(st.error_reply(stanza, "auth", "forbidden",
			"Not in dmuc_multicast_senders on "..module.host));
		return true;
	end
	event.reply:tag("feature", { var = ADDRESS }):up();
	event.reply:tag("feature", { var = LISTS_FEATURE }):up();
	event.exists = true;
end);

-- Before the host's own handlers (a message to the host would otherwise be
-- answered as one for the server itself).
module:hook("message/host", multicast, 10);
module:hook("presence/host", multicast, 10);
