"""Tests for `bench.systems`: the open-file limit the systems under test inherit."""

from __future__ import annotations

import resource

from twisted.trial.unittest import SynchronousTestCase

from bench.systems import raiseFileLimit

NOTE = "The systems ran with an open-file limit (RLIMIT_NOFILE) of "


class FakeLimits:
    """RLIMIT_NOFILE as ``soft`` and ``hard``; ``refuse`` makes a raise fail."""

    def __init__(self, soft: int, hard: int, refuse: bool = False) -> None:
        self.soft, self.hard, self.refuse = soft, hard, refuse

    def getrlimit(self, which: int) -> tuple[int, int]:
        assert which == resource.RLIMIT_NOFILE
        return self.soft, self.hard

    def setrlimit(self, which: int, limits: tuple[int, int]) -> None:
        assert which == resource.RLIMIT_NOFILE
        if self.refuse:
            raise ValueError("not allowed to raise maximum limit")
        self.soft, self.hard = limits


class RaiseFileLimitTests(SynchronousTestCase):
    def limits(self, soft: int, hard: int, refuse: bool = False) -> FakeLimits:
        limits = FakeLimits(soft, hard, refuse)
        self.patch(resource, "getrlimit", limits.getrlimit)
        self.patch(resource, "setrlimit", limits.setrlimit)
        return limits

    def test_raised(self) -> None:
        """The bench raises its soft limit to the hard one (the systems inherit it) and notes it."""
        limits = self.limits(1024, 65536)
        note = raiseFileLimit()
        self.assertEqual(limits.soft, 65536)
        self.assertEqual(note, NOTE + "65,536, raised from 1,024.")

    def test_keptWhenRefused(self) -> None:
        """A limit that cannot be raised is kept, and the note gives it as it is."""
        self.limits(1024, 4096, refuse=True)
        self.assertEqual(raiseFileLimit(), NOTE + "1,024.")
