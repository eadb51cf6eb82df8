-- What the site's Prosody 0.12 (fairfax.test) needs so that its users can
-- join the rooms of a standalone dmuc master (etc/standalone/dmuc-fairfax.ini).
-- Compared with etc/prosody-fairfax.cfg.lua: no Component block and no
-- component port: conference.fairfax.test is a remote domain to Prosody,
-- reached over ordinary S2S like any other server.  Debian's stock
-- /etc/prosody/prosody.cfg.lua already has everything below except the
-- certificate files.

-- STARTTLS on S2S and dialback; both are in Debian's default
-- modules_enabled list.  Without "tls" Prosody offers no TLS to dmuc, and
-- dmuc (require_encryption = true) refuses to talk in the clear.
modules_enabled = {
    -- ... the modules you already have ...
    "tls";
    "dialback";
}

-- Prosody's defaults: dmuc speaks TLS and authenticates by certificate
-- (SASL EXTERNAL) both ways.
s2s_require_encryption = true
s2s_secure_auth = true
-- To require certificates of dmuc only, keep s2s_secure_auth = false and:
--   s2s_secure_domains = { "conference.fairfax.test" }

-- Prosody's certificate must name fairfax.test (subjectAltName) and chain
-- to a CA in dmuc's [s2s] ca_file.  cafile is what Prosody checks dmuc's
-- certificate against: leave it out when dmuc's certificate is from a
-- public CA; with a CA of your own, name a file holding it.
ssl = {
    certificate = "/etc/prosody/certs/fairfax.test.crt";
    key = "/etc/prosody/certs/fairfax.test.key";
    cafile = "/etc/prosody/certs/dmuc-ca.pem";
}

VirtualHost "fairfax.test"

-- DNS.  Prosody finds conference.fairfax.test by DNS: the SRV record
-- _xmpp-server._tcp.conference.fairfax.test, else its A/AAAA record on
-- port 5269.  With dmuc on the Prosody machine, listening on port 5270
-- (xmpp.fairfax.test being that machine):
--
--   _xmpp-server._tcp.conference.fairfax.test. 3600 IN SRV 0 0 5270 xmpp.fairfax.test.
--
-- With dmuc on an address of its own, listening on 5269:
--
--   conference.fairfax.test. 3600 IN A 192.0.2.20
--
-- dmuc finds fairfax.test (and every other user's server) the same way,
-- so the site's usual federation records are all it needs:
--
--   _xmpp-server._tcp.fairfax.test. 3600 IN SRV 0 0 5269 xmpp.fairfax.test.
