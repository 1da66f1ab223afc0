"""What ops run and read beside the SIP path: sbc-ctl, the state directory, reloads, counters, log formats."""
