"""`send --follow`: keep reading the inputs as they grow, like `tail -F`.

Every POLL_S the inputs are expanded again (a glob picks up new files), and each file whose
inode, size or modification time changed is read on from where this run got to. The checkpoint
knows files by content, so a file renamed by rotation is recognised under its new name and a
new or truncated one is read from its start. When a followed path is rotated (renamed away, or
copied and truncated), the lines written after the last poll are in the rotated copy: a sibling
with the same rotation base whose content this run has read is drained first.
"""
from __future__ import annotations

import os
import time
from collections.abc import Callable

from .sources import InputError, Source, expand_inputs, open_source, rotation_key
from .state import Checkpoint

POLL_S = 1.0
_NAP_S = 0.1  # how often a sleeping follower looks whether it was told to stop

Stamp = tuple[int, int, int]  # inode, size, mtime_ns


class Follower:
    def __init__(self, inputs: list[str], checkpoint: Checkpoint,
                 read: Callable[[Source], None], stopped: Callable[[], bool],
                 poll: float = POLL_S) -> None:
        self.inputs = [item for item in inputs if item != "-"]  # a pipe is followed anyway
        self.checkpoint = checkpoint
        self.read = read
        self.stopped = stopped
        self.poll = poll
        # Taken before the first pass reads anything, so a rotation during it is noticed.
        self.stamps: dict[str, Stamp | None] = {p: _stamp(p) for p in self._paths()}

    def run(self) -> None:
        while self._nap():
            for path in self._paths():
                if self.stopped():
                    return
                self._visit(path)

    def _nap(self) -> bool:
        deadline = time.monotonic() + self.poll
        while time.monotonic() < deadline:
            if self.stopped():
                return False
            time.sleep(_NAP_S)
        return not self.stopped()

    def _paths(self) -> list[str]:
        paths: list[str] = []
        for item in self.inputs:
            try:
                paths.extend(expand_inputs([item]))
            except InputError:
                continue  # a glob with no match yet
        return list(dict.fromkeys(paths))

    def _visit(self, path: str) -> None:
        now = _stamp(path)
        before = self.stamps.get(path)
        if now is None or now == before:
            return
        self.stamps[path] = now
        if before is not None and (now[0] != before[0] or now[1] < before[1]):
            self._drain_rotated(path)
        self._read(path)

    def _drain_rotated(self, path: str) -> None:
        path = os.path.abspath(path)
        base = rotation_key(path)[0]
        folder = os.path.dirname(path)
        for name in sorted(os.listdir(folder)):
            sibling = os.path.join(folder, name)
            if sibling == path or rotation_key(sibling)[0] != base or not os.path.isfile(sibling):
                continue
            try:
                source = open_source(sibling)
            except InputError:
                continue
            if self.checkpoint.knows(source):
                self.read(source)

    def _read(self, path: str) -> None:
        try:
            source = open_source(path)
        except InputError:
            return  # gone between the listing and now: the next poll sees what replaced it
        self.read(source)


def _stamp(path: str) -> Stamp | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_ino, st.st_size, st.st_mtime_ns)
