"""The ops-written routing hook: loading ``etc/routing.py``, its answer helpers, and `HookRouter`.

The hook is an ordinary Python file that defines ``route(call)``; `sbc.hook` is the public API it
imports (``call_user``, ``call_trunk``, ``reject``). `loadHook` runs the file in a private module
(it is not put in ``sys.modules`` and writes no ``.pyc`` next to it, so an edit is never hidden by
a stale cache). A file that does not compile, fails while it runs, or defines no ``route(call)``
raises `ConfigError` with the line, so a reload keeps the hook that was working. `HookRouter`
turns the hook's answer into a `Decision`; an exception in ``route`` rejects the call with 500.
"""

from __future__ import annotations

import hashlib
import importlib.util
import inspect
import sys
import time
import traceback
from collections.abc import Callable, Collection, Sequence
from pathlib import Path
from types import ModuleType

from twisted.logger import Logger
from zope.interface import implementer

from sbc.config.errors import ConfigError
from sbc.interfaces import IRouter
from sbc.routing.routers import callerDomain, pickDefaultDomain
from sbc.routing.values import CallRequest, Decision, Reject, Target, TrunkTarget, UserTarget


def call_user(name: str) -> UserTarget:
    """Call a registered user: ``"alice"`` (in the caller's domain) or ``"alice@domain"``.

    A call from a device is completed with the device's own domain; a call from a trunk with the
    Request-URI's domain when it is ours, else the default routing domain.
    """
    if not isinstance(name, str) or not name or any(c.isspace() for c in name):
        raise ValueError(f"call_user() needs a user name or user@domain, not {name!r}")
    user, at, domain = name.rpartition("@")
    if at:
        if not user or not domain:
            raise ValueError(f"call_user() needs a user name or user@domain, not {name!r}")
        return UserTarget(f"{user}@{domain.lower()}")
    return UserTarget(name)


def call_trunk(name: str, number: str) -> TrunkTarget:
    """Call ``number`` out through the trunk ``name`` (a ``[trunks.NAME]`` of the config).

    The number is sent as given: normalise it first if the trunk wants E.164.
    """
    if not isinstance(name, str) or not name:
        raise ValueError(f"call_trunk() needs a trunk name, not {name!r}")
    if not isinstance(number, str) or not number or any(c.isspace() for c in number):
        raise ValueError(f"call_trunk() needs a number without spaces, not {number!r}")
    return TrunkTarget(name, number)


def reject(code: int, reason: str | None = None) -> Reject:
    """Refuse the call with ``code`` (400 to 699) and an optional reason phrase."""
    return Reject(code, reason)


_counter = 0


class Hook:
    """A loaded hook file: call it with a `CallRequest` to run its ``route``."""

    def __init__(self, path: Path, module: ModuleType, route: Callable[[CallRequest], object]) -> None:
        self.path = path
        self.module = module
        self.route = route

    def __call__(self, call: CallRequest) -> object:
        """The hook's answer for ``call``, as its ``route`` gives it."""
        return self.route(call)

    def __repr__(self) -> str:
        return f"<Hook {self.path}>"


def loadHook(path: Path | str) -> Hook:
    """Compile and run the hook file; `ConfigError` (with the line where known) if it is unusable."""
    global _counter
    path = Path(path)
    try:
        source = path.read_bytes()
    except OSError as e:
        raise ConfigError(path, f"cannot read routing hook: {e.strerror}") from None
    try:
        code = compile(source, str(path), "exec", dont_inherit=True)
    except SyntaxError as e:
        raise ConfigError(path, f"syntax error: {e.msg}", line=e.lineno) from None
    except ValueError as e:  # null bytes
        raise ConfigError(path, f"cannot compile: {e}") from None

    _counter += 1
    digest = hashlib.sha256(str(path).encode()).hexdigest()[:8]
    name = f"sbc._hooks.routing_{digest}_{_counter}"
    spec = importlib.util.spec_from_loader(name, loader=None, origin=str(path))
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    module.__file__ = str(path)
    # Present in sys.modules only while the file runs: dataclasses and typing look a defining
    # module up there. Afterwards the module belongs to the Hook alone, and a reload drops it.
    sys.modules[name] = module
    try:
        exec(code, module.__dict__)
    except (Exception, SystemExit) as e:
        raise ConfigError(
            path, f"failed while loading: {type(e).__name__}: {e}", line=_lineIn(e, path)
        ) from None
    finally:
        sys.modules.pop(name, None)

    route = module.__dict__.get("route")
    if route is None:
        raise ConfigError(path, "defines no route(call) function")
    if not callable(route):
        raise ConfigError(path, f"route must be a function taking one argument, not {type(route).__name__}")
    try:
        inspect.signature(route).bind(None)
    except TypeError:
        raise ConfigError(
            path, "route must take exactly one argument: route(call)", line=_defLine(route)
        ) from None
    except ValueError:  # no signature to inspect (a builtin): let it be tried at call time
        pass
    if inspect.iscoroutinefunction(route) or inspect.isgeneratorfunction(route):
        raise ConfigError(
            path, "route must be a plain function: hooks run synchronously", line=_defLine(route)
        )
    return Hook(path, module, route)


