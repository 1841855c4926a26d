"""The bounded hand-off from the reading thread to the sending thread.

A full inbox blocks `put`, which is how back-pressure reaches the log reader: memory stays flat
however long the input. The sending thread sleeps in select() on its sockets plus this inbox's
wake pipe, so news (an event, stop, close) wakes it at once; the pipe is written only when the
sender said it is going to sleep, not once per event.
"""
from __future__ import annotations

import contextlib
import os
import threading
from collections import deque
from typing import Generic, TypeVar

T = TypeVar("T")


class Inbox(Generic[T]):
    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._items: deque[T] = deque()
        self._lock = threading.Lock()
        self._not_full = threading.Condition(self._lock)
        self._sleeping = False  # the sender is (about to be) waiting for news
        self.refusing = False  # set when stopping: `put` takes nothing more
        self.closed = False  # no more items will come
        self.wake_fd, self._wake_w = os.pipe()
        os.set_blocking(self.wake_fd, False)
        os.set_blocking(self._wake_w, False)

    def put(self, item: T) -> bool:
        """Hand over one item, waiting while the inbox is full; False if it is refusing."""
        with self._lock:
            while len(self._items) >= self.capacity and not self.refusing:
                # A timeout, so a stop requested by a signal handler (which must not take this
                # lock) is seen within a tenth of a second.
                self._not_full.wait(0.1)
            if self.refusing:
                return False
            self._items.append(item)
            wake, self._sleeping = self._sleeping, False
        if wake:
            self.wake()
        return True

    def close(self) -> None:
        with self._lock:
            self.closed = True
        self.wake()

    def wake(self) -> None:
        """Wake the sender; safe in a signal handler (no lock, a non-blocking write)."""
        with contextlib.suppress(OSError):  # a full pipe is awake enough; closed: nobody waits
            os.write(self._wake_w, b"!")

    # -- the sending thread --

    def take(self, most: int) -> list[T]:
        # The reader waits for this lock with every `put`: hold it for as little as possible.
        with self._lock:
            items = self._items
            if len(items) <= most:
                self._items = deque()
            else:
                items = [items.popleft() for _ in range(most)]
            if items:
                self._not_full.notify()
        return list(items)

    def sleep_unless_waiting(self) -> bool:
        """Before the sender waits: True if items are already there (don't wait), else note
        that the next `put` must wake it."""
        with self._lock:
            if self._items:
                return True
            self._sleeping = True
            return False

    def woken(self) -> None:
        """The sender is awake again (the pipe was readable): empty the pipe."""
        with self._lock:
            self._sleeping = False
        with contextlib.suppress(BlockingIOError):
            while os.read(self.wake_fd, 4096):
                pass

    @property
    def drained(self) -> bool:
        """Closed and empty: nothing more will ever come. No lock: `closed` is set after the
        last `put`, by the same thread, and stays set."""
        return self.closed and not self._items

    def release(self) -> None:
        os.close(self.wake_fd)
        os.close(self._wake_w)
