# sbc: the routing hook, a Python file that ops may edit.
#
# For every new call the SBC asks, in order:
#   1. this hook, route(call) below;
#   2. the static rules of sbc.toml ([routing.dids] and [[routing.routes]]);
#   3. the registrar: a name of one of our users reaches that user;
#   4. the trunks: other numbers go out through the longest matching route.
# (A call through one of our registrations whose [registrants.NAME] says route = "user:NAME" goes
# to that user before any of these is asked.) The first one that answers decides. As shipped, this hook answers None for every call, so the
# config decides everything.
#
# route(call) gets a read-only description of the call:
#   call.source.kind           "trunk", "devices" or "registrant" (through our registration at a
#                              peer's registrar, a [registrants.NAME] with route = "chain")
#   call.source.name           the trunk name (a [trunks.NAME] of sbc.toml), "devices", or the
#                              registrant's NAME
#   call.fromTrunk             True when the call came in from a trunk
#   call.user, call.domain     whom the caller dialled (the Request-URI; through a registration
#                              the To header, since the Request-URI is our Contact), e.g. "+4930123456"
#   call.fromUser, call.fromDomain   the caller, as the From header says
#   call.authenticatedUser     "alice@demo.acme.sbc.test" for a device, else None
#   call.headers               a few headers, lower-case names: call.headers.get("diversion")
#
# and returns one of:
#   call_user("alice")              ring every phone alice has registered ("alice" is looked up
#                                   in the caller's domain; or write "alice@domain")
#   call_trunk("demo", "+4930123")  send the call out through a trunk, with this number
#   reject(403, "Forbidden")        refuse the call (any code from 400 to 699)
#   [target, target, ...]           several call_user/call_trunk, tried in this order
#   None                            no opinion: the static rules and the registrar decide
#
# Rules of the house:
#   - route() runs inside the SBC's single event loop. It must be quick and must never wait for
#     anything: no network, no database, no files, no time.sleep(). While it runs, no other call
#     and no registration is served. Load what you need when this file loads (at the top).
#   - If route() raises an exception or returns something else, the call is refused with
#     500 and the log shows the error and the line, once (then only a count).
#   - The SBC re-reads this file when it changes. A file with a syntax error, or without
#     route(call), is refused and the previous version stays in force; the log names the line.
#   - Numbers arrive as dialled. To compare them as E.164, normalise them first, e.g.
#         from sbc.routing import NumberPlan
#         PLAN = NumberPlan(countryCode="49", nationalPrefix="0", internationalPrefix="00")
#         number = PLAN.normalise(call.user)   # "030 123456" -> "+4930123456"; None if no number
#
# `sbc-ctl explain` (when available) shows what this hook and every later step decide for a call.

from sbc.hook import call_trunk, call_user, reject  # noqa: F401  (used by the examples below)

# Example data for the commented examples. Keep such tables here, at the top: they are read once.
# DIDS = {"+4930123456": "alice", "+4930123457": "bob"}
# BLOCKED_PREFIXES = ("+4990", "+4919")      # premium-rate numbers


def route(call):
    # Send a DID to a user:
    # if call.user in DIDS:
    #     return call_user(DIDS[call.user])

    # Premium-rate numbers are refused for everyone:
    # if call.user.startswith(BLOCKED_PREFIXES):
    #     return reject(403, "Premium numbers not allowed")

    # Block one prefix for calls that came in from a trunk:
    # if call.fromTrunk and call.user.startswith("+1900"):
    #     return reject(403)

    # Ring alice's phones; if that fails, her mobile through the demo trunk:
    # if call.user == "sales":
    #     return [call_user("alice"), call_trunk("demo", "+491701234567")]

    return None