class HookError(Exception):
    """The hook returned something routing cannot use."""


@implementer(IRouter)
class HookRouter:
    """Asks the ops-written hook (`sbc.hook.Hook`, or any callable taking a `CallRequest`).

    The hook runs synchronously, in the reactor thread. It returns a `UserTarget`, a
    `TrunkTarget`, a `Reject`, a list of targets (failover order; empty means pass), or None to
    pass. Anything else, or an exception, is raised from `route` and so fails the call (500).
    A bare user name is completed with the caller's domain (`callerDomain`). A hook slower than
    ``slowThreshold`` seconds is logged: the first time, then at 10, 100, 1000, ... times.
    """

    name = "hook"
    log = Logger()

    def __init__(
        self,
        hook: Callable[[CallRequest], object],
        domains: Sequence[str] = (),
        defaultDomain: str | None = None,
        trunks: Collection[str] | None = None,
        *,
        slowThreshold: float = 0.05,
        timer: Callable[[], float] | None = None,
    ) -> None:
        self.hook = hook
        self.domains = frozenset(d.lower() for d in domains)
        self.defaultDomain = pickDefaultDomain(defaultDomain, domains)
        self.trunks = None if trunks is None else frozenset(trunks)
        self.slowThreshold = slowThreshold
        self.timer = timer if timer is not None else time.perf_counter
        self.slowCalls = 0

    def route(self, call: CallRequest) -> Decision | None:
        """The hook's answer as a `Decision`, or None to pass; raises when the answer is unusable."""
        started = self.timer()
        try:
            return self._decision(call, self.hook(call))
        except SystemExit as e:  # a hook that calls exit() must not stop the server
            raise HookError(f"the hook called exit({e.code!r})") from e
        finally:
            self._timed(self.timer() - started)

    def _timed(self, elapsed: float) -> None:
        if elapsed < self.slowThreshold:
            return
        self.slowCalls += 1
        if isMilestone(self.slowCalls):
            self.log.warn(
                "routing hook {hook} took {ms:.0f} ms ({count} slow call(s) so far): hooks run in the"
                " reactor thread and must not block",
                hook=self.hook,
                ms=elapsed * 1000,
                count=self.slowCalls,
            )

    def _decision(self, call: CallRequest, result: object) -> Decision | None:
        if result is None:
            return None
        if isinstance(result, Reject):
            return Decision(reject=result, router=self.name)
        if isinstance(result, UserTarget | TrunkTarget):
            items: Sequence[object] = (result,)
        elif isinstance(result, list | tuple):
            items = result
            if not items:
                return None
        else:
            raise HookError(
                f"route() returned {type(result).__name__}; expected call_user(), call_trunk(), reject(),"
                " a list of targets, or None"
            )
        return Decision(tuple(self._target(call, item) for item in items), router=self.name)

    def _target(self, call: CallRequest, item: object) -> Target:
        if isinstance(item, UserTarget):
            if "@" in item.aor:
                return item
            domain = callerDomain(call, self.domains, self.defaultDomain)
            if domain is None:
                raise HookError(f"call_user({item.aor!r}): the caller has no domain; write user@domain")
            return UserTarget(f"{item.aor}@{domain}")
        if isinstance(item, TrunkTarget):
            if self.trunks is not None and item.trunk not in self.trunks:
                raise HookError(f"call_trunk({item.trunk!r}, ...): no such trunk")
            return item
        raise HookError(f"route() returned a list holding {type(item).__name__}; only targets may be listed")


def isMilestone(count: int) -> bool:
    """1, 10, 100, 1000, ...: when a repeated event is worth another log line."""
    while count >= 10 and count % 10 == 0:
        count //= 10
    return count == 1


def _lineIn(error: BaseException, path: Path) -> int | None:
    """The last line of the hook file in the traceback of ``error``."""
    line: int | None = None
    for frame in traceback.extract_tb(error.__traceback__):
        if frame.filename == str(path):
            line = frame.lineno
    return line


def _defLine(function: object) -> int | None:
    code = getattr(function, "__code__", None)
    return getattr(code, "co_firstlineno", None)
