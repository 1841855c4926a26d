"""A big file read by chunks (importer/parallel.py: by the parse workers, or with --workers 1 in
the main process), each chunk's outcome applied in file order as the per-line loop would have
settled its lines: what its examination (importer/chunkwork.py) counted, its malformed lines
(counted and written to --rejects here), its candidate events through dedupe and on to the
sink, its lines' numbers in the file, the cursor's advance, the progress bar."""
from __future__ import annotations

from collections.abc import Iterator, Sequence
from itertools import compress, repeat
from operator import add
from typing import TYPE_CHECKING

from parsers.base import Parser

from .chunkwork import BEGIN, END, KEY, NUMBER, TEXT, TIME, WIRE, FileInfo
from .events import Event, Origin
from .sources import Chunk, Line, Source, Span
from .summary import merge, show_progress

if TYPE_CHECKING:
    from .cursor import Cursor
    from .pipeline import Pipeline


class Applier:
    """What both runners of big files do in the main process with a chunk's outcome."""

    def __init__(self, pipeline: Pipeline) -> None:
        self.pipeline = pipeline
        self.files = 0  # big files read by chunks
        self._lineno = 0  # lines of the file before the next chunk to apply

    def _info(self, source: Source, head: list[Line], cursor: Cursor | None, parser: Parser,
              path: str | None) -> FileInfo:
        """The next file's `FileInfo`; `path`: its chunks may come as `Span`s to read from it."""
        self.files += 1
        pipeline = self.pipeline
        slim = cursor is not None and cursor.checkpoint.run_keys is not None \
            and getattr(pipeline.sink, "counts_only", False)
        return FileInfo(self.files, source.name, tuple(line.text for line in head),
                        cursor is not None, bool(pipeline.counters.explain), path, slim,
                        parser.headers)

    def _progress(self, bar, source: Source, shown: int) -> int:
        """The bar moved on to where `source` was read to, which is returned."""
        return show_progress(bar, source.position, shown, self.pipeline.counters.lines_read)

    def _apply(self, source: Source, chunk: Chunk | Span, result: tuple,
               cursor: Cursor | None) -> None:
        """A chunk's outcome, in file order: what its examination counted, then its candidate
        events through dedupe and on to the sink."""
        candidates, delta, malformed, lines, _ = result
        pipeline = self.pipeline
        counters = pipeline.counters
        if delta:
            with counters.lock:  # sink threads update the counters too
                merge(counters, delta)
        before = self._lineno  # lines before the chunk: its line numbers start at 1
        self._lineno += lines
        for number, text, reason, explained in malformed:
            pipeline._malformed(source, Line(before + number, 0, text), reason,
                                None if explained is None else lambda e=explained: e)
        if isinstance(candidates, tuple):
            self._count(candidates, cursor)
        elif candidates:
            self._settle(source.name, candidates, before, cursor)
        if cursor is not None and lines:
            cursor.advance(chunk.end, self._lineno)

    def _settle(self, name: str, columns: list[tuple], before: int, cursor: Cursor | None
                ) -> None:
        """A chunk's candidate events (columns) through dedupe and on to the sink."""
        pipeline = self.pipeline
        numbers = list(map(add, columns[NUMBER], repeat(before)))
        if cursor is None or cursor.checkpoint.run_keys is None:
            settle = pipeline._settle  # one at a time: the sink may settle each at once
            events = _events(name, columns, numbers)
            for event, key, text, begin, number in zip(
                    events, columns[KEY], columns[TEXT], columns[BEGIN], numbers,
                    strict=True):
                settle(cursor, event, key, event.time, text or "", (begin, number - 1))
            return
        # Nothing settles them: deduped as a whole, then to the sink.
        known = self._admit(cursor, columns[KEY], columns[TIME], columns[TEXT])
        if known:
            new = [i not in known for i in range(len(numbers))]
            columns = [tuple(compress(column, new)) for column in columns]
            numbers = list(compress(numbers, new))
        pipeline.counters.events += len(numbers)
        sink, events = pipeline.sink, _events(name, columns, numbers)
        submit_all = getattr(sink, "submit_all", None)  # a sink may take them at once
        if submit_all is not None:
            submit_all(events, len(numbers))
            return
        submit = sink.submit
        for event in events:
            submit(event)

    def _count(self, slim: tuple, cursor: Cursor) -> None:
        """A chunk's candidate events as `FileInfo.slim` has them through dedupe, and counted."""
        keys, whens, texts = slim
        new = len(keys) - len(self._admit(cursor, keys, whens, texts))
        self.pipeline.counters.events += new
        self.pipeline.sink.submit_all((), new)

    def _admit(self, cursor: Cursor, keys: Sequence[bytes], whens: Sequence[float | None],
               texts: Sequence[str | None] | None) -> dict[int, str]:
        """A chunk's candidates deduped as a whole: those known already (index -> outcome),
        each said as `Pipeline._known` says it."""
        known = cursor.admit_chunk(keys, whens)
        for i, outcome in known.items():
            self.pipeline._known(outcome, (texts[i] or "") if texts else "")
        return known


def _events(name: str, columns: list[tuple], numbers: list[int]) -> Iterator[Event]:
    """The events of candidate columns, their line numbers in the file being `numbers`."""
    origins = map(Origin, repeat(name), numbers, columns[END])
    return map(Event, *columns[:WIRE], origins, columns[WIRE])
