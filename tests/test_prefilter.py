"""The chunk pre-filter (importer/prefilter.py) changes nothing but speed: a run with it gives
exactly what a run without it gives (every line examined alone): the same counters, --explain
samples, malformed lines and --rejects, the same events with the same origins, on lines made
to trip it up, in several formats, with and without workers and tracking options."""
from __future__ import annotations

import io
import random
from pathlib import Path

import pytest

from importer import parallel, pipeline
from importer.filters import FilterChain, PageRule, SameSite, UserAgentRule
from importer.pipeline import Pipeline
from importer.prefilter import Prefilter, re2_pattern
from importer.state import Checkpoint
from importer.summary import Counters
from importer.transform import EventBuilder
from parsers.registry import get_parser
from tests.bench.genlog import generate
from tests.format_samples import SERVERS
from tests.test_parallel import Recorder

TIME = "[01/Mar/2026:10:00:{s:02d} +0100]"
UA = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"


def tricky_combined(rng: random.Random) -> bytes:
    """A combined line, whole or damaged in one of the ways that must not fool the pre-filter."""
    s = rng.randrange(60)
    method = rng.choice(["GET"] * 6 + ["POST", "HEAD", "get", "OPTIONS"])
    target = rng.choice(["/", "/blog/post", "/a.css", "/img/x.png?v=1", "/robots.txt",
                         "/favicon.ico", "/.well-known/x", "/doc.pdf", "/doc.PDF", "/f.zip?a=b",
                         "http://example.com/abs", "/q?x=1", "/x.JS", "/dir.d/"])
    status = rng.choice(["200"] * 5 + ["304", "404", "500", "301", "206", "-"])
    request = f"{method} {target} HTTP/1.1"
    referrer = rng.choice(["-", "https://example.com/", "https://other.org/p"])
    line = (f'203.0.113.{rng.randrange(1, 255)} - - {TIME.format(s=s)} "{request}" {status} 5 '
            f'"{referrer}" "{rng.choice([UA, "-", "curl/8.0", "Googlebot/2.1"])}"')
    damage = rng.randrange(30)
    if damage == 0:
        line = line.replace("Mar", "Foo")  # a timestamp that matches but does not convert
    elif damage == 1:
        line = line.replace(request, "-")  # a bad request line
    elif damage == 2:
        line = line.replace(request, "\\x16\\x03\\x01")  # escaped bytes (TLS on port 80)
    elif damage == 3:
        line = line.replace("HTTP/1.1", 'HTTP/1.1\\"')  # an escaped quote
    elif damage == 4:
        line = line.replace(" - - ", " -  - ")  # two spaces
    elif damage == 5:
        line = line.replace(" ", "\t", 1)  # a tab
    elif damage == 6:
        line += "  "  # trailing spaces
    elif damage == 7:
        line = line[:rng.randrange(len(line))]  # cut short
    elif damage == 8:
        line = " " * rng.randrange(3)  # blank
    elif damage == 9:
        line = line.replace("/blog", "/blög")  # not ASCII
    elif damage == 10:
        line = line.replace("[01", "[1")  # a one-digit day
    elif damage == 11:
        line = line.replace(" +0100]", ".25 +0100]")  # fractions of a second
    raw = line.encode()
    if damage == 12:
        raw = raw.replace(b"Linux", b"Lin\xffux")  # invalid UTF-8
    elif damage == 13:
        raw = raw.replace(b" - ", b" \x00- ", 1)  # NUL
    elif damage == 14:
        raw += b"\r"  # CRLF
    return raw + b"\n"


