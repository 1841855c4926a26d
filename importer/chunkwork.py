"""What a process that parses chunks of a big file (a parse worker of importer/parallel.py, or
the main process with --workers 1) makes of one chunk: its lines decided by the sieve in bulk,
made into candidate events together, or examined one by one; the candidates as columns of
values, the counters' difference, the malformed lines."""
from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, fields
from functools import partial
from operator import attrgetter
from typing import TYPE_CHECKING

from parsers.base import ParseError, Parser, SkipLine

from .bulk import Sieve
from .bulkevents import EventColumns
from .events import Event
from .sources import Chunk, Line, Source, Span
from .summary import MALFORMED_SHOWN, difference, snapshot

if TYPE_CHECKING:
    from .pipeline import Pipeline

_EVENT_FIELDS = tuple(f.name for f in fields(Event)
                      if f.init and f.name not in ("origin", "wire"))
_event_values = attrgetter(*_EVENT_FIELDS)
# A chunk's candidate events go as columns, a tuple each (fewer objects to pickle than a tuple
# per event, and the main process makes the Events with map()): the Event's values, then these.
TIME = _EVENT_FIELDS.index("time")  # the event's time, which dedupe needs too
WIRE, NUMBER, BEGIN, END, KEY, TEXT = range(len(_EVENT_FIELDS), len(_EVENT_FIELDS) + 6)


@dataclass(frozen=True)
class FileInfo:
    """What a chunk's examiner needs to know about the file the chunk is from."""

    seq: int  # which file of the run: the examiner makes a new parser when it changes
    name: str
    head: tuple[str, ...]  # the first lines, which the main process detected the format on
    keyed: bool  # dedupe keys wanted (a checkpoint is in use)
    texts: bool  # the candidates' line texts wanted (--explain samples)
    path: str | None = None  # a plain file: chunks may come as a `Span` to read from it
    # Only what dedupe and the counters need of the candidates is wanted (the sink counts
    # them): (keys, times, texts or None) for the columns, not ~1 KiB an event to pickle.
    slim: bool = False
    headers: bool = False  # the parser learns from header lines: those of each chunk wanted


class Examiner:
    """What a process that parses chunks keeps from one to the next (made once in each
    worker, or once a run in the main process): the sieve, the event columns, the parser of
    the current file, the descriptor its `Span`s are read from. Its pipeline is a worker's
    while `posing()`: malformed lines kept for the main process to count in order, events made
    without origins (the main process makes them again with their line numbers)."""

    def __init__(self, pipeline: Pipeline, in_process: bool = False) -> None:
        """`in_process`: examining in the main process, whose counters the examination counts
        into (no difference to send, and only the summary's missing samples explained)."""
        self.pipeline, self.in_process = pipeline, in_process
        samples = pipeline.counters.malformed_samples
        self.malformed = Malformed(samples.__len__ if in_process else None)
        self.current, self.parser, self.file = 0, None, PlainFile()
        self.sieve = Sieve.of(pipeline.filters, pipeline.counters.explain)
        self.events = EventColumns.of(pipeline.builder, pipeline.checkpoint, pipeline.prepare) \
            if self.sieve is not None and self.sieve.complete else None
        if self.events is not None:
            self.sieve.read_too(self.events.fields)

    @contextlib.contextmanager
    def posing(self) -> Iterator[None]:
        """The pipeline as a chunk's examination needs it, then as it was: its `_malformed`
        is this examiner's while posing (an instance attribute hiding the method; deleted
        after, unless the pipeline had one of its own), its events made without origins."""
        pipeline = self.pipeline
        own = vars(pipeline).get("_malformed"), pipeline.origins
        pipeline._malformed, pipeline.origins = self.malformed, False
        try:
            yield
        finally:
            if own[0] is None:
                del pipeline._malformed  # the method again
            else:
                pipeline._malformed = own[0]
            pipeline.origins = own[1]

    def __call__(self, info: FileInfo, seq: int, chunk: Chunk | Span, headers: tuple[str, ...]
                 ) -> tuple:
        """(seq, candidates, counter delta, malformed lines, line count, the chunk's header
        lines) of a chunk read after the header lines `headers`; (seq, None) for a `Span`
        whose bytes changed."""
        pipeline = self.pipeline
        if info.seq != self.current:
            self.open(info)
        if isinstance(chunk, Span):
            data = self.file.read(chunk)
            if data is None:
                return seq, None  # changed: the main process sends the bytes
            chunk = Chunk(data, 0, chunk.start, chunk.end)
        parser = self.parser
        for text in headers:  # the columns in force where this chunk starts
            with contextlib.suppress(ParseError, SkipLine, ValueError):
                parser.parse(text)
        examined = examine_chunk(pipeline, parser, info, chunk, self.malformed, self.sieve,
                                 self.events, delta=not self.in_process)
        if info.slim and examined[0]:
            columns = examined[0]
            texts = columns[TEXT] if info.texts else None
            examined = ((columns[KEY], columns[TIME], texts), *examined[1:])
        found: dict[str, str] = {}
        if info.headers:
            scan_headers(chunk.data, found)
        return (seq, *examined, tuple(found.values()))

    def open(self, info: FileInfo, parser: Parser | None = None) -> None:
        """The file of `info` from now on: its parser (`parser`, the main process's own when
        examining there, or one made on the first lines the main process detected it on)
        and the descriptor its `Span`s are read from."""
        self.parser = parser or self.pipeline._parser_for(
            [Line(n, 0, text) for n, text in enumerate(info.head, 1)])
        self.current = info.seq
        self.file.open(info.path)

    def close(self) -> None:
        self.file.close()


