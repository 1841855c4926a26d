"""Cloud and CDN log formats (CloudFront, IIS/W3C, ALB, ELB, S3, Cloudflare, Bunny), from
fixtures written after the vendors' format documentation (tests/format_samples.py): every field
of every line, the headers that drive the columns, and the tails AWS keeps adding."""
from __future__ import annotations

import gzip
import json
from urllib.parse import unquote
from zoneinfo import ZoneInfo

import pytest

from importer.cli import main
from parsers.base import ParseError, SkipLine
from parsers.registry import detect, get_parser
from parsers.timefmt import TimeParser
from parsers.w3c import _url_decoded
from tests.format_samples import (
    ALB,
    BUNNY,
    CLOUD,
    CLOUDFLARE,
    CLOUDFRONT,
    CLOUDFRONT_HEADER,
    IIS,
    S3,
    check_sample,
    parse_all,
    utc,
)


@pytest.mark.parametrize("sample", CLOUD, ids=[s.preset for s in CLOUD])
def test_every_field(sample):
    check_sample(sample, parse_all(sample))


@pytest.mark.parametrize("sample", CLOUD, ids=[s.preset for s in CLOUD])
def test_detected(sample):
    assert detect(list(sample.lines)).name == sample.preset


def test_w3c_header_lines_are_skipped_with_a_reason():
    parser = get_parser("w3c")
    with pytest.raises(SkipLine) as skip:
        parser.parse("#Version: 1.0")
    assert skip.value.reason == "w3c_header"


def test_cloudfront_without_its_header_uses_the_standard_columns():
    """A file read from the middle (or cut) still has the documented 33 columns."""
    headerless = [ln for ln in CLOUDFRONT.lines if not ln.startswith("#")]
    parser = get_parser("cloudfront")
    records = [parser.parse(ln) for ln in headerless]
    assert [r.uri for r in records] == [r["uri"] for r in CLOUDFRONT.records]
    assert records[0].user_agent == CLOUDFRONT.records[0]["user_agent"]


def test_older_cloudfront_header_with_fewer_columns():
    """Before 2019 CloudFront wrote 26 columns: the header says which."""
    header = " ".join(CLOUDFRONT_HEADER.split()[:27])
    values = CLOUDFRONT.lines[2].split("\t")[:26]
    parser = get_parser("cloudfront")
    with pytest.raises(SkipLine):
        parser.parse(header)
    record = parser.parse("\t".join(values))
    assert (record.uri, record.host, record.protocol) == (
        CLOUDFRONT.records[0]["uri"], "www.example.com", "HTTP/2.0")
    with pytest.raises(ParseError, match="33 columns where 26"):
        parser.parse(CLOUDFRONT.lines[2])


def test_numbers_written_with_other_digit_characters_do_not_stop_a_run():
    """`\u00b2` is a digit to str.isdigit() but no number to int(): a status or size made of
    such characters is unknown (None), as any other non-number there, not a crash."""
    values = CLOUDFRONT.lines[2].split("\t")
    parser = get_parser("cloudfront")
    record = parser.parse("\t".join(values))
    assert record.status is not None and record.bytes_sent is not None
    values[3], values[8] = "\u00b2", "\u00b2\u00b3"  # sc-bytes, sc-status
    record = parser.parse("\t".join(values))
    assert (record.status, record.bytes_sent) == (None, None)
    json_line = json.dumps({"time_iso8601": "2026-11-26T12:00:00+00:00", "remote_addr": "1.2.3.4",
                            "request": "GET / HTTP/1.1", "status": "\u00b2\u00b2",
                            "body_bytes_sent": "1"})
    assert get_parser("nginx_json").parse(json_line).status is None


def test_cloudfront_preset_leaves_other_w3c_files_to_w3c():
    parser = get_parser("cloudfront")
    with pytest.raises(SkipLine):
        parser.parse(IIS.lines[3])
    with pytest.raises(ParseError, match="not cloudfront's"):
        parser.parse(IIS.lines[4])


def test_w3c_dates_are_utc_whatever_the_timezone():
    berlin = TimeParser(ZoneInfo("Europe/Berlin"))
    for sample in (IIS, CLOUDFRONT):
        records = parse_all(sample, get_parser(sample.preset, berlin))
        assert [r.time for r in records] == [r["time"] for r in sample.records]


