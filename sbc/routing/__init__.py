"""Where a new call goes: a chain of `IRouter`s, each of which decides or passes.

``values``: the `CallRequest` routing is asked about and the `Decision` it answers (targets tried
in order, or a `Reject`). ``routers``: the static rules, the registrar's users and the trunks.
``hook``: the ops-written hook and its `HookRouter`. ``chain``: `RoutingChain` and `buildChain`,
which loads the hook. ``explain``: what each router says about a call. The static rules' values
(`NumberPlan` and the rest) belong to the ``[routing]`` table, in `sbc.config.routing`; they are
re-exported here for hook files, which normalise numbers with `NumberPlan`.

Calls from a trunk never go back out to a trunk unless a route says ``transit = true`` (and never
to the trunk they came from), so by default a trunk call to a number we do not serve gets 404.
"""

from sbc.config.routing import NumberPlan, PrefixRoute, RoutingRules, RoutingSettings
from sbc.routing.chain import RoutingChain, buildChain, shippedChain
from sbc.routing.explain import explain
from sbc.routing.hook import Hook, HookError, HookRouter, loadHook
from sbc.routing.routers import RegistrarRouter, StaticRouter, TrunkRouter, callerDomain
from sbc.routing.values import (
    NO_ROUTE,
    ROUTING_FAILED,
    CallRequest,
    Decision,
    Reject,
    Target,
    TrunkTarget,
    UserTarget,
)

__all__ = [
    "NO_ROUTE",
    "ROUTING_FAILED",
    "CallRequest",
    "Decision",
    "Hook",
    "HookError",
    "HookRouter",
    "NumberPlan",
    "PrefixRoute",
    "RegistrarRouter",
    "Reject",
    "RoutingChain",
    "RoutingRules",
    "RoutingSettings",
    "StaticRouter",
    "Target",
    "TrunkRouter",
    "TrunkTarget",
    "UserTarget",
    "buildChain",
    "callerDomain",
    "explain",
    "loadHook",
    "shippedChain",
]
