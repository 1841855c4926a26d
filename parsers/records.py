"""How the values a format matched become a `LogRecord`, in two forms that must agree:

- `build_record(values_by_target)`: from a dict, for formats whose fields vary from line to
  line (JSON). It is the definition of the rules.
- `compile_builder(setters)`: for a format whose fields are fixed (every format string), a
  function generated once per format, as dataclasses generate `__init__`: it takes the regex
  groups and calls LogRecord with them directly, with no dict, no loop over fields and only
  the rules that format needs. It runs for every line, so its cost is the parser's cost.
  tests/test_records.py checks it against `build_record` on tricky lines.

Targets are LogRecord fields, or composites: `request` ("GET /path HTTP/1.1"), `path` and
`query` (joined into `uri`), `time` (already converted).
"""
from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Collection, Sequence
from dataclasses import fields
from operator import attrgetter

from .base import LogRecord

OPAQUE = object()  # the conversion of a field kept as text in LogRecord.fields

# Fields where "-" or nothing means "not logged".
DASHED = ("referrer", "user_agent", "host", "xff", "content_type", "client_ip", "scheme")

_RECORD_FIELDS = tuple(f.name for f in fields(LogRecord))
_COMPOSITE = ("request", "path", "query")
REQUEST_PARTS = ("method", "uri", "protocol")  # "GET /path HTTP/1.1"
# The targets a record field's value may come from (the composites `_composites` reads).
_MADE_OF = {"method": ("method", "request"), "protocol": ("protocol", "request"),
            "uri": ("uri", "request", "path", "query"), "client_ip": ("client_ip", "xff")}
# What a conversion may fill: each becomes a local variable of the generated function.
_TARGETS = frozenset(_RECORD_FIELDS + _COMPOSITE) - {"fields"}


def int_or_none(value: str) -> int | None:
    return int(value) if value.isdecimal() else None


# Status codes: a few distinct texts on millions of lines, so looked up rather than converted
# (a third of the cost). Sizes vary too much for that.
STATUS_CODES = {str(code): code for code in range(1000)}


def int_source(target: str, value: str) -> list[str]:
    """The lines of generated code that set `target` to what `int_or_none` gives for the text
    in variable `value`, inlined (one of the commonest fields); a status code is looked up in
    STATUS_CODES first (the builder's globals must have it)."""
    if target != "status":
        return [f"{target} = int({value}) if {value}.isdecimal() else None"]
    return [f"{target} = STATUS_CODES.get({value})",
            f"if {target} is None: {target} = int({value}) if {value}.isdecimal() else None"]


class Cached:
    """A conversion that keeps its results in `cache`, keyed by the text (timestamps):
    the generated builder looks there itself and calls it only for a miss."""

    __slots__ = ("cache", "convert", "sure", "many")

    def __init__(self, cache: dict, convert: Callable[[str], object],
                 sure: Callable[[str], object] | None = None,
                 many: Callable[[list[str]], list | None] | None = None) -> None:
        """`sure`: a quick test of texts that convert without fail (see columns.Derived);
        `many`: the conversions of a list of texts at once, or None where it cannot tell
        (then `convert` of each; importer/bulkevents.py)."""
        self.cache, self.convert, self.sure, self.many = cache, convert, sure, many

    def __call__(self, value: str) -> object:
        return self.convert(value)


def dash(value: str | None) -> str | None:
    return None if value in (None, "", "-") else value


def _ints(texts: list[str]) -> list[int] | None:
    """`int_or_none` of each text, where every one is a number int() takes; else None."""
    if not "".join(texts).isdecimal() or "" in texts:
        return None
    try:
        return list(map(int, texts))
    except ValueError:  # more digits than int() takes (sys.get_int_max_str_digits)
        return None


def _dashes(texts: list[str]) -> list[str] | None:
    """`dash` of each text, where none is a dash or empty; else None."""
    return None if "-" in texts or "" in texts else list(texts)


# Conversions of a list of texts at once (as `Cached.many`; None: convert each), a check of
# them all instead of a call for each: MANY always (cheaper than looking up each text's value),
# MANY_DISTINCT where the texts are mostly distinct (sizes, not status codes).
MANY: dict[Callable, Callable[[list[str]], list | None]] = {dash: _dashes}
MANY_DISTINCT: dict[Callable, Callable[[list[str]], list | None]] = {int_or_none: _ints}


def build_record(out: dict) -> LogRecord:
    """A record from {target: value}; `out["fields"]` holds the opaque fields (changed)."""
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
        query = dash(query)
        out["uri"] = path + ("" if not query else query if query.startswith("?") else "?" + query)
    if "client_ip" not in out and out.get("xff"):
        # The format logs X-Forwarded-For in the client's place (varnishncsa -F behind a
        # proxy): its first hop is the client as far as the log knows.
        out["client_ip"] = out["xff"].split(",", 1)[0].strip()
    for key in DASHED:  # as dash, without a call per field
        if out.get(key) in ("", "-"):
            out[key] = None
    return LogRecord(**out)


Setter = tuple[str, object]  # (target, conversion: None, OPAQUE or a function of the text)


