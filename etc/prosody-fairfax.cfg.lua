-- What an existing Prosody 0.12 needs to host the dmuc master service.
-- Add this to /etc/prosody/prosody.cfg.lua (or a file it includes) and
-- restart Prosody (a reload opens neither the component port nor the
-- Component); then start dmuc with etc/dmuc-fairfax.ini.

-- Where external components connect.  Keep it on loopback when dmuc runs
-- on the same machine.
-- Global options: above the first VirtualHost line of prosody.cfg.lua (after
-- a VirtualHost they would be that host's, and ignored).
component_ports = { 5347 }
component_interface = "127.0.0.1"

-- The MUC service, served by dmuc.  The secret must equal [master] secret
-- in dmuc's configuration.
Component "conference.fairfax.test"
    component_secret = "change-me"

-- Mirrors at other sites reach the master service over ordinary S2S: this
-- server must federate with theirs (raleigh.test and mirror.raleigh.test),
-- and dmuc must list them in [master] trusted_mirrors.
