"""How fast events may go: a token bucket (`--rate`) and the log's own pace (`--pace`).

Both answer "how long until I may send", never sleep themselves: the sink's single loop waits
for whichever comes first, a token, a due event or an answer.
"""
from __future__ import annotations

import math
import re
from collections import deque
from dataclasses import dataclass

UNLIMITED = math.inf


class TokenBucket:
    """`rate` tokens a second, at most `burst` saved up; `rate` inf lets everything through.

    The burst is a tenth of a second's worth (at least 1): enough that a sender checking a few
    hundred times a second still reaches the rate, small enough that an idle spell does not
    turn into a spike.
    """

    def __init__(self, rate: float = UNLIMITED) -> None:
        self.rate = rate
        self._tokens = 0.0
        self._stamp: float | None = None
        self._paused_until = 0.0

    @property
    def burst(self) -> float:
        return max(1.0, self.rate / 10)

    def set_rate(self, rate: float) -> None:
        self.rate = rate

    def pause_until(self, when: float) -> None:
        """Hold every request until `when` (a Retry-After for the whole server)."""
        self._paused_until = max(self._paused_until, when)

    def take(self, now: float) -> float:
        """Take one token: 0.0 if granted, else the seconds to wait before asking again."""
        if now < self._paused_until:
            return self._paused_until - now
        if self.rate == UNLIMITED:
            return 0.0
        if self._stamp is None:
            self._stamp, self._tokens = now, 1.0
        self._tokens = min(self.burst, self._tokens + (now - self._stamp) * self.rate)
        self._stamp = now
        if self._tokens >= 1.0 - 1e-9:  # float dust must not turn into a zero-length wait
            self._tokens = max(0.0, self._tokens - 1.0)
            return 0.0
        return (1.0 - self._tokens) / self.rate


_FACTOR = re.compile(r"(\d+(?:\.\d*)?|\.\d+)x")


@dataclass
class Pace:
    """Replays a log at its own pace: an event is due `(its time - first time) / factor` after
    the first event was sent. `factor` None (`max`) makes every event due at once."""

    factor: float | None = None
    _origin: tuple[float, float] | None = None  # (first event's log time, when it was due)

    @classmethod
    def parse(cls, spec: str) -> Pace:
        """`realtime`, `Nx` (N times the log's pace, e.g. 2x or 0.5x) or `max`."""
        text = spec.strip().lower()
        if text == "max":
            return cls(None)
        if text == "realtime":
            return cls(1.0)
        match = _FACTOR.fullmatch(text)
        if match and float(match.group(1)) > 0:
            return cls(float(match.group(1)))
        raise ValueError(f"--pace: expected realtime, Nx (e.g. 2x, 0.5x) or max, not {spec!r}")

    def due(self, event_time: float | None, now: float) -> float:
        """The monotonic time at which an event logged at `event_time` may be sent."""
        if self.factor is None or event_time is None:
            return now
        if self._origin is None:
            self._origin = (event_time, now)
        first, start = self._origin
        return start + (event_time - first) / self.factor


class Throughput:
    """Events per second over the last `span` events (their first and last times)."""

    def __init__(self, span: int = 256) -> None:
        self._times: deque[float] = deque(maxlen=span)

    def add(self, now: float) -> None:
        self._times.append(now)

    @property
    def rate(self) -> float:
        """0.0 until there is something to measure."""
        times = self._times
        if len(times) < 2 or times[-1] <= times[0]:
            return 0.0
        return (len(times) - 1) / (times[-1] - times[0])
