# Twisted's trial assertions carry no annotations.
# mypy: disable-error-code="no-untyped-call"
"""Tests for `sbc.registrar.nonce`: issuing server nonces and judging them, on a `Clock`."""

from __future__ import annotations

import base64

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from sbc.registrar.nonce import NonceManager, NonceState

SECRET = b"0123456789abcdef0123456789abcdef"
ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


def makeManager(lifetime: float = 300.0, maxTracked: int = 100_000) -> tuple[Clock, NonceManager]:
    clock = Clock()
    clock.advance(1_000_000)
    return clock, NonceManager(clock, SECRET, lifetime=lifetime, maxTracked=maxTracked)


def nc(count: int) -> str:
    return f"{count:08x}"


class IssueTests(SynchronousTestCase):
    """What issue() hands out."""

    def test_shape(self) -> None:
        """A nonce is URL-safe base64 text that needs no escaping in a quoted-string."""
        _, manager = makeManager()
        nonce = manager.issue()
        self.assertEqual(len(nonce), 48)
        self.assertTrue(set(nonce) <= set(ALPHABET))
        self.assertNotIn('"', nonce)
        self.assertNotIn(",", nonce)

    def test_unique(self) -> None:
        """Nonces issued at the same instant still differ."""
        _, manager = makeManager()
        nonces = {manager.issue() for _ in range(1000)}
        self.assertEqual(len(nonces), 1000)

    def test_issueKeepsNoState(self) -> None:
        """Issuing alone records nothing: a flood of challenges costs no memory."""
        _, manager = makeManager()
        for _ in range(100):
            manager.issue()
        self.assertEqual(manager.tracked, 0)

    def test_badArguments(self) -> None:
        """An empty secret, a lifetime that is not positive or no room for records is refused."""
        clock = Clock()
        self.assertRaises(ValueError, NonceManager, clock, b"")
        self.assertRaises(ValueError, NonceManager, clock, SECRET, lifetime=0)
        self.assertRaises(ValueError, NonceManager, clock, SECRET, maxTracked=0)


class ValidityTests(SynchronousTestCase):
    """Telling our nonces from anything else, and fresh ones from stale ones."""

    def test_fresh(self) -> None:
        """A nonce just issued is valid, with or without qop."""
        _, manager = makeManager()
        self.assertEqual(manager.check(manager.issue(), nc(1)), NonceState.VALID)
        self.assertEqual(manager.check(manager.issue(), None), NonceState.VALID)

    def test_freshOnZeroClock(self) -> None:
        """A nonce issued the instant the manager was made (a new Clock reads 0) is valid."""
        clock = Clock()
        manager = NonceManager(clock, SECRET)
        self.assertEqual(manager.check(manager.issue(), nc(1)), NonceState.VALID)

    def test_tampered(self) -> None:
        """Changing any one character of a nonce makes it invalid."""
        _, manager = makeManager()
        nonce = manager.issue()
        for i, ch in enumerate(nonce):
            other = ALPHABET[(ALPHABET.index(ch) + 1) % len(ALPHABET)]
            tampered = nonce[:i] + other + nonce[i + 1 :]
            self.assertEqual(manager.check(tampered, nc(1)), NonceState.INVALID, i)
        self.assertEqual(manager.tracked, 0)
        self.assertEqual(manager.check(nonce, nc(1)), NonceState.VALID)

    def test_otherSecret(self) -> None:
        """A nonce made under another secret is invalid."""
        clock, manager = makeManager()
        other = NonceManager(clock, b"another secret")
        self.assertEqual(manager.check(other.issue(), nc(1)), NonceState.INVALID)

    def test_malformed(self) -> None:
        """Wrong lengths, padding, foreign characters and other spellings of the octets are invalid."""
        _, manager = makeManager()
        nonce = manager.issue()
        raw = base64.urlsafe_b64decode(nonce)
        standard = base64.b64encode(raw).decode("ascii")
        bad = [
            "",
            "x",
            nonce[:-1],
            nonce + "A",
            nonce + "==",
            nonce[:-4] + "===",
            " " + nonce[1:],
            nonce[:10] + "\xe9" + nonce[11:],
            nonce[:10] + '"' + nonce[11:],
            "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v",
        ]
        if standard != nonce:
            # The same octets spelled with '+' and '/': would be a second key for one nonce.
            bad.append(standard)
        for text in bad:
            self.assertEqual(manager.check(text, nc(1)), NonceState.INVALID, text)

    def test_alternativeSpelling(self) -> None:
        """A nonce whose octets standard base64 spells differently is refused in that spelling."""
        _, manager = makeManager()
        for _ in range(200):
            nonce = manager.issue()
            if "-" in nonce or "_" in nonce:
                break
        else:
            self.fail("no nonce with '-' or '_' in 200 tries")
        standard = nonce.replace("-", "+").replace("_", "/")
        self.assertEqual(manager.check(standard, nc(1)), NonceState.INVALID)

    def test_issuedInTheFuture(self) -> None:
        """A nonce whose issue time is ahead of our clock is invalid, though its MAC is good."""
        _, manager = makeManager()
        late = Clock()
        late.advance(1_000_000 + 60)
        nonce = NonceManager(late, SECRET).issue()
        self.assertEqual(manager.check(nonce, nc(1)), NonceState.INVALID)

    def test_staleAfterLifetime(self) -> None:
        """A nonce is valid up to its lifetime and stale once older."""
        clock, manager = makeManager(lifetime=30)
        nonce = manager.issue()
        clock.advance(30)
        self.assertEqual(manager.check(nonce, nc(1)), NonceState.VALID)
        clock.advance(0.001)
        self.assertEqual(manager.check(nonce, nc(2)), NonceState.STALE)
        self.assertEqual(manager.check(manager.issue(), nc(1)), NonceState.VALID)

    def test_staleUnused(self) -> None:
        """A nonce never used before is stale too once its lifetime is over."""
        clock, manager = makeManager(lifetime=30)
        nonce = manager.issue()
        clock.advance(31)
        self.assertEqual(manager.check(nonce, None), NonceState.STALE)

    def test_previousProcess(self) -> None:
        """A nonce from an earlier manager under the same secret is stale: its records are gone."""
        clock, first = makeManager()
        nonce = first.issue()
        self.assertEqual(first.check(nonce, nc(1)), NonceState.VALID)
        clock.advance(1)
        restarted = NonceManager(clock, SECRET)
        self.assertEqual(restarted.check(nonce, nc(1)), NonceState.STALE)
        self.assertEqual(restarted.check(restarted.issue(), nc(1)), NonceState.VALID)


