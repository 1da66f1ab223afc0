"""Where the RFC 4475 torture corpus lives, written once for every test that reads it.

The corpus sits inside the repository, in ``tests/data/rfc4475`` (see its INDEX.md), so a bare
clone runs the tests with nothing beside it. Its files are read as bytes, never as text: they use
CRLF and some hold NUL, bare CR/LF or non-UTF-8 octets (``.gitattributes`` keeps them exact).
"""

from __future__ import annotations

from pathlib import Path

CORPUS = Path(__file__).resolve().parent / "data" / "rfc4475"


def load(name: str) -> bytes:
    """The octets of corpus file ``name``; a missing file fails the calling test, naming the path."""
    path = CORPUS / name
    if not path.is_file():
        raise AssertionError(f"RFC 4475 corpus file missing: {path}")
    return path.read_bytes()


def messages() -> list[Path]:
    """Every corpus message file (``*.dat``), in name order."""
    return sorted(CORPUS.glob("*.dat"))
