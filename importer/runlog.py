"""What a run says, for a person at a terminal, for cron (`--quiet`) and for machines
(`--log-json`).

Every module reports on stderr with one line a message: "plausible-import: error: ...",
"plausible-import: warning: ..." or "plausible-import: ..." (information). Rather than teach each
module two more modes, the stream is swapped: under --quiet or --log-json, sys.stderr becomes a
MessageStream that reads each line's level, drops what --quiet does not want (anything but
errors), and writes the rest as is or as one JSON object a line:

    {"time": "2026-11-26T13:05:01.042Z", "level": "warning", "message": "...", "job": "blog"}

A line it cannot place (a traceback, Python's own warnings) counts as an error: shown, never
dropped. The summary ends a run as one line (--quiet) or one object with "summary" (--log-json).
"""
from __future__ import annotations

import io
import json
import re
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, TextIO

from .summary import Counters

PREFIX = "plausible-import: "
# "plausible-import: warning: ...", and argparse's "plausible-import send: error: ..."
LEVEL = re.compile(r"plausible-import(?: [\w-]+)?: (?:(error|warning): )?")
OUTCOMES = (("sent", "sent"), ("exported", "exported"), ("dry_run", "dry run"),
            ("undelivered", "undelivered"), ("dead_lettered", "dead-lettered"))


class MessageStream(io.TextIOBase):
    """Stands in for sys.stderr: each line written is one message, kept or dropped by level."""

    def __init__(self, target: TextIO, *, quiet: bool, as_json: bool, **fields: Any) -> None:
        self.target, self.quiet, self.as_json = target, quiet, as_json
        self.fields = {k: v for k, v in fields.items() if v is not None}
        self.partial = ""
        self.lock = threading.Lock()  # delivery threads warn too

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        # A message ends with a write that ends a line (print() writes its "\n" apart), so a
        # block written at once, like argparse's usage, stays one message; a line that starts
        # with our prefix starts a new one.
        with self.lock:
            self.partial += text
            if self.partial.endswith("\n"):
                block, self.partial = self.partial[:-1], ""
                message: list[str] = []
                for line in block.split("\n"):
                    if message and LEVEL.match(line):
                        self._emit("\n".join(message))
                        message = []
                    message.append(line)
                self._emit("\n".join(message))
        return len(text)

    def flush(self) -> None:
        self.target.flush()

    def finish(self) -> None:
        with self.lock:
            if self.partial:
                self._emit(self.partial)
                self.partial = ""
        self.flush()

    def message(self, text: str, level: str, keep: bool = False, **extra: Any) -> None:
        """One message of a known level; `keep` shows it even under --quiet."""
        with self.lock:
            self._write(level, text, f"{PREFIX}{level}: {text}", keep, extra)

    def _emit(self, line: str) -> None:
        match = LEVEL.match(line)
        if match is None:
            level, text = "error", line
        else:
            level, text = match.group(1) or "info", line[match.end():]
        self._write(level, text, line, False, {})

    def _write(self, level: str, text: str, line: str, keep: bool, extra: dict) -> None:
        if self.quiet and level != "error" and not keep:
            return
        if self.as_json:
            now = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
            line = json.dumps({"time": now, "level": level, "message": text, **self.fields,
                               **extra}, ensure_ascii=False, default=str)
        self.target.write(line + "\n")
        self.target.flush()


@contextmanager
def messages(quiet: bool, as_json: bool, **fields: Any) -> Iterator[None]:
    """Route stderr through a MessageStream while --quiet or --log-json is on."""
    if not (quiet or as_json):
        yield
        return
    previous = sys.stderr
    target = previous.target if isinstance(previous, MessageStream) else previous
    stream = MessageStream(target, quiet=quiet, as_json=as_json, **fields)
    sys.stderr = stream
    try:
        yield
    finally:
        stream.finish()
        sys.stderr = previous


def errors(text: str) -> None:
    """One error line per line of `text`."""
    for line in text.splitlines():
        print(f"{PREFIX}error: {line}", file=sys.stderr)


def summary_line(counters: Counters, job: str | None = None) -> str:
    """The whole summary in one line, for cron mail and `--quiet`."""
    outcomes = ", ".join(f"{getattr(counters, key):,} {label}"
                         for key, label in OUTCOMES if getattr(counters, key))
    return (PREFIX + (f"job {job}: " if job else "")
            + f"{counters.lines_read:,} lines, {counters.events:,} events"
            + (f" ({outcomes})" if outcomes else "")
            + f", {sum(counters.filtered.values()):,} filtered, {counters.duplicates:,} "
            f"duplicates, {counters.malformed:,} malformed in {counters.elapsed_s:.1f}s")


def summarize(counters: Counters, args: Any, **details: Any) -> bool:
    """Say the summary the --quiet or --log-json way; False when neither is on (the caller
    prints its own). `details` (e.g. export=...) go into the JSON object."""
    quiet, as_json = getattr(args, "quiet", False), getattr(args, "log_json", False)
    if not (quiet or as_json):
        return False
    line = summary_line(counters, getattr(args, "job", None))
    stream = sys.stderr
    if not isinstance(stream, MessageStream):  # called outside `messages()`
        print(line, file=stream)
    elif as_json:
        for warning in counters.warnings:
            stream.message(warning, "warning")
        details = {k: v for k, v in details.items() if v is not None}
        stream.message(line.removeprefix(PREFIX), "info", keep=True,
                       summary={**counters.as_dict(), **details})
    elif getattr(args, "output", None) == "-":  # stdout carries the events
        stream.message(line.removeprefix(PREFIX), "info", keep=True)
    else:
        print(line)
    return True