def test_iis5_unpadded_dates():
    parser = get_parser("w3c")
    with pytest.raises(SkipLine):
        parser.parse("#Fields: date time c-ip cs-username s-ip s-port cs-method cs-uri-stem "
                     "cs-uri-query sc-status sc-bytes cs(User-Agent) cs(Cookie) cs(Referer)")
    record = parser.parse("2007-4-1 5:03:09 201.235.121.101 - 131.21.230.15 80 GET /items.htm - "
                          "200 878 Mozilla/4.0+(compatible;+MSIE+5.0;+Windows+95;+DigExt) - "
                          "http://www.ccc.com/link.htm")
    assert record.time == utc("2007-04-01 05:03:09")
    assert record.user_agent == "Mozilla/4.0 (compatible; MSIE 5.0; Windows 95; DigExt)"
    assert record.referrer == "http://www.ccc.com/link.htm"
    assert record.bytes_sent == 878


def test_w3c_line_with_the_wrong_number_of_columns():
    parser = get_parser("w3c")
    for line in IIS.lines[:4]:
        with pytest.raises(SkipLine):
            parser.parse(line)
    with pytest.raises(ParseError, match="14 columns where 15"):
        parser.parse(IIS.lines[4].rsplit(" ", 1)[0])


@pytest.mark.parametrize("text", ["Mozilla/5.0%20(X11)", "%2020", "%%20", "a%20b%2", "%2",
                                  "\u00e9%20x", "%20%41", "%C3%A9%20", "%20%ZZ", "-", "a%2"])
def test_w3c_url_decoding_is_unquotes(text):
    assert _url_decoded(text) == unquote(text)


def test_alb_tail_fields_may_be_missing_or_more():
    parser = get_parser("alb")
    full = parser.parse(ALB.lines[1])
    assert full.fields["conn_trace_id"] == "TID_1234abcd"
    cut = parser.parse(ALB.lines[1].split(' "shop.example.com"')[0])
    assert (cut.uri, cut.status, cut.user_agent) == (full.uri, full.status, full.user_agent)
    assert cut.fields["domain_name"] == ""


def test_s3_line_cut_before_the_user_agent_is_malformed():
    with pytest.raises(ParseError):
        get_parser("s3").parse(S3.lines[1].split(' "https://www.google.com/"')[0])


def test_cloudflare_timestamp_formats():
    """rfc3339, unixnano and unix: Logpush's timestamp_format options."""
    times = [r.time for r in parse_all(CLOUDFLARE)]
    assert times[0] == utc("2026-11-20 10:00:00")
    assert times[1] == pytest.approx(1795600000.123456789)
    assert times[2] == 1795600001


def test_bunny_user_agent_with_the_separator():
    records = parse_all(BUNNY)
    assert records[1].user_agent == "Odd|Agent"
    assert records[1].fields["c-country"] == "FR"


def test_cloudfront_through_the_cli(tmp_path):
    """A gzipped CloudFront file, its name giving nothing away: detected, decoded, UTC."""
    log = tmp_path / "E2ABCDEF.2026-11-20-10.abcdef12"
    log.write_bytes(gzip.compress("\n".join(CLOUDFRONT.lines).encode() + b"\n"))
    out = tmp_path / "events.ndjson"
    assert main(["send", str(log), "--domain", "example.com", "--dry-run", "--no-progress",
                 "--output", str(out), "--timezone", "America/New_York",
                 "--state", str(tmp_path / "state")]) == 0
    (event,) = [json.loads(line) for line in out.read_text().splitlines()]
    assert event["time"] == "2026-11-20T10:00:01Z"
    assert event["body"]["url"] == ("https://www.example.com/pricing/"
                                    "?utm_source=news%20letter&ref=a%2Fb")
    assert event["body"]["referrer"] == "https://www.google.com/"
    assert event["headers"]["User-Agent"] == CLOUDFRONT.records[0]["user_agent"]
    assert event["headers"]["X-Forwarded-For"] == "203.0.113.10"


def test_cloudfront_columns_as_props(tmp_path):
    """The parser keeps only the extra columns a --prop names (Parser.keep_fields): those
    still reach the event once the file's own #Fields header has replaced the preset's."""
    log = tmp_path / "cf.log"
    fields = CLOUDFRONT.fields[0]
    log.write_text("\n".join(CLOUDFRONT.lines) + "\n")
    out = tmp_path / "events.ndjson"
    assert main(["send", str(log), "--domain", "example.com", "--dry-run", "--no-progress",
                 "--output", str(out), "--prop", "edge=x-edge-location",
                 "--prop", "result=x-edge-result-type", "--prop", "missing=no-such-column",
                 "--state", str(tmp_path / "state")]) == 0
    (event,) = [json.loads(line) for line in out.read_text().splitlines()]
    assert event["body"]["props"] == {"edge": fields["x-edge-location"],
                                      "result": fields["x-edge-result-type"]}
