"""Events made column by column in the parse workers (importer/bulkevents.py) are the events
the per-line path makes: a run with --workers 2 or 1 (sieve + columns, chunks made tiny) gives
the same events (values, order, origins), dedupe, counters and rejects as a run with every line
on its own (files below MIN_BYTES), on logs with duplicates, IPv6, X-Forwarded-For, hosts,
props, a time window, non-ASCII and over-long URLs, bad addresses, 404s, downloads and
CloudFront's encoded fields.
And row by row, what `EventColumns.make` gives (dedupe keys and requests included) is what
`Pipeline._examine` gives for the same line."""
from __future__ import annotations

import contextlib
import io
import json
import random
from collections import Counter
from contextlib import redirect_stdout
from functools import partial
from pathlib import Path

import pytest

from importer import parallel
from importer.bulk import Sieve
from importer.bulkevents import EventColumns
from importer.chunkwork import TIME
from importer.cli import build_parser, main
from importer.delivery import encode_request
from importer.filteropts import builder_from_args, filters_from_args
from importer.pipeline import Pipeline
from importer.sources import Chunk, Source
from importer.state import Checkpoint
from importer.summary import Counters
from parsers.base import SkipLine
from parsers.registry import get_parser
from tests.bench.genlog import generate
from tests.test_parallel import cloudfront_text
from tests.test_timefmt import EDGES

BROWSERS = ["Mozilla/5.0 (X11; Linux x86_64; rv:126.0) Gecko/20100101 Firefox/126.0",
            "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 "
            "(KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1",
            "Googlebot/2.1 (+http://www.google.com/bot.html)", "-"]
CLIENTS = ["203.0.113.9", "198.51.100.7", "2001:db8::1", "2001:DB8:0:0::2", "::ffff:192.0.2.5",
           "[2001:db8::3]:443", "203.0.113.10:5123", "010.0.0.1", "999.1.1.1", "-", "nonsense"]
FORWARDED = ["-", "192.0.2.44", "192.0.2.45, 10.0.0.1", "2001:db8::9, 10.0.0.2", "bad, 10.0.0.3"]
TARGETS = ["/", "/blog/post?utm_source=x&b=2", "/caf\u00e9/men\u00fc", "/%E2%82%AC/price",
           "/file.pdf", "/dl/app.zip?v=1", "/missing", "/a.css", "/x?" + "q" * 2100,
           "/" + "p" * 2100, "http://example.com/abs/path", "/search?q=\u65e5\u672c"]
REFERRERS = ["-", "https://www.google.com/", "https://example.com/from", "android-app://x",
             "https://news.example.org/a?b=c"]
HOSTS = ["example.com", "www.example.com", "shop.example.com", "other.org", "-"]
NGINX_XFF = ('nginx:$remote_addr - - [$time_local] "$request" $status $body_bytes_sent '
             '"$http_referer" "$http_user_agent" $host "$http_x_forwarded_for"')


