# mypy: disable-error-code="name-defined"
"""A twisted.names zone (twistd dns --pyzone) for tests/interop/test_gateways.py: the trunk
gateway "peer.test" by SRV, two targets on loopback. The test chooses free ports and passes them
in the environment; everything else is fixed here. Nothing in it leaves 127.0.0.0/8. SOA, SRV and
A are given by twistd dns when it runs the file."""

import os

_A_PORT = int(os.environ["SBC_TEST_GATEWAY_A_PORT"])
_B_PORT = int(os.environ["SBC_TEST_GATEWAY_B_PORT"])

zone = [
    SOA(  # noqa: F821 (the names below are given by twistd dns --pyzone)
        "peer.test",
        mname="ns.peer.test",
        rname="root.peer.test",
        serial=1,
        refresh=60,
        retry=60,
        expire=60,
        minimum=5,
    ),
    # Priority 10 first; 20 only when the first does not answer.
    SRV("_sip._udp.peer.test", 10, 0, _A_PORT, "a.peer.test", ttl=5),  # noqa: F821
    SRV("_sip._udp.peer.test", 20, 0, _B_PORT, "b.peer.test", ttl=5),  # noqa: F821
    A("a.peer.test", "127.0.0.2", ttl=5),  # noqa: F821
    A("b.peer.test", "127.0.0.3", ttl=5),  # noqa: F821
]
