"""The pipeline: sources -> parser -> filters -> events -> sink, with every line counted.

Stages know nothing of each other's internals: a source yields lines, a parser yields
records, the filter chain names a reason or lets a record through, the builder makes an
event, and a sink (the Events API, a CSV export, a dry run) consumes events.
"""
from __future__ import annotations

import contextlib
import itertools
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import IO, Protocol

from parsers.base import ParseError, Parser, SkipLine
from parsers.registry import SNIFF_LINES, UnknownFormat, detect, explain_failure, get_parser
from parsers.timefmt import TimeParser

from .cursor import DUPLICATE, Cursor, Position
from .events import Event, Origin
from .filters import FilterChain
from .follow import Follower
from .parallel import runner
from .sources import Line, Source, expand_inputs, open_source
from .state import Checkpoint
from .summary import MALFORMED_SHOWN, Counters, show_progress
from .transform import EventBuilder, MalformedRecord


class Sink(Protocol):
    """Where events go. `submit` may block (back-pressure); `close` finishes and accounts for
    every submitted event in the counters (sent, dead-lettered, undelivered, exported...)."""

    def submit(self, event: Event) -> None: ...

    # Optional, where events are deduped a chunk at a time: `submit_all(events, count)`,
    # `submit` of each of `count` events, which `events` may make only as they are read;
    # and `counts_only`, true where submit_all never reads `events` (they need not be made).

    def stop(self) -> None:
        """Ctrl-C / SIGTERM / a fatal answer: give up what is not yet final, soon."""

    def close(self) -> None: ...


