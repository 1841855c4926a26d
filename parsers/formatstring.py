"""One compiler for text log formats: nginx `log_format` and Apache `LogFormat` strings.

Every text preset (combined, common, vhost variants, ...) and every format a user pastes from
their server config goes through `compile_format`, so there is one regex builder and one
field mapping, not a hand-written regex per format.
"""
from __future__ import annotations

import codecs
import re
from collections.abc import Callable
from dataclasses import dataclass

from .base import LogRecord, ParseError, Parser
from .timefmt import TimeParser

# How a value is matched and converted. `quoted` patterns apply inside "...".
_QUOTED = r'[^"\\]*(?:\\.[^"\\]*)*'
_CLF_TIME = r"\d{1,2}/\w{3}/\d{4}:\d\d:\d\d:\d\d(?:\.\d+)?(?: [+-]\d{4})?"


@dataclass(frozen=True, slots=True)
class Kind:
    pattern: str  # unquoted
    quoted: str = _QUOTED


WORD = Kind(r"\S*")
INT = Kind(r"-|\d+", r"-|\d*")
CLF = Kind(_CLF_TIME, _CLF_TIME)
BRACKETED_CLF = Kind(r"\[" + _CLF_TIME + r"\]")
ISO = Kind(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:?\d\d)?")
EPOCH = Kind(r"\d+(?:\.\d+)?")
REQUEST = Kind(r"\S+ \S+(?: \S+)?")
TEXT = Kind(r"\S*")

# variable -> (what it fills, how it is matched). Targets are LogRecord fields, or one of the
# composite targets handled in `_build`: request, path, query, time:<how>.
NGINX_VARIABLES: dict[str, tuple[str, Kind]] = {
    "remote_addr": ("client_ip", WORD),
    "time_local": ("time:clf", CLF),
    "time_iso8601": ("time:iso", ISO),
    "msec": ("time:epoch", EPOCH),
    "request": ("request", REQUEST),
    "request_method": ("method", WORD),
    "request_uri": ("uri", WORD),
    "uri": ("path", WORD),
    "document_uri": ("path", WORD),
    "args": ("query", WORD),
    "query_string": ("query", WORD),
    "server_protocol": ("protocol", WORD),
    "status": ("status", INT),
    "body_bytes_sent": ("bytes_sent", INT),
    "bytes_sent": ("bytes_sent", INT),
    "http_referer": ("referrer", TEXT),
    "http_user_agent": ("user_agent", TEXT),
    "host": ("host", WORD),
    "http_host": ("host", WORD),
    "server_name": ("host", WORD),
    "scheme": ("scheme", WORD),
    "http_x_forwarded_for": ("xff", TEXT),
    "sent_http_content_type": ("content_type", TEXT),
}

APACHE_DIRECTIVES: dict[str, tuple[str, Kind]] = {
    "h": ("client_ip", WORD),
    "a": ("client_ip", WORD),
    "t": ("time:clf", BRACKETED_CLF),
    "r": ("request", REQUEST),
    "m": ("method", WORD),
    "U": ("path", WORD),
    "q": ("query", WORD),
    "H": ("protocol", WORD),
    "s": ("status", INT),
    ">s": ("status", INT),
    "<s": ("status", INT),
    "b": ("bytes_sent", INT),
    "B": ("bytes_sent", INT),
    "O": ("bytes_sent", INT),
    "v": ("host", WORD),
    "V": ("host", WORD),
    "{referer}i": ("referrer", TEXT),
    "{user-agent}i": ("user_agent", TEXT),
    "{x-forwarded-for}i": ("xff", TEXT),
    "{host}i": ("host", WORD),
    "{content-type}o": ("content_type", TEXT),
    "{sec}t": ("time:epoch", EPOCH),
    "{msec}t": ("time:msec", EPOCH),
    "{usec}t": ("time:usec", EPOCH),
}

# Readable names for Apache directives kept as opaque fields (usable with --prop).
APACHE_FIELD_NAMES = {"l": "ident", "u": "remote_user", "p": "port", "D": "request_time_us",
                      "T": "request_time_s", "P": "pid", "X": "connection_status", "I": "bytes_in"}

_NGINX_TOKEN = re.compile(r"\$(?:\{(\w+)\}|(\w+))")
_APACHE_TOKEN = re.compile(r"%([<>]?)!?[\d,]*(\{[^}]*\})?([a-zA-Z%])")


@dataclass(frozen=True, slots=True)
class Field:
    name: str  # as written in the format (for messages and --prop)
    target: str  # LogRecord field, composite target, or "fields" (opaque)
    pattern: str


def tokenize(family: str, fmt: str) -> list[str | Field]:
    """Split a format string into literal text and `Field`s."""
    if family == "nginx":
        token_re, resolve = _NGINX_TOKEN, _nginx_field
    elif family == "apache":
        token_re, resolve = _APACHE_TOKEN, _apache_field
    else:
        raise ValueError(f"unknown format family {family!r} (use nginx: or apache:)")
    parts: list[str | Field] = []
    pos = 0
    for m in token_re.finditer(fmt):
        if m.start() > pos:
            parts.append(fmt[pos:m.start()])
        quoted = fmt[m.start() - 1:m.start()] == '"' and fmt[m.end():m.end() + 1] == '"'
        item = resolve(m, quoted)
        parts.append(item)
        pos = m.end()
    if pos < len(fmt):
        parts.append(fmt[pos:])
    return _merge_literals(parts)


