"""When a registration tries next: refreshes before the grant lapses, backoffs after failures.

Every delay is drawn with jitter from an injected `random.Random`, so that many SBCs (or many
registrations of one) restarted together do not hit a registrar in step.
"""

from __future__ import annotations

import random

__all__ = ["backoff", "refreshDelay", "retryAfterDelay", "stopDelay", "withRetryAfter"]

# A refresh goes at this fraction of the granted time, drawn uniformly from the range...
REFRESH_FRACTION = (0.70, 0.85)
# ...and never later than this many seconds before the grant lapses (unless the grant is so
# short that half of it comes first).
REFRESH_MARGIN = 5.0
# After a transient failure (no answer, 408, 5xx, DNS or transport trouble): BASE seconds,
# doubling with each failure in a row up to CAP, each drawn from half to all of that.
BACKOFF_BASE = 4.0
BACKOFF_CAP = 300.0
# After a permanent refusal (403, 404, a wrong password): about an hour (plus or minus a tenth).
PERMANENT_BACKOFF = 3600.0
# A Retry-After above this is taken as this: a registrar's typo must not silence us for a year.
RETRY_AFTER_CAP = 86400.0


def refreshDelay(granted: float, chance: random.Random) -> float:
    """Seconds until the refresh of a registration granted for ``granted`` seconds."""
    delay = min(granted * chance.uniform(*REFRESH_FRACTION), granted - REFRESH_MARGIN)
    return max(delay, granted / 2)


def backoff(failures: int, chance: random.Random) -> float:
    """Seconds until the next try after ``failures`` transient failures in a row (1 or more)."""
    ceiling = min(BACKOFF_CAP, BACKOFF_BASE * 2.0 ** min(max(failures, 1) - 1, 32))
    return ceiling * chance.uniform(0.5, 1.0)


def stopDelay(chance: random.Random) -> float:
    """Seconds until the next try after a permanent refusal."""
    return PERMANENT_BACKOFF * chance.uniform(0.9, 1.1)


def retryAfterDelay(seconds: int) -> float:
    """A registrar's Retry-After, honoured as given (at least a second, at most a day)."""
    return min(max(float(seconds), 1.0), RETRY_AFTER_CAP)


def withRetryAfter(delay: float, seconds: int | None) -> float:
    """A failure's ``delay`` lengthened to its Retry-After, never shortened: Retry-After: 0 must
    not mean a REGISTER a second, nor a 403's Retry-After: 1 a refused password every second."""
    return delay if seconds is None else max(delay, retryAfterDelay(seconds))
