"""twistd plugin: ``twistd -n sbc``."""

from twisted.application.service import ServiceMaker

sbc = ServiceMaker("sbc", "sbc.tap", "SIP trunk gateway (session border controller)", "sbc")