def _nginx_field(m: re.Match, quoted: bool) -> Field:
    name = m.group(1) or m.group(2)
    target, kind = NGINX_VARIABLES.get(name, ("fields", TEXT if quoted else WORD))
    return Field(name, target, kind.quoted if quoted else kind.pattern)


def _apache_field(m: re.Match, quoted: bool) -> str | Field:
    modifier, arg, letter = m.group(1), m.group(2) or "", m.group(3)
    if letter == "%":
        return "%"
    key = (modifier + letter) if modifier and letter == "s" else (arg.lower() + letter)
    found = APACHE_DIRECTIVES.get(key)
    if found is None and arg and letter == "t":
        layout = arg[1:-1].replace("begin:", "").replace("end:", "")
        return Field(m.group(0), "time:strftime:" + layout, r"[^\]\"]+?" if not quoted else _QUOTED)
    if found is None:
        name = arg[1:-1] if arg else APACHE_FIELD_NAMES.get(letter, letter)
        return Field(name, "fields", _QUOTED if quoted else r"\S*")
    target, kind = found
    return Field(m.group(0), target, kind.quoted if quoted else kind.pattern)


def _merge_literals(parts: list[str | Field]) -> list[str | Field]:
    merged: list[str | Field] = []
    for part in parts:
        if isinstance(part, str) and merged and isinstance(merged[-1], str):
            merged[-1] += part
        else:
            merged.append(part)
    return merged


def _literal_pattern(text: str) -> str:
    # A single space in a format may be several in a log (aligned columns); be lenient.
    return "".join(r"\s+" if ch == " " else re.escape(ch) for ch in text)


def _unescape(value: str) -> str:
    """Undo the server's escaping (nginx `\\x22`, Apache `\\"`) to recover the bytes sent."""
    raw = codecs.escape_decode(value.encode("utf-8", "surrogateescape"))[0]
    return raw.decode("utf-8", "replace")


class FormatParser(Parser):
    """A parser compiled from a format string. Fast path: one anchored regex per line."""

    def __init__(self, family: str, fmt: str, *, name: str = "", description: str = "",
                 time_parser: TimeParser | None = None) -> None:
        self.family = family
        self.format = fmt
        self.name = name or f"{family}:{fmt}"
        self.description = description
        self.times = time_parser or TimeParser()
        self.parts = tokenize(family, fmt)
        self.fields = [p for p in self.parts if isinstance(p, Field)]
        pattern = "".join(
            _literal_pattern(p) if isinstance(p, str) else f"({p.pattern})" for p in self.parts)
        self.regex = re.compile(pattern + r"\s*$")
        self._setters = [self._setter(f) for f in self.fields]

    def _setter(self, f: Field) -> Callable[[dict, str], None]:
        target = f.target
        if target == "fields":
            return lambda out, v, n=f.name: out["fields"].__setitem__(n, v)
        if target.startswith("time:"):
            how = target[5:]
            times = self.times
            convert = {
                "clf": times.clf, "iso": times.iso, "epoch": times.epoch,
                "msec": lambda v: times.epoch(v, 1e3), "usec": lambda v: times.epoch(v, 1e6),
            }.get(how) or (lambda v, layout=how[9:]: times.strptime(v.strip("[]"), layout))
            return lambda out, v: out.__setitem__("time", convert(v))
        if target in ("status", "bytes_sent"):
            return lambda out, v: out.__setitem__(target, int(v) if v.isdigit() else None)
        return lambda out, v: out.__setitem__(target, v)

    def parse(self, line: str) -> LogRecord:
        m = self.regex.match(line)
        if m is None:
            raise ParseError(f"does not match {self.name}")
        out: dict = {"fields": {}}
        try:
            for setter, value in zip(self._setters, m.groups(), strict=True):
                if "\\" in value:
                    value = _unescape(value)
                setter(out, value)
        except ValueError as exc:
            raise ParseError(str(exc)) from None
        return _build(out)

    def failure_position(self, line: str) -> tuple[int, str]:
        """Where a non-matching line stops fitting: (offset, what was expected there).

        Only used to explain the first few failures, so it may be slow."""
        best = (0, self.fields[0].name if self.fields else "end of line")
        for i in range(1, len(self.parts) + 1):
            prefix = "".join(
                _literal_pattern(p) if isinstance(p, str) else f"(?:{p.pattern})"
                for p in self.parts[:i])
            m = re.match(prefix, line)
            if m is None:
                part = self.parts[i - 1]
                expected = repr(part) if isinstance(part, str) else "$" + part.name
                return best[0], expected
            best = (m.end(), "")
        return best[0], "end of line"


def _dash(value: str | None) -> str | None:
    return None if value in (None, "", "-") else value


def _build(out: dict) -> LogRecord:
    request = out.pop("request", None)
    path = out.pop("path", None)
    query = out.pop("query", None)
    if request is not None:
        parts = request.split(" ")
        if len(parts) in (2, 3) and parts[0].isalpha():
            out.setdefault("method", parts[0])
            out.setdefault("uri", parts[1])
            if len(parts) == 3:
                out.setdefault("protocol", parts[2])
        else:
            out["fields"]["request"] = request
    if "uri" not in out and path is not None:
        query = _dash(query)
        out["uri"] = path + ("" if not query else query if query.startswith("?") else "?" + query)
    for key in ("referrer", "user_agent", "host", "xff", "content_type", "client_ip", "scheme"):
        if key in out:
            out[key] = _dash(out[key])
    return LogRecord(**out)
