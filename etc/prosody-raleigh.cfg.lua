-- What an existing Prosody 0.12 at the remote site needs to host the dmuc
-- mirror service.  Add it to /etc/prosody/prosody.cfg.lua and reload Prosody;
-- then start dmuc with etc/dmuc-raleigh.ini.

component_ports = { 5347 }
component_interface = "127.0.0.1"

-- The mirror room service, served by dmuc.  The secret must equal
-- [mirror] secret in dmuc's configuration.
Component "mirror.raleigh.test"
    component_secret = "change-me-too"

-- Nothing else is special: the mirror reaches the master site over ordinary
-- S2S, so raleigh.test must be able to federate with fairfax.test (DNS SRV
-- or A records for conference.fairfax.test, and the usual s2s settings).
