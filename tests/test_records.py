"""The record builder each format string compiles into (parsers/records.py) gives exactly the
record the dict-based rules give, on every preset and on formats that fill a target twice,
build the URI from path and query, or log X-Forwarded-For in the client's place."""
from __future__ import annotations

import random

import pytest

from parsers import w3c
from parsers.base import LogRecord, ParseError
from parsers.formatstring import FormatParser, _unescape
from parsers.haproxy import REQUEST_CAPTURES, HAProxyParser
from parsers.records import OPAQUE, build_record
from parsers.registry import get_parser, load_all
from parsers.timefmt import TimeParser

CUSTOM = [
    ("nginx", '$remote_addr [$time_local] "$request" $status "$request_method" $request_uri '
              '$server_protocol'),  # the request and its parts: the parts win
    ("nginx", '$http_x_forwarded_for [$time_iso8601] "$request_method $uri?$args" $status'),
    ("nginx", "$remote_addr $msec $scheme://$host$uri $query_string $status $body_bytes_sent "
              '"$http_user_agent" $sent_http_content_type'),
    ("nginx", '$remote_addr $status $status "$request" $upstream $upstream'),  # twice each
    ("apache", '%h %{%d/%b/%Y:%H:%M:%S %z}t "%m %U%q %H" %>s %b %D "%{Referer}i" %{usec}t'),
    ("apache", '%{X-Forwarded-For}i %l %u %t "%r" %s %b "%{Referer}i" "%{User-agent}i"'),
    ("apache", '%a %{msec}t "%r" %s %O %{sec}t'),
]

# Values a field may hold: dashes, blanks, odd requests, lists, ports, brackets, non-ASCII
# digits (isdigit() but not int()), absolute URIs.
TRICKY = ["", "-", " ", "GET / HTTP/1.1", "GET http://Example.com:8080/a?b=1 HTTP/1.0",
          "GET /x", "-- / HTTP/1.1", "GET  /double", "a b c d", "\x16\x03\x01", "?q=1", "q=1",
          "203.0.113.9, 10.0.0.1", " , 10.0.0.2", "[2001:db8::1]:443", "::ffff:1.2.3.4", "²",
          "200", "0", "404", "/path", "https://www.example.com/page?x=1", "text/html", "é"]
TIMES = {"clf": ["26/Nov/2026:12:00:00 +0100", "1/Jan/2026:00:00:59", "26/Foo/2026:12:00:00"],
         "iso": ["2026-11-26T12:00:00+01:00", "2026-11-26T12:00:00Z", "2026-13-01T00:00:00"],
         "epoch": ["1764158400.123", "1764158400", "x"]}


def reference(parser: FormatParser, values) -> object:
    """The record (or the ValueError's message) the plain rules give: a dict filled field by
    field, in order, then `build_record`."""
    out: dict = {"fields": {}}
    try:
        for f, value in zip(parser.fields, values, strict=True):
            target, convert = parser._setter(f)
            if convert is OPAQUE:
                out["fields"][target] = value
            else:
                out[target] = value if convert is None else convert(value)
    except ValueError as exc:
        return str(exc)
    return build_record(out)


def compiled(parser: FormatParser, values) -> object:
    try:
        return parser._build(values)
    except ValueError as exc:
        return str(exc)


def parsers() -> list[FormatParser]:
    times = TimeParser()
    found = [p.create(times) for p in load_all().values()]
    found += [get_parser(f"{family}:{fmt}", times) for family, fmt in CUSTOM]
    return [p for p in found if isinstance(p, FormatParser)]


@pytest.mark.parametrize("parser", parsers(), ids=lambda p: p.name[:40])
def test_compiled_builder_gives_the_reference_record(parser):
    rng = random.Random(parser.name)
    for _ in range(400):
        values = [rng.choice(pool_for(f)) for f in parser.fields]
        assert compiled(parser, values) == reference(parser, values), values


def pool_for(f) -> list[str]:
    """Values to try for a field."""
    how = f.target.removeprefix("time:")
    if how.startswith("strftime:"):
        return ["26/Nov/2026:12:00:00 +0100", "[26/Nov/2026:12:00:00 +0100]", "bad"]
    return TIMES.get("epoch" if how in ("msec", "usec") else how, TRICKY)


LINES = [
    '2001:db8::1 - - [26/Nov/2026:12:00:00 +0100] "GET http://example.com/a?b=1 HTTP/1.1" 200 5'
    ' "-" "curl/8.0"',
    '[2001:db8::1]:443 - - [26/Nov/2026:12:00:00 +0100] "GET /\\x22quoted\\x22 HTTP/1.1" 304 -'
    ' "https://example.com/\\"x\\"" "Mozilla/5.0 \\"odd\\""',
    '10.0.0.1 - - [26/Nov/2026:12:00:00 +0100] "-" 400 0 "-" "-"',
    '10.0.0.1 - - [26/Nov/2026:12:00:00 +0100] "\\x16\\x03\\x01" 400 0 "" ""',
    '10.0.0.1 - bob [26/Nov/2026:12:00:00 +0100] "PROPFIND /dav/ HTTP/1.1" 207 12',
]


