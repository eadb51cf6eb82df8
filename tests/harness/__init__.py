"""Real Prosody servers and slixmpp clients for network tests."""
