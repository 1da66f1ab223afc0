"""Whether the SIP codec runs compiled by mypyc, and a refusal to run a compiled codec older than its source.

`make compiled` (which `make run`, `make test` and `make bench` call) compiles the codec modules
named in `CODEC` in place with mypyc: each ``sbc/sip/<name>.py`` gets a ``.so`` beside it, which
Python imports instead. The source stays the one truth; the compiled codec is a faster copy of it,
built from the same type annotations mypy checks. A ``.so`` shadows its ``.py``, so an edit made
after the build would silently not run: in a checkout ``import sbc`` checks that first and fails,
naming the file, until the build is redone (`make compiled`) or removed (`make pure`).

``SBC_PURE=1`` in the environment runs the pure-Python codec even where a compiled one sits
beside it: `make test` runs the codec's tests that way too, and ops can rule the compiled copy
out without rebuilding anything.

This module is never compiled itself; `sbc/__init__.py` runs it before anything imports the codec.
"""

import sys
from importlib.machinery import EXTENSION_SUFFIXES, SOURCE_SUFFIXES, FileFinder, SourceFileLoader
from pathlib import Path

# The codec's modules, compiled together as one mypyc group (setup.py reads this tuple).
CODEC = (
    "errors",
    "uri",
    "headers",
    "structured",
    "message",
    "validate",
    "framing",
    "sdp",
    "sdprewrite",
    "digest",
    "multipart",
)

CODEC_DIRECTORY = Path(__file__).parent / "sip"

# A checkout (setup.py beside the package) is where sources are edited after a build. An installed
# copy was written whole by its installer, in whatever order, so its mtimes say nothing.
CHECKOUT = (Path(__file__).parent.parent / "setup.py").exists()


class StaleBuildError(ImportError):
    """A compiled module is older than its source, or some of the group are missing."""


def builtModule(directory: Path, name: str) -> Path | None:
    """The compiled module that Python would import for ``name`` instead of its source, if any."""
    for suffix in EXTENSION_SUFFIXES:
        candidate = directory / f"{name}{suffix}"
        if candidate.exists():
            return candidate
    return None


def checkBuild(
    directory: Path = CODEC_DIRECTORY, modules: tuple[str, ...] = CODEC, checkout: bool = CHECKOUT
) -> bool:
    """True when every module runs compiled, False when none does; raise for a stale or partial build."""
    built = {name: builtModule(directory, name) for name in modules}
    present = {name: path for name, path in built.items() if path is not None}
    if not present:
        return False
    missing = sorted(set(modules) - set(present))
    if missing:
        raise StaleBuildError(
            f"{directory}: the compiled codec lacks {', '.join(missing)}: run `make compiled` or `make pure`"
        )
    for name, path in present.items():
        source = directory / f"{name}.py"
        if checkout and source.stat().st_mtime > path.stat().st_mtime:
            raise StaleBuildError(
                f"{source} changed after it was compiled ({path.name}): run `make compiled` or `make pure`"
            )
    return True


def preferSource(directory: Path = CODEC_DIRECTORY) -> None:
    """Import the codec's modules from their ``.py`` files, whatever is compiled beside them."""
    codec = directory.resolve()

    def sourceOnly(path: str) -> FileFinder:
        if Path(path).resolve() != codec:
            raise ImportError("not the codec's directory")  # the next path hook takes it
        return FileFinder(path, (SourceFileLoader, SOURCE_SUFFIXES))

    sys.path_hooks.insert(0, sourceOnly)
    sys.path_importer_cache.clear()
