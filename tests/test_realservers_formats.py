"""Logs written by real servers (Debian's nginx, Apache, Caddy, HAProxy, Varnish on 127.0.0.1)
for known requests: every field of every line is checked against the request that made it,
detection must name the format, and `plausible-import send --dry-run` must turn the lines into
events carrying the request's page, referrer, address and user agent.

Custom formats are pasted exactly as the server's config file has them (the `log_format`,
`LogFormat` or `log-format` line), which is what a user copies."""
from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from importer.cli import main
from parsers.base import LogRecord
from parsers.registry import UnknownFormat, detect, get_parser
from tests.servers import (
    APACHE_FORMATS,
    NGINX_FORMATS,
    SAMPLE_REQUESTS,
    SITE_HOST,
    ApacheServer,
    CaddyServer,
    HAProxyServer,
    NginxServer,
    Request,
    Sent,
    Server,
    VarnishServer,
    drive,
)


@dataclass(frozen=True)
class Case:
    """One server set-up and what its log can tell about each request."""

    id: str
    server: Callable[[Path], Server]
    format: Callable[[Server], str]  # the --format to read the log with
    detected: tuple[str, ...]  # presets detection may pick; () for a format only pasting reads
    logs_agent: bool = True  # referrer and user agent are in the log
    visitor_in: str = "client_ip"  # where the visitor's address is: client_ip, xff, nowhere
    host: Callable[[Request, Server], str | None] = lambda req, srv: None
    body_bytes: bool = False  # bytes_sent is the body's length (not headers + body)
    absolute_uri: bool = False  # the request target is logged as http://host/path
    dir_index: bool = False  # Apache's %U logs the file a directory request was served by


def preset(name: str) -> Callable[[Server], str]:
    return lambda srv: name


def config_line(file: str, directive: str, family: str) -> Callable[[Server], str]:
    """`--format family:<the directive's line of the server's config, verbatim>`."""
    def pasted(srv: Server) -> str:
        text = (srv.dir / file).read_text()
        line = next(ln for ln in text.splitlines() if ln.strip().startswith(directive))
        return f"{family}:{line.strip()}"
    return pasted


def header_host(req: Request, srv: Server) -> str:
    return req.host or f"127.0.0.1:{srv.port}"


def nginx_host(req: Request, srv: Server) -> str:
    return req.host or "127.0.0.1"  # $host drops the port


# Quotes, a backslash, UTF-8 and HAProxy's own escape characters: each server escapes them its
# way. http.client sends header text as Latin-1: these are the UTF-8 bytes of "café".
TRICKY = (Request('/search?q="quoted"&x=\\back', client_ip="203.0.113.77",
                  user_agent='Mozilla/5.0 (X11; Linux) caf\xc3\xa9 \\ "q" |{x}# end',
                  referrer='https://example.org/?q="x"'),)
REQUESTS = SAMPLE_REQUESTS + TRICKY

HAPROXY_CUSTOM = '%ci:%cp [%tr] %HM %HU %HV %ST %B %hr %Ts'

CASES = [
    Case("nginx-combined", lambda p: NginxServer(p, "combined"), preset("combined"),
         ("combined",), body_bytes=True),
    Case("nginx-custom", lambda p: NginxServer(p, NGINX_FORMATS["vhost_iso"]),
         config_line("nginx.conf", "log_format", "nginx"), (), host=nginx_host,
         body_bytes=True),
    Case("nginx-json", lambda p: NginxServer(p, "json"),
         config_line("nginx.conf", "log_format", "nginx"), ("nginx_json",), host=nginx_host,
         body_bytes=True),
    Case("apache-common", lambda p: ApacheServer(p, "common"), preset("common"), ("common",),
         logs_agent=False),
    Case("apache-combined", lambda p: ApacheServer(p, "combined"), preset("combined"),
         ("combined",)),
    Case("apache-vhost_combined", lambda p: ApacheServer(p, "vhost_combined"),
         preset("vhost_combined"), ("vhost_combined",), host=lambda req, srv: SITE_HOST),
    Case("apache-custom", lambda p: ApacheServer(p, APACHE_FORMATS["vhost_iso"]),
         config_line("httpd.conf", "LogFormat", "apache"), (), host=header_host,
         dir_index=True),
    Case("caddy-json", CaddyServer, preset("caddy"), ("caddy",), visitor_in="xff",
         host=header_host, body_bytes=True),
    Case("haproxy-httplog", HAProxyServer, preset("haproxy"), ("haproxy",), host=header_host),
    Case("haproxy-custom", lambda p: HAProxyServer(p, log_format=HAPROXY_CUSTOM),
         config_line("haproxy.cfg", "log-format", "haproxy"), (), host=header_host),
    Case("varnishncsa-default", lambda p: VarnishServer(p, log_format="default"),
         preset("varnishncsa"), ("combined", "varnishncsa"), visitor_in="nowhere",
         absolute_uri=True),
    Case("varnishncsa-xff", lambda p: VarnishServer(p, log_format="xff"),
         preset("varnishncsa_xff"), ("varnishncsa_xff",), absolute_uri=True),
]


@pytest.fixture(scope="module", params=CASES, ids=[c.id for c in CASES])
def served(request, tmp_path_factory):
    """(case, server, the requests sent, the log's lines): one server run per case."""
    case: Case = request.param
    with case.server(tmp_path_factory.mktemp(case.id)) as srv:
        sent = drive(srv.url, REQUESTS)
        lines = srv.wait_for_lines(len(sent))
    assert len(lines) == len(sent), lines
    return case, srv, sent, lines


