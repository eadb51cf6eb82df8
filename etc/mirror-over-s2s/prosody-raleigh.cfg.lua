-- What raleigh.test's Prosody 0.12 needs when the dmuc mirror service is
-- reached over S2S (etc/mirror-over-s2s/dmuc-raleigh.ini).  Compared with
-- etc/prosody-raleigh.cfg.lua: no Component block and no component port;
-- mirror.raleigh.test is a remote domain to Prosody, like any other server.
-- Debian's stock /etc/prosody/prosody.cfg.lua already has everything below
-- except the certificate files.

modules_enabled = {
    -- ... the modules you already have ...
    "tls";       -- STARTTLS on S2S: dmuc requires encryption by default
    "dialback";
}

s2s_require_encryption = true
s2s_secure_auth = true

-- Prosody's certificate names raleigh.test and chains to a CA in the
-- mirror's [s2s] ca_file.  cafile: what Prosody checks the mirror's
-- certificate against (leave it out for a public CA).
ssl = {
    certificate = "/etc/prosody/certs/raleigh.test.crt";
    key = "/etc/prosody/certs/raleigh.test.key";
    cafile = "/etc/prosody/certs/dmuc-ca.pem";
}

VirtualHost "raleigh.test"

-- DNS: Prosody looks up _xmpp-server._tcp.mirror.raleigh.test, else the
-- A/AAAA record of mirror.raleigh.test on port 5269.  With dmuc on this
-- machine (xmpp.raleigh.test) on port 5270:
--
--   _xmpp-server._tcp.mirror.raleigh.test. 3600 IN SRV 0 0 5270 xmpp.raleigh.test.
--
-- fairfax.test's servers use the same record to send the master's stanzas
-- to the mirror.  The mirror finds raleigh.test and conference.fairfax.test
-- through those domains' usual federation records.
--
-- The master site: the mirror now talks to conference.fairfax.test itself,
-- so whatever serves that domain (fairfax's Prosody with the dmuc master as
-- a component, or a standalone dmuc master) must trust the mirror's
-- certificate (a public CA, or its cafile), and, when it is Prosody, present
-- a certificate that names conference.fairfax.test (or *.fairfax.test).
