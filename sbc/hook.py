"""The public API of the ops-written routing hook (``etc/routing.py``): what it may import from us.

The hook is an ordinary Python file that defines ``route(call)``. It may import the helpers::

    from sbc.hook import call_user, call_trunk, reject

and returns ``call_user(name)``, ``call_trunk(name, number)``, ``reject(code, reason)``, a list
of targets (tried in order), or None to leave the call to the next router. `sbc.routing.HookRouter`
turns the answer into a `Decision`; an exception in ``route`` rejects the call with 500. The code
lives in `sbc.routing.hook`; this module keeps the names ops' files import in one stable place.
"""

from sbc.routing.hook import Hook, call_trunk, call_user, loadHook, reject
from sbc.routing.values import CallRequest, Reject, TrunkTarget, UserTarget

__all__ = [
    "CallRequest",
    "Hook",
    "Reject",
    "TrunkTarget",
    "UserTarget",
    "call_trunk",
    "call_user",
    "loadHook",
    "reject",
]
