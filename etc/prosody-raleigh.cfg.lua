-- What an existing Prosody 0.12 at the remote site needs to host the dmuc
-- mirror service.  Add it to /etc/prosody/prosody.cfg.lua and restart Prosody
-- (a reload opens neither the component port nor the Component); then
-- start dmuc with etc/dmuc-raleigh.ini.

-- Global options: above the first VirtualHost line of prosody.cfg.lua (after
-- a VirtualHost they would be that host's, and ignored).
component_ports = { 5347 }
component_interface = "127.0.0.1"

-- The mirror room service, served by dmuc.  The secret must equal
-- [mirror] secret in dmuc's configuration.
Component "mirror.raleigh.test"
    component_secret = "change-me-too"

-- Nothing else is special: the mirror reaches the master site over ordinary
-- S2S, so raleigh.test must be able to federate with fairfax.test (DNS SRV
-- or A records for conference.fairfax.test, and the usual s2s settings).
