"""The parse workers' fast path (importer/bulk.py) decides a line only as the per-line path
(parse, then the filter chain) would: on tricky lines of several formats and filter chains,
every line it decides is one the per-line path filters, for the same reason, and every other
line is handed on with its number and offsets."""
from __future__ import annotations

import itertools
from collections import Counter

import numpy as np
import pytest

from importer.bulk import Sieve, _numbered, _positions
from importer.filters import (
    FilterChain,
    PageRule,
    SameSite,
    UserAgentRule,
    host_rule,
    path_rule,
    time_rule,
)
from importer.sites import SiteRouter
from importer.sources import Chunk
from parsers.base import ParseError, SkipLine
from parsers.columns import Texts
from parsers.registry import get_parser
from parsers.timefmt import CLF_SURE, W3C_TIME_SURE, TimeParser
from parsers.w3c import CLOUDFRONT_FIELDS

BROWSER = "Mozilla/5.0 (X11; Linux x86_64; rv:126.0) Gecko/20100101 Firefox/126.0"
AGENTS = [BROWSER, "Googlebot/2.1 (+http://www.google.com/bot.html)", "curl/8.5.0", "-", "",
          "evil scanner", 'say \\"hi\\"']
TARGETS = ["/", "/page", "/a.css", "/a.CSS", "/robots.txt", "/.well-known/x", "/file.pdf",
           "/x?y=1.js", "http://example.com/a.png", "/a.pdf?x", "/admin/a", "/b\\x22c"]
STATUSES = ["200", "304", "404", "500", "206", "-"]
STAMPS = ["01/Mar/2026:01:00:00 +0100", "01/Mar/2026:01:00:01 +0100", "1/Mar/2026:01:00:00 +0100",
          "01/Foo/2026:01:00:00 +0100", "01/Mar/0000:01:00:00 +0100", "01/Mar/2026:01:00:00",
          "01/Mar/2026:01:00:00.5 +0100"]
REQUESTS = ["GET {t} HTTP/1.1", "POST {t} HTTP/1.1", "get {t} HTTP/1.1", "GET {t}", "-", "GET",
            "GET {t} HTTP/1.1 x", "G3T {t} HTTP/1.1"]


def classify(ua: str) -> str:
    return "bot" if "bot" in ua.lower() else "library" if ua.startswith("curl") else ""


def combined_lines() -> list[str]:
    lines = []
    for i, (stamp, target, status, ua, request) in enumerate(itertools.product(
            STAMPS[:2], TARGETS, STATUSES, AGENTS, REQUESTS[:4])):
        referrer = ["-", "https://example.com/", "https://other.org/x"][i % 3]
        lines.append(f'10.0.0.{i % 7} - - [{stamp}] "{request.format(t=target)}" {status} '
                     f'{i} "{referrer}" "{ua}"')
    for stamp, request in itertools.product(STAMPS, REQUESTS):
        lines.append(f'10.0.0.1 - - [{stamp}] "{request.format(t="/a.css")}" 200 5 "-" '
                     f'"{BROWSER}"')
    good = lines[0]
    lines += ["", "   ", "not a log line", good + " trailing", good + "   ",
              good.replace(" ", "\t", 2), good.replace('"-"', '""'), "#comment " + good]
    return lines


NGINX = ('$remote_addr [$time_iso8601] "$request_method $uri?$args" $status '
         '"$sent_http_content_type" "$http_user_agent"')


def nginx_lines() -> list[str]:
    lines = []
    for i, (stamp, target, method, status, kind, ua) in enumerate(itertools.product(
            ["2026-03-01T01:00:00+01:00", "2026-13-45T01:00:00Z"], ["/", "/a.css", "/p"],
            ["GET", "HEAD"], ["200", "404"], ["text/html", "image/png", "-", ""], AGENTS[:4])):
        lines.append(f'10.0.0.{i % 5} [{stamp}] "{method} {target}?{["", "-", "q=1"][i % 3]}" '
                     f'{status} "{kind}" "{ua}"')
    return lines


