"""Media anchoring: the built-in RTP/RTCP relay (`sbc.media.relay`, with its sockets and sessions in
`sbc.media.streams`), its port pool (`sbc.media.ports`) and its quiet UDP sockets (`sbc.media.sockets`);
rtpengine as the engine instead (`sbc.media.rtpengine`, on the ng protocol client `sbc.media.ng`).

Both the built-in relay and rtpengine provide `sbc.interfaces.IMediaRelay`, so the call layer never
knows which one carries the media.
"""