class ReplayTests(SynchronousTestCase):
    """Nonce-counts only go up, and a nonce without qop is good once."""

    def test_replayedCount(self) -> None:
        """The same nonce-count twice is a replay."""
        _, manager = makeManager()
        nonce = manager.issue()
        self.assertEqual(manager.check(nonce, nc(1)), NonceState.VALID)
        self.assertEqual(manager.check(nonce, nc(1)), NonceState.REPLAY)

    def test_increasingCounts(self) -> None:
        """Increasing counts are accepted, gaps included; a lower one after a higher is a replay."""
        _, manager = makeManager()
        nonce = manager.issue()
        for count in [1, 2, 3, 7, 10, 0xFFFFFFFF]:
            self.assertEqual(manager.check(nonce, nc(count)), NonceState.VALID, count)
        self.assertEqual(manager.check(nonce, nc(9)), NonceState.REPLAY)
        self.assertEqual(manager.tracked, 1)

    def test_countCaseInsensitive(self) -> None:
        """nc is a hex number: "0000000A" and "0000000a" are the same count."""
        _, manager = makeManager()
        nonce = manager.issue()
        self.assertEqual(manager.check(nonce, "0000000A"), NonceState.VALID)
        self.assertEqual(manager.check(nonce, "0000000a"), NonceState.REPLAY)

    def test_zeroCount(self) -> None:
        """Counts start at 1, so 00000000 is never accepted."""
        _, manager = makeManager()
        self.assertEqual(manager.check(manager.issue(), nc(0)), NonceState.REPLAY)

    def test_badCount(self) -> None:
        """A nonce-count that is not 8 hex digits is invalid."""
        _, manager = makeManager()
        nonce = manager.issue()
        for count in ["1", "0000000g", "000000001", ""]:
            self.assertEqual(manager.check(nonce, count), NonceState.INVALID, count)
        self.assertEqual(manager.check(nonce, nc(1)), NonceState.VALID)

    def test_noQopSingleUse(self) -> None:
        """Without qop a nonce is good exactly once."""
        _, manager = makeManager()
        nonce = manager.issue()
        self.assertEqual(manager.check(nonce, None), NonceState.VALID)
        self.assertEqual(manager.check(nonce, None), NonceState.REPLAY)
        self.assertEqual(manager.check(nonce, nc(1)), NonceState.REPLAY)

    def test_noQopAfterQop(self) -> None:
        """A nonce used with qop cannot then be used without it."""
        _, manager = makeManager()
        nonce = manager.issue()
        self.assertEqual(manager.check(nonce, nc(1)), NonceState.VALID)
        self.assertEqual(manager.check(nonce, None), NonceState.REPLAY)

    def test_staleWinsOverReplay(self) -> None:
        """An expired nonce answers STALE even when the count is a replay too."""
        clock, manager = makeManager(lifetime=10)
        nonce = manager.issue()
        self.assertEqual(manager.check(nonce, nc(1)), NonceState.VALID)
        clock.advance(11)
        self.assertEqual(manager.check(nonce, nc(1)), NonceState.STALE)