def cloudfront_lines() -> list[str]:
    names = CLOUDFRONT_FIELDS.split()[1:]
    lines = []
    for i, (date, stem, status, ua, kind) in enumerate(itertools.product(
            ["2026-03-01", "2026-03-02"], ["/", "/a.css", "/p%20q", "-"], ["200", "404", "-"],
            ["Mozilla/5.0%20(X11)", "Googlebot", "-", "curl/8"], ["text/html", "image/png"])):
        values = dict.fromkeys(names, "-") | {
            "date": "2026-02-30x" if i % 11 == 0 else date,
            "time": "25:00:00" if i % 13 == 0 else f"00:00:0{i % 3}", "c-ip": "10.0.0.1",
            "cs-method": ["GET", "POST"][i % 5 == 0], "cs-uri-stem": stem, "sc-status": status,
            "cs(User-Agent)": ua, "cs-uri-query": ["-", "x=1"][i % 2],
            "sc-content-type": kind, "x-host-header": "example.com"}
        lines.append("\t".join(values[name] for name in names))
    return lines + [lines[0] + "\textra", lines[0].replace("\t", " "), ""]


def chains() -> dict[str, FilterChain]:
    same = SameSite(hosts=["example.com"])
    return {
        "default": FilterChain([PageRule(), UserAgentRule(classify)]),
        "options": FilterChain([
            time_rule(1772323200.0, 1772326800.0),
            PageRule(track_downloads=True, track_404=True, same_site=same),
            path_rule(["/admin/*"], []), UserAgentRule(None, ["evil"])]),
        "host rule": FilterChain([PageRule(), host_rule(SiteRouter(None, [("a.org", "a.org")]),
                                                        Counter()), UserAgentRule(classify)]),
        # export's: a line without a time has no date (its time step objects to None only)
        "export": FilterChain([time_rule(None, None), PageRule(), UserAgentRule(classify)]),
    }


def per_line(parser, chain: FilterChain, text: str) -> str:
    """What the per-line path makes of a line: a filter reason, "event" or "malformed"."""
    if not text or text.isspace():
        return "blank_line"
    try:
        record = parser.parse(text)
    except SkipLine as skip:
        return skip.reason
    except ParseError:
        return "malformed"
    return chain.reason(record) or "event"


def sifted(fmt: str, chain: FilterChain, data: bytes, sieve: Sieve | None = None,
           parser=None):
    """(lines, lines left, what was decided) of one chunk of `data`; a line left is
    (number, end, text, begin, its row's item if every filter let it through, else None)."""
    parser = parser or get_parser(fmt, TimeParser())
    filtered: Counter = Counter()
    chunk = Chunk(data, 0, 0, len(data))
    count, left = (sieve or Sieve.of(chain, 0)).lines(chunk, parser, filtered)
    return count, [(line.lineno, line.end, line.text, begin, passed)
                   for line, begin, passed in left], filtered


NO_TIME = '$remote_addr "$request" $status "$http_user_agent"'


def no_time_lines() -> list[str]:
    """A format that logs no time: every line is `no_time` to export's time rule."""
    return [f'10.0.0.1 "{request.format(t=target)}" {status} "{ua}"' for request, target,
            status, ua in itertools.product(REQUESTS[:3], TARGETS[:4], STATUSES[:3], AGENTS[:3])]


CASES = [("combined", combined_lines), ("nginx:" + NGINX, nginx_lines),
         ("cloudfront", cloudfront_lines), ("nginx:" + NO_TIME, no_time_lines)]


@pytest.mark.parametrize("chain_name", list(chains()))
@pytest.mark.parametrize(("fmt", "make"), CASES,
                         ids=["combined", "nginx", "cloudfront", "no time"])
