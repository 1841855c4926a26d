"""One compiler for text log formats: nginx `log_format`, Apache `LogFormat` and HAProxy
`log-format` strings (a "family" each: how variables are written and what they mean).

Every text preset (combined, common, vhost variants, Traefik, varnishncsa, AWS load balancers,
S3, HAProxy) and every format a user pastes from their server config goes through
`FormatParser`, so there is one regex builder and one field mapping, not a hand-written regex
per format.
"""
from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from . import layouts
from .base import LogRecord, ParseError, Parser
from .columns import Derived, ItemTable, Table
from .records import OPAQUE, Cached, compile_builder, compile_field, int_or_none
from .timefmt import CLF_SURE, TimeParser

# How a value is matched and converted. `quoted` patterns apply inside "...".
_CLF_TIME = r"\d{1,2}/\w{3}/\d{4}:\d\d:\d\d:\d\d(?:\.\d+)?(?: [+-]\d{4})?"


@dataclass(frozen=True, slots=True)
class Kind:
    pattern: str  # unquoted
    quoted: str = layouts.QUOTED
    # The single spaces an unquoted value holds (the columns it spans, less one, where
    # spaces part the fields: parsers/arrowtable.py); None: it may hold other white space.
    spaces: int | None = 0
    # (a regex timefmt.sure_rows tells, a width): unquoted texts of that width that it
    # matches whole, `pattern` matches too (a column of them is then checked by numpy)
    sure: tuple[re.Pattern, int] | None = None


WORD = Kind(r"\S*")
INT = Kind(r"-|\d+", r"-|\d*")
# A stamp without its zone does not fit such columns. CLF_SURE: `dd/Mon/yyyy:HH:MM:SS +hhmm`
CLF = Kind(_CLF_TIME, _CLF_TIME, 1, (CLF_SURE, 26))
BRACKETED_CLF = Kind(r"\[" + _CLF_TIME + r"\]", spaces=1, sure=(CLF_SURE, 28))
ISO = Kind(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:?\d\d)?")
EPOCH = Kind(r"\d+(?:\.\d+)?")
REQUEST = Kind(r"\S+ \S+(?: \S+)?", spaces=None)
TEXT = Kind(r"\S*")
# A host name holds no "/" (`$host$request_uri` splits where the path starts) and no ","
# (an X-Forwarded-For list is not a host).
HOST = Kind(r"[^\s/,]*", r'[^\s/,"]*')
# Unquoted X-Forwarded-For may be a list: "203.0.113.10, 127.0.0.1" (varnishncsa -F).
ADDRESSES = Kind(r"[^\s,]*(?:,\s*[^\s,]+)*", spaces=None)

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
    "host": ("host", HOST),
    "http_host": ("host", HOST),
    "server_name": ("host", HOST),
    "scheme": ("scheme", WORD),
    "http_x_forwarded_for": ("xff", ADDRESSES),
    "proxy_add_x_forwarded_for": ("xff", ADDRESSES),
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
    "v": ("host", HOST),
    "V": ("host", HOST),
    "{referer}i": ("referrer", TEXT),
    "{user-agent}i": ("user_agent", TEXT),
    "{x-forwarded-for}i": ("xff", ADDRESSES),
    "{host}i": ("host", HOST),
    "{content-type}o": ("content_type", TEXT),
    "{sec}t": ("time:epoch", EPOCH),
    "{msec}t": ("time:msec", EPOCH),
    "{usec}t": ("time:usec", EPOCH),
}

# Readable names for Apache directives kept as opaque fields (usable with --prop).
APACHE_FIELD_NAMES = {"l": "ident", "u": "remote_user", "p": "port", "D": "request_time_us",
                      "T": "request_time_s", "P": "pid", "X": "connection_status", "I": "bytes_in",
                      "{c}a": "peer_ip"}

_NGINX_TOKEN = re.compile(r"\$(?:\{(\w+)\}|(\w+))")
_APACHE_TOKEN = re.compile(r"%([<>]?)!?[\d,]*(\{[^}]*\})?([a-zA-Z%])")