class MemoryTests(SynchronousTestCase):
    """The record table stays bounded, and forgetting a record never re-opens a replay."""

    def test_pruning(self) -> None:
        """With time passing, only records of nonces within their lifetime are kept."""
        clock, manager = makeManager(lifetime=10)
        peak = 0
        for i in range(5000):
            nonce = manager.issue()
            self.assertEqual(manager.check(nonce, nc(1)), NonceState.VALID)
            if i % 2:
                self.assertEqual(manager.check(nonce, nc(2)), NonceState.VALID)
            peak = max(peak, manager.tracked)
            clock.advance(0.1)
        # 10 s of nonces at 10 a second, and one more at the edge.
        self.assertLessEqual(peak, 101)
        self.assertGreaterEqual(peak, 100)
        clock.advance(10.001)
        manager.issue()
        self.assertEqual(manager.tracked, 0)

    def test_prunedNonceStaysRefused(self) -> None:
        """A nonce whose record was pruned is stale, not valid again."""
        clock, manager = makeManager(lifetime=10)
        nonce = manager.issue()
        self.assertEqual(manager.check(nonce, None), NonceState.VALID)
        clock.advance(10.5)
        manager.issue()
        self.assertEqual(manager.tracked, 0)
        self.assertEqual(manager.check(nonce, None), NonceState.STALE)

    def test_capacity(self) -> None:
        """No more than maxTracked records are kept, however fast nonces are used."""
        _, manager = makeManager(maxTracked=50)
        for _ in range(1000):
            self.assertEqual(manager.check(manager.issue(), nc(1)), NonceState.VALID)
            self.assertLessEqual(manager.tracked, 50)
        self.assertEqual(manager.tracked, 50)

    def test_evictionMakesOlderNoncesStale(self) -> None:
        """Evicting a record for room makes its nonce, and every one issued before, stale for good."""
        clock, manager = makeManager(maxTracked=3)
        unused = manager.issue()
        clock.advance(1)
        nonces = []
        for _ in range(4):
            nonces.append(manager.issue())
            clock.advance(1)
        for nonce in nonces[:3]:
            self.assertEqual(manager.check(nonce, nc(1)), NonceState.VALID)
        # The fourth needs room: the oldest record goes and the floor rises to its issue time.
        self.assertEqual(manager.check(nonces[3], nc(1)), NonceState.VALID)
        self.assertEqual(manager.tracked, 3)
        self.assertEqual(manager.check(nonces[0], nc(1)), NonceState.STALE)
        self.assertEqual(manager.check(nonces[0], nc(2)), NonceState.STALE)
        self.assertEqual(manager.check(unused, nc(1)), NonceState.STALE)
        # The records that were kept still count, and new nonces are fine.
        self.assertEqual(manager.check(nonces[1], nc(1)), NonceState.REPLAY)
        self.assertEqual(manager.check(nonces[1], nc(2)), NonceState.VALID)
        self.assertEqual(manager.check(manager.issue(), nc(1)), NonceState.VALID)

    def test_evictionOverTheNonceBeingRecorded(self) -> None:
        """A first use accepted by evicting a younger record is then covered by the floor."""
        clock, manager = makeManager(maxTracked=1)
        older = manager.issue()
        clock.advance(1)
        younger = manager.issue()
        self.assertEqual(manager.check(younger, nc(1)), NonceState.VALID)
        self.assertEqual(manager.check(older, nc(1)), NonceState.VALID)
        self.assertEqual(manager.tracked, 0)
        self.assertEqual(manager.check(older, nc(2)), NonceState.STALE)
        self.assertEqual(manager.check(younger, nc(2)), NonceState.STALE)
        self.assertEqual(manager.check(manager.issue(), nc(1)), NonceState.VALID)