def tricky_lines(count: int, seed: int, hosts: bool) -> list[str]:
    rng = random.Random(seed)
    lines = []
    for i in range(count):
        if lines and rng.random() < 0.05:  # the same request again: a duplicate
            lines.append(rng.choice(lines))
            continue
        second = 1_000 + 2 * i
        stamp = f"0{1 + second // 86400}/Mar/2026:{second // 3600 % 24:02}:" \
            f"{second // 60 % 60:02}:{second % 60:02} +0100"
        target = rng.choice(TARGETS)
        status = rng.choice(["200", "200", "200", "404", "304", "500"])
        line = (f'{rng.choice(CLIENTS)} - - [{stamp}] "{rng.choice(["GET", "GET", "POST"])} '
                f'{target} HTTP/1.1" {status} {rng.randrange(5000)} "{rng.choice(REFERRERS)}" '
                f'"{rng.choice(BROWSERS)}"')
        if hosts:
            line += f' {rng.choice(HOSTS)} "{rng.choice(FORWARDED)}"'
        lines.append(line)
    lines.insert(count // 2, "a malformed line")
    return lines


@pytest.fixture
def tiny_chunks(monkeypatch):
    monkeypatch.setattr(parallel, "MIN_BYTES", 0)
    monkeypatch.setattr(parallel, "CHUNK_BYTES", 4000)


@pytest.fixture
def made(tmp_path, monkeypatch) -> Path:
    """A file where the (forked) workers note how many events each `make` made."""
    noted = tmp_path / "made"
    make = EventColumns.make

    def noting(self, *args, **kwargs):
        kept, columns = make(self, *args, **kwargs)
        with noted.open("a") as f:
            f.write(f"{len(kept)}\n")
        return kept, columns

    monkeypatch.setattr(EventColumns, "make", noting)
    return noted


def made_count(noted: Path) -> int:
    return sum(map(int, noted.read_text().split())) if noted.exists() else 0


LINES = 0  # for `run_cli`'s workers: 1, but the file read line by line (the reference)


def run_cli(tmp_path: Path, log: Path, fmt: str, workers: int, options: list[str]
            ) -> tuple[str, str, dict]:
    if workers == LINES:
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(parallel, "MIN_BYTES", float("inf"))
            return run_cli_as(tmp_path, log, fmt, 1, options, "lines")
    return run_cli_as(tmp_path, log, fmt, workers, options, str(workers))


def run_cli_as(tmp_path: Path, log: Path, fmt: str, workers: int, options: list[str],
               name: str) -> tuple[str, str, dict]:
    out, rejects = tmp_path / f"events{name}", tmp_path / f"rejects{name}"
    stdout = io.StringIO()
    with redirect_stdout(stdout):
        main(["send", str(log), "--format", fmt, "--domain", "example.com", "--dry-run",
              "--no-progress", "--json", "--workers", str(workers), "--output", str(out),
              "--rejects", str(rejects), *options])
    summary = json.loads(stdout.getvalue())
    del summary["elapsed_s"]
    return out.read_text(), rejects.read_text(), summary


CASES = {
    "combined": ("combined", False, []),
    "404s and downloads": ("combined", False, ["--track-404", "--track-downloads"]),
    "props": ("combined", False, ["--prop", "status=status", "--prop", "method=method",
                                  "--prop", "size=bytes_sent", "--prop", "ref=referrer"]),
    "time window": ("combined", False, ["--since", "2026-03-01T00:00:00",
                                        "--until", "2026-03-01T01:00:00"]),
    "hosts and X-Forwarded-For": (NGINX_XFF, True, ["--client-ip-from", "xff"]),
    "hosts kept": (NGINX_XFF, True, ["--track-404", "--prop", "host=host"]),
    "domain map": (NGINX_XFF, True, ["--domain-map", "shop.example.com=shop.example.com"]),
}


@pytest.mark.parametrize("case", CASES)
def test_workers_make_the_events_lines_make(tmp_path, monkeypatch, tiny_chunks, made, case):
    fmt, hosts, options = CASES[case]
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    log = tmp_path / "access.log"
    log.write_text("\n".join(tricky_lines(3000, seed=len(case), hosts=hosts)) + "\n")
    events, rejects, summary = run_cli(tmp_path, log, fmt, 2, options)
    assert run_cli(tmp_path, log, fmt, 1, options) == (events, rejects, summary)
    assert run_cli(tmp_path, log, fmt, LINES, options) == (events, rejects, summary)
    assert summary["events"] > 150 and summary["malformed"] >= 1
    assert summary["duplicates"] > 3
    assert made_count(made) > summary["events"] // 2  # most made column by column


SHOWN = [stamp for stamp in EDGES if "/9999:" not in stamp]  # --output shows years < 10000


def test_edge_timestamps_make_the_events_lines_make(tmp_path, monkeypatch, tiny_chunks, made):
    """Leap days, offsets, other months, in brackets; in some chunks stamps `clf_many` leaves
    to `clf` one by one (fractional seconds, no offset, a year 0000: malformed)."""
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    rng = random.Random(11)
    odd = ["29/Feb/2024:23:59:59.250 +0000", "29/Feb/2024:23:59:59", "01/Jan/0000:00:00:00 +0000"]
    lines = []
    for i, line in enumerate(tricky_lines(3000, seed=4, hosts=False)):
        before, _, rest = line.partition("[")
        stamp, _, after = rest.partition("]")
        if stamp and i % 5:
            stamp = rng.choice(odd if i // 100 % 3 == 0 else SHOWN)
        lines.append(f"{before}[{stamp}]{after}" if stamp else line)
    log = tmp_path / "access.log"
    log.write_text("\n".join(lines) + "\n")
    options = ["--timezone", "Europe/Berlin"]
    events, rejects, summary = run_cli(tmp_path, log, "combined", 2, options)
    assert run_cli(tmp_path, log, "combined", 1, options) == (events, rejects, summary)
    assert run_cli(tmp_path, log, "combined", LINES, options) == (events, rejects, summary)
    assert summary["events"] > 300 and summary["malformed"] > 10
    assert made_count(made) > summary["events"] // 2


@pytest.mark.parametrize("swapped", [False, True])
def test_cloudfront_events_are_the_per_line_ones(tmp_path, monkeypatch, tiny_chunks, made,
                                                 swapped):
    """`swapped`: a #Fields header halfway through changes the columns' order."""
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    log = tmp_path / "cloudfront.log"
    rows = (cloudfront_text(3000, seed=5) if swapped else
            "\n".join(generate(3000, "cloudfront", seed=5))).splitlines()
    rows += rows[-300:]  # duplicates
    log.write_text("\n".join(rows) + "\n")
    options = ["--track-404", "--prop", "status=status"]
    events, rejects, summary = run_cli(tmp_path, log, "cloudfront", 2, options)
    assert run_cli(tmp_path, log, "cloudfront", 1, options) == (events, rejects, summary)
    assert run_cli(tmp_path, log, "cloudfront", LINES, options) == (events, rejects, summary)
    assert summary["events"] > 300 and summary["duplicates"] >= 20
    assert made_count(made) > summary["events"] // 2
    # encoded user agents and referrers, decoded; IPv6 clients
    assert "(iPhone; CPU" in events and '"referrer":"http' in events and "2001:db8:" in events


@pytest.mark.parametrize("case", ["combined", "404s and downloads", "props",
                                  "hosts and X-Forwarded-For", "hosts kept", "cloudfront"])
def test_each_row_gives_what_its_line_gives(tmp_path, case):
    """Dedupe keys and requests (`prepare`) included: what the end-to-end runs cannot see."""
    fmt, hosts, options = CASES.get(case, ("cloudfront", False, ["--track-404"]))
    args = build_parser().parse_args(["send", "x.log", "--domain", "example.com", *options])
    counters = Counters()
    builder = builder_from_args(args, counters)
    filters = filters_from_args(args, counters, builder)
    checkpoint = Checkpoint(None)
    pipeline = Pipeline(inputs=[], builder=builder, sink=None, counters=counters,
                        filters=filters, checkpoint=checkpoint, prepare=encode_request,
                        origins=False)
    parser = get_parser(fmt)
    parser.keep_fields(builder.fields_read)
    sieve = Sieve.of(filters, 0)
    events = EventColumns.of(builder, checkpoint, encode_request)
    if fmt == "cloudfront":
        texts = list(generate(2002, "cloudfront", seed=7))
        for header in texts[:2]:  # the columns
            with contextlib.suppress(SkipLine):
                parser.parse(header)
        host = texts[1].split()[1:].index("x-host-header")
        texts = [text if i % 7 else "\t".join(
            "-" if k == host else column for k, column in enumerate(text.split("\t")))
            for i, text in enumerate(texts[2:])]  # some without a host
    else:
        texts = tricky_lines(2000, seed=7, hosts=hosts)
    data = ("\n".join(texts) + "\n").encode()
    chunk = Chunk(data, 0, 0, len(data))
    _, left, made = sieve.split(chunk, parser, Counter(), partial(events.make, keyed=True))
    numbers, _, _, lines, (*values, wires, keys) = made
    assert len(numbers) > 200
    assert not {line.lineno for line, _, _ in left} & set(numbers)
    source = Source("x.log", None)
    for n, (number, text) in enumerate(zip(numbers, lines, strict=True)):
        assert texts[number - 1] == text
        line = next(iter(Chunk(text.encode() + b"\n", number - 1, 0, 0).lines()))
        event, key, _ = pipeline._examine(source, line, parser, True)
        assert [column[n] for column in values] == [
            event.name, event.url, event.domain, event.ip, event.user_agent, event.time,
            event.referrer, event.props]
        assert (wires[n], keys[n]) == (event.wire, key)
    # Without the lines' texts (no --explain samples), the same.
    _, _, bare = sieve.split(chunk, parser, Counter(), partial(events.make, keyed=True),
                             texts_too=False)
    assert bare[3] is None and bare[:3] == made[:3] and bare[4][-1] == keys
    # A dry run's (only keys and times wanted): the same rows, keys and times, nothing else.
    _, _, slim = sieve.split(chunk, parser, Counter(),
                             partial(events.make, keyed=True, values=False))
    *others, slim_keys = slim[4]
    assert slim[:3] == made[:3] and slim_keys == keys and others[TIME] == values[TIME]
    assert {value for k, column in enumerate(others) if k != TIME for value in column} == {None}
    checkpoint.close()


def test_a_size_int_cannot_hold_is_left_to_the_per_line_path(tmp_path, tiny_chunks):
    """More digits than int() takes (4,300) among sizes that are mostly distinct (converted as
    a list at once): that row is left to the per-line path, which says it is malformed; the
    run does not stop."""
    args = build_parser().parse_args(["send", "x.log", "--domain", "example.com"])
    events = EventColumns.of(builder_from_args(args, Counters()), Checkpoint(), None)
    line = '203.0.113.9 - - [01/Mar/2026:00:00:00 +0000] "GET / HTTP/1.1" 200 {size} "-" "F"'
    texts = [line.format(size=size) for size in range(1, 9)]
    texts[3] = line.format(size="7" * 5000)
    kept, columns = events.make(get_parser("combined").table(texts), list(range(8)), keyed=True)
    assert kept == [0, 1, 2, 4, 5, 6, 7] and len(columns[-1]) == 7
    log = tmp_path / "access.log"
    log.write_text("\n".join(texts) + "\n")
    *_, summary = run_cli(tmp_path, log, "combined", 2, [])
    assert summary["lines_read"] == 8 and summary["malformed"] == 1


def test_what_is_kept_from_chunk_to_chunk_is_bounded(monkeypatch):
    """Addresses and pages kept between chunks: never more than CACHE_LIMIT of them (or one
    chunk's), and the same answers when they were dropped."""
    from importer import bulkevents

    monkeypatch.setattr(bulkevents, "CACHE_LIMIT", 10)
    args = build_parser().parse_args(["send", "x.log", "--domain", "example.com"])
    events = EventColumns.of(builder_from_args(args, Counters()), None, None)
    line = '203.0.113.{n} - - [01/Mar/2026:00:00:00 +0000] "GET /p{n} HTTP/1.1" 200 5 "-" "F"'
    for chunk in range(6):
        numbers = range(8 * chunk, 8 * chunk + 8)
        table = get_parser("combined").table([line.format(n=n) for n in numbers])
        kept, (_, urls, _, ips, *_) = events.make(table, list(range(8)), keyed=False)
        assert ips == [f"203.0.113.{n}" for n in numbers]
        assert urls == [f"https://example.com/p{n}" for n in numbers]
        assert len(events._addresses) <= 10
        assert sum(map(len, events._pages.values())) <= 10


def test_rows_whose_line_would_say_something_are_left_to_it():
    """A download, a bad address, a URL cut or too long, a prop that may be cut: their lines
    count or note something, so `make` leaves them to the per-line path (wherever the sieve
    lets them through)."""
    args = build_parser().parse_args(["send", "x.log", "--domain", "example.com",
                                      "--track-downloads", "--prop", "ua=user_agent"])
    counters = Counters()
    builder = builder_from_args(args, counters)
    events = EventColumns.of(builder, None, None)
    line = ('203.0.113.9 - - [01/Mar/2026:00:00:00 +0000] "GET {target} HTTP/1.1" 200 5 "-" '
            '"{agent}"')
    fine = line.format(target="/", agent="Firefox")
    texts = [fine, line.format(target="/file.pdf", agent="Firefox"),
             fine.replace("203.0.113.9", "999.1.1.1"), line.format(target="/x?" + "q" * 2100,
                                                                   agent="Firefox"),
             line.format(target="/" + "p" * 2100, agent="Firefox"),
             line.format(target="/", agent="F" * 600), fine]
    parser = get_parser("combined")
    table = parser.table(texts)
    for _ in range(2):  # what a chunk found is kept for the next: its refusals are not
        kept, (names, urls, *_) = events.make(table, list(range(len(texts))), keyed=False)
        assert kept == [0, 6] and urls == ["https://example.com/"] * 2
    assert not counters.notes  # nothing noted for the lines left
