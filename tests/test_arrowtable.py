"""The columns read in C (parsers/arrowtable.py) hold exactly what the per-line path reads:
a row kept is a line that `parse()` reads (the plain regex, no escape; or the split on the
separator) into the same raw values, on lines built to probe the edges of the CSV reader;
the sieve then decides those lines as the per-line path would (tests/test_bulk.py's check)."""
from __future__ import annotations

import random
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from parsers.arrowtable import FEW, ArrowTable, compact
from parsers.base import SkipLine
from parsers.columns import ItemTable
from parsers.formatstring import BRACKETED_CLF, CLF
from parsers.registry import get_parser
from parsers.timefmt import TimeParser, sure_rows
from parsers.w3c import CLOUDFRONT_FIELDS
from tests.test_bulk import chains, per_line, sifted

GOOD = ('10.0.0.1 - - [01/Mar/2026:01:00:00 +0100] "GET /a.css HTTP/1.1" 200 5 '
        '"https://example.com/" "Mozilla/5.0 (X11) Firefox/126.0"')

ROOT = Path(__file__).resolve().parent.parent


def combined_edges() -> list[str]:
    """A good line, and the same with one edge each: spaces, tabs, quotes, escapes, empty or
    missing fields, white space other than spaces, non-ASCII text."""
    lines = [GOOD, GOOD.replace("/a.css", "/page"), GOOD.replace("Mozilla", "Googlebot")]
    edges = [
        GOOD.replace(" - - ", " -  - "), GOOD.replace(" 200 ", "  200 "), "  " + GOOD,
        GOOD.replace(" - - ", "  - "), GOOD.replace(" - - ", " -  "),  # an empty column
        GOOD.replace("Firefox/", 'Fire"fox"/'),  # quotes that pyarrow reads as text
        GOOD.replace(" - - ", ' "-" - ').replace('"GET /a.css HTTP/1.1"', "GET"),  # moved
        GOOD + " ", GOOD + "\t", GOOD.replace(" 5 ", "\t5 "), GOOD.replace("(X11)", "(X11\t)"),
        GOOD.replace("10.0.0.1", '10."0.0.1'), GOOD.replace("10.0.0.1", '"10.0.0.1"'),
        GOOD.replace(" 5 ", ' "5" '), GOOD.replace('"https://example.com/"', "-"),
        GOOD.replace('"https://example.com/"', '""'), GOOD.replace('"Mozilla', '"Mo"zilla'),
        GOOD.replace("(X11)", '(X11 \\"a\\")'), GOOD.replace("/a.css", "/a\\x22.css"),
        GOOD.replace("(X11)", "(X11\xa0é)"), GOOD.replace("10.0.0.1", "10.0.0.1\xa0"),
        GOOD.replace("10.0.0.1", "10.0.0.é"), GOOD.replace(" +0100]", "]"),
        GOOD.replace("+0100]", "+0100] x"), GOOD + ' "extra"', GOOD.replace(" 5 ", " 5 5 "),
        GOOD.replace(" - - ", " - "), GOOD.replace(" 200 ", " 2x0 "), GOOD.replace(" 5 ", " - "),
        GOOD.replace("01/Mar", "1/Mar"), GOOD.replace("01/Mar", "41/Mar"),
        GOOD.replace('"GET /a.css HTTP/1.1"', '"-"'), GOOD.replace('"GET', '"GET  '),
        GOOD.replace('"GET /a.css HTTP/1.1"', '""'), GOOD.replace(" - - ", " \x1f - "),
        GOOD.replace(" - - ", " - \x0b- "), GOOD.replace('"Mozilla', "Mozilla"), " ", '""',
        "x", "# " + GOOD,
    ]
    return lines + edges + lines


# Lines that make pyarrow's rows other than the lines: a quote left open (the row goes on
# into the next line), a CR (a row ends there too). Their chunk is read with the regex.
BREAKERS = ['"', 'x "y', GOOD[:-5], GOOD.replace(" 5 ", " 5\r ")]


