"""What a parse worker (importer/parallel.py) makes of one chunk: its lines decided by the sieve
in bulk, made into candidate events together, or examined one by one; the candidates as
columns of values, the counters' difference, the malformed lines."""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import fields
from functools import partial
from operator import attrgetter
from typing import TYPE_CHECKING

from parsers.base import Parser

from .events import Event
from .sources import Chunk, Line, Source
from .summary import MALFORMED_SHOWN, difference, snapshot

if TYPE_CHECKING:
    from .bulk import Sieve
    from .bulkevents import EventColumns
    from .parallel import _File
    from .pipeline import Pipeline

_EVENT_FIELDS = tuple(f.name for f in fields(Event)
                      if f.init and f.name not in ("origin", "wire"))
_event_values = attrgetter(*_EVENT_FIELDS)
# A chunk's candidate events go as columns, a tuple each (fewer objects to pickle than a tuple
# per event, and the main process makes the Events with map()): the Event's values, then these.
TIME = _EVENT_FIELDS.index("time")  # the event's time, which dedupe needs too
WIRE, NUMBER, BEGIN, END, KEY, TEXT = range(len(_EVENT_FIELDS), len(_EVENT_FIELDS) + 6)


def examine_chunk(pipeline: Pipeline, parser: Parser, info: _File, chunk: Chunk,
                   malformed: Malformed, sieve: Sieve | None,
                   events: EventColumns | None = None) -> tuple:
    """A chunk's lines: those the sieve decides counted at once, those every filter let
    through made into events together (`events`) where they can be, the others examined one
    by one (with where each begins); (candidates as columns, counter delta, malformed lines,
    lines)."""
    counters = pipeline.counters
    before = snapshot(counters)
    source = Source(info.name, None)
    examine, keyed, texts = pipeline._examine, info.keyed, info.texts
    interned: dict = {}  # repeated strings and header lines pickle once per chunk
    intern = interned.setdefault
    candidates = []
    made = None
    if sieve is not None:
        make = None if events is None else partial(events.make, keyed=keyed,
                                                   values=not info.slim)
        lines, left, made = sieve.split(chunk, parser, counters.filtered, make, texts)
    else:
        lines, left = None, _streamed(chunk)
    line = None
    for line, begin, row in left:  # _examine copies what it keeps of a line
        found = examine(source, line, parser, keyed, row)
        if found is not None:
            event, key, _ = found
            event.user_agent = intern(event.user_agent, event.user_agent)
            event.ip = intern(event.ip, event.ip)
            candidates.append((*_event_values(event), event.wire, line.lineno, begin, line.end,
                               key, line.text if texts else None))
    if lines is None:
        lines = 0 if line is None else line.lineno - chunk.lineno
    counters.lines_read += lines
    columns = [list(column) for column in zip(*candidates, strict=True)]
    if made is not None:
        columns = _together(made, columns, texts)
    wires = columns[WIRE] if columns else ()
    for i, wire in enumerate(wires):  # its header lines repeat as much as user agents do
        if wire is not None:
            wires[i] = (wire[0], [intern(h, h) for h in wire[1]])
    return columns, difference(before, counters), malformed.take(), lines


def _together(made: tuple, columns: list[list], texts: bool) -> list[list]:
    """The candidates' columns of the events made together (`Sieve.split`'s `made`) and of
    those examined one by one, in line order."""
    numbers, begins, ends, lines, (*values, wires, keys) = made
    own = [*values, wires, numbers, begins, ends, keys,
           lines if texts else [None] * len(numbers)]
    if not columns:
        return own
    joined = [mine + theirs for mine, theirs in zip(own, columns, strict=True)]
    order = sorted(range(len(joined[NUMBER])), key=joined[NUMBER].__getitem__)
    return [list(map(column.__getitem__, order)) for column in joined]


def _streamed(chunk: Chunk) -> Iterator[tuple[Line, int, None]]:
    """All the chunk's lines, each with where it begins, none judged (one Line changed in
    place)."""
    begin = chunk.start
    for line in chunk.stream():
        yield line, begin, None
        begin = line.end


class Malformed:
    """A worker's `Pipeline._malformed`: the lines are sent to the main process, which counts
    them and writes --rejects in order. Which ones the summary explains depends on the lines
    before them in other chunks, so each chunk's first few come explained."""

    def __init__(self) -> None:
        self.lines: list[tuple[int, str, str, str | None]] = []
        self.explained = 0

    def __call__(self, source: Source, line: Line, reason: str, explain=None) -> None:
        explained = None
        if explain is not None and self.explained < MALFORMED_SHOWN:
            explained = explain()
            self.explained += 1
        self.lines.append((line.lineno, line.text, reason, explained))

    def take(self) -> list[tuple[int, str, str, str | None]]:
        lines, self.lines, self.explained = self.lines, [], 0
        return lines
