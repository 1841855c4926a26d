"""Presets, detection, the "closest formats" error, custom format strings pasted from server
configs, and timestamps. Sample lines and what they parse into: tests/format_samples.py."""
from __future__ import annotations

import itertools
from zoneinfo import ZoneInfo

import pytest

from importer.cli import main
from parsers.base import ParseError
from parsers.registry import UnknownFormat, detect, get_parser, load_all, pasted_format
from parsers.timefmt import TimeParser, _seconds_of_day
from tests.format_samples import ALL, FIREFOX, GOOGLE, SERVERS, check_sample, parse_all, utc

COMBINED_LINE = SERVERS[0].lines[0]


@pytest.mark.parametrize("sample", SERVERS, ids=[s.preset for s in SERVERS])
def test_every_field(sample):
    check_sample(sample, parse_all(sample))


def test_every_preset_has_a_sample():
    assert {s.preset for s in ALL} == set(load_all())


@pytest.mark.parametrize("sample", ALL, ids=[s.preset for s in ALL])
def test_detection_per_preset(sample):
    """A file of the preset's lines, with a blank line and one malformed line mixed in."""
    lines = list(sample.lines) + ["", "garbage that no format reads"]
    assert detect(lines).name in (sample.preset, *sample.detects_as)


def test_detection_takes_the_format_most_lines_fit():
    lines = [COMBINED_LINE.replace(' "-" "', " ") for _ in range(3)] + [COMBINED_LINE] * 5
    assert detect(lines).name == "combined"


def test_closest_formats_error_shows_the_failing_line_and_where():
    good = COMBINED_LINE
    broken = good.replace(f' "{FIREFOX}"', " Mozilla/5.0")  # an unquoted user agent
    with pytest.raises(UnknownFormat) as err:
        detect([good, good] + [broken] * 6)
    message = str(err.value)
    lines = message.splitlines()
    assert lines[0] == "no known format fits; the closest:"
    assert lines[1].startswith("  combined: parsed 2 of 8 lines; line 3 fails at column ")
    column = int(lines[1].split("column ")[1].split(":")[0])
    assert broken[column - 1:].startswith('" Mozilla')  # where '" "' was expected
    i = lines.index("first line that fails (line 3), where combined stops fitting:")
    assert lines[i + 1] == "  " + broken
    assert lines[i + 2] == "  " + " " * (column - 1) + "^"
    assert "--format" in lines[-1]


def test_closest_formats_for_json_names_the_missing_keys():
    with pytest.raises(UnknownFormat) as err:
        detect(['{"when": 1, "who": "x"}'] * 3)
    assert "nginx_json: parsed 0 of 3 lines" in str(err.value)
    assert "no remote_addr / client_ip" in str(err.value)


def test_closest_formats_for_a_long_line_shows_a_window_around_the_spot():
    line = COMBINED_LINE.replace('"GET /a?b=c', '"GET /' + "x" * 5000) + " trailing"
    with pytest.raises(UnknownFormat) as err:
        detect([line])
    text = str(err.value).splitlines()
    column = int(text[1].split("column ")[1].split(":")[0])
    i = next(i for i, ln in enumerate(text) if ln.startswith("  ..."))
    shown, caret = text[i], text[i + 1]
    assert len(shown) < 200 and caret.strip() == "^"
    spot = len(caret) - 1
    assert shown[spot:].removesuffix("...") == line[column - 1:][:len(shown) - spot]


def test_empty_file_cannot_be_detected():
    with pytest.raises(UnknownFormat, match="no lines"):
        detect(["", "  "])


def test_unknown_preset_and_family():
    with pytest.raises(UnknownFormat, match="unknown format 'nginxx'"):
        get_parser("nginxx")
    with pytest.raises(UnknownFormat):
        get_parser("lighttpd:%h %t")  # not a family: not a preset either


# --- custom formats ---------------------------------------------------------------------------

NGINX_CONF_LINE = ("log_format  main  '$remote_addr - $remote_user [$time_local] \"$request\" '\n"
                   "    '$status $body_bytes_sent \"$http_referer\" '\n"
                   "    '\"$http_user_agent\" \"$http_x_forwarded_for\" $upstream_cache_status';")


