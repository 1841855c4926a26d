"""The real servers of tests/servers.py start, log exactly the requests they are sent, and stop.

Raw string checks only: parsing these lines is the parsers' tests' job."""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.servers import (
    MAX_REQUESTS,
    SAMPLE_REQUESTS,
    SITE_PATHS,
    ApacheServer,
    CaddyServer,
    HAProxyServer,
    NginxServer,
    Request,
    Server,
    VarnishServer,
    drive,
    require_binary,
)

REQUESTS = (
    Request("/about/", user_agent="Mozilla/5.0 (X11; Linux x86_64) TestBrowser/1.0",
            referrer="https://www.google.com/", client_ip="203.0.113.10"),
    Request("/blog/post.html?utm_source=newsletter", user_agent="Mozilla/5.0 (iPhone) Test/2.0",
            referrer="https://news.example.org/item", client_ip="198.51.100.7"),
    Request("/no-such-page", user_agent="TestBot/3.0 (+https://bot.example.net/)",
            referrer="https://www.example.com/about/", client_ip="192.0.2.55"),
)
ALL = ("path", "client_ip", "user_agent", "referrer")

# (server factory, which of the sent values its log lines contain)
CASES: dict[str, tuple[Callable[[Path], Server], tuple[str, ...]]] = {
    "nginx-combined": (lambda p: NginxServer(p), ALL),
    "nginx-main": (lambda p: NginxServer(p, log_format="main"), ALL),
    "nginx-vhost_iso": (lambda p: NginxServer(p, log_format="vhost_iso"), ALL),
    "nginx-json": (lambda p: NginxServer(p, log_format="json"), ALL),
    "nginx-arbitrary": (lambda p: NginxServer(
        p, log_format="$remote_addr '$request_uri' \"$http_referer\" $http_user_agent"), ALL),
    "apache-common": (lambda p: ApacheServer(p, log_format="common"), ("path", "client_ip")),
    "apache-combined": (lambda p: ApacheServer(p), ALL),
    "apache-vhost_combined": (lambda p: ApacheServer(p, log_format="vhost_combined"), ALL),
    "apache-vhost_iso": (lambda p: ApacheServer(p, log_format="vhost_iso"), ALL),
    "apache-arbitrary": (lambda p: ApacheServer(
        p, log_format='%a|"%U%q"|%{Referer}i|%{User-Agent}i'), ALL),
    "caddy": (lambda p: CaddyServer(p), ALL),
    "haproxy": (lambda p: HAProxyServer(p), ALL),
    "haproxy-custom": (lambda p: HAProxyServer(p, log_format='%ci %ST "%HU" %hr'), ALL),
    "haproxy-before-apache": (lambda p: HAProxyServer(p, backend=ApacheServer(p)), ALL),
    "varnish-xff": (lambda p: VarnishServer(p), ALL),
    # varnishncsa's own default logs the TCP peer (127.0.0.1) for %h.
    "varnish-default": (lambda p: VarnishServer(p, log_format="default"),
                        ("path", "user_agent", "referrer")),
}


@pytest.mark.parametrize("case", CASES)
def test_server_logs_the_requests_it_was_sent(case: str, tmp_path: Path) -> None:
    factory, logged = CASES[case]
    with factory(tmp_path) as server:
        sent = drive(server.url, REQUESTS)
        lines = server.wait_for_lines(len(REQUESTS))
        raw = server.log_path.read_text()
    assert [s.status for s in sent] == [200, 200, 404]
    assert len(lines) == len(REQUESTS), raw  # the readiness probes were emptied out
    assert "__ready" not in raw and "\0" not in raw
    # Servers log after answering, so under load two lines can swap places: match each
    # request to the one line that carries its (distinct) user agent, or path where the
    # format has no user agent.
    key = "user_agent" if "user_agent" in logged else "path"
    for request in REQUESTS:
        matching = [line for line in lines if getattr(request, key) in line]
        assert len(matching) == 1, (getattr(request, key), lines)
        for name in logged:
            assert getattr(request, name) in matching[0], (name, matching[0])


def test_sample_requests_cover_the_site_and_a_404(tmp_path: Path) -> None:
    with NginxServer(tmp_path) as server:
        sent = drive(server.url, SAMPLE_REQUESTS)
        assert len(server.wait_for_lines(len(sent))) == len(SAMPLE_REQUESTS)
    expected = [200 if urlsplit(r.path).path in SITE_PATHS else 404 for r in SAMPLE_REQUESTS]
    assert [s.status for s in sent] == expected
    assert set(SITE_PATHS) <= {urlsplit(r.path).path for r in SAMPLE_REQUESTS}
    assert all(s.started <= s.finished for s in sent)


def test_a_server_behind_a_proxy_is_stopped_with_it(tmp_path: Path) -> None:
    proxy = HAProxyServer(tmp_path)
    with proxy:
        assert proxy.backend.running
    assert not proxy.backend.running and not proxy.running


def test_drive_refuses_an_unbounded_batch() -> None:
    with pytest.raises(ValueError):
        drive("http://127.0.0.1:9", [Request()] * (MAX_REQUESTS + 1))


def test_require_binary_finds_installed_programs() -> None:
    assert require_binary("sh").endswith("/sh")


def test_require_binary_skips_locally_and_fails_under_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="not-a-real-server"):
        require_binary("not-a-real-server")
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="not-a-real-server"):
        require_binary("not-a-real-server")