def test_decides_as_the_per_line_path(fmt, make, chain_name):
    texts = make()
    chain = chains()[chain_name]
    parser = get_parser(fmt, TimeParser())
    expected = [per_line(parser, chain, text) for text in texts]
    # Each line alone: decided only as the per-line path would.
    sieve = Sieve.of(chain, 0)
    for text, outcome in zip(texts, expected, strict=True):
        count, left, filtered = sifted(fmt, chain, text.encode() + b"\n", sieve, parser)
        assert count == 1
        if not left:
            assert filtered == {outcome: 1}, text
        assert outcome not in ("event", "malformed", "blank_line") or left, text
        assert not left or left[0][4] is None or outcome == "event", text
    # All together, in one chunk: the lines left are the others, numbered and placed.
    data = "".join(text + "\n" for text in texts).encode()
    count, left, filtered = sifted(fmt, chain, data)
    lines = Chunk(data, 0, 0, len(data)).lines()
    assert count == len(texts)
    kept = {number for number, *_ in left}
    assert Counter(o for n, o in enumerate(expected, 1) if n not in kept) == filtered
    assert all(o not in ("event", "malformed", "blank_line")
               for n, o in enumerate(expected, 1) if n not in kept)
    assert [(n, end, text) for n, end, text, _, _ in left] == [
        (line.lineno, line.end, line.text) for line in lines if line.lineno in kept]
    assert [begin for *_, begin, _ in left] == [
        lines[n - 2].end if n > 1 else 0 for n, *_ in left]
    assert sum(filtered.values()) > len(texts) // 3  # the fast path does decide lines
    # Lines said to pass every filter are events' (unfiltered, parsed), when the sieve
    # judged every rule; a rule without steps (the host rule) leaves them all unjudged.
    # Their rows make the records that parsing their lines makes.
    passed = {n: item for n, *_, item in left if item is not None}
    assert all(expected[n - 1] == "event" for n in passed)
    assert bool(passed) == (chain.stepped and "event" in expected)
    for n, item in passed.items():
        assert parser.record(item) == parser.parse(texts[n - 1])


@pytest.mark.parametrize("data", [
    b"a\nbb\n", b"a\nbb", b"", b"\n", b"\n\nx", b" \n\t\x1f \nx \n \x0bx\n\x0c", b"x\n \n"])
def test_a_chunks_texts_are_decoded_line_by_line_as_its_lines(data):
    """Texts (an ASCII chunk's lines decoded when asked for) are Chunk.lines()' texts, and
    its blank lines those that are empty or white space."""
    expected = [line.text for line in Chunk(data, 0, 0, len(data)).lines()]
    texts = Texts(data)
    assert len(texts) == len(expected)
    assert [texts[i] for i in range(len(texts))] == expected
    assert texts[-1] == expected[-1]
    assert texts.blank() == {i for i, text in enumerate(expected) if not text.strip()}
    assert list(texts) == expected and texts.index(expected[-1]) == expected.index(expected[-1])
    assert [data[:end].count(b"\n") for end in texts.offsets()] == list(range(len(texts)))
    assert texts.begin_with(b"x") == any(text.startswith("x") for text in expected)


def test_undecodable_crlf_nul_lines_are_left_to_the_per_line_path():
    chain = chains()["default"]
    good = combined_lines()[336].encode()  # GET /a.css: an asset
    data = b"".join([good + b"\n", good + b"\r\n", good.replace(b"Mozilla", b"Mo\xffzilla") + b"\n",
                     good.replace(b" - ", b" \x00- ", 1) + b"\n", b"\n", good])
    count, left, filtered = sifted("combined", chain, data)
    lines = Chunk(data, 0, 0, len(data)).lines()
    assert count == 6
    assert [number for number, *_ in left] == [3, 5]  # the undecodable and the blank line
    assert filtered == {"asset": 4}
    assert left[0][1:3] == (lines[2].end, lines[2].text)