@dataclass(frozen=True, slots=True)
class Field:
    name: str  # as written in the format (for messages and --prop)
    target: str  # LogRecord field, composite target, or "fields" (opaque)
    pattern: str
    spaces: int | None = None  # see Kind.spaces (0 for a quoted value)
    sure: tuple[re.Pattern, int] | None = None  # see Kind.sure (None for a quoted value)


Resolver = Callable[[re.Match, bool], "str | Field | list[str | Field]"]
# family name -> (how a variable is written, what it means). nginx and apache are below;
# other modules add theirs (parsers/haproxy.py).
FAMILIES: dict[str, tuple[re.Pattern, Resolver]] = {}


def tokenize(family: str, fmt: str) -> list[str | Field]:
    """Split a format string into literal text and `Field`s."""
    if family not in FAMILIES:
        known = ", ".join(f"{name}:" for name in FAMILIES)
        raise ValueError(f"unknown format family {family!r} (use {known})")
    token_re, resolve = FAMILIES[family]
    parts: list[str | Field] = []
    pos = 0
    for m in token_re.finditer(fmt):
        if m.start() > pos:
            parts.append(fmt[pos:m.start()])
        quoted = fmt[m.start() - 1:m.start()] == '"' and fmt[m.end():m.end() + 1] == '"'
        item = resolve(m, quoted)
        if isinstance(item, list):
            parts.extend(item)
        else:
            parts.append(item)
        pos = m.end()
    if pos < len(fmt):
        parts.append(fmt[pos:])
    return _merge_literals(parts)


def _nginx_field(m: re.Match, quoted: bool) -> Field:
    name = m.group(1) or m.group(2)
    target, kind = NGINX_VARIABLES.get(name, ("fields", TEXT if quoted else WORD))
    return _field(name, target, kind, quoted)


def _apache_field(m: re.Match, quoted: bool) -> str | Field:
    modifier, arg, letter = m.group(1), m.group(2) or "", m.group(3)
    if letter == "%":
        return "%"
    if letter == "t" and arg:  # when the request began or ended: the same clock for us
        arg = "{" + arg[1:-1].removeprefix("begin:").removeprefix("end:") + "}"
    key = (modifier + letter) if modifier and letter == "s" else (arg.lower() + letter)
    found = APACHE_DIRECTIVES.get(key)
    if found is None and arg and letter == "t" and "%" in arg:
        layout = strftime_layout(arg[1:-1])
        return Field(m.group(0), "time:strftime:" + layout,
                     layouts.QUOTED if quoted else strftime_pattern(layout))
    if found is None:
        name = APACHE_FIELD_NAMES.get(key) or (arg[1:-1] if arg else letter)
        return _field(name, "fields", WORD, quoted)
    target, kind = found
    return _field(m.group(0), target, kind, quoted)


def _field(name: str, target: str, kind: Kind, quoted: bool) -> Field:
    return Field(name, target, kind.quoted, 0) if quoted else Field(
        name, target, kind.pattern, kind.spaces, kind.sure)


FAMILIES.update(nginx=(_NGINX_TOKEN, _nginx_field), apache=(_APACHE_TOKEN, _apache_field))

# strftime shorthands Apache (APR) knows and Python's strptime does not.
_STRFTIME_SHORTHANDS = {"%T": "%H:%M:%S", "%D": "%m/%d/%y", "%R": "%H:%M", "%F": "%Y-%m-%d",
                        "%e": "%d", "%h": "%b"}
_STRFTIME_PATTERNS = {
    "Y": r"\d{4}", "y": r"\d\d", "m": r"\d\d?", "d": r" ?\d\d?", "H": r"\d\d?", "M": r"\d\d",
    "S": r"\d\d", "f": r"\d+", "z": r"[+-]\d\d:?\d\d|Z", "Z": r"\w+", "b": r"\w{3}",
    "B": r"\w+", "a": r"\w{3}", "A": r"\w+", "j": r"\d{3}", "p": r"[AaPp][Mm]", "I": r"\d\d?",
    "s": r"\d+", "%": "%",
}


def strftime_layout(layout: str) -> str:
    for short, full in _STRFTIME_SHORTHANDS.items():
        layout = layout.replace(short, full)
    return layout


