"""Shared XMPP plumbing: namespaces, stanza helpers, JIDs, the connection."""