def test_pasted_nginx_log_format_directive():
    fmt = pasted_format("nginx", NGINX_CONF_LINE)
    assert fmt == ('$remote_addr - $remote_user [$time_local] "$request" $status '
                   '$body_bytes_sent "$http_referer" "$http_user_agent" "$http_x_forwarded_for" '
                   '$upstream_cache_status')
    record = get_parser("nginx:" + NGINX_CONF_LINE).parse(
        COMBINED_LINE + ' "198.51.100.1, 10.0.0.1" HIT')
    assert record.xff == "198.51.100.1, 10.0.0.1"
    assert record.fields["upstream_cache_status"] == "HIT"
    assert (record.uri, record.user_agent, record.referrer) == ("/a?b=c", FIREFOX, GOOGLE)


def test_pasted_apache_logformat_directive():
    line = r'LogFormat "%h %l %u %t \"%r\" %>s %O \"%{Referer}i\" \"%{User-Agent}i\" %D" timed'
    assert pasted_format("apache", line) == (
        '%h %l %u %t "%r" %>s %O "%{Referer}i" "%{User-Agent}i" %D')
    record = get_parser("apache:" + line).parse(COMBINED_LINE + " 1234")
    assert record.fields["request_time_us"] == "1234"
    assert record.bytes_sent == 5120


@pytest.mark.parametrize("family, text, expected", [
    ("nginx", "log_format j escape=json '{\"a\":\"$remote_addr\"}';", '{"a":"$remote_addr"}'),
    ("apache", r'"%h \"%r\" %>s"', '%h "%r" %>s'),  # one quoted string: the config's quotes
    ("haproxy", r'log-format "%ci:%cp\ [%tr]"', r"%ci:%cp\ [%tr]"),
    # Bare formats that start with a quoted field keep their quotes.
    ("apache", '"%r" %>s %b', '"%r" %>s %b'),
    ("nginx", '"$request" "$status"', '"$request" "$status"'),
    ("nginx", "$remote_addr '$x'", "$remote_addr '$x'"),
])
def test_pasted_format_quoting(family, text, expected):
    assert pasted_format(family, text) == expected


def test_a_format_without_variables_is_refused():
    with pytest.raises(UnknownFormat, match="names no nginx variable"):
        get_parser("nginx:")
    with pytest.raises(UnknownFormat, match="names no apache variable"):
        get_parser("apache:just text")


def test_nginx_variables():
    parser = get_parser(
        "nginx:$msec ${host}$request_uri $scheme $server_protocol $status $request_method "
        "$http_x_forwarded_for $sent_http_content_type $upstream_addr")
    record = parser.parse("1795600000.250 www.example.com/p?q=1 https HTTP/2.0 200 GET "
                          "203.0.113.9,10.0.0.1 text/html 10.0.0.5:8080")
    assert (record.time, record.host, record.uri, record.scheme, record.protocol) == (
        1795600000.25, "www.example.com", "/p?q=1", "https", "HTTP/2.0")
    assert (record.xff, record.content_type, record.fields["upstream_addr"]) == (
        "203.0.113.9,10.0.0.1", "text/html", "10.0.0.5:8080")


def test_nginx_uri_and_args_make_the_target():
    parser = get_parser('nginx:$remote_addr "$request_method $uri $args"')
    assert parser.parse('1.2.3.4 "GET /p a=1&b=2"').uri == "/p?a=1&b=2"
    assert parser.parse('1.2.3.4 "GET /p -"').uri == "/p"


def test_nginx_escapes_default_and_json():
    default = get_parser('nginx:$remote_addr "$http_user_agent"')
    assert default.parse(r'1.2.3.4 "a\x22b\x5Cc caf\xC3\xA9"').user_agent == 'a"b\\c café'
    json_escaped = get_parser('nginx:{"ip":"$remote_addr","ua":"$http_user_agent"}')
    record = json_escaped.parse(r'{"ip":"1.2.3.4","ua":"a\"b\\c \u0001 café"}')
    assert record.user_agent == 'a"b\\c \x01 café'


def test_apache_directives():
    parser = get_parser(
        'apache:%a %{X-Forwarded-For}i [%{%d/%b/%Y %T}t] %{begin:msec}t "%m %U%q %H" %>s %B '
        '%{Host}i %{Content-Type}o %k 100%%')
    record = parser.parse("10.0.0.2 203.0.113.9, 10.0.0.1 [20/Nov/2026 10:00:00] "
                          '1795600000123 "GET /p?a=1 HTTP/1.1" 200 512 www.example.com '
                          "text/html 0 100%")
    assert record.client_ip == "10.0.0.2" and record.xff == "203.0.113.9, 10.0.0.1"
    assert record.time == 1795600000.123  # the last time directive wins
    assert (record.method, record.uri, record.protocol, record.status) == (
        "GET", "/p?a=1", "HTTP/1.1", 200)
    assert (record.host, record.content_type, record.fields["k"]) == (
        "www.example.com", "text/html", "0")


