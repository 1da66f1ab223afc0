"""The ops-written routing hook (``etc/routing.py``), and the helpers it returns its answers with.

The hook is an ordinary Python file that defines ``route(call)``. It may import the helpers::

    from sbc.hook import call_user, call_trunk, reject

and returns ``call_user(name)``, ``call_trunk(name, number)``, ``reject(code, reason)``, a list
of targets (tried in order), or None to leave the call to the next router. `sbc.routing.HookRouter`
turns the answer into a `Decision`; an exception in ``route`` rejects the call with 500.

`loadHook` runs the file in a private module (it is not put in ``sys.modules`` and writes no
``.pyc`` next to it, so an edit is never hidden by a stale cache). A file that does not compile,
fails while it runs, or defines no ``route(call)`` raises `ConfigError` with the line, so a
reload keeps the hook that was working.
"""

from __future__ import annotations

import hashlib
import importlib.util
import inspect
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

from sbc.errors import ConfigError
from sbc.routing import CallRequest, Reject, TrunkTarget, UserTarget

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
