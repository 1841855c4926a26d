"""The event: what one page visit (or custom event) becomes, for either outlet.

`send` posts `Event.body()` with `Event.headers()`; `export` aggregates events into CSV rows.
An event also remembers where it came from (`origin`), so checkpoints and error messages can
point back at the file and line.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import NamedTuple


class Origin(NamedTuple):  # a tuple: made for every event, at a third of a dataclass's cost
    """Where a line was read: a source file, its line number and the stream offset after it."""

    source: str
    lineno: int
    offset: int = 0

    def __str__(self) -> str:
        return f"{self.source}:{self.lineno}"


@dataclass(slots=True)
class Event:
    name: str  # "pageview", "404", "File Download", ...
    url: str  # full URL: scheme://host/path?query
    domain: str  # Plausible site domain(s), comma-separated as the API accepts
    ip: str  # exactly one client address, sent as X-Forwarded-For
    user_agent: str  # sent byte for byte as User-Agent ("" when the log had none)
    time: float | None  # when the request happened (UTC epoch); the API can't take it
    referrer: str | None = None
    props: dict[str, str] = field(default_factory=dict)
    origin: Origin | None = None
    # The request as sent (JSON body, header lines), when made ahead (delivery.encode_request)
    wire: tuple[bytes, list[bytes]] | None = field(default=None, repr=False, compare=False)

    @property
    def visitor(self) -> tuple[str, str, str]:
        """The key Plausible hashes into a visitor id (besides the daily salt)."""
        return (self.ip, self.user_agent, self.domain)

    def body(self) -> dict:
        body: dict = {"name": self.name, "url": self.url, "domain": self.domain}
        if self.referrer:
            body["referrer"] = self.referrer
        if self.props:
            body["props"] = self.props
        return body

    def headers(self) -> dict[str, str]:
        return {
            "User-Agent": self.user_agent,
            "X-Forwarded-For": self.ip,
            "Content-Type": "application/json",
        }

    def to_json_line(self) -> str:
        """The inspectable form written by `--output`: body, headers and the logged time."""
        when = None
        if self.time is not None:
            when = datetime.fromtimestamp(self.time, UTC).isoformat().replace("+00:00", "Z")
        record = {"time": when, "body": self.body(), "headers": self.headers()}
        if self.origin is not None:
            record["origin"] = str(self.origin)
        return json.dumps(record, ensure_ascii=False, separators=(",", ":"))
