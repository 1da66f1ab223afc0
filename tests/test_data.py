"""Tests for `tests/data` and `tests.rfc4475`: the test data lives inside the repository, byte-exact.

A bare clone must run the tests with nothing beside it, so the corpus is checked against its own
SHA256SUMS and INDEX, and the source of every test module is scanned for paths that leave the
checkout.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path, PurePosixPath

from twisted.trial.unittest import SynchronousTestCase

from tests.rfc4475 import CORPUS, load, messages

REPO = Path(__file__).resolve().parents[1]

# The words this scan looks for, spelt in pieces so that this module, which must name them, is
# not itself taken for a test that reaches outside the checkout.
UP = "." * 2 + "/"  # a step up
SHARED = "sha" + "red"  # the folder that once sat beside the repository
WORK = "/" + "work"  # the development machine's absolute root

# Text in a test's source that points outside the checkout.
ESCAPE = re.compile(
    rf"""
      \.\.[/\\]              # a step up
    | ["']\.\.["']           # a ".." path component
    | \bos\.pardir\b
    | [`"'/]{SHARED}\b       # the folder beside the repository
    | (?<![\w.]){WORK}\b    # an absolute path of the development machine
    """,
    re.VERBOSE,
)

# A climb from the test file's own path: ``.parents[N]`` or a run of ``.parent``.
CLIMB = re.compile(r"__file__\)(?:\.resolve\(\))?(?:\.parents\[(\d+)\]|((?:\.parent\b)+))")

# Lines that match ESCAPE yet stay inside the checkout, by file.
KNOWN_GOOD: dict[str, tuple[str, ...]] = {
    # The docstring names the shipped config's own relative paths, which resolve in a temp copy.
    "tests/interop/service.py": (f"C{{{UP}state}}, C{{{UP}state/tls/sbc.crt}}",),
}

# This module spells the patterns it looks for, so it is the one file not scanned.
SELF = PurePosixPath("tests/test_data.py")


def escapes(path: PurePosixPath, source: str) -> list[str]:
    """The lines of ``source`` (the file at repo-relative ``path``) that reach outside the repository."""
    depth = len(path.parts)  # .parent steps from the file to the repository root
    allowed = KNOWN_GOOD.get(str(path), ())
    found = []
    for number, line in enumerate(source.splitlines(), 1):
        bad = ESCAPE.search(line) is not None and not any(good in line for good in allowed)
        for climb in CLIMB.finditer(line):
            index, parents = climb.groups()
            steps = int(index) + 1 if index is not None else parents.count(".parent")
            bad = bad or steps > depth
        if bad:
            found.append(f"{path}:{number}: {line.strip()}")
    return found


def sourceFiles() -> list[Path]:
    """Every Python file under tests/, this module aside."""
    return [p for p in sorted((REPO / "tests").rglob("*.py")) if relative(p) != SELF]


def relative(path: Path) -> PurePosixPath:
    return PurePosixPath(path.relative_to(REPO).as_posix())


class CorpusDataTests(SynchronousTestCase):
    """The RFC 4475 corpus in tests/data/rfc4475 is complete and byte-exact."""

    def sums(self) -> dict[str, str]:
        """SHA256SUMS as file name to hex digest."""
        sums = {}
        for line in (CORPUS / "SHA256SUMS").read_bytes().decode("ascii").splitlines():
            if line.strip():
                digest, name = line.split()
                sums[name.removeprefix("*")] = digest
        return sums

    def test_insideRepository(self) -> None:
        """The corpus folder is tests/data/rfc4475 of this checkout."""
        self.assertEqual(CORPUS, REPO / "tests" / "data" / "rfc4475")
        self.assertTrue(CORPUS.is_dir(), f"RFC 4475 corpus not found at {CORPUS}")

    def test_checksums(self) -> None:
        """Every file SHA256SUMS lists has its digest, so no checkout converted its line ends."""
        sums = self.sums()
        self.assertEqual(len(sums), 49)
        for name, digest in sums.items():
            self.assertEqual(hashlib.sha256(load(name)).hexdigest(), digest, name)

    def test_indexFilesPresent(self) -> None:
        """The 49 .dat files INDEX.md lists are the ones on disk and the ones SHA256SUMS covers."""
        index = (CORPUS / "INDEX.md").read_text(encoding="utf-8")
        listed = re.findall(r"^\| ([\w.-]+\.dat) \|", index, re.MULTILINE)
        self.assertEqual(len(listed), 49)
        self.assertEqual(len(set(listed)), 49)
        self.assertEqual([p.name for p in messages()], sorted(listed))
        self.assertEqual(sorted(self.sums()), sorted(listed))

    def test_noStrayFiles(self) -> None:
        """The folder holds the messages, INDEX.md, SHA256SUMS and .gitattributes, nothing else."""
        extra = {p.name for p in CORPUS.iterdir()} - {p.name for p in messages()}
        self.assertEqual(extra, {"INDEX.md", "SHA256SUMS", ".gitattributes"})

    def test_gitKeepsBytes(self) -> None:
        """The root .gitattributes turns off line-end conversion for the whole corpus."""
        rules = (REPO / ".gitattributes").read_text(encoding="utf-8").splitlines()
        self.assertIn("tests/data/rfc4475/** -text", rules)


class StandaloneTests(SynchronousTestCase):
    """No test reads anything outside the repository."""

    def test_noEscapes(self) -> None:
        """No source under tests/ names a path outside the checkout."""
        sources = sourceFiles()
        self.assertIn(REPO / "tests" / "test_sip_rfc4475.py", sources)
        self.assertIn(REPO / "tests" / "interop" / "service.py", sources)
        found = [line for p in sources for line in escapes(relative(p), p.read_text(encoding="utf-8"))]
        self.assertEqual(found, [])

    def test_flagsOldCorpusPaths(self) -> None:
        """The scan flags the ways tests once reached the corpus beside the checkout, and absolute
        paths of the development machine."""
        path = PurePosixPath("tests/test_example.py")
        for line in [
            f'CORPUS = Path(__file__).parents[2] / "{SHARED}" / "rfc4475"',
            'RFC4475 = Path(__file__).resolve().parents[2] / "corpus"',
            "HERE = Path(__file__).resolve().parent.parent.parent",
            f'CORPUS = Path("{UP}{SHARED}/rfc4475")',
            'CORPUS = os.path.join(HERE, os.pardir, "corpus")',
            f'CORPUS = Path("{WORK}/{SHARED}/rfc4475")',
            f"The corpus lives in ``{SHARED}/rfc4475`` beside the repository.",
        ]:
            self.assertEqual(escapes(path, line), [f"{path}:1: {line}"], line)

    def test_allowsRepositoryPaths(self) -> None:
        """Climbs that stop at the repository root, and the known-good lines, pass."""
        for path, line in [
            ("tests/test_x.py", 'Path(__file__).resolve().parents[1] / "etc"'),
            ("tests/test_x.py", "Path(__file__).parent.parent"),
            ("tests/interop/x.py", "Path(__file__).resolve().parents[2]"),
            ("tests/interop/service.py", f"C{{{UP}state}}, C{{{UP}state/tls/sbc.crt}}, so in the copy"),
        ]:
            self.assertEqual(escapes(PurePosixPath(path), line), [], line)
        interop = PurePosixPath("tests/interop/x.py")
        for line in ["Path(__file__).parents[3]", f"C{{{UP}state}}, C{{{UP}state/tls/sbc.crt}}"]:
            self.assertEqual(escapes(interop, line), [f"{interop}:1: {line}"], line)