def run(paths: list[Path], *, fast: bool, workers: int = 1, fmt: str | None = None,
        track: bool = False, keep_bots: bool = True, explain: int = 3) -> tuple:
    if not fast:
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(Prefilter, "make", classmethod(lambda cls, parser, filters: None))
            return run(paths, fast=True, workers=workers, fmt=fmt, track=track,
                       keep_bots=keep_bots, explain=explain)
    counters = Counters(explain=explain)
    checkpoint = Checkpoint(None, in_flight=4)
    sink = Recorder(counters, checkpoint.on_done)
    rejects = io.StringIO()
    builder = EventBuilder("example.com", track_downloads=track, track_404=track)
    rules = [PageRule(track, track, SameSite(builder.sites, ["example.com"])),
             UserAgentRule(None if keep_bots else (lambda ua: "bot" if "bot" in ua else ""),
                           ["curl"])]
    run_pipeline = Pipeline(inputs=[str(p) for p in paths], builder=builder, sink=sink,
                            counters=counters, filters=FilterChain(rules), rejects=rejects,
                            checkpoint=checkpoint, workers=workers, format=fmt)
    try:
        run_pipeline.run()
    finally:
        checkpoint.close()
    assert counters.check() == []
    summary = counters.as_dict()
    del summary["elapsed_s"]
    summary["order"] = list(counters.filtered)  # the text summary's order on ties
    events = [(e.name, e.url, e.domain, e.ip, e.user_agent, e.time, e.referrer, e.props,
               e.origin) for e in sink.events]
    return summary, events, rejects.getvalue()


@pytest.fixture
def small_batches(monkeypatch):
    """Batches cut anywhere, chunks too, so that a file of a few thousand lines has many."""
    monkeypatch.setattr(pipeline, "PREFILTER_AFTER", 0)
    monkeypatch.setattr(pipeline, "MIN_LINES", 1)
    monkeypatch.setattr(pipeline, "BATCH_LINES", 97)
    monkeypatch.setattr(parallel, "MIN_BYTES", 0)
    monkeypatch.setattr(parallel, "CHUNK_BYTES", 5000)


@pytest.fixture
def tricky_log(tmp_path: Path) -> Path:
    rng = random.Random(7)
    path = tmp_path / "tricky.log"
    path.write_bytes(b"".join(tricky_combined(rng) for _ in range(4000)))
    return path


@pytest.mark.parametrize("workers", [1, 2])
@pytest.mark.parametrize("track", [False, True])
@pytest.mark.parametrize("explain", [0, 3])
def test_tricky_lines_end_as_without_the_prefilter(tricky_log, small_batches, workers, track,
                                                   explain):
    slow = run([tricky_log], fast=False, workers=workers, track=track, keep_bots=False,
               explain=explain)
    fast = run([tricky_log], fast=True, workers=workers, track=track, keep_bots=False,
               explain=explain)
    summary = fast[0]
    assert summary["malformed"] > 100 and summary["events"] > 100
    assert {"asset", "method", "status", "special_path", "bad_request"} <= set(
        summary["filtered"])
    assert fast == slow


def test_the_prefilter_decides_most_clean_lines(tricky_log, small_batches, monkeypatch):
    """Not a test of speed: that the equality above is not reached by deciding nothing."""
    decided = []
    reasons = Prefilter.reasons

    def counted(self, texts):
        found = reasons(self, texts)
        decided.extend(r for r in found if r is not None)
        return found

    monkeypatch.setattr(Prefilter, "reasons", counted)
    summary = run([tricky_log], fast=True)[0]
    assert len(decided) > 0.5 * sum(summary["filtered"].values())


def test_generated_log_ends_as_without_the_prefilter(tmp_path, small_batches):
    path = tmp_path / "access.log"
    path.write_text("\n".join(generate(5000, "combined", seed=3, malformed=0.02)) + "\n")
    for explain in (0, 3):
        assert run([path], fast=True, workers=2, explain=explain) == run(
            [path], fast=False, workers=2, explain=explain)


def _variants(lines: tuple[str, ...]) -> list[str]:
    """A sample's lines as they are, and with other targets, methods and statuses."""
    out = list(lines)
    for line in lines:
        for old, new in (("GET", "POST"), (" 200 ", " 404 "), (" 200 ", " 500 "),
                         ("/ HTTP", "/style.css HTTP"), ("/ HTTP", "/robots.txt HTTP"),
                         ("/", "/report.pdf"), ("2026", "2O26")):
            out.append(line.replace(old, new, 1))
    return out


@pytest.mark.parametrize("sample", [s for s in SERVERS if s.preset not in (
    "nginx_json", "caddy")], ids=lambda s: s.preset)
