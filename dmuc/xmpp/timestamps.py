"""XEP-0082 date-time strings, as XEP-0203 delays and MUC history use them."""

from datetime import datetime, timezone


def format_timestamp(seconds):
    """
    Seconds since the epoch -> C{2026-11-21T06:00:00Z}, with milliseconds
    when there are any (C{...06:00:00.250Z}): history must keep the order
    of messages written within one second at different sites.
    """
    whole = int(seconds)
    moment = datetime.fromtimestamp(whole, tz=timezone.utc)
    millis = int(round((seconds - whole) * 1000))
    if millis == 1000:
        moment, millis = datetime.fromtimestamp(whole + 1, tz=timezone.utc), 0
    if millis:
        return moment.strftime("%Y-%m-%dT%H:%M:%S") + ".%03dZ" % millis
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_timestamp(text):
    """
    A XEP-0082 date-time -> seconds since the epoch.

    @raise ValueError: when C{text} is not a date-time.
    """
    text = text.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        raise ValueError("date-time without a time zone: %r" % (text,))
    return moment.timestamp()