def examine_chunk(pipeline: Pipeline, parser: Parser, info: FileInfo, chunk: Chunk,
                   malformed: Malformed, sieve: Sieve | None,
                   events: EventColumns | None = None, delta: bool = True) -> tuple:
    """A chunk's lines: those the sieve decides counted at once, those every filter let
    through made into events together (`events`) where they can be, the others examined one
    by one (with where each begins); (candidates as columns, counter delta (empty without
    `delta`: the counters are the run's own), malformed lines, lines)."""
    counters = pipeline.counters
    # Only a worker's counters are a copy. The run's own are not read here while the sending
    # thread may add to them (it would change a dict under `snapshot`'s walk).
    before = snapshot(counters) if delta else None
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
    return columns, {} if before is None else difference(before, counters), \
        malformed.take(), lines


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
    """An examiner's `Pipeline._malformed`: the lines go to the main process's, which counts
    them and writes --rejects in order. Which ones the summary explains depends on the lines
    before them in other chunks, so each chunk's first few come explained: all it may show,
    or (`shown`: how many the summary shows already, in the main process) the rest."""

    def __init__(self, shown: Callable[[], int] | None = None) -> None:
        self.lines: list[tuple[int, str, str, str | None]] = []
        self.explained = 0
        self.shown = shown

    def __call__(self, source: Source, line: Line, reason: str, explain=None) -> None:
        explained = None
        wanted = MALFORMED_SHOWN - (self.shown() if self.shown is not None else 0)
        if explain is not None and self.explained < wanted:
            explained = explain()
            self.explained += 1
        self.lines.append((line.lineno, line.text, reason, explained))

    def take(self) -> list[tuple[int, str, str, str | None]]:
        lines, self.lines, self.explained = self.lines, [], 0
        return lines


class PlainFile:
    """The descriptor of the plain file an examiner's chunks come from as `Span`s."""

    def __init__(self) -> None:
        self.fd: int | None = None

    def open(self, path: str | None) -> None:
        self.close()
        if path is not None:
            with contextlib.suppress(OSError):  # gone: each span is then sent whole
                self.fd = os.open(path, os.O_RDONLY)

    def read(self, span: Span) -> bytes | None:
        """The span's bytes, or None if they are not the ones the main process found."""
        return self.read_fd(self.fd, span)

    @staticmethod
    def read_fd(fd: int | None, span: Span) -> bytes | None:
        if fd is None:
            return None
        try:
            data = os.pread(fd, span.end - span.start, span.start)
        except OSError:
            return None
        return data if len(data) == span.end - span.start and data.endswith(span.tail) \
            else None

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


# -- header lines (W3C, CloudFront): their latest version is replayed before each chunk -------

def remember_header(headers: dict[str, str], text: str) -> None:
    text = text.lstrip("\ufeff")
    if text.startswith("#"):
        headers[text.split(":", 1)[0].split(" ", 1)[0]] = text


def scan_headers(data: bytes, headers: dict[str, str]) -> None:
    # One byte is found at memchr speed, two at a tenth of it: most logs have no "#" at all.
    if b"#" not in data or not (data.startswith((b"#", b"\xef\xbb\xbf#")) or b"\n#" in data):
        return
    for raw in data.split(b"\n"):
        if raw.startswith((b"#", b"\xef\xbb\xbf#")):
            remember_header(headers, raw.rstrip(b"\r").decode("utf-8", "replace"))
