"""Media anchoring: the built-in RTP/RTCP relay (`sbc.media.relay`), its port pool (`sbc.media.ports`)
and its quiet UDP sockets (`sbc.media.sockets`).

Both the built-in relay and rtpengine provide `sbc.interfaces.IMediaRelay`, so the call layer never
knows which one carries the media.
"""