def strftime_pattern(layout: str) -> str:
    """A regex for the timestamps a strftime layout writes: exact enough to find where an
    unquoted, unbracketed timestamp with spaces in it ends."""
    out, i = [], 0
    while i < len(layout):
        ch = layout[i]
        if ch == "%" and i + 1 < len(layout):
            out.append("(?:" + _STRFTIME_PATTERNS.get(layout[i + 1], r"\S+?") + ")")
            i += 2
            continue
        out.append(r"\s+" if ch == " " else re.escape(ch))
        i += 1
    return "".join(out)


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


_ESCAPE = re.compile(rb"\\(?:x([0-9a-fA-F]{2})|u([0-9a-fA-F]{4})|(.))", re.S)
_SIMPLE_ESCAPES = {b"n": b"\n", b"t": b"\t", b"r": b"\r", b"b": b"\b", b"f": b"\f", b"v": b"\v",
                   b'"': b'"', b"\\": b"\\", b"/": b"/"}


def _unescape_one(m: re.Match) -> bytes:
    if m.group(1):
        return bytes.fromhex(m.group(1).decode())
    if m.group(2):
        return chr(int(m.group(2), 16)).encode("utf-8", "surrogatepass")
    return _SIMPLE_ESCAPES.get(m.group(3), b"\\" + m.group(3))


def _unescape(value: str) -> str:
    """Undo the server's escaping (nginx `\\x22`, Apache `\\"`, nginx escape=json `\\u0001`) to
    recover the bytes sent; an escape it does not know is kept as written."""
    raw = _ESCAPE.sub(_unescape_one, value.encode("utf-8", "surrogateescape"))
    return raw.decode("utf-8", "replace")


