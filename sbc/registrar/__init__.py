"""Registrations: REGISTER with digest auth, the location store, nonces, and qualify pings."""
