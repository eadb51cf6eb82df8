"""XEP-0082 date-time strings, as XEP-0203 delays and MUC history use them."""

from datetime import datetime, timezone


def format_timestamp(seconds):
    """Seconds since the epoch -> C{2026-11-21T06:00:00Z} (no fraction,
    as Prosody writes them)."""
    moment = datetime.fromtimestamp(int(seconds), tz=timezone.utc)
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
