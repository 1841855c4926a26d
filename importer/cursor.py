"""One file's progress in a run (`Cursor`): which of its lines are final, where a rerun must
start, and the dedupe of its events against the run and the state (importer/state.py's
`Checkpoint`, which commits what the cursors know).

A line is final once its event was sent or dead-lettered, or it needed no event. The
committable position of a file is the start of its earliest line that is not final: an
undelivered event holds it back, so a rerun reads that line again and dedupe skips what was
already sent after it.
"""
from __future__ import annotations

import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .events import Event

if TYPE_CHECKING:
    from .state import Checkpoint

SENT, DEAD_LETTERED, UNDELIVERED = "sent", "dead_lettered", "undelivered"
# What a known event is: the same event from another input (or twice in this run), or one
# this file's earlier run settled, read again because the position could not pass it yet.
DUPLICATE, ALREADY_SENT = "duplicate", "already_sent"

Position = tuple[int, int]  # (decompressed offset, lines before it)


@dataclass(slots=True, eq=False)
class Entry:
    """A line whose fate is not final yet: a submitted event, or a duplicate of one in flight
    (a follower, settled with its original)."""

    cursor: Cursor
    start: Position  # where the line begins: the position cannot pass it until it is final
    end: int
    key: bytes | None = None
    time: float | None = None
    counted: bool = True  # False for followers: they are not events of their file
    outcome: str | None = None
    followers: list[Entry] | None = None


class Cursor:
    """One file's progress in this run. The pipeline reads from `start`, calls `advance` for
    every line and `admit` for each event it built, before handing a new one to the sink."""

    def __init__(self, checkpoint: Checkpoint, file_id: int | None, position: Position = (0, 0),
                 pending: tuple[int, int] = (0, 0)) -> None:
        self.checkpoint = checkpoint
        self.file_id = file_id  # None: not positioned (standard input, an empty file)
        self.path: str | None = None
        self.start = self.read = position  # `read`: after the last line handed over
        self.up_to_date = False  # unchanged since read to its end: nothing to read
        self.stamp: str | None = None  # size:mtime_ns when this run opened it
        self.eof: tuple[int, str] | None = None  # (offset, stamp) when a read reached the end
        self.queue: deque[Entry] = deque()  # unsettled lines, in file order
        self.blocked: Position | None = None  # start of the earliest undelivered event
        self.sent = self.dead_lettered = 0  # since the last commit
        self.undelivered = self.undelivered_to = 0
        self.carried = pending  # (pending, pending_to) as the last run left them
        self.written: tuple | None = None  # the row last committed, to skip idle updates

    def advance(self, end: int, lineno: int) -> None:
        """The reader is past line `lineno`, which ends at offset `end`."""
        self.read = (end, lineno)

    def finish(self, reached_end: bool) -> None:
        """The reader stopped; `reached_end`: at the end of the file, with no line held back."""
        if reached_end and self.stamp is not None:
            self.eof = (self.read[0], self.stamp)

    def admit(self, event: Event, key: bytes, when: float | None,
              start: Position | None = None) -> str | None:
        """Dedupe an event whose line begins at `start` (default: after the last line read).
        None: it is new, and now in flight (call before handing it to the sink, which may
        settle it at once). DUPLICATE or ALREADY_SENT: it was sent (or is being sent) already;
        the line is accounted for, settling with its original if that one is in flight."""
        if start is not None:
            self.read = start
        cp = self.checkpoint
        run = cp.run_keys
        if run is not None:  # nothing is recorded: nothing settles, no lock needed
            if run.knows(key, when):
                return DUPLICATE
            known = self._recorded(key, when)
            if known is None:
                run.add(key, when)
            return known
        with cp.lock:
            if key in cp.keys:
                original = cp.keys[key]
                if original is not None and original.outcome is None:
                    follower = Entry(self, self.read, self.read[0], counted=False)
                    self.queue.append(follower)
                    if original.followers is None:
                        original.followers = []
                    original.followers.append(follower)
                return DUPLICATE
            fresh = when is not None and not when <= cp.max_time
            if fresh:  # newer than anything recorded: cannot be there
                self._submit(event, key)
                return None
        known = self._recorded(key, when)
        if known is None:
            with cp.lock:
                self._submit(event, key)
        return known

    def admit_chunk(self, keys: Sequence[bytes], whens: Sequence[float | None]
                    ) -> dict[int, str]:
        """`admit` for consecutive events at once, without durable state (`checkpoint.run_keys`
        is set): nothing settles them, so the sink need not see one before the next is
        deduped. Returns the known ones: {index: DUPLICATE or ALREADY_SENT}."""
        return self.checkpoint.run_keys.add_new(keys, whens, DUPLICATE, self._recorded,
                                                self.checkpoint.max_time)

    def _recorded(self, key: bytes, when: float | None) -> str | None:
        """Whether an earlier run recorded the event: by this file (ALREADY_SENT) or another."""
        cp = self.checkpoint
        if when is not None and not when <= cp.max_time:  # newer than all: cannot be there
            return None
        found = cp.seen_in(key)
        if found is None:
            return None
        return ALREADY_SENT if self.file_id is not None and found == self.file_id else DUPLICATE

    def _submit(self, event: Event, key: bytes) -> None:
        """Track a new event until it is final (under the checkpoint's lock)."""
        cp = self.checkpoint
        end = event.origin.offset if event.origin is not None else self.read[0]
        entry = Entry(self, self.read, end, key, event.time)
        self.queue.append(entry)
        cp.keys[key] = entry
        cp.by_event[id(event)] = entry

    def _mark(self) -> Position:
        """The committable position (called under the checkpoint's lock)."""
        mark = self.read
        if self.queue and self.queue[0].start < mark:
            mark = self.queue[0].start
        if self.blocked is not None and self.blocked < mark:
            mark = self.blocked
        return mark


def settle(entry: Entry, outcome: str) -> None:
    """Make `entry` final (under the checkpoint's lock), and its followers with it."""
    entry.outcome = outcome
    cursor = entry.cursor
    if outcome == UNDELIVERED:
        if cursor.blocked is None or entry.start < cursor.blocked:
            cursor.blocked = entry.start
        if entry.counted:
            cursor.undelivered += 1
            cursor.undelivered_to = max(cursor.undelivered_to, entry.end)
    elif entry.counted:
        if outcome == SENT:
            cursor.sent += 1
        else:
            cursor.dead_lettered += 1
    queue = cursor.queue
    while queue and queue[0].outcome is not None:
        queue.popleft()
    for follower in entry.followers or ():
        settle(follower, outcome)


def file_row(cursor: Cursor) -> tuple | None:
    """The `files` update for a cursor, or None if nothing changed (under the lock)."""
    if cursor.file_id is None:
        return None
    offset, lineno = cursor._mark()
    pending, pending_to = cursor.carried
    if cursor.read[0] >= pending_to:  # re-read past last run's undelivered events
        pending, pending_to = cursor.undelivered, cursor.undelivered_to
    else:
        pending = max(pending, cursor.undelivered)
    done = cursor.eof[1] if cursor.eof is not None and cursor.eof[0] == offset else None
    state = (offset, lineno, pending, pending_to, done, cursor.path)
    sent, dead = cursor.sent, cursor.dead_lettered
    if state == cursor.written and not sent and not dead:
        return None
    cursor.written = state
    cursor.sent = cursor.dead_lettered = 0
    return (offset, lineno, sent, dead, pending, pending_to, done, cursor.path, time.time(),
            cursor.file_id)
