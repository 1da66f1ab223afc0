"""Tests for sbc.waiting: one way to join an answer now and an answer later."""

from __future__ import annotations

from twisted.internet.defer import Deferred, fail, succeed
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from sbc.waiting import whenAllReady, whenReady


def tenfold(value: int) -> int:
    return value * 10


def inverse(value: int) -> float:
    return 1 / value


class WhenReadyTests(SynchronousTestCase):
    def test_plainValueAtOnce(self) -> None:
        """A plain value is handed on at once, and the result is plain too: no Deferred is made."""
        self.assertEqual(whenReady(2, tenfold), 20)

    def test_deferredLater(self) -> None:
        """A Deferred's value is handed on when it fires; the result is a Deferred of it."""
        pending: Deferred[int] = Deferred()
        result = whenReady(pending, tenfold)
        assert isinstance(result, Deferred)
        self.assertNoResult(result)
        pending.callback(3)
        self.assertEqual(self.successResultOf(result), 30)

    def test_failuresEitherWay(self) -> None:
        """``failed`` gets a failed Deferred's failure, or ``then`` raising, now or later alike."""
        seen: list[type[BaseException] | None] = []

        def failed(failure: Failure) -> str:
            seen.append(failure.type)
            return "failed"

        def broken(value: object) -> str:
            raise KeyError(value)

        self.assertEqual(whenReady(1, broken, failed), "failed")
        self.assertEqual(self.successResultOf(whenReady(fail(ValueError()), str, failed)), "failed")  # type: ignore[arg-type]
        self.assertEqual(self.successResultOf(whenReady(succeed(1), broken, failed)), "failed")  # type: ignore[arg-type]
        self.assertEqual(seen, [KeyError, ValueError, KeyError])

    def test_noFailedPropagates(self) -> None:
        """Without ``failed`` an error propagates: raised now, or as the Deferred's failure."""
        self.assertRaises(ZeroDivisionError, whenReady, 0, inverse)
        result = whenReady(succeed(0), inverse)
        assert isinstance(result, Deferred)
        self.failureResultOf(result, ZeroDivisionError)


class WhenAllReadyTests(SynchronousTestCase):
    def test_allPlain(self) -> None:
        """With no Deferred among the values, the step runs at once."""
        ran: list[bool] = []
        whenAllReady([None, None], lambda: ran.append(True))
        self.assertEqual(ran, [True])

    def test_waitsForEvery(self) -> None:
        """With Deferreds, the step runs once every one has fired, failures included."""
        ran: list[bool] = []
        first: Deferred[None] = Deferred()
        second: Deferred[None] = Deferred()
        whenAllReady([first, None, second], lambda: ran.append(True))
        first.callback(None)
        self.assertEqual(ran, [])
        second.errback(OSError("closing failed"))
        self.assertEqual(ran, [True])