def test_apache_strftime_time_without_offset_takes_the_timezone():
    fmt = "apache:%h [%{%Y-%m-%d %H:%M:%S}t]"
    line = "1.2.3.4 [2026-07-01 12:00:00]"
    assert get_parser(fmt).parse(line).time == utc("2026-07-01 12:00:00")
    berlin = get_parser(fmt, TimeParser(ZoneInfo("Europe/Berlin")))
    assert berlin.parse(line).time == utc("2026-07-01 10:00:00")


def test_haproxy_pasted_log_format_with_escaped_spaces():
    cfg = r'log-format "%ci:%cp\ [%trg]\ %HM\ %HU\ %HV\ %ST\ %B\ %{+Q}[capture.req.hdr(0)]"'
    parser = get_parser("haproxy:" + cfg)
    record = parser.parse('203.0.113.9:5000 [20/Nov/2026:10:00:00 +0000] GET /x?y=1 HTTP/1.1 '
                          '200 10 "www.example.com"')
    assert (record.client_ip, record.time, record.uri, record.status) == (
        "203.0.113.9", utc("2026-11-20 10:00:00"), "/x?y=1", 200)
    assert record.fields["[capture.req.hdr(0)]"] == "www.example.com"


def test_haproxy_rfc5424_header():
    line = ('<134>1 2026-11-20T10:00:00.938Z lb1 haproxy 812 - - '
            + SERVERS[-1].lines[0].split(": ", 1)[1])
    assert get_parser("haproxy").parse(line).referrer == GOOGLE


# --- time -------------------------------------------------------------------------------------

@pytest.mark.parametrize("stamp, expected", [
    ("[20/Nov/2026:10:00:00 +0000]", "2026-11-20 10:00:00"),
    ("[20/Nov/2026:15:30:00 +0530]", "2026-11-20 10:00:00"),
    ("[20/Nov/2026:02:00:00 -0800]", "2026-11-20 10:00:00"),
])
def test_offsets_are_honoured(stamp, expected):
    parser = get_parser("common", TimeParser(ZoneInfo("Asia/Tokyo")))
    line = f'1.2.3.4 - - {stamp} "GET / HTTP/1.1" 200 1'
    assert parser.parse(line).time == utc(expected)


def test_stamps_without_offset_are_utc_unless_a_timezone_is_given():
    fmt = "nginx:$remote_addr [$time_iso8601]"
    line = "1.2.3.4 [2026-01-15T12:00:00]"
    assert get_parser(fmt).parse(line).time == utc("2026-01-15 12:00:00")
    ny = get_parser(fmt, TimeParser(ZoneInfo("America/New_York")))
    assert ny.parse(line).time == utc("2026-01-15 17:00:00")  # EST, UTC-5
    assert ny.parse("1.2.3.4 [2026-07-15T12:00:00]").time == utc("2026-07-15 16:00:00")  # EDT
    assert ny.parse("1.2.3.4 [2026-01-15T12:00:00+01:00]").time == utc("2026-01-15 11:00:00")


def test_haproxy_local_time_takes_the_timezone():
    line = SERVERS[-1].lines[1]
    paris = get_parser("haproxy", TimeParser(ZoneInfo("Europe/Paris")))
    assert paris.parse(line).time == utc("2026-11-20 09:00:01")


def test_epoch_formats():
    parser = get_parser("apache:%h %{sec}t %{msec}t %{usec}t", TimeParser(ZoneInfo("Asia/Tokyo")))
    assert parser.parse("1.2.3.4 1795600000 1795600000500 1795600000500250").time == \
        pytest.approx(1795600000.50025)
    assert get_parser("nginx:$remote_addr $msec").parse("1.2.3.4 1795600000.5").time == \
        1795600000.5