def test_server_samples_end_as_without_the_prefilter(sample, tmp_path, small_batches):
    path = tmp_path / "sample.log"
    path.write_text("\n".join(_variants(sample.lines) * 5) + "\n")
    for track in (False, True):
        assert run([path], fast=True, fmt=sample.preset, track=track) == run(
            [path], fast=False, fmt=sample.preset, track=track)


CUSTOM = [
    # content type, host glued to the path, msec time
    'nginx:$remote_addr [$time_local] "$request" $status "$sent_http_content_type" $host$uri',
    "nginx:$msec $remote_addr $request_method $scheme://$host$request_uri $status",
    'apache:%h %{%Y-%m-%d %H:%M:%S}t "%r" %>s %b',
    "nginx:$remote_addr $time_iso8601 $request_method $uri $args $status",
]
CUSTOM_LINES = [
    '203.0.113.5 [01/Mar/2026:10:00:00 +0100] "GET /a HTTP/1.1" 200 "text/html" example.com/a',
    '203.0.113.5 [01/Mar/2026:10:00:00 +0100] "GET /a HTTP/1.1" 200 "image/png" example.com/a',
    '203.0.113.5 [01/Mar/2026:10:00:00 +0100] "GET /a.css HTTP/1.1" 200 "-" example.com/a.css',
    "1772359200.123 203.0.113.5 GET https://example.com/x?y=1 200",
    "1772359200.123 203.0.113.5 POST https://example.com/x?y=1 200",
    "17723592OO.123 203.0.113.5 GET https://example.com/x.js 200",
    '203.0.113.5 2026-03-01 10:00:00 "GET /p HTTP/1.1" 200 12',
    '203.0.113.5 2026-03-01 10:00:00 "GET /p.png HTTP/1.1" 200 12',
    '203.0.113.5 2026-13-01 10:00:00 "GET /p.png HTTP/1.1" 200 12',
    "203.0.113.5 2026-03-01T10:00:00+01:00 GET /p x=1 200",
    "203.0.113.5 2026-03-01T10:00:00+01:00 GET /p.css - 304",
    "203.0.113.5 2026-03-41T10:00:00+01:00 GET /p.css - 304",
]


@pytest.mark.parametrize("fmt", CUSTOM)
def test_custom_formats_end_as_without_the_prefilter(fmt, tmp_path, small_batches):
    path = tmp_path / "custom.log"
    path.write_text("\n".join(CUSTOM_LINES * 20) + "\n")
    fast = run([path], fast=True, fmt=fmt)
    assert fast == run([path], fast=False, fmt=fmt)
    assert fast[0]["lines_read"] == len(CUSTOM_LINES) * 20


def test_re2_pattern_names_the_wanted_groups_only():
    assert re2_pattern(r'(\S*)\s+\[([^\]()]*)\]\s+"([^"]*)"\s*$', [2, 3]) == (
        r'^(?:\S*) \[(?P<g2>[^\]()]*)\] "(?P<g3>[^"]*)" ?$')
    assert re2_pattern(r"(?=x)(\S*)", [1]) is None


def test_other_parsers_and_chains_have_no_prefilter():
    chain = FilterChain([PageRule(), UserAgentRule(None)])
    assert Prefilter.make(get_parser("combined"), chain) is not None
    assert Prefilter.make(get_parser("haproxy"), chain) is None
    assert Prefilter.make(get_parser("nginx_json"), chain) is None
    assert Prefilter.make(get_parser("combined"), FilterChain([UserAgentRule(None)])) is None


def test_reasons_are_counted_in_the_order_lines_give_them(tmp_path, small_batches):
    """A chunk's lines counted at once still enter the summary after a reason met before them
    on a line examined alone (here: with an escape), and before one met after."""
    line = '203.0.113.9 - - [01/Mar/2026:10:00:00 +0100] "{} HTTP/1.1" {} 5 "-" "{}"'
    path = tmp_path / "order.log"
    rows = [("POST /", 200), ("GET /\\x61.css", 200), ("GET /", 500), ("GET /\\x61", 500)]
    path.write_text("".join(line.format(request, status, UA) + "\n" for request, status in rows))
    for workers in (1, 2):
        fast = run([path], fast=True, workers=workers, explain=0)
        assert fast == run([path], fast=False, workers=workers, explain=0)
        assert fast[0]["order"] == ["method", "asset", "status"]
