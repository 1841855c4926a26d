"""Per-visitor order: each visitor's jobs leave one at a time, in the order they came.

Plausible builds sessions (entry and exit pages, source, bounce) from the order in which one
visitor's events arrive, so a visitor's next event may only go once the previous one is final.
Different visitors are independent, so their jobs interleave freely.
"""
from __future__ import annotations

from collections import deque
from collections.abc import Hashable
from typing import Generic, TypeVar

T = TypeVar("T")


class VisitorQueues(Generic[T]):
    """`ready` holds the jobs that may go now (their visitor has nothing out); the caller pops
    one, sends it, and calls `done(key)` once its fate is final, which readies the visitor's next.
    """

    def __init__(self) -> None:
        self.ready: deque[tuple[Hashable, T]] = deque()
        self._waiting: dict[Hashable, deque[T]] = {}  # key present: the visitor has a job out
        self._held: set[Hashable] = set()
        self.pending = 0  # jobs added and not yet done, the one out included

    def add(self, key: Hashable, job: T) -> bool:
        """Queue a job; False if the visitor is held (an earlier job of theirs failed)."""
        if key in self._held:
            return False
        self.pending += 1
        waiting = self._waiting.get(key)
        if waiting is None:
            self._waiting[key] = deque()
            self.ready.append((key, job))
        else:
            waiting.append(job)
        return True

    def done(self, key: Hashable) -> None:
        """The visitor's job that was out is final: their next job, if any, becomes ready."""
        self.pending -= 1
        waiting = self._waiting[key]
        if waiting:
            self.ready.append((key, waiting.popleft()))
        else:
            del self._waiting[key]

    def hold(self, key: Hashable) -> list[T]:
        """The visitor's job that was out failed for good: sending their later jobs would put
        them before it (a rerun sends it), so they are returned to be failed too, as is every
        job of theirs added from now on."""
        waiting = self._waiting.pop(key)
        self._held.add(key)
        self.pending -= 1 + len(waiting)
        return list(waiting)

    def drain(self) -> list[T]:
        """Take every job that is not out (when stopping); jobs out still need `done`."""
        jobs: list[T] = []
        for key, job in self.ready:
            jobs.append(job)
            jobs.extend(self._waiting.pop(key))
        self.ready.clear()
        for waiting in self._waiting.values():
            jobs.extend(waiting)
            waiting.clear()
        self.pending -= len(jobs)
        return jobs
