"""
The link monitor: XEP-0199 keepalives per peer service, netsplit
detection, and the hooks that make master and mirror resynchronise at
netjoin (docs/protocol.md 6).  L{monitor.LinkMonitor} is the per-peer state
machine; L{peers.PeerMonitors} attaches monitors to a service.
"""
