"""The record every parser produces, and the errors it raises.

A parser knows one log format and nothing about Plausible: it turns one line of text into a
`LogRecord`. Everything downstream (events, filters, delivery, export) reads only this record.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .columns import Table

# How many entries a per-line cache (parsed timestamps, client addresses, filter verdicts...) holds
# before it is emptied. Small enough that a run fills them early, so peak memory stays flat as
# logs grow (200,000 entries cost ~30 MB per cache per process); big enough for what repeats.
CACHE_LIMIT = 16_384


def remember(cache: dict, key, value):
    """Put `value` in a per-line cache, first emptying the cache if it is full; returns `value`.
    For a miss: the hit is a plain `cache.get` where it is looked up."""
    if len(cache) >= CACHE_LIMIT:
        cache.clear()
    cache[key] = value
    return value


@dataclass(slots=True)
class LogRecord:
    """One request as a log line described it. Fields the format lacks stay None."""

    time: float | None = None  # UTC, seconds since the epoch
    client_ip: str | None = None  # as logged; may carry a port or brackets
    method: str | None = None
    uri: str | None = None  # request target as logged: path + query (or an absolute URL)
    protocol: str | None = None
    status: int | None = None
    bytes_sent: int | None = None
    referrer: str | None = None  # None when the log says "-" or nothing
    user_agent: str | None = None  # None when the log says "-" or nothing
    host: str | None = None  # virtual host / Host header
    scheme: str | None = None  # "http"/"https" when the log knows it
    xff: str | None = None  # X-Forwarded-For as logged
    content_type: str | None = None
    fields: dict[str, str] = field(default_factory=dict)  # every other named field, raw


class ParseError(ValueError):
    """A line that does not fit the format. `position` is the character offset where it failed."""

    def __init__(self, reason: str, position: int | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.position = position


class SkipLine(Exception):
    """A line that is part of the file's structure, not a request (a W3C `#Fields:` header...).

    `reason` becomes a filter bucket, so such lines are still accounted for."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Parser:
    """Base class of every format. One instance per input file: some formats (W3C, CloudFront)
    learn their columns from a header inside the file."""

    name: str = ""
    description: str = ""
    headers: bool = False  # learns from header lines (`#Fields:`) in the file

    def parse(self, line: str) -> LogRecord:
        raise NotImplementedError

    def keep_fields(self, names: frozenset[str]) -> None:
        """Put only these names in `LogRecord.fields` from now on: what a run reads of them
        (`--prop`). Copying the others is wasted work on every line (CloudFront has ~20 such
        columns). A parser that does not override this keeps them all, which is never wrong."""

    def table(self, texts: Sequence[str], data: bytes | None = None,
              fields: Sequence[str] = ()) -> Table | None:
        """These lines as columns (parsers/columns.py), for deciding many at once; None where
        the parser has no such form (each line is then parsed on its own). `data`: the
        lines' bytes as read, apart by newlines, if at hand; `fields`: those that may be
        read in bulk (reading others may cost more)."""
        return None

    def record(self, item: object) -> LogRecord:
        """What `parse` gives for the line of a table row whose item (raw values) this is,
        without reading the line again. Raises ParseError as `parse` would."""
        raise NotImplementedError
