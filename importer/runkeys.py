"""Dedupe within one run when nothing is recorded (dry runs, `export`): every event key of the
run must stay known, however long the input, in flat memory.

The latest `limit` keys live in a dict. Past it they go to an unlinked temporary file as one
sorted run: their times (a float array), then their keys, both in (time, key) order. A key
holds its event's time (two lines are the same event only if logged at the same second), so a
key is looked for only among the keys of its own time: each run keeps in memory the time of
every STRIDE-th key (8 bytes per STRIDE keys), which narrows a lookup to one short read. And
as logs come in time order, an event newer than every spilled key is not looked for at all.

This replaced a SQLite temporary table: sorting and inserting the keys into its B-tree cost
~5 us a key, a quarter of a dry run's main process; writing a run costs ~0.2 us a key.
"""
from __future__ import annotations

import math
import os
import tempfile
from array import array
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

KEY_BYTES = 16  # eventkeys.event_key's digest size
STRIDE = 64  # keys per entry of a run's in-memory time index
NO_TIME = -math.inf  # where keys of events without a (comparable) time sort


@dataclass(slots=True)
class _Run:
    """`count` keys at `offset` in the file: their times (8 bytes each), then the keys."""

    offset: int
    count: int
    first: float  # the earliest time in it
    last: float  # the latest
    index: array  # the time of every STRIDE-th key


class RunKeys:
    """The keys of this run's events. `add` only keys that `knows` said no to: each is kept
    once."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        # key -> sort_time(event time): whoever fills it directly must map the times too
        self.recent: dict[bytes, float] = {}
        self.runs: list[_Run] = []
        self.latest = -math.inf  # the latest time among spilled keys
        self._file = None
        self._size = 0

    def knows(self, key: bytes, when: float | None) -> bool:
        return key in self.recent or self._in_runs(key, when)

    def _in_runs(self, key: bytes, when: float | None) -> bool:
        # `not when > latest`: a NaN time is looked for too (it is spilled as NO_TIME).
        return bool(self.runs) and (when is None or not when > self.latest) \
            and self._spilled(key, when)

    def add(self, key: bytes, when: float | None) -> None:
        self.recent[key] = sort_time(when)
        if len(self.recent) >= self.limit:
            self.spill()

    def add_new(self, keys: Sequence[bytes], whens: Sequence[float | None], known: str,
                recorded: Callable[[bytes, float | None], str | None], floor: float
                ) -> dict[int, str]:
        """`knows`, then `add`, for the keys of consecutive events at once: {index: why} for
        those not added: `known` where this run has the key, else what `recorded(key, when)`
        says (an earlier run's answer; not asked about an event newer than both `floor`, the
        latest time it holds, and every spilled key). Inline, as it runs per event: an event
        newer than every key needs one dict lookup only."""
        recent = self.recent
        floor = max(floor, self.latest)
        try:
            times = np.fromiter(whens, np.float64, len(whens))
        except TypeError:  # some None
            times = None
        if times is not None and (times > floor).all():  # the usual: all new, none looked for
            fresh = dict(zip(keys, whens, strict=True))
            if len(fresh) == len(keys) and recent.keys().isdisjoint(fresh):
                recent.update(fresh)
                if len(recent) >= self.limit:
                    self.spill()
                return {}
        found: dict[int, str] = {}
        for i, (key, when) in enumerate(zip(keys, whens, strict=True)):
            if key in recent:
                found[i] = known
                continue
            if when is None or not when > floor:
                if self._in_runs(key, when):  # `recent` is looked in above
                    found[i] = known
                    continue
                outcome = recorded(key, when)
                if outcome is not None:
                    found[i] = outcome
                    continue
                when = sort_time(when)
            recent[key] = when
        if len(recent) >= self.limit:
            self.spill()
        return found

    def spill(self) -> None:
        """The keys in memory to a new sorted run in the temporary file."""
        recent = self.recent
        if not recent:
            return
        keys = list(recent)
        times = np.fromiter(recent.values(), np.float64, len(keys))
        if not (times[1:] >= times[:-1]).all():  # logs come in time order: mostly not needed
            order = np.argsort(times, kind="stable")
            times = times[order]
            keys = list(map(keys.__getitem__, order.tolist()))
        self.recent = {}
        if self._file is None:
            self._file = tempfile.TemporaryFile(prefix="plausible-import-keys-")  # noqa: SIM115
        os.pwrite(self._file.fileno(), times.tobytes() + b"".join(keys), self._size)
        first, last = float(times[0]), float(times[-1])
        self.runs.append(_Run(self._size, len(keys), first, last,
                              array("d", times[::STRIDE].tobytes())))
        self._size += len(keys) * (8 + KEY_BYTES)
        if last > self.latest:
            self.latest = last

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        self.runs, self.recent = [], {}

    def _spilled(self, key: bytes, when: float | None) -> bool:
        when = sort_time(when)
        fd = self._file.fileno()
        for run in self.runs:
            if not run.first <= when <= run.last:
                continue
            # Keys of time `when` lie between the index entries around it.
            lo = max(bisect_left(run.index, when) - 1, 0) * STRIDE
            hi = min(bisect_right(run.index, when) * STRIDE, run.count)
            times = array("d")
            times.frombytes(os.pread(fd, (hi - lo) * 8, run.offset + lo * 8))
            first = lo + bisect_left(times, when)
            last = lo + bisect_right(times, when)
            if first == last:
                continue
            keys_at = run.offset + run.count * 8
            found = os.pread(fd, (last - first) * KEY_BYTES, keys_at + first * KEY_BYTES)
            at = found.find(key)
            while at > 0 and at % KEY_BYTES:  # only whole keys count
                at = found.find(key, at + 1)
            if at >= 0:
                return True
        return False


def sort_time(when: float | None) -> float:
    """The time a key is kept and looked for under: NO_TIME for none (or NaN)."""
    return NO_TIME if when is None or math.isnan(when) else when