def expected_uris(case: Case, req: Request, srv: Server) -> set[str]:
    if case.absolute_uri:
        return {f"http://{header_host(req, srv)}{req.path}"}
    if case.dir_index and req.path.endswith("/"):
        return {req.path + "index.html"}
    return {req.path}


def as_sent(text: str | None) -> str | None:
    """A header value as the bytes on the wire read as UTF-8."""
    return text.encode("latin-1").decode("utf-8") if text else text


def visitor(case: Case, req: Request) -> str:
    return "127.0.0.1" if case.visitor_in == "nowhere" else (req.client_ip or "127.0.0.1")


def check_record(case: Case, srv: Server, s: Sent, r: LogRecord) -> None:
    req = s.request
    assert r.method == req.method
    assert r.uri in expected_uris(case, req, srv)
    assert r.protocol == "HTTP/1.1"
    assert r.status == s.status
    if case.body_bytes:
        assert r.bytes_sent == s.body_bytes
    else:
        assert isinstance(r.bytes_sent, int) and r.bytes_sent >= s.body_bytes
    assert r.time is not None and s.started - 1 <= r.time <= s.finished + 1
    if case.logs_agent:
        assert r.user_agent == as_sent(req.user_agent)
        assert r.referrer == as_sent(req.referrer)
    else:
        assert r.user_agent is None and r.referrer is None
    expected_host = case.host(req, srv)
    if expected_host is not None:
        assert r.host == expected_host
    if case.visitor_in == "xff":
        assert r.client_ip == "127.0.0.1"
        assert r.xff == req.client_ip
    else:
        assert r.client_ip == visitor(case, req)


def matched(case: Case, srv: Server, sent: list[Sent], lines: list[str]) -> list[Sent]:
    """The request behind each line, every field checked. Servers log after answering, so two
    lines may swap places: a line belongs to the first request not yet taken that it fits."""
    parser = get_parser(case.format(srv))
    free, found = list(sent), []
    for line in lines:
        record = parser.parse(line)
        fits = [s for s in free if s.request.method == record.method
                and record.uri in expected_uris(case, s.request, srv)]
        assert fits, f"no request sent for {line!r}"
        for s in fits:
            try:
                check_record(case, srv, s, record)
            except AssertionError:
                if s is fits[-1]:
                    raise
                continue
            free.remove(s)
            found.append(s)
            break
    return found


def test_every_field_of_every_line(served):
    case, srv, sent, lines = served
    assert sorted(matched(case, srv, sent, lines), key=sent.index) == sent


def test_detection(served):
    """Detection names the format, and what it picks reads each line as the --format used
    above does (nginx JSON: the preset that guesses keys vs. the pasted log_format)."""
    case, srv, sent, lines = served
    if not case.detected:
        with pytest.raises(UnknownFormat) as err:
            detect(lines)
        assert "closest" in str(err.value) and lines[0][:40] in str(err.value)
        return
    found = detect(lines)
    assert found.name in case.detected
    given = get_parser(case.format(srv))
    for line in lines:
        a, b = given.parse(line), found.parse(line)
        assert (a.time, a.client_ip, a.method, a.uri, a.status, a.bytes_sent, a.referrer,
                a.user_agent, a.host, a.xff) == (b.time, b.client_ip, b.method, b.uri, b.status,
                                                 b.bytes_sent, b.referrer, b.user_agent, b.host,
                                                 b.xff)


def test_cli_events_carry_each_request(served, tmp_path):
    """`send --dry-run --output`: every page visit of the log becomes an event that names its
    line (origin) and carries that request's page, referrer, visitor address and user agent.
    (Which other lines become events is the filters' business, tested with them.)"""
    case, srv, sent, lines = served
    out = tmp_path / "events.ndjson"
    args = ["send", str(srv.log_path), "--domain", "example.com", "--dry-run", "--no-progress",
            "--output", str(out), "--state", str(tmp_path / "state")]
    if not case.detected:
        args += ["--format", case.format(srv)]
    if case.visitor_in == "xff":
        args += ["--client-ip-from", "xff"]
    assert main(args) == 0
    events = [json.loads(line) for line in out.read_text().splitlines()]
    pages = {i for i, s in enumerate(sent, 1) if s.request.method == "GET" and s.status == 200
             and not s.request.path.endswith((".css", ".js", ".png", ".pdf"))}
    behind = matched(case, srv, sent, lines)
    linenos = [int(re.search(r":(\d+)$", e["origin"]).group(1)) for e in events]
    assert pages <= {sent.index(behind[n - 1]) + 1 for n in linenos}
    for lineno, event in zip(linenos, events, strict=True):
        s = behind[lineno - 1]
        req, body, headers = s.request, event["body"], event["headers"]
        assert body["name"] == "pageview"
        assert target_of(body["url"]) in {target_of(u) for u in expected_uris(case, req, srv)}
        assert headers["X-Forwarded-For"] == str(ipaddress.ip_address(visitor(case, req)))
        if case.logs_agent:
            assert headers["User-Agent"] == (as_sent(req.user_agent) or "")
            assert body.get("referrer") == req.referrer
        else:
            assert headers["User-Agent"] == "" and "referrer" not in body


def target_of(url: str) -> str:
    parts = urlsplit(url)
    return parts.path + (f"?{parts.query}" if parts.query else "")
