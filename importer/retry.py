"""Retries as data: which answers to retry, how long to wait, when to give up.

Like urllib3's `Retry`, a `RetryPolicy` is a plain value the sink consults; it holds no state of
its own, so one policy serves every event and tests can ask it questions directly.
"""
from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from enum import Enum


class Verdict(Enum):
    SENT = "sent"  # 2xx: the server took it (it may still have dropped it: x-plausible-dropped)
    RETRY = "retry"  # no answer, a timeout, 408, 429 or 5xx: the event is fine, try again later
    REJECT = "reject"  # any other answer: sending it again gives the same answer


# 408 and 425 say "not now" like 429 does; the Events API itself never answers them, but
# proxies in front of it can.
RETRY_STATUSES = frozenset({408, 425, 429})


def classify(status: int | None) -> Verdict:
    """`status` None means no HTTP answer at all (refused, reset, timed out)."""
    if status is None or status in RETRY_STATUSES or status >= 500:
        return Verdict.RETRY
    if 200 <= status < 300:
        return Verdict.SENT
    return Verdict.REJECT


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or an HTTP date), or None."""
    if not value:
        return None
    value = value.strip()
    if value.isdecimal():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with full jitter (AWS's "Exponential Backoff And Jitter"): the n-th
    retry waits a uniform random time in [0, min(cap, base * 2**n)], so many senders that failed
    together do not come back together. A Retry-After from the server is waited out instead."""

    max_retries: int = 10
    max_time: float = 300.0  # seconds from an event's first attempt until it is given up
    base: float = 0.5
    cap: float = 30.0
    rng: random.Random = field(default_factory=random.Random, compare=False, repr=False)

    def delay(self, retries_done: int, elapsed: float, retry_after: float | None = None
              ) -> float | None:
        """How long to wait before the next attempt, or None to give up.

        `retries_done` retries have been made so far and `elapsed` seconds have passed since
        the first attempt.
        """
        if retries_done >= self.max_retries:
            return None
        if retry_after is not None:
            wait = retry_after
        else:
            wait = self.rng.uniform(0.0, min(self.cap, self.base * 2 ** retries_done))
        if elapsed + wait > self.max_time:
            return None
        return wait
