"""
Sync traffic in pages (docs/protocol.md 22): the master's history answer
and the mirror's split upload carry as many messages as a split or a room
holds, but every stanza must stay under what the services (and Prosody's
component and S2S streams) accept.  Both ends cut their messages with
L{pages}.
"""

from dmuc.xmpp.component import MAX_STANZA_SIZE

#: What the messages of one page may add up to, serialised: half of the
#: stanza limit leaves room for the envelope, and for a message at the
#: limit that a page carries alone.
PAGE_SIZE = MAX_STANZA_SIZE // 2

#: What a peer of an older version took in one stanza: a roster push
#: larger than this goes in pages (only a peer that reads them could take
#: it at all).
ONE_STANZA = MAX_STANZA_SIZE - 4096


def pages(elements, size=PAGE_SIZE):
    """
    C{elements} cut into lists of at most C{size} serialised bytes each,
    in order; an element larger than C{size} is a page of its own.  Lazy:
    a caller that sends one page at a time serialises only that page.
    """
    page, used = [], 0
    for element in elements:
        length = len(element.toXml().encode("utf-8"))
        if page and used + length > size:
            yield page
            page, used = [], 0
        page.append(element)
        used += length
    if page:
        yield page
