"""Tests for `sbc.tokens`: batched random identifiers."""

from __future__ import annotations

import os
import string

from twisted.trial.unittest import SynchronousTestCase

from sbc import tokens


class RandomHexTests(SynchronousTestCase):
    """Identifiers are hex of the asked length, never repeat, and refill across batches."""

    def test_lengthAndAlphabet(self) -> None:
        """n octets give 2n lower-case hex digits."""
        for octets in (1, 6, 12, 32):
            value = tokens.randomHex(octets)
            self.assertEqual(len(value), 2 * octets)
            self.assertTrue(set(value) <= set(string.hexdigits.lower()))

    def test_noRepeatsAcrossRefills(self) -> None:
        """Many more identifiers than one batch holds are all distinct."""
        values = [tokens.randomHex(12) for _ in range(3 * tokens._BATCH // 12)]
        self.assertEqual(len(set(values)), len(values))

    def test_largerThanABatch(self) -> None:
        """A request larger than a batch is served whole."""
        self.assertEqual(len(tokens.randomHex(tokens._BATCH + 5)), 2 * (tokens._BATCH + 5))

    def test_childForgetsThePool(self) -> None:
        """After a fork the child starts a fresh pool rather than reusing its parent's."""
        tokens.randomHex(4)
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child
            os.write(write, b"1" if tokens._pool.hex == "" else b"0")
            os._exit(0)
        os.waitpid(pid, 0)
        self.assertEqual(os.read(read, 1), b"1")
        os.close(read)
        os.close(write)
