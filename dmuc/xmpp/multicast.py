"""
XEP-0033 multicast to the local server: one stanza for all of a room's
local users, where the server lets us (issue 11).

A mirror hands each room stanza to every local user: with N users the
component stream carries N copies, and the local server parses each.
A server that offers multicast to this component takes one copy with a
list of blind-copy (C{bcc}) addresses and delivers it to each, without
the list.  Prosody 0.12 has no multicast of its own; dmuc ships a small
module for it (C{etc/prosody-modules/mod_dmuc_multicast.lua}).

Whether we may is asked once per connection: a disco#info query of the
node L{PROBE_NODE} on each local domain, which that module answers with
the XEP-0033 feature for a component it lists and C{forbidden} for
anyone else.  Until a domain says yes, and for a domain that never does,
each user gets its own copy, as before.

Reading fifty addresses cost Prosody more than delivering the fifty
copies, and a room's stanzas go to the same users time after time.  So
where the module also offers L{LISTS_FEATURE}, a set of recipients goes
once, with a number (C{<list id='N'/>} in the C{<addresses/>}), and the
stanzas after it name only the number.  The numbers are kept per
connection: a new one (the server restarted) starts afresh.
"""

from collections import OrderedDict

from twisted.logger import Logger

from dmuc.xmpp import namespaces as ns
from dmuc.xmpp.addressing import domain_of
from dmuc.xmpp.stanzas import child, error_condition, make_stanza

log = Logger(namespace="dmuc.multicast")

PROBE_NODE = ns.MULTICAST
#: The module keeps recipient lists for us (the <list/> element is in
#: L{PROBE_NODE}'s namespace).
LISTS_FEATURE = PROBE_NODE + "#lists"
#: Lists kept per domain, as many as the module keeps per sender: the
#: least recently used is replaced first.
MAX_LISTS = 256
#: Addresses in one stanza: the module refuses more than 1000 by default.
MAX_ADDRESSES = 500
_PROBE_ID = "multicast-"


class Multicast:
    """
    The local domains that take multicast from this component.

    @ivar usable: those domains.
    @ivar keeping: those of them that keep recipient lists.
    """

    def __init__(self, handler, domains):
        self._handler = handler
        self._domains = tuple(domains)
        self.usable = set()
        self.keeping = set()
        # domain -> the sorted recipients of each list it keeps -> its number
        self._lists = {}

    def probe(self):
        """Ask every local domain (again: a new connection, maybe a
        reconfigured server)."""
        self.usable.clear()
        self.keeping.clear()
        self._lists.clear()
        for domain in self._domains:
            iq = make_stanza("iq", to=domain, frm=self._handler.domain, type="get",
                             id=_PROBE_ID + self._handler.new_id())
            iq.addElement((ns.DISCO_INFO, "query"))["node"] = PROBE_NODE
            self._handler.send(iq)

    def answer(self, iq):
        """
        The answer to a probe.  @return: whether C{iq} was one.
        """
        if not (iq.getAttribute("id") or "").startswith(_PROBE_ID):
            return False
        domain = iq.getAttribute("from")
        if domain not in self._domains:
            return True
        query = child(iq, "query", ns.DISCO_INFO)
        features = {f.getAttribute("var") for f in query.elements(ns.DISCO_INFO, "feature")} \
            if query is not None and iq.getAttribute("type") == "result" else set()
        if ns.ADDRESS in features:
            self.usable.add(domain)
            if LISTS_FEATURE in features:
                self.keeping.add(domain)
            log.info("{domain} takes multicast from {us}: one stanza for all its users in a "
                     "room (XEP-0033{lists})", domain=domain, us=self._handler.domain,
                     lists=", with recipient lists" if domain in self.keeping else "")
        elif iq.getAttribute("type") == "error" and error_condition(iq) == "forbidden":
            log.warn("{domain} offers multicast but not to {us} (add it to "
                     "dmuc_multicast_senders): one stanza per user",
                     domain=domain, us=self._handler.domain)
        else:
            log.info("{domain} offers no multicast to {us}: one stanza per user",
                     domain=domain, us=self._handler.domain)
        return True

    def send(self, prepared, addresses):
        """
        The L{Prepared} stanza to every address (full JIDs): one stanza
        per usable domain with two or more of them, one per address
        otherwise.
        """
        by_domain = {}
        for address in addresses:
            by_domain.setdefault(domain_of(address), []).append(address)
        for domain, group in by_domain.items():
            if domain in self.keeping and 1 < len(group) <= MAX_ADDRESSES:
                self._handler.send(self._to_list(prepared, domain, group))
            elif domain in self.usable and len(group) > 1:
                for start in range(0, len(group), MAX_ADDRESSES):
                    self._handler.send(prepared.multicast(domain,
                                                          group[start:start + MAX_ADDRESSES]))
            else:
                for address in group:
                    self._handler.send(prepared.to(address))

    def _to_list(self, prepared, domain, group):
        lists = self._lists.setdefault(domain, OrderedDict())
        key = tuple(sorted(group))
        number = lists.get(key)
        if number is not None:
            lists.move_to_end(key)
            return prepared.multicast(domain, (), list_id=number)
        if len(lists) < MAX_LISTS:
            number = len(lists)
        else:
            _, number = lists.popitem(last=False)
        lists[key] = number
        return prepared.multicast(domain, key, list_id=number)

    def refused(self, stanza, sender):
        """
        Whether C{stanza} is a local server's refusal of a stanza that
        named a list: it does not have it (its module was unloaded and
        loaded again).  Our lists there are forgotten, so that the next
        stanzas name their recipients again.
        """
        if stanza.getAttribute("type") != "error" or sender.user is not None \
                or sender.host not in self._domains:
            return False
        error = child(stanza, "error", stanza.uri)
        if error is None or child(error, "list", ns.MULTICAST) is None:
            return False
        self._lists.pop(sender.host, None)
        log.warn("{domain} refused a multicast stanza from {us} ({condition}): one {name} "
                 "was not delivered to some users; the next name their recipients again",
                 domain=sender.host, us=self._handler.domain,
                 condition=error_condition(stanza), name=stanza.name)
        return True