NGINX_COMBINED = ('$remote_addr - $remote_user [$time_local] "$request" $status '
                  '$body_bytes_sent "$http_referer" "$http_user_agent"')


def nginx_edges() -> list[str]:
    """nginx's combined: a column of literal text ("-"), brackets around the time."""
    return combined_edges() + [GOOD.replace(" - - ", " x - "), GOOD.replace(" - - ", " -- - "),
                               GOOD.replace("[01/", "01/"), GOOD.replace("+0100]", "+0100")]


def cloudfront_edges() -> list[str]:
    names = CLOUDFRONT_FIELDS.split()[1:]
    values = dict.fromkeys(names, "-") | {
        "date": "2026-03-01", "time": "00:00:01", "c-ip": "10.0.0.1", "cs-method": "GET",
        "cs-uri-stem": "/a.css", "sc-status": "200", "cs(User-Agent)": "Mozilla/5.0%20(X11)",
        "x-host-header": "example.com"}
    good = "\t".join(values[name] for name in names)
    return [good, good.replace("/a.css", "/page"), good.replace("/a.css", "/p\"a ge\\x"),
            good.replace("Mozilla", "Mo zi\xe9lla"), good.replace("\t-\t", "\t\t", 1),
            good + "\t", good + "\textra", good.rsplit("\t", 1)[0], good.replace("\t", " ", 1),
            good + " ", " " + good, good.replace("00:00:01", "24:00:01"), "", "\t", good]


FORMATS = [("combined", combined_edges), ("nginx:" + NGINX_COMBINED, nginx_edges),
           ("cloudfront", cloudfront_edges)]


def read_per_line(parser, text: str):
    """The raw values the per-line path reads from a line, or None if it reads none."""
    if "\\" in text or not hasattr(parser, "_plain"):
        return tuple(text.split("\t")) if hasattr(parser, "columns") and len(
            text.split("\t")) == len(parser.columns.names) else None
    found = parser._plain.match(text)
    return None if found is None else found.groups()


def rows_read(parser, texts: list[str]) -> list[int]:
    """The rows of the table of these lines, each checked: its item is what the per-line
    path reads from its line."""
    table = parser.table(texts, "\n".join(texts).encode())
    assert isinstance(table, ArrowTable)
    rows = table.rows.tolist()
    assert rows == sorted(set(rows))
    items = table.items(np.arange(len(rows)))
    for row, item in zip(rows, items, strict=True):
        assert tuple(item) == read_per_line(parser, texts[row]), texts[row]
    return rows