def test_w3c_times_of_day_in_full_are_added_up_as_any_other_is_parsed():
    """A W3C time written in full (13:05:09) is its minute plus its seconds, uncached; any
    other form is parsed (and cached): the same seconds, or the same failure."""
    parts = ["00", "09", "23", "24", "59", "60", "61", "5", " 5", "+5", "-1", "٣٣", "0a", ""]
    times = TimeParser()
    for hh, mm, ss in itertools.product(parts, repeat=3):
        for clock in (f"{hh}:{mm}:{ss}", f"{hh}:{mm}:{ss}.5", f"{hh}:{mm}", f"{hh}{mm}:{ss}"):
            try:
                expected = _seconds_of_day(clock)
            except ValueError:
                expected = ValueError
            try:
                got = times.w3c_seconds(clock)
            except ValueError:
                got = ValueError
            assert got == expected, clock
    assert times.w3c("2026-03-01", "23:59:60") == utc("2026-03-02 00:00:00")


def test_bad_timestamp_is_a_parse_error():
    with pytest.raises(ParseError, match="timestamp"):
        get_parser("common").parse('1.2.3.4 - - [31/Foo/2026:10:00:00 +0000] "GET / HTTP/1.1" 2 1')


# --- the command line -------------------------------------------------------------------------

def test_formats_command_lists_every_preset(capsys):
    assert main(["formats"]) == 0
    out = capsys.readouterr().out
    for name, preset in load_all().items():
        assert f"  {name} " in out and preset.description in out
    for family in ("nginx:", "apache:", "haproxy:"):
        assert f"--format {family}'" in out


def test_file_no_format_fits_is_reported_and_skipped(tmp_path, capsys):
    odd = tmp_path / "odd.log"
    odd.write_text("hello world\n" * 3)
    good = tmp_path / "access.log"
    good.write_text(COMBINED_LINE + "\n")
    code = main(["send", str(odd), str(good), "--domain", "example.com", "--dry-run",
                 "--no-progress", "--json", "--state", str(tmp_path / "state")])
    captured = capsys.readouterr()
    assert code == 2
    assert f"{odd}: no known format fits; the closest:" in captured.err
    assert "  hello world" in captured.err
    assert '"events": 1' in captured.out


def test_malformed_lines_are_shown_with_file_line_and_column(tmp_path, capsys):
    log = tmp_path / "access.log"
    broken = COMBINED_LINE.replace(f' "{FIREFOX}"', " Mozilla")
    log.write_text("\n".join([COMBINED_LINE] * 3 + [broken]) + "\n")
    assert main(["send", str(log), "--domain", "example.com", "--dry-run", "--no-progress",
                 "--state", str(tmp_path / "state")]) == 0
    out = capsys.readouterr().out
    column = broken.index('" Mozilla') + 1
    assert f"{log}:4: does not match combined, fails at column {column} (expected '\" \"')" in out


def test_a_line_that_fits_but_holds_a_bad_value_is_shown_at_that_value(tmp_path, capsys):
    """Not "expected end of line": the line fits the format; its timestamp does not convert."""
    log = tmp_path / "access.log"
    stamp = COMBINED_LINE[COMBINED_LINE.index("["):COMBINED_LINE.index("]") + 1]
    broken = COMBINED_LINE.replace(stamp, "[31/Dec/9999:23:59:59 -2359]")
    log.write_text("\n".join([COMBINED_LINE] * 3 + [broken]) + "\n")
    assert main(["send", str(log), "--domain", "example.com", "--dry-run", "--no-progress",
                 "--state", str(tmp_path / "state")]) == 0
    out = capsys.readouterr().out
    column = broken.index("[") + 1
    assert f"{log}:4: timestamp out of range '[31/Dec/9999:23:59:59 -2359]', fails at column " \
           f"{column} (expected %t)" in out


@pytest.mark.parametrize("local, expected", [
    ("29/Mar/2026:01:59:59", "2026-03-29 00:59:59"),  # CET, just before clocks jump
    ("29/Mar/2026:03:00:00", "2026-03-29 01:00:00"),  # CEST, just after
    ("25/Oct/2026:02:30:00", "2026-10-25 00:30:00"),  # repeated hour: its first (CEST) pass
    ("25/Oct/2026:03:30:00", "2026-10-25 02:30:00"),  # CET again
])
def test_local_clf_stamps_across_dst_edges(local, expected):
    """A CLF stamp without an offset (HAProxy's %tr) reads in --timezone as an ISO one does."""
    times = TimeParser(ZoneInfo("Europe/Berlin"))
    assert times.clf(local) == utc(expected)
    day, clock = local.split(":", 1)
    iso = f"{day[7:11]}-{'03' if 'Mar' in day else '10'}-{day[:2]}T{clock}"
    assert times.iso(iso) == utc(expected)