def test_a_header_leaves_its_chunk_to_the_per_line_path():
    chain = chains()["default"]
    texts = cloudfront_lines()[:3]
    data = "\n".join([texts[0], CLOUDFRONT_FIELDS, *texts[1:]]).encode()
    count, left, filtered = sifted("cloudfront", chain, data)
    assert count == 4 and len(left) == 4 and not filtered


def test_explain_turns_the_sieve_off():
    chain = chains()["default"]
    assert Sieve.of(chain, explain=0) is not None
    assert Sieve.of(chain, explain=3) is None
    assert Sieve.of(FilterChain([host_rule(SiteRouter(None, []), Counter())]), 0) is None


def test_stamps_of_the_sure_forms_convert():
    times = TimeParser()
    stamps = [f"{d}/{m}/{y}:{h}:{mi}:{s}{z}"
              for d, m, y, h, mi, s, z in itertools.product(
                  ["01", "09", "10", "29", "31"], ["Jan", "Feb", "Dec"], ["1900", "1970", "2099"],
                  ["00", "19", "23"], ["00", "59"], ["00", "59"], ["", " +0100", " -1159"])]
    for stamp in stamps + [f"[{stamp}]" for stamp in stamps]:
        assert CLF_SURE.fullmatch(stamp), stamp
        times.clf(stamp)
    odds = ["01/Mar/2026:24:00:00", "01/Mar/2026:01:00:60", "00/Mar/2026:01:00:00"]
    for odd in STAMPS[2:5] + odds:
        assert not CLF_SURE.fullmatch(odd), odd
    for clock in ("00:00:00", "09:59:59", "23:59:59"):
        assert W3C_TIME_SURE.fullmatch(clock)
        times.w3c_seconds(clock)
    assert not any(map(W3C_TIME_SURE.fullmatch, ["24:00:00", "1:00:00", "00:60:00", "0:0:0"]))


def test_haproxy_lines_are_left_to_the_per_line_path():
    """HAProxy's parse reads more than its format's columns (escapes, the captured headers
    that hold the user agent): no line is decided from columns, even one that looks like
    an asset's or a browser's there."""
    chain = chains()["default"]
    lines = [f'10.0.0.1:5757 [01/Mar/2026:01:00:00.123] fe be/srv 0/0/0/1/2 200 1234 - - ---- '
             f'1/1/0/0/0 0/0 {{example.com|{ua}|https://x.org/}} "GET {uri} HTTP/1.1"'
             for uri, ua in [("/a.css#20x", BROWSER), ("/page", "Googlebot/2.1"), ("/a.css", "x")]]
    parser = get_parser("haproxy", TimeParser())
    assert [per_line(parser, chain, text) for text in lines] == ["event", "bot", "asset"]
    count, left, filtered = sifted("haproxy", chain, "\n".join(lines).encode(), parser=parser)
    assert count == 3 and not filtered
    assert [(n, item) for n, *_, item in left] == [(1, None), (2, None), (3, None)]


@pytest.mark.parametrize("data", [b"a\n\nbb\nccc\n", b"a\n\nbb\nccc",
                                  "a\n\xe9\nbb\nccc\n".encode()])
def test_positions_of_made_rows_are_those_of_their_lines(data):
    """Where each line made in bulk begins and ends, and its number, as the per-line path
    has them (its last line without a newline too; not ASCII: from the chunk's Lines)."""
    chunk = Chunk(data, 40, 1000, 1000 + len(data))
    ascii_ = chunk.ascii()
    texts = Texts(data) if ascii_ else None
    lines = None if ascii_ else list(chunk.lines())
    rows = np.arange(4)
    numbered = [(line.lineno, begin, line.end) for line, begin, _ in
                _numbered(chunk, texts or [line.text for line in lines], lines, rows.tolist(), {})]
    assert list(zip(*_positions(chunk, texts, lines, rows), strict=True)) == numbered
    assert numbered[0] == (41, 1000, 1002) and numbered[-1][2] == 1000 + len(data)
