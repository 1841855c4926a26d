"""Column formats: W3C extended (IIS), CloudFront standard logs, Bunny CDN.

One parser serves them: a list of column names in W3C's vocabulary (`c-ip`, `cs-uri-stem`,
`cs(User-Agent)`...) says which column fills which LogRecord field. W3C and CloudFront files
carry that list in a `#Fields:` header (the header lines themselves are skipped, as
`w3c_header`, and a new header mid-file takes over); without one, a preset's default columns
apply. Bunny CDN has no header: its fixed columns are named in the same vocabulary.

W3C dates and times are UTC by definition. CloudFront URL-encodes its text fields (user
agent, referrer, path, query...) and `%` itself, so one decoding gives back what the client
sent; IIS writes the spaces of a user agent as `+`.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields
from functools import lru_cache
from operator import attrgetter, itemgetter
from urllib.parse import unquote

from . import layouts
from .base import CACHE_LIMIT, LogRecord, ParseError, Parser, SkipLine
from .columns import Derived, ItemTable, Table, Texts
from .records import STATUS_CODES, dash, int_or_none, int_source
from .registry import Preset, register
from .timefmt import W3C_TIME_SURE, TimeParser

# LogRecord field -> the columns that may fill it, best first (CloudFront's cs(Host) is the
# distribution's own domain; x-host-header is the Host the visitor asked for).
TARGETS: dict[str, tuple[str, ...]] = {
    "client_ip": ("c-ip",),
    "method": ("cs-method",),
    "uri": ("cs-uri",),
    "path": ("cs-uri-stem",),
    "query": ("cs-uri-query",),
    "protocol": ("cs-protocol-version", "cs-version"),
    "status": ("sc-status",),
    "bytes_sent": ("sc-bytes",),
    "referrer": ("cs(referer)",),
    "user_agent": ("cs(user-agent)",),
    "host": ("x-host-header", "cs-host", "cs(host)"),
    "scheme": ("cs-protocol",),
    "xff": ("x-forwarded-for", "cs(x-forwarded-for)"),
    "content_type": ("sc-content-type",),
}
_RECORD_FIELDS = tuple(f.name for f in fields(LogRecord) if f.name != "fields")  # in order
URL_ENCODED = frozenset(("user_agent", "referrer", "path", "query", "content_type", "xff"))

# The columns a file without a #Fields header is read with, written as that header.
CLOUDFRONT_FIELDS = (
    "#Fields: date time x-edge-location sc-bytes c-ip cs-method cs(Host) cs-uri-stem sc-status "
    "cs(Referer) cs(User-Agent) cs-uri-query cs(Cookie) x-edge-result-type x-edge-request-id "
    "x-host-header cs-protocol cs-bytes time-taken x-forwarded-for ssl-protocol ssl-cipher "
    "x-edge-response-result-type cs-protocol-version fle-status fle-encrypted-fields c-port "
    "time-to-first-byte x-edge-detailed-result-type sc-content-type sc-content-len "
    "sc-range-start sc-range-end")
IIS_FIELDS = (
    "#Fields: date time s-ip cs-method cs-uri-stem cs-uri-query s-port cs-username c-ip "
    "cs(User-Agent) cs(Referer) sc-status sc-substatus sc-win32-status time-taken")
BUNNY_FIELDS = (
    "#Fields: x-cache-status sc-status x-timestamp-ms sc-bytes x-pull-zone-id c-ip cs(Referer) "
    "cs-uri x-edge-location cs(User-Agent) x-request-id c-country")


_BOM_HEADER = "\ufeff#".encode()


def header_names(line: str) -> list[str]:
    return line[len("#Fields:"):].split()


class _W3cTime:
    """The time of a date and a time of day column's texts (`TimeParser.w3c`); `many`: of
    whole columns at once (importer/bulkevents.py)."""

    __slots__ = ("w3c", "many")

    def __init__(self, times: TimeParser) -> None:
        self.w3c, self.many = times.w3c, times.w3c_many

    def __call__(self, date: str, time_of_day: str) -> float:
        return self.w3c(date, time_of_day)


@lru_cache(maxsize=CACHE_LIMIT)
def _url_decoded(value: str) -> str:
    if value.count("%") == value.count("%20"):  # spaces only (most agents): what unquote
        return value.replace("%20", " ")  # gives, 7x faster
    return unquote(value)


def _plus_spaces(value: str) -> str:
    return value.replace("+", " ")


Convert = Callable[[str], object] | None


@dataclass(frozen=True)
class Columns:
    """A column list compiled into what parse() does with each column."""

    names: tuple[str, ...]
    escaping: str  # "url" (CloudFront), "plus" (IIS: `+` for spaces in the user agent), ""
    plan: tuple[tuple[int, str, Convert], ...]  # (column, LogRecord field, conversion)
    path: tuple[int, int | None, Convert] | None  # (stem column, query column, conversion)
    extra_names: tuple[str, ...]  # the columns kept as they are in `fields`...
    extra_values: Callable[[list[str]], tuple[str, ...]]  # ...and how to pick them
    date: int | None
    time: int | None
    epoch_ms: int | None
    build: Callable[[list[str]], LogRecord]  # the record of a line's columns, but its time


def compile_columns(names: list[str], escaping: str, keep: frozenset[str] | None = None
                    ) -> Columns:
    """`keep`: the columns `fields` may hold (Parser.keep_fields); None: all."""
    index = {name.lower(): i for i, name in enumerate(names)}
    found: dict[str, int] = {}
    for target, candidates in TARGETS.items():
        for candidate in candidates:
            if candidate in index:
                found[target] = index[candidate]
                break
    path = None
    if "path" in found:
        path = (found.pop("path"), found.pop("query", None), _converter("path", escaping))
    found.pop("query", None)
    plan = tuple((i, target, _converter(target, escaping)) for target, i in found.items())
    stamps = {key: index.get(key) for key in ("date", "time", "x-timestamp-ms")}
    used = {i for i in (*found.values(), *stamps.values(), *(path or ())[:2]) if i is not None}
    extra = [i for i in range(len(names))
             if i not in used and (keep is None or names[i] in keep)]
    extra_names, extra_values = tuple(names[i] for i in extra), _picker(extra)
    return Columns(tuple(names), escaping, plan, path, extra_names, extra_values, stamps["date"],
                   stamps["time"], stamps["x-timestamp-ms"],
                   _builder(plan, path, extra_names, extra_values))


def _column_value(convert: Convert) -> Callable[[str], object]:
    """What `_builder` makes of a column converted by `convert`, as a function of its text."""
    if convert is int_or_none:  # "-" and "" are not numbers either
        return int_or_none
    if convert is None:
        return dash
    if convert is _url_decoded:
        return lambda v: None if not v or v == "-" else convert(v) if "%" in v else v
    return lambda v: None if not v or v == "-" else convert(v)


def _builder(plan: tuple[tuple[int, str, Convert], ...],
             path: tuple[int, int | None, Convert] | None, extra_names: tuple[str, ...],
             extra_values: Callable[[list[str]], tuple[str, ...]]
             ) -> Callable[[list[str]], LogRecord]:
    """A function generated once per column list (it runs for every line): the plan's
    columns straight into LogRecord's arguments, "-" and "" as None, then the path as
    `_target` makes it."""
    env: dict[str, object] = {"LogRecord": LogRecord, "names": extra_names,
                              "pick": extra_values, "STATUS_CODES": STATUS_CODES}
    body = ["def build(values):",
            "    fields = dict(zip(names, pick(values), strict=True))" if extra_names
            else "    fields = {}"]
    filled = [target for _, target, _ in plan]
    if plan:  # the plan's columns fetched at once (one alone if one), then each converted
        env["columns"] = itemgetter(*(i for i, _, _ in plan))
        body.append(f"    {', '.join(filled)} = columns(values)")
    for _, target, convert in plan:
        env[f"convert_{target}"] = convert
        if convert is int_or_none:  # "-" and "" are not numbers either
            body += ["    v = " + target, *("    " + line for line in int_source(target, "v"))]
        else:
            body.append(f"    if not {target} or {target} == '-': {target} = None")
            if convert is _url_decoded:  # as unquote() does first, without a call
                body.append(f"    elif '%' in {target}: {target} = convert_{target}({target})")
            elif convert is not None:
                body.append(f"    else: {target} = convert_{target}({target})")
    if path is not None:
        stem, query, convert = path
        env["convert_path"] = convert
        lines = [f"v = values[{stem}]",
                 "if v == '-':",
                 "    uri = None",
                 "else:",
                 *([f"    q = values[{query}]",
                    "    if q != '-' and q != '': v = f'{v}?{q}'"] if query is not None else []),
                 f"    uri = {_converted('path', convert)}"]
        if "uri" in filled:  # a cs-uri column comes first
            lines = ["if uri is None:", *("    " + line for line in lines)]
        body += ["    " + line for line in lines]
        filled.append("uri")
    arguments = ", ".join(name if name in filled else "None" for name in _RECORD_FIELDS)
    body.append(f"    return LogRecord({arguments}, fields)")
    exec("\n".join(body), env)  # noqa: S102 - made here from LogRecord field names
    return env["build"]


def _converted(target: str, convert: Convert) -> str:
    """The expression of `v` converted, for the generated builder."""
    if convert is None:
        return "v"
    if convert is _url_decoded:  # as unquote() does first, without a call
        return f"convert_{target}(v) if '%' in v else v"
    return f"convert_{target}(v)"


def _converter(target: str, escaping: str) -> Convert:
    if target in ("status", "bytes_sent"):
        return int_or_none
    if escaping == "url" and target in URL_ENCODED:
        return _url_decoded
    if escaping == "plus" and target == "user_agent":
        return _plus_spaces
    return None


def _picker(indexes: list[int]) -> Callable[[list[str]], tuple[str, ...]]:
    if len(indexes) >= 2:
        return itemgetter(*indexes)
    return lambda values: tuple(values[i] for i in indexes)


class ColumnParser(Parser):
    """Header-driven (W3C, CloudFront) or fixed-column (Bunny) lines, split on `separator`
    (None: on runs of white space)."""

    headers = True

    def __init__(self, name: str, times: TimeParser, default: str, separator: str | None,
                 escaping: str, free_column: str | None = None,
                 requires_header_with: str | None = None) -> None:
        self.name, self.times = name, times
        self.separator = separator
        self.keep: frozenset[str] | None = None  # see keep_fields
        self._use(compile_columns(header_names(default), escaping))
        # The one column allowed to contain the separator (Bunny's user agent may hold `|`).
        self.free = self.columns.names.index(free_column) if free_column else None
        # A header must name this column for the file to be this format (CloudFront's
        # x-edge-* columns): other W3C files are left to the generic preset.
        self.requires = requires_header_with
        self.header_ok = True

    def parse(self, line: str) -> LogRecord:
        if line.startswith(("#", "\ufeff#")):
            self._directive(line.lstrip("\ufeff"))
            raise SkipLine("w3c_header")
        if not self.header_ok:
            raise ParseError(f"the #Fields header is not {self.name}'s", 0)
        values = line.split(self.separator)
        if len(values) != len(self.columns.names):
            values = self._refit(line, values)
        return self.record(values)

    def record(self, item: list[str]) -> LogRecord:
        try:
            record = self.columns.build(item)
            if self.clock is not None:
                record.time = self.clock(item)
        except ValueError as exc:
            raise ParseError(str(exc), 0) from None
        return record

    def keep_fields(self, names: frozenset[str]) -> None:
        self.keep = names
        self._use(compile_columns(list(self.columns.names), self.columns.escaping, names))

    def _use(self, columns: Columns) -> None:
        self.columns = columns
        self.clock = self._clock(columns.date, columns.time, columns.epoch_ms)
        self._derived: dict[str, Derived | None] = {}
        self._layout = None if self.separator is None else layouts.column_layout(
            len(columns.names), self.separator)

    def _clock(self, date: int | None, time: int | None, epoch_ms: int | None
               ) -> Callable[[Sequence[str]], float] | None:
        """The time of a line's columns, if they give one."""
        times = self.times
        if epoch_ms is not None:
            return lambda values: times.epoch(values[epoch_ms], 1e3)
        if date is not None and time is not None:
            return lambda values: times.w3c(values[date], values[time])
        return None

    def table(self, texts: Sequence[str], data: bytes | None = None, fields: Sequence[str] = ()
              ) -> Table | None:
        """Lines of the expected number of columns, a row's item being its columns (read in
        C by parsers/arrowtable.py where a separator parts them, only the columns of
        `fields` and the checks); None for lines with a header among them, or after a
        header not of this format."""
        blob = layouts.joined(texts, data)
        if isinstance(texts, Texts) and texts.data is blob:  # ASCII: no byte order mark
            header = texts.begin_with(b"#")  # where each line begins is known
        else:  # (searching a MiB for `\n#` takes ~3 ms)
            header = blob.startswith((b"#", _BOM_HEADER)) or b"\n#" in blob \
                or _BOM_HEADER in blob
        if not self.header_ok or header:
            return None
        columns, separator = self.columns, self.separator
        checks = ("time",) if columns.epoch_ms is not None else (
            ("time:date", "time:of_day") if self.clock is not None else ())
        if self._layout is not None:
            from . import arrowtable  # pyarrow: loaded where tables are read (parse workers)

            read = (self._derive(name) for name in (*fields, *checks))
            found = arrowtable.read(self._layout, texts, blob, self._derive, checks,
                                    lambda i: texts[i].split(separator),
                                    {i for derived in read if derived for i in derived.sources})
            if found is not None:
                return found
        count = len(columns.names)
        items = [text.split(separator) for text in texts]
        rows: Sequence[int] = range(len(texts))
        if any(len(values) != count for values in items):
            rows = [i for i, values in enumerate(items) if len(values) == count]
            items = [items[i] for i in rows]
        return ItemTable(rows, items, self._derive, checks)

    def _derive(self, target: str) -> Derived | None:
        if target not in self._derived:
            self._derived[target] = self._derivation(target)
        return self._derived[target]

    def _derivation(self, target: str) -> Derived | None:
        """`_builder` (or `_clock`) of the columns `target` is made of alone, reading them
        from positions 0, 1... of its argument."""
        columns = self.columns
        if target == "time:date":  # `time` fails where one of its parts does
            return Derived((columns.date,), self.times.w3c_day)
        if target == "time:of_day":
            return Derived((columns.time,), self.times.w3c_seconds, W3C_TIME_SURE.fullmatch)
        if target == "time":
            sources = (columns.epoch_ms,) if columns.epoch_ms is not None else (
                columns.date, columns.time)
            if None in sources:
                return None
            if len(sources) == 2:
                return Derived(sources, _W3cTime(self.times))
            clock = self._clock(None, None, 0)
            return Derived(sources, lambda *values: clock(values))
        plan = [(i, name, convert) for i, name, convert in columns.plan if name == target]
        path = columns.path if target == "uri" else None
        sources = tuple(i for i, _, _ in plan) + tuple(
            i for i in (path or ())[:2] if i is not None)
        if not sources:
            return None
        if path is None and len(plan) == 1:  # one column: no record needed
            return Derived(sources, _column_value(plan[0][2]))
        at = {column: position for position, column in enumerate(sources)}
        if path is not None:
            stem, query, convert = path
            path = (at[stem], None if query is None else at[query], convert)
        build = _builder(tuple((at[i], name, convert) for i, name, convert in plan), path, (),
                         _picker([]))
        value = attrgetter(target)
        return Derived(sources, lambda *values: value(build(values)))

    def _directive(self, line: str) -> None:
        if not line.startswith("#Fields:"):
            return
        names = header_names(line)
        escaping = "url" if any(n.startswith("x-edge-") for n in names) else "plus"
        self.header_ok = self.requires is None or self.requires in names
        if self.header_ok:
            # The header in force again (parse workers are given it before each chunk): the
            # same columns, and what was derived from them stays (importer/bulk.py's caches).
            if (tuple(names), escaping) != (self.columns.names, self.columns.escaping):
                self._use(compile_columns(names, escaping, self.keep))
            self.free = None

    def _refit(self, line: str, values: list[str]) -> list[str]:
        expected = len(self.columns.names)
        if self.free is not None and len(values) > expected:
            extra = len(values) - expected
            joined = self.separator.join(values[self.free:self.free + extra + 1])
            return values[:self.free] + [joined] + values[self.free + extra + 1:]
        raise ParseError(f"{len(values)} columns where {expected} were expected "
                         f"({' '.join(self.columns.names[:4])} ...)", 0)


def _target(values: list[str], stem: int, query: int | None, convert: Convert) -> str | None:
    path = values[stem]
    if path == "-":
        return None
    args = values[query] if query is not None else "-"
    target = path if args in ("-", "") else f"{path}?{args}"
    return convert(target) if convert else target


def _preset(name: str, description: str, *args, **kwargs) -> None:
    def create(times: TimeParser) -> Parser:
        parser = ColumnParser(name, times, *args, **kwargs)
        parser.description = description
        return parser

    register(Preset(name, description, create))


_preset("cloudfront", "Amazon CloudFront standard log (tab-separated, #Fields header, UTC, "
                      "URL-encoded user agent)",
        CLOUDFRONT_FIELDS, "\t", "url", requires_header_with="x-edge-location")
_preset("w3c", "IIS / W3C extended log, columns from its #Fields header (UTC)",
        IIS_FIELDS, None, "plus")
_preset("bunny", "Bunny CDN raw log (pipe-separated, Unix time in ms)",
        BUNNY_FIELDS, "|", "", free_column="cs(User-Agent)")