def compile_builder(setters: Sequence[Setter], keep: Collection[str] | None = None
                    ) -> Callable[[Sequence[str]], LogRecord]:
    """A function of the matched values (one per setter, in order) that returns what
    `build_record` returns for them. A conversion's ValueError passes through. `keep`: the
    names `fields` may hold (Parser.keep_fields); None: all."""
    env: dict[str, object] = {"LogRecord": LogRecord}
    body: list[str] = []
    assigned: set[str] = set()  # targets that have a value, as `out`'s keys would
    names = []  # what each value is unpacked into
    # A value kept as it is goes straight into its target, unless another setter fills the
    # same target too (then the statements keep the setters' order: the last one wins).
    filled = Counter(target for target, convert in setters if convert is not OPAQUE)
    for i, (target, convert) in enumerate(setters):
        names.append(f"v{i}")
        if convert is not OPAQUE and target not in _TARGETS:
            raise ValueError(f"unknown target {target!r}")
        if convert is OPAQUE:
            if keep is None or target in keep:
                body.append(f"fields[{target!r}] = v{i}")
            else:
                names[i] = "_"
            continue
        assigned.add(target)
        if convert is None and filled[target] == 1:
            names[i] = target
        elif convert is None:
            body.append(f"{target} = v{i}")
        elif convert is int_or_none:
            env["STATUS_CODES"] = STATUS_CODES
            body.append("\n".join(int_source(target, f"v{i}")))
        elif isinstance(convert, Cached):
            env[f"cache{i}"], env[f"convert{i}"] = convert.cache, convert.convert
            body.append(f"{target} = cache{i}.get(v{i})\n"
                        f"if {target} is None: {target} = convert{i}(v{i})")
        else:
            env[f"convert{i}"] = convert
            body.append(f"{target} = convert{i}(v{i})")
    body.extend(_composites(assigned, keep is None or "request" in keep))
    for key in DASHED:
        if key in assigned:
            body.append(f"if not {key} or {key} == '-': {key} = None")
    record_args = ", ".join(name if name in assigned or name == "fields" else "None"
                            for name in _RECORD_FIELDS)
    unpack = ", ".join(names) + ("," if len(names) == 1 else "")
    source = "\n    ".join([
        "def build(values):",
        f"{unpack} = values" if names else "pass",
        "fields = {}",
        *(line for statement in body for line in statement.split("\n")),
        f"return LogRecord({record_args})",
    ])
    exec(source, env)  # noqa: S102 - the source is made here from field names, not from input
    build = env["build"]
    build.__doc__ = source
    return build


def compile_field(setters: Sequence[Setter], target: str
                  ) -> tuple[tuple[int, ...], Callable[..., object]] | None:
    """How `compile_builder(setters)` fills the record field `target`: the positions of the
    setters it reads, and a function of their values (in that order) that gives the field's
    value, raising ValueError where a conversion of those values fails; None if no setter
    fills it. It is `compile_builder` of those setters alone: the rules are the builder's."""
    made_of = _MADE_OF.get(target, (target,))
    used = tuple(i for i, (name, convert) in enumerate(setters)
                 if convert is not OPAQUE and name in made_of)
    if not used:
        return None
    if len(used) == 1 and made_of == (target,) and target not in DASHED:
        convert = setters[used[0]][1]  # the field is its value, converted: no record needed
        return used, _identity if convert is None else convert
    if len(used) == 1 and setters[used[0]] == (target, None) and target in DASHED:
        return used, dash  # as the builder's statement for it: no record needed
    build, value = compile_builder([setters[i] for i in used], frozenset()), attrgetter(target)
    return used, lambda *values: value(build(values))


def _identity(value: str) -> str:
    return value


def _composites(assigned: set[str], keep_request: bool) -> list[str]:
    """The statements for `request`, `path`/`query` and X-Forwarded-For as the client, for the
    targets a format fills; adds to `assigned` what they may fill. `keep_request`: an
    unreadable request goes to `fields`."""
    out = []
    uri_target = "uri" in assigned
    if "request" in assigned:
        # The parts the format does not log on their own; None unless the request has them.
        took = [name for name in REQUEST_PARTS if name not in assigned]
        assigned.update(took)
        three = [f"{name} = parts[{i}]" for i, name in enumerate(REQUEST_PARTS) if name in took]
        two = [s if not s.startswith("protocol") else "protocol = None" for s in three]
        if len(three) == 3:
            three = ["method, uri, protocol = parts"]
        neither = [f"{name} = None" for name in took]
        if keep_request:
            neither.append("fields['request'] = request")
        if neither:
            out.append("\n".join([
                "parts = request.split(' ')",
                "if len(parts) == 3 and parts[0].isalpha():",  # the usual: "GET / HTTP/1.1"
                *("    " + s for s in three or ["pass"]),
                "elif len(parts) == 2 and parts[0].isalpha():",
                *("    " + s for s in two or ["pass"]),
                "else:",
                *("    " + s for s in neither),
            ]))
    if "path" in assigned and not uri_target:
        if "uri" not in assigned:
            out.append("uri = None")
            assigned.add("uri")
        query = "query" if "query" in assigned else "None"
        out.append("\n".join([
            "if uri is None and path is not None:",
            f"    q = {query}",
            "    q = None if q in (None, '', '-') else q",
            "    uri = path + ('' if not q else q if q.startswith('?') else '?' + q)",
        ]))
    if "client_ip" not in assigned and "xff" in assigned:
        out.append("client_ip = xff.split(',', 1)[0].strip() if xff else None")
        assigned.add("client_ip")
    assigned.difference_update(_COMPOSITE)
    return out