@pytest.mark.parametrize("line", LINES)
def test_whole_lines_parse_as_the_reference_reads_them(line):
    checked = 0
    for parser in parsers():
        m = parser.regex.match(line)
        if m is None or type(parser) is not FormatParser:
            continue
        values = [_unescape(v) if "\\" in v else v for v in m.groups()]
        expected = reference(parser, values)
        if isinstance(expected, str):
            with pytest.raises(ParseError, match="bad timestamp"):
                parser.parse(line)
        else:
            assert parser.parse(line) == expected
        checked += 1
    assert checked


def column_reference(columns, values):
    """What the W3C/CloudFront/Bunny columns give, field by field."""
    record = LogRecord(fields=dict(zip(columns.extra_names, columns.extra_values(values),
                                       strict=True)))
    for i, target, convert in columns.plan:
        if values[i] and values[i] != "-":
            setattr(record, target, convert(values[i]) if convert else values[i])
    if columns.path is not None and record.uri is None:
        record.uri = w3c._target(values, *columns.path)
    return record


@pytest.mark.parametrize("header,escaping", [
    (w3c.CLOUDFRONT_FIELDS, "url"), (w3c.IIS_FIELDS, "plus"), (w3c.BUNNY_FIELDS, ""),
    ("#Fields: cs-uri cs-uri-stem cs-uri-query c-ip", ""), ("#Fields: date time s-ip", "")])
def test_compiled_columns_give_the_reference_record(header, escaping):
    columns = w3c.compile_columns(w3c.header_names(header), escaping)
    rng = random.Random(header)
    pool = ["", "-", "200", "0", "GET", "/a%20b", "q=1", "Mozilla/5.0+(X11)", "1.2.3.4", "x"]
    for _ in range(300):
        values = [rng.choice(pool) for _ in columns.names]
        assert columns.build(values) == column_reference(columns, values), values


def without_fields_but(expected, keep):
    """The reference record with `fields` cut down to the names a run keeps."""
    if not isinstance(expected, str):
        expected.fields = {k: v for k, v in expected.fields.items() if k in keep}
    return expected


@pytest.mark.parametrize("parser", parsers(), ids=lambda p: p.name[:40])
def test_a_builder_told_which_fields_to_keep_fills_only_those(parser):
    opaque = [f.name for f in parser.fields if f.target == "fields"] + ["request"]
    rng = random.Random(parser.name)
    # HAProxy's parse() reads its request captures from `fields`: kept whatever is asked.
    internal = {REQUEST_CAPTURES} if isinstance(parser, HAProxyParser) else set()
    for keep in (frozenset(), frozenset(opaque[:1]), frozenset(opaque[1:])):
        parser.keep_fields(keep)
        for _ in range(100):
            values = [rng.choice(pool_for(f)) for f in parser.fields]
            expected = without_fields_but(reference(parser, values), keep | internal)
            assert compiled(parser, values) == expected, (keep, values)


@pytest.mark.parametrize("header,escaping", [
    (w3c.CLOUDFRONT_FIELDS, "url"), (w3c.IIS_FIELDS, "plus"), (w3c.BUNNY_FIELDS, "")])
def test_compiled_columns_keep_only_the_fields_asked_for(header, escaping):
    names = w3c.header_names(header)
    keep = frozenset(names[2::3])
    columns = w3c.compile_columns(names, escaping, keep)
    full = w3c.compile_columns(names, escaping)
    rng = random.Random(header)
    pool = ["", "-", "200", "GET", "/a%20b", "q=1", "Mozilla/5.0+(X11)", "1.2.3.4", "x"]
    for _ in range(100):
        values = [rng.choice(pool) for _ in names]
        assert columns.build(values) == without_fields_but(column_reference(full, values), keep)


def test_a_new_fields_header_keeps_to_the_fields_asked_for():
    parser = get_parser("cloudfront")
    parser.keep_fields(frozenset({"x-edge-location", "c-port"}))
    header = "#Fields: date time x-edge-location c-ip cs-method cs-uri-stem sc-status ssl-protocol"
    with pytest.raises(Exception, match="w3c_header"):
        parser.parse(header)
    record = parser.parse("2026-11-26\t12:00:00\tFRA56\t1.2.3.4\tGET\t/\t200\tTLSv1.3")
    assert record.fields == {"x-edge-location": "FRA56"}
    assert (record.client_ip, record.uri, record.status) == ("1.2.3.4", "/", 200)