@pytest.mark.parametrize(("fmt", "make"), FORMATS, ids=["combined", "nginx", "cloudfront"])
def test_a_row_holds_what_the_per_line_path_reads(fmt, make):
    texts = make()
    parser = get_parser(fmt, TimeParser())
    rows_read(parser, texts)
    # Each edge among plain lines: those are kept (the edge does not spoil the chunk).
    plain = texts[:2] * (FEW // 2)
    for text in texts[2:]:
        assert set(rows_read(parser, [*plain, text, *plain])) >= set(range(FEW)), text


@pytest.mark.parametrize(("fmt", "make"), FORMATS, ids=["combined", "nginx", "cloudfront"])
@pytest.mark.parametrize("chain_name", ["default", "options"])
def test_the_sieve_decides_edge_lines_as_the_per_line_path(fmt, make, chain_name):
    """Each edge line in a chunk of plain lines: what the sieve decides is what the per-line
    path does, and a line it lets through is an event's line."""
    chain = chains()[chain_name]
    parser = get_parser(fmt, TimeParser())
    texts = make()
    expected = [per_line(parser, chain, text) for text in texts]
    data = "".join(text + "\n" for text in texts).encode()
    count, left, filtered = sifted(fmt, chain, data, parser=parser)
    kept = {number for number, *_ in left}
    assert count == len(texts)
    assert sum(filtered.values()) == count - len(kept)
    decided = [o for n, o in enumerate(expected, 1) if n not in kept]
    assert all(o not in ("event", "malformed", "blank_line") for o in decided)
    assert sorted(filtered.elements()) == sorted(decided)
    for n, *_, item in left:
        if item is not None:
            assert parser.record(item) == parser.parse(texts[n - 1])


# A format without quoted columns (a quote in a column is text to its regex, a quote at a
# column's start is quoting to pyarrow's reader).
BARE = "nginx:$remote_addr $remote_user $status $body_bytes_sent $request_time"


@pytest.mark.parametrize("fmt", ["combined", "nginx:" + NGINX_COMBINED, BARE])
@pytest.mark.parametrize("seed", range(4))
def test_lines_mangled_at_random_are_kept_only_as_the_regex_reads_them(fmt, seed):
    """Quotes, delimiters and text put in, taken out or swapped at random places of plain
    lines: every row kept holds what the per-line path reads from its line."""
    rng = random.Random(seed)
    good = GOOD if fmt != BARE else "10.0.0.1 - 200 5 0.004"
    parser = get_parser(fmt, TimeParser())
    plain = [good] * (FEW // 2)
    kept = readable = 0
    for _ in range(150):
        text = good
        for _ in range(rng.randint(1, 3)):
            at = rng.randrange(len(text) + 1)
            cut = rng.choice([0, 0, 1, 2])
            text = text[:at] + rng.choice(['"', " ", '" "', "x", '"x', "", "  "]) + text[at + cut:]
        texts = [*plain, text, *plain]
        if not isinstance(parser.table(texts, "\n".join(texts).encode()), ArrowTable):
            continue  # a quote left open: the chunk is read with the regex
        rows = rows_read(parser, texts)  # each row checked
        assert set(rows) >= set(range(FEW)) - {FEW // 2}
        kept += FEW // 2 in rows
        readable += read_per_line(parser, text) is not None
    assert kept > readable // 4  # most lines the regex reads are read in C too


@pytest.mark.parametrize("odd", [*BREAKERS, "", " "])
def test_a_chunk_whose_rows_are_not_its_lines_is_read_with_the_regex(odd):
    """The plain lines around such a line are decided all the same (an empty line may or
    may not make a row of pyarrow's)."""
    parser = get_parser("combined", TimeParser())
    texts = [GOOD] * FEW + [odd] + [GOOD] * FEW
    if odd in BREAKERS:
        assert isinstance(parser.table(texts, "\n".join(texts).encode()), ItemTable)
    data = "".join(text + "\n" for text in texts).encode()
    chain = chains()["default"]
    count, left, filtered = sifted("combined", chain, data, parser=parser)
    kept = [n for n, *_ in left]
    line = FEW + 1
    assert count == len(texts) and filtered["asset"] == 2 * FEW + (line not in kept)
    assert kept in ([line], [])
    assert kept or per_line(parser, chain, odd) == "asset"


def test_formats_that_are_not_columns_keep_the_regex():
    """A field of varying spaces, two fields in a column, a tail of optional fields."""
    for fmt in ['nginx:$remote_addr "$request_method $uri?$args" $status',
                "nginx:$host$request_uri $status", "apache:%h %r %>s", "alb"]:
        parser = get_parser(fmt, TimeParser())
        assert parser._layout is None, fmt
    assert get_parser("nginx:" + NGINX_COMBINED, TimeParser())._layout is not None


def test_a_new_header_brings_its_columns():
    """CloudFront chunks after a #Fields header of other columns are read with those."""
    parser = get_parser("cloudfront", TimeParser())
    names = CLOUDFRONT_FIELDS.split()[1:]
    with pytest.raises(SkipLine):
        parser.parse("#Fields: " + " ".join(reversed(names)))
    line = "\t".join(f"v{i}" for i in range(len(names)))
    table = parser.table([line] * FEW, "\n".join([line] * FEW).encode())
    assert isinstance(table, ArrowTable)
    assert table.items(np.arange(FEW)) == [line.split("\t")] * FEW
    assert parser.table([line, CLOUDFRONT_FIELDS, line]) is None


@pytest.mark.parametrize("size", [7, 1 << 24])  # by a table of the codes; by np.unique
def test_compact_is_uniques_inverse(size):
    codes = np.random.default_rng(size).integers(0, min(size, 5), 100) * (size // 5)
    used, indices = compact(codes, size)
    expected_used, expected = np.unique(codes, return_inverse=True)
    assert used.tolist() == expected_used.tolist() and indices.tolist() == expected.tolist()


@pytest.mark.parametrize("fmt", ["combined", "cloudfront"])
def test_a_fields_texts_are_encoded_for_the_rows_asked(fmt):
    """Of every row, of many rows, of a few (those are encoded alone), then of many again
    (from the encoding of every row): the texts of those rows, each once (of every row: the
    texts of lines left out of the table may be there too)."""
    parser = get_parser(fmt, TimeParser())
    texts = dict(FORMATS)[fmt]()
    table = parser.table(texts, "\n".join(texts).encode(), ("uri",))
    uri = table.derive("uri").sources
    for where in (None, np.arange(len(table.rows) - 1), np.array([2, 0, 2]),
                  np.arange(1, len(table.rows))):
        texts = [table.raw(source, where) for source in uri]
        expected = texts[0] if len(uri) == 1 else list(zip(*texts, strict=True))
        indices, values = table.encoded(uri, where)
        assert len(set(values)) == len(values)
        if where is not None:
            assert sorted(set(indices.tolist())) == list(range(len(values)))
        assert [values[i] for i in indices.tolist()] == expected


def test_workers_do_not_import_pandas():
    """pyarrow imports pandas (~0.3 s) on some conversions: the table avoids them."""
    code = ("import sys; from parsers.registry import get_parser; "
            "from parsers.timefmt import TimeParser; "
            "from tests.test_arrowtable import combined_edges, cloudfront_edges; "
            "from tests.test_bulk import chains; from importer.bulk import Sieve\n"
            "for fmt, make in [('combined', combined_edges), ('cloudfront', cloudfront_edges)]:\n"
            "    texts = make(); p = get_parser(fmt, TimeParser())\n"
            "    Sieve.of(chains()['options'], 0).sift(texts, p, {0}, '\\n'.join(texts).encode())\n"
            "assert 'pandas' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_a_run_that_reads_no_table_does_not_load_pyarrow(tmp_path):
    """A small file is read in-process, line by line: pyarrow (~0.1 s to import) stays out."""
    code = ("import sys; from importer.cli import main\n"
            f"main(['send', 'sample_logs', '--domain', 'example.com', '--dry-run', '--quiet',"
            f" '--state', {str(tmp_path / 'state')!r}])\n"
            "assert 'pyarrow' not in sys.modules, 'pyarrow loaded'")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


@pytest.mark.parametrize("kind", [CLF, BRACKETED_CLF], ids=["clf", "bracketed"])
def test_a_stamp_its_kinds_sure_regex_matches_fits_the_kind(kind):
    """Kind.sure: texts of its width that sure_rows passes fit the kind's pattern (the
    table then checks no column of them with RE2), on stamps changed at random."""
    regex, width = kind.sure
    stamp = "[01/Mar/2026:00:00:00 +0100]"[(28 - width) // 2:][:width]
    rng = random.Random(width)
    texts = [stamp]
    for _ in range(3000):
        chars = list(stamp)
        chars[rng.randrange(width)] = rng.choice("0123456789:/+- []Janx\x7f")
        texts.append("".join(chars))
    rows = np.frombuffer("".join(texts).encode(), np.uint8).reshape(len(texts), width)
    sure = sure_rows(regex, rows).tolist()
    assert sure[0] and not all(sure)
    fits = re.compile(kind.pattern).fullmatch
    assert all(fits(text) for text, passed in zip(texts, sure, strict=True) if passed)
