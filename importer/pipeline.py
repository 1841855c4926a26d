"""The pipeline: sources -> parser -> filters -> events -> sink, with every line counted.

Stages know nothing of each other's internals: a source yields lines, a parser yields
records, the filter chain names a reason or lets a record through, the builder makes an
event, and a sink (the Events API, a CSV export, a dry run) consumes events.
"""
from __future__ import annotations

import itertools
import os
import sys
import time
from dataclasses import dataclass, field
from typing import IO, Protocol

from parsers.base import ParseError, Parser, SkipLine
from parsers.registry import SNIFF_LINES, UnknownFormat, detect, get_parser
from parsers.timefmt import TimeParser

from .events import Event, Origin
from .filters import FilterChain
from .sources import Line, Source, expand_inputs, open_source
from .summary import Counters
from .transform import EventBuilder, MalformedRecord


class Sink(Protocol):
    """Where events go. `submit` may block (back-pressure); `close` finishes and accounts for
    every submitted event in the counters (sent, dead-lettered, undelivered, exported...)."""

    def submit(self, event: Event) -> None: ...

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

    def run(self) -> Counters:
        started = time.monotonic()
        paths = expand_inputs(self.inputs)
        sources = [open_source(p) for p in paths]
        bar = self._progress_bar(sources)
        try:
            for source in sources:
                if self.stop_requested:
                    break
                self._run_source(source, bar)
        finally:
            self.sink.close()
            if bar is not None:
                bar.close()
            self.counters.elapsed_s = time.monotonic() - started
        return self.counters

    def _run_source(self, source: Source, bar) -> None:
        lines = source.lines()
        head = list(itertools.islice(lines, SNIFF_LINES))
        try:
            parser = self._parser_for(head)
        except UnknownFormat as exc:
            # One unreadable file must not stop the others: report it, exit 2 at the end.
            message = f"{source.name}: {exc}"
            print(f"plausible-import: error: {message}", file=sys.stderr)
            self.failed_inputs.append(source.name)
            self.counters.warn(message.splitlines()[0] + " (file skipped)")
            return
        counters = self.counters
        last_position = 0
        for line in itertools.chain(head, lines):
            counters.lines_read += 1
            self._account(source, line, parser)
            if bar is not None and counters.lines_read % 2000 == 0:
                bar.update(source.position - last_position)
                last_position = source.position
                elapsed = bar.format_dict["elapsed"] or 1e-9
                bar.set_postfix_str(f"{counters.lines_read / elapsed:,.0f} lines/s", refresh=False)
            if self.stop_requested:
                break
        if bar is not None:
            bar.update(source.position - last_position)
        if source.warning:
            counters.warn(f"{source.name}: {source.warning}")
        if source.held_back:
            counters.notes["unfinished_last_line"] += 1
            counters.warn(f"{source.name}: its last line is unfinished (the file is still being "
                          "written); the next run reads it")

    def _account(self, source: Source, line: Line, parser: Parser) -> None:
        """Put one line into exactly one bucket (or hand its event to the sink)."""
        counters = self.counters
        if line.invalid_utf8:
            counters.notes["invalid_utf8"] += 1
        if not line.text.strip():
            counters.filter("blank_line")
            return
        try:
            record = parser.parse(line.text)
        except SkipLine as skip:
            counters.filter(skip.reason)
            return
        except ParseError as exc:
            reason = exc.reason
            explain = getattr(parser, "failure_position", None)
            if explain is not None and len(self.counters.malformed_samples) < 5:
                column, expected = explain(line.text)
                reason += f", fails at column {column + 1}" + (
                    f" (expected {expected})" if expected else "")
            self._malformed(source, line, reason)
            return
        reason = self.filters.reason(record)
        if reason is not None:
            counters.filter(reason)
            return
        try:
            event = self.builder.build(record, Origin(source.name, line.lineno, line.end))
        except MalformedRecord as exc:
            self._malformed(source, line, str(exc))
            return
        counters.events += 1
        self.sink.submit(event)

    def _malformed(self, source: Source, line: Line, reason: str) -> None:
        where = f"{source.name}:{line.lineno}"
        self.counters.malformed_line(where, reason)
        if self.rejects is not None:
            self.rejects.write(f"{where}\t{reason}\t{line.text}\n")

    def _parser_for(self, head: list[Line]) -> Parser:
        if self.format:
            return get_parser(self.format, self.times)
        return detect([ln.text for ln in head], self.times)

    def _progress_bar(self, sources: list[Source]):
        if not self.progress:
            return None
        from tqdm import tqdm

        total = sum(s.size for s in sources) or None
        return tqdm(total=total, unit="B", unit_scale=True, file=sys.stderr,
                    desc="reading", dynamic_ncols=True)


def private_file(path: str, mode: str = "w") -> IO[str]:
    """Open a file for raw events or lines (they hold IP addresses): readable by its owner only."""
    flags = os.O_WRONLY | os.O_CREAT | (os.O_APPEND if "a" in mode else os.O_TRUNC)
    fd = os.open(path, flags, 0o600)
    os.fchmod(fd, 0o600)
    return os.fdopen(fd, mode, encoding="utf-8")