@dataclass
class Pipeline:
    inputs: list[str]
    builder: EventBuilder
    sink: Sink
    counters: Counters
    format: str | None = None  # None: detect per file
    filters: FilterChain = field(default_factory=FilterChain)
    times: TimeParser = field(default_factory=TimeParser)
    progress: bool = False
    rejects: IO[str] | None = None
    stop_requested: bool = False
    failed_inputs: list[str] = field(default_factory=list)
    # Where each file got to and which events were sent (state.py); None: read all, no dedupe.
    checkpoint: Checkpoint | None = None
    follow: bool = False  # after the inputs, keep reading them as they grow (needs checkpoint)
    workers: int = 1  # processes parsing big files (parallel.py); 1: all in this one
    # Per-event work for the sink that may be done ahead, in the parse workers when there are
    # some (delivery.encode_request: the request's body and headers).
    prepare: Callable[[Event], None] | None = None
    # Whether events remember their line (Event.origin): not where chunks are examined (the
    # parse workers, or this process with --workers 1), whose events are made again, with
    # their line numbers in the file (importer/chunkapply.py).
    origins: bool = True

    def run(self) -> Counters:
        started = time.monotonic()
        follower = None
        if self.follow:
            follower = Follower(self.inputs, self.checkpoint, self._poll, self._stopped)
        paths = expand_inputs(self.inputs)
        sources = [open_source(p) for p in paths]
        bar = self._progress_bar(sources)
        self._workers = runner(self, self.workers)
        try:
            for source in sources:
                if self.stop_requested:
                    break
                self._run_source(source, bar)
            if follower is not None:
                follower.run()
        finally:
            self._workers.close()
            self.sink.close()
            if bar is not None:
                bar.close()
            self.counters.elapsed_s = time.monotonic() - started
        return self.counters

    def _poll(self, source: Source) -> None:
        self._run_source(source, None, polling=True)

    def _stopped(self) -> bool:
        return self.stop_requested

    def _run_source(self, source: Source, bar, polling: bool = False) -> None:
        counters = self.counters
        cursor = self.checkpoint.open(source) if self.checkpoint is not None else None
        start, lineno = cursor.start if cursor is not None else (0, 0)
        if lineno and not polling:
            counters.notes["already_imported_lines"] += lineno
        if cursor is not None and cursor.up_to_date:
            return
        lines = source.lines()
        head = list(itertools.islice(lines, SNIFF_LINES))
        try:
            parser = self._parser_for(head)
        except UnknownFormat as exc:
            if len(head) < SNIFF_LINES and not any(line.text.strip() for line in head):
                # Nothing to tell a format by, and nothing to import: an empty file (a log
                # just rotated), blank lines (counted before any parsing), a first line still
                # being written (the next run reads it). Not an error.
                parser = None
            else:
                # One unreadable file must not stop the others: report it, exit 2 at the end.
                print(f"plausible-import: error: {source.name}: {exc}", file=sys.stderr)
                self.failed_inputs.append(source.name)
                self.counters.warn(f"{source.name}: {exc.summary} (file skipped)")
                return
        sniffed = head
        if start:
            head, lines = _resume(parser, head, lines, source, start, lineno)
        if not polling and parser is not None and self._workers.takes(source):  # by chunks
            lines.close()
            self._workers.run(source, sniffed, start, lineno, cursor, bar, parser)
        else:
            self._read(source, itertools.chain(head, lines), parser, cursor, bar)
        if cursor is not None:
            cursor.finish(reached_end=not self.stop_requested and not source.held_back)
        if source.warning:
            counters.warn(f"{source.name}: {source.warning}")
        if source.held_back and not polling:
            counters.notes["unfinished_last_line"] += 1
            counters.warn(f"{source.name}: its last line is unfinished (the file is still being "
                          "written); the next run reads it")

    def _before_fork(self, parser: Parser, head: list[Line]) -> None:
        """What each parse worker would load, loaded once here, where they are forked from:
        device-detector, when the bot filter is on and most user agents of the first lines
        are new (not classified by earlier runs). Not on a rerun, whose user agents are known
        but for a few that earlier runs never classified: those of lines that an earlier
        filter (static files, --exclude-*) drops before the bot filter."""
        if not self.filters.classifies_user_agents:
            return
        from .useragents import classifier, preload

        agents = set()
        for line in head:
            try:
                agents.add(parser.parse(line.text).user_agent or "")
            except (ParseError, SkipLine, ValueError):
                continue
        agents.discard("")
        if 2 * sum(map(classifier.is_new, agents)) > len(agents):
            preload()

    def _read(self, source: Source, lines, parser: Parser | None, cursor: Cursor | None,
              bar) -> None:
        counters = self.counters
        examine, settle, keyed = self._examine, self._settle, cursor is not None
        last_position = 0
        for line in lines:
            # Each line into exactly one bucket (or its event to the sink): the hot loop.
            counters.lines_read += 1
            found = examine(source, line, parser, keyed)
            if found is not None:
                settle(cursor, *found, line.text)
            if keyed:
                cursor.advance(line.end, line.lineno)
            if bar is not None and counters.lines_read % 2000 == 0:
                last_position = show_progress(bar, source.position, last_position,
                                              counters.lines_read)
            if self.stop_requested:
                break
        if bar is not None:
            bar.update(source.position - last_position)

    def _examine(self, source: Source, line: Line, parser: Parser, keyed: bool,
                 row: object = None) -> tuple[Event, bytes, float | None] | None:
        """Parse, filter, build: the per-line work that needs no run-wide state, which the
        examination of a big file's chunks does too (importer/chunkwork.py, in the worker
        processes or, with --workers 1, here). Counts a line that ends here; returns
        (event, dedupe key, time) for one that may become an event. `row`: the line's
        item in a table (parsers/columns.py) whose fields every filter let through
        (importer/bulk.py): its record is made from it, and not filtered again."""
        counters = self.counters
        text = line.text
        if line.invalid_utf8:
            counters.notes["invalid_utf8"] += 1
        if not text or text.isspace():  # as `not text.strip()`, without a copy
            counters.filter("blank_line")
            return None
        try:
            record = parser.parse(text) if row is None else parser.record(row)
        except SkipLine as skip:
            counters.filter(skip.reason, text)
            return None
        except ParseError as exc:
            self._malformed(source, line, exc.reason,
                            explain=lambda e=exc: _explain(parser, text, e))
            return None
        reason = None if row is not None else self.filters.reason(record)
        if reason is not None:
            counters.filter(reason, text)
            return None
        try:
            event = self.builder.build(
                record, Origin(source.name, line.lineno, line.end) if self.origins else None)
        except MalformedRecord as exc:
            self._malformed(source, line, str(exc))
            return None
        if self.prepare is not None:
            self.prepare(event)
        return event, self.checkpoint.key(record) if keyed else b"", record.time

    def _settle(self, cursor: Cursor | None, event: Event, key: bytes, when: float | None,
                text: str, start: Position | None = None) -> None:
        """Dedupe, then the sink: run-wide state, so in this process and in log order.
        `start`: where the event's line begins, if the cursor has not been advanced to it."""
        if cursor is not None:
            known = cursor.admit(event, key, when, start)  # first: the sink may settle it at once
            if known is not None:
                self._known(known, text)
                return
        self.counters.events += 1
        self.sink.submit(event)

    def _known(self, outcome: str, text: str) -> None:
        """Count a line whose event dedupe recognised (`Cursor.admit`'s answer)."""
        if outcome == DUPLICATE:
            self.counters.duplicates += 1
        else:
            self.counters.filter(outcome, text)

    def _malformed(self, source: Source, line: Line, reason: str,
                   explain: Callable[[], str] | None = None) -> None:
        """Count a malformed line, and write it to --rejects. The first few shown also say
        where they stop fitting: `explain` gives that reason, slowly."""
        if explain is not None and len(self.counters.malformed_samples) < MALFORMED_SHOWN:
            reason = explain()
        where = f"{source.name}:{line.lineno}"
        self.counters.malformed_line(where, reason)
        if self.rejects is not None:
            self.rejects.write(f"{where}\t{reason}\t{line.text}\n")

    def _parser_for(self, head: list[Line]) -> Parser:
        if self.format:
            parser = get_parser(self.format, self.times)
        else:
            parser = detect([ln.text for ln in head], self.times)
        # Filters read no opaque field; events only those their props name.
        parser.keep_fields(self.builder.fields_read)
        return parser

    def _progress_bar(self, sources: list[Source]):
        if not self.progress:
            return None
        from tqdm import tqdm

        total = sum(s.size for s in sources) or None
        return tqdm(total=total, unit="B", unit_scale=True, file=sys.stderr,
                    desc="reading", dynamic_ncols=True)


def _explain(parser: Parser, text: str, exc: ParseError) -> str:
    column, detail = explain_failure(parser, text, exc)
    return exc.reason + f", fails at column {column + 1}" + (
        f" ({detail})" if detail != exc.reason else "")


def _resume(parser: Parser | None, head: list[Line], lines, source: Source, start: int,
            lineno: int):
    """Continue at `start`, where an earlier run got to. The parser (if any: see `_run_source`)
    still sees the lines before it among the first ones read: a W3C or CloudFront header there
    names the columns."""
    for line in head:
        if line.end > start or parser is None:
            break
        with contextlib.suppress(ParseError, SkipLine):
            parser.parse(line.text)
    if head and head[-1].end >= start:
        return [line for line in head if line.end > start], lines
    lines.close()
    return [], source.lines(start, lineno)


def private_file(path: str, mode: str = "w") -> IO[str]:
    """Open a file for raw events or lines (they hold IP addresses): readable by its owner only."""
    flags = os.O_WRONLY | os.O_CREAT | (os.O_APPEND if "a" in mode else os.O_TRUNC)
    fd = os.open(path, flags, 0o600)
    os.fchmod(fd, 0o600)
    return os.fdopen(fd, mode, encoding="utf-8")