class FormatParser(Parser):
    """A parser compiled from a format string. Fast path: one anchored regex per line."""

    def __init__(self, family: str, fmt: str, *, name: str = "", description: str = "",
                 time_parser: TimeParser | None = None, tail: str = "") -> None:
        """`tail`: fields a format has gained over the years at the end of its lines (AWS):
        each may be missing, and fields not known yet may follow."""
        self.family = family
        self.format = fmt + tail
        self.name = name or f"{family}:{fmt}"
        self.description = description
        self.times = time_parser or TimeParser()
        self.parts = tokenize(family, fmt)
        tail_parts = tokenize(family, tail) if tail else []
        self.fields = [p for p in self.parts + tail_parts if isinstance(p, Field)]
        pattern = "".join(
            _literal_pattern(p) if isinstance(p, str) else f"({p.pattern})" for p in self.parts)
        self.regex = re.compile(pattern + _optional_tail(tail_parts) + r"\s*$")
        # The same on a line without a backslash (see layouts.plain).
        self._plain = re.compile(layouts.plain(self.regex.pattern))
        # The same lines as columns read in C, where the format's are (fields apart by single
        # spaces, quoted or not): see table().
        self._layout = None if tail_parts else layouts.text_layout(
            self.parts)
        self._setters = [self._setter(f) for f in self.fields]
        self._build = compile_builder(self._setters)
        self._derived: dict[str, Derived | None] = {}
        # Fields whose conversion may fail on a line the regex matched (timestamps).
        self._checks = tuple(dict.fromkeys(
            target for target, convert in self._setters
            if convert not in (None, OPAQUE, int_or_none)))

    def keep_fields(self, names: frozenset[str]) -> None:
        self._build = compile_builder(self._setters, names)

    def table(self, texts: Sequence[str], data: bytes | None = None,
              fields: Sequence[str] = ()) -> Table:
        """The lines the plain regex matches, but those with a backslash (escapes: the
        regex that reads them may split them differently); a row's item is its groups,
        source i + 1 being field i's text. Read as columns where the format's lines are
        (parsers/arrowtable.py), else with the regex."""
        if self._layout is not None:
            from . import arrowtable  # pyarrow: loaded where tables are read (parse workers)

            found = arrowtable.read(self._layout, texts, layouts.joined(texts, data),
                                    self._derive, self._checks)
            if found is not None:
                return found
        matches = list(map(self._plain.match, texts))
        if None in matches or "\\" in "".join(texts):
            rows = [i for i, (m, text) in enumerate(zip(matches, texts, strict=True))
                    if m is not None and "\\" not in text]
            matches = [matches[i] for i in rows]
        else:
            rows = range(len(texts))
        return ItemTable(rows, matches, self._derive, self._checks, re.Match.groups)

    def _derive(self, target: str) -> Derived | None:
        if target not in self._derived:
            found = compile_field(self._setters, target)
            if found is None:
                self._derived[target] = None
            else:
                used, value = found
                convert = self._setters[used[0]][1]
                sure = convert.sure if len(used) == 1 and isinstance(convert, Cached) else None
                self._derived[target] = Derived(tuple(i + 1 for i in used), value, sure)
        return self._derived[target]

    def _setter(self, f: Field) -> tuple[str, object]:
        """Where a field's value goes: (LogRecord field or composite target, conversion), or
        (name, OPAQUE) for a field kept in `fields`. None: the text as it is."""
        target = f.target
        if target == "fields":
            return f.name, OPAQUE
        if target.startswith("time:"):
            how = target[5:]
            times = self.times
            convert = {
                "clf": Cached(times.clf_stamps, times.clf, CLF_SURE.fullmatch, times.clf_many),
                "iso": times.iso,
                "epoch": times.epoch,
                "msec": lambda v: times.epoch(v, 1e3), "usec": lambda v: times.epoch(v, 1e6),
            }.get(how) or (lambda v, layout=how[9:]: times.strptime(v.strip("[]"), layout))
            return "time", convert
        if target in ("status", "bytes_sent"):
            return target, int_or_none
        return target, None

    def parse(self, line: str) -> LogRecord:
        escaped = "\\" in line  # escapes are rare: look for them once per line, not per field
        m = (self.regex if escaped else self._plain).match(line)
        if m is None:
            raise ParseError(f"does not match {self.name}")
        values = m.groups()
        if escaped:
            values = [_unescape(v) if "\\" in v else v for v in values]
        try:
            return self._build(values)
        except ValueError as exc:
            raise ParseError(str(exc)) from None

    def record(self, item: tuple[str, ...]) -> LogRecord:
        try:  # a table's lines hold no backslash: no escapes
            return self._build(item)
        except ValueError as exc:
            raise ParseError(str(exc)) from None

    def failure_position(self, line: str) -> tuple[int, str]:
        """Where a refused line stops fitting: (offset, what was expected there); for a line
        that fits but holds a value that does not convert (a timestamp), that value's field.

        Only used to explain the first few failures, so it may be slow."""
        m = (self.regex if "\\" in line else self._plain).match(line)
        if m is not None:
            for i, (_, convert) in enumerate(self._setters):
                if convert in (None, OPAQUE):
                    continue
                try:
                    convert(m.group(i + 1))
                except ValueError:
                    return m.start(i + 1), self._shown(self.fields[i])
        best = (0, self.fields[0].name if self.fields else "end of line")
        for i in range(1, len(self.parts) + 1):
            prefix = "".join(
                _literal_pattern(p) if isinstance(p, str) else f"(?:{p.pattern})"
                for p in self.parts[:i])
            m = re.match(prefix, line)
            if m is None:
                part = self.parts[i - 1]
                expected = repr(part) if isinstance(part, str) else self._shown(part)
                return best[0], expected
            best = (m.end(), "")
        return best[0], "end of line"

    def _shown(self, f: Field) -> str:
        """A field as the format string writes it."""
        if f.name[:1] in "%$":
            return f.name
        return {"nginx": "$", "haproxy": "%"}.get(self.family, "") + f.name


def _optional_tail(parts: list[str | Field]) -> str:
    """Tail fields that match empty when missing: every group still takes part in a match
    (parse() expects a string for each), and whatever follows them is allowed."""
    if not parts:
        return ""
    pattern = "".join(
        "".join(r"\s*" if ch == " " else re.escape(ch) + "?" for ch in p) if isinstance(p, str)
        else f"((?:{p.pattern})|)" for p in parts)
    return pattern + r"(?:\s+\S.*)?"
