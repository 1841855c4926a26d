"""End to end with real servers: requests with known visitors go into Debian's nginx and Apache,
their access logs go through `plausible-import send` into the test receiver, and each event
must match the request that made it."""
from __future__ import annotations

import pytest

from importer.cli import main
from tests.servers import SAMPLE_REQUESTS, SITE_HOST, ApacheServer, NginxServer, Sent, drive

# What a page visit is, for the skeleton's default rules: a GET answered 200/304 that is not an
# asset. Bots are filtered as well (they are in SAMPLE_REQUESTS as a 404 anyway).
ASSET_SUFFIXES = (".css", ".js", ".png", ".pdf")


def expected_visits(sent: list[Sent], *, has_agent: bool = True,
                    host_of=lambda request: "example.com") -> list[dict]:
    """Page URLs take the logged virtual host when the log has one, else the --domain."""
    visits = []
    for s in sent:
        req = s.request
        path = req.path.split("?")[0]
        if req.method != "GET" or s.status not in (200, 304) or path.endswith(ASSET_SUFFIXES):
            continue
        visits.append({
            "url": f"https://{host_of(req)}{req.path}",
            "referrer": req.referrer if has_agent else None,
            "ip": req.client_ip or "127.0.0.1",
            "ua": (req.user_agent or "") if has_agent else "",
        })
    return visits


def received(receiver) -> list[dict]:
    return [{
        "url": r.json["url"],
        "referrer": r.json.get("referrer"),
        "ip": r.headers["X-Forwarded-For"],
        "ua": r.user_agent or "",
    } for r in receiver.requests if r.method == "POST"]


def same_events(got: list[dict], expected: list[dict]) -> bool:
    """Same events, and each visitor's in log order (visitors go concurrently)."""
    def per_visitor(events):
        lanes: dict = {}
        for e in events:
            lanes.setdefault((e["ip"], e["ua"]), []).append(e)
        return lanes
    return per_visitor(got) == per_visitor(expected) and len(got) == len(expected)


def import_log(log_path, receiver, *extra: str) -> int:
    return main(["send", str(log_path), "--domain", "example.com", "--url", receiver.url,
                 "--no-progress", *extra])


@pytest.mark.parametrize("log_format", ["combined", "json"])
def test_nginx_log_to_events(tmp_path, receiver, log_format):
    with NginxServer(tmp_path, log_format=log_format) as srv:
        sent = drive(srv.url, SAMPLE_REQUESTS)
        srv.wait_for_lines(len(sent))
        extra = () if log_format == "combined" else ("--format", "nginx_json")
        assert import_log(srv.log_path, receiver, *extra) == 0
    got = received(receiver)
    # nginx's $host is the Host header; http.client sends "127.0.0.1:port" when none is set.
    host_of = (lambda r: r.host or "127.0.0.1") if log_format == "json" else (
        lambda r: "example.com")
    assert same_events(got, expected_visits(sent, host_of=host_of))
    assert len(got) == 4
    for r in (r for r in receiver.requests if r.method == "POST"):
        assert r.headers["Content-Type"] == "application/json"
        assert r.json["name"] == "pageview" and r.json["domain"] == "example.com"


@pytest.mark.parametrize("log_format", ["combined", "common", "vhost_combined"])
def test_apache_log_to_events(tmp_path, receiver, log_format):
    with ApacheServer(tmp_path, log_format=log_format) as srv:
        sent = drive(srv.url, SAMPLE_REQUESTS)
        srv.wait_for_lines(len(sent))
        assert import_log(srv.log_path, receiver) == 0
    # Apache's %v is the virtual host's ServerName, whatever Host header was sent.
    expected = expected_visits(
        sent, has_agent=log_format != "common",
        host_of=(lambda r: SITE_HOST) if log_format == "vhost_combined" else (
            lambda r: "example.com"))
    # Apache's mod_dir logs "/" as served; the URL keeps the path the visitor asked for.
    assert same_events(received(receiver), expected)
    assert len(expected) == 4
