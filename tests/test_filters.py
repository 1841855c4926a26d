"""The filter rules, one table per rule, then the real CLI run with and without each option."""
from __future__ import annotations

import ipaddress
import json
from collections import Counter

import pytest

from importer.cli import main
from importer.clientip import ClientIpResolver
from importer.filters import (
    FilterChain,
    PageRule,
    SameSite,
    UserAgentRule,
    default_classify,
    host_rule,
    ip_rule,
    path_rule,
    time_rule,
)
from importer.sites import SiteRouter
from parsers.base import LogRecord

CHROME = ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
          "Chrome/131.0.0.0 Safari/537.36")
FIREFOX = "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:133.0) Gecko/20100101 Firefox/133.0"
GOOGLEBOT = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"


def rec(uri: str = "/", status: int | None = 200, method: str | None = "GET", **kw) -> LogRecord:
    return LogRecord(method=method, uri=uri, status=status, **kw)


PAGE_CASES = [
    # (record, reason with the defaults)
    (rec("/"), None),
    (rec("/pricing?utm_source=x"), None),
    (rec("/docs/install", 304), None),
    (rec("/", 204), None),
    (rec("/", 200, "POST"), "method"),
    (rec("/", 200, "HEAD"), "method"),
    (rec("/", 400, None), "bad_request"),
    (rec("/old", 301), "status"),
    (rec("/missing", 404), "status"),
    (rec("/", 500), "status"),
    (rec("/", None), None),  # the format logs no status: nothing to judge
    (rec("/assets/site.css"), "asset"),
    (rec("/app.js?v=3"), "asset"),
    (rec("/img/Logo.PNG"), "asset"),
    (rec("/fonts/a.woff2", 304), "asset"),
    (rec("/files/report.pdf"), "asset"),
    (rec("/robots.txt"), "special_path"),
    (rec("/favicon.ico"), "special_path"),
    (rec("/.well-known/acme-challenge/abc"), "special_path"),
    (rec("http://example.com/robots.txt"), "special_path"),  # absolute-form target
    (rec("/blog/post.html"), None),
    (rec("/v1.2/docs"), None),  # a dot in a directory is no extension
    (rec("/", content_type="text/html; charset=utf-8"), None),
    (rec("/", content_type="TEXT/HTML"), None),
    (rec("/", content_type="application/xhtml+xml"), None),
    (rec("/api/items", content_type="application/json"), "content_type"),
    (rec("/feed", content_type="application/rss+xml"), "content_type"),
]


@pytest.mark.parametrize("record, reason", PAGE_CASES)
def test_page_rule_defaults(record, reason):
    assert PageRule()(record) == reason


ON_SITE = "https://www.example.com/docs/install"
DOWNLOAD_CASES = [
    # (record, reason with --track-downloads --track-404)
    (rec("/files/a.pdf", referrer=ON_SITE), None),
    (rec("/files/a.pdf?dl=1", 304, referrer=ON_SITE), None),
    (rec("/files/a.zip", content_type="application/zip", referrer=ON_SITE), None),
    (rec("/files/a.pdf", referrer="https://other.example/"), "download_not_from_site"),
    (rec("/files/a.pdf"), "download_not_from_site"),  # typed or linked from elsewhere
    (rec("/files/a.pdf", 206, referrer=ON_SITE), "partial_download"),
    (rec("/files/a.pdf", 404, referrer=ON_SITE), "status"),
    (rec("/files/a.PDF", referrer=ON_SITE), "asset"),  # Plausible's script compares as written
    (rec("/files/a.tar", referrer=ON_SITE), "asset"),  # not one of its file types
    (rec("/missing", 404), None),
    (rec("/missing.png", 404), "asset"),
    (rec("/gone", 410), "status"),
    (rec("/missing", 404, content_type="application/json"), "content_type"),
]


@pytest.mark.parametrize("record, reason", DOWNLOAD_CASES)
def test_page_rule_with_custom_events(record, reason):
    rule = PageRule(track_downloads=True, track_404=True, same_site=SameSite(hosts=["example.com"]))
    assert rule(record) == reason


@pytest.mark.parametrize("referrer, host, sites, same", [
    ("https://example.com/a", None, SiteRouter("example.com"), True),
    ("https://www.example.com/a", None, SiteRouter("example.com"), True),
    ("https://blog.example.com/a", None, SiteRouter("example.com"), False),
    ("https://blog.example.com/a", "blog.example.com", SiteRouter("example.com"), True),
    ("https://blog.example.com/a", "files.example.com",
     SiteRouter(None, [("*.example.com", "example.com")]), True),
    ("https://shop.example.net/a", "files.example.com",
     SiteRouter(None, [("*.example.com", "example.com"), ("shop.example.net", "shop.net")]),
     False),
    ("android-app://com.example/", None, SiteRouter("example.com"), False),
    (None, None, SiteRouter("example.com"), False),
])
def test_same_site(referrer, host, sites, same):
    check = SameSite(sites, [*sites.default.split(",")] if sites.default else [])
    assert check(rec("/f.pdf", referrer=referrer, host=host)) is same


@pytest.mark.parametrize("time, reason", [
    (None, "no_time"), (99.0, "before_since"), (100.0, None), (199.5, None),
    (200.0, "after_until"),
])
def test_time_rule(time, reason):
    assert time_rule(100.0, 200.0)(rec(time=time)) == reason
    assert time_rule(None, None)(rec(time=time)) == ("no_time" if time is None else None)


@pytest.mark.parametrize("uri, exclude, include, reason", [
    ("/admin/users", ["/admin/*"], [], "excluded_path"),
    ("/admin", ["/admin/*"], [], None),
    ("/blog/2026/11/post", [], ["/blog/*"], None),  # `*` spans `/`
    ("/pricing", [], ["/blog/*", "/docs/*"], "not_included_path"),
    ("/docs/?q=/admin/x", ["/admin/*"], ["/docs/*"], None),  # the query is not the path
    ("/blog/draft-1", ["/blog/draft-*"], ["/blog/*"], "excluded_path"),
    ("/Blog/x", [], ["/blog/*"], "not_included_path"),  # case-sensitive, like paths
])
def test_path_rule(uri, exclude, include, reason):
    assert path_rule(exclude, include)(rec(uri)) == reason


NETS = [ipaddress.ip_network(net) for net in ("10.0.0.0/8", "2001:db8::/32")]


@pytest.mark.parametrize("client, xff, from_xff, reason", [
    ("10.1.2.3", None, False, "excluded_ip"),
    ("203.0.113.9", None, False, None),
    ("[2001:db8::7]:443", None, False, "excluded_ip"),
    ("::ffff:10.0.0.1", None, False, "excluded_ip"),
    ("not-an-ip", None, False, None),  # left for the builder to report as malformed
    # Behind a proxy, the visitor's address is what counts, not the proxy's.
    ("198.51.100.1", "10.9.9.9", True, "excluded_ip"),
    ("198.51.100.1", "203.0.113.9", True, None),
])
def test_ip_rule(client, xff, from_xff, reason):
    rule = ip_rule(NETS, ClientIpResolver(from_xff))
    assert rule(rec(client_ip=client, xff=xff)) == reason


def test_host_rule_counts_unmapped_hosts():
    unmapped: Counter = Counter()
    rule = host_rule(SiteRouter(None, [("example.com", "example.com")]), unmapped)
    hosts = ["example.com", "www.example.com", "Other.Example:8080", "other.example", None]
    reasons = [rule(rec(host=h)) for h in hosts]
    assert reasons == [None, None, "unmapped_host", "unmapped_host", "unmapped_host"]
    assert unmapped == {"other.example": 2, "(no host logged)": 1}


class CountingClassifier:
    def __init__(self, kinds: dict[str, str]) -> None:
        self.kinds, self.calls = kinds, Counter()

    def __call__(self, ua: str) -> str:
        self.calls[ua] += 1
        return self.kinds.get(ua, "")


def test_user_agent_rule_caches_per_distinct_ua_and_counts_each_kind():
    classify = CountingClassifier({"bot": "bot", "curl": "library", "hc": "monitor",
                                   "hl": "headless", "odd": "something-else"})
    rule = UserAgentRule(classify, exclude=["FireFox"])
    uas = ["bot", "curl", "hc", "hl", "odd", CHROME, FIREFOX, None, "bot", "curl", CHROME]
    got = [rule(rec(user_agent=ua)) for ua in uas]
    assert got == ["bot", "library", "monitor", "headless", None, None, "excluded_ua", None,
                   "bot", "library", None]
    assert max(classify.calls.values()) == 1  # one classification per distinct UA
    assert FIREFOX not in classify.calls  # excluded before classification
    assert "" not in classify.calls  # a missing UA is not a bot to Plausible


def test_keep_bots_classifies_nothing():
    rule = UserAgentRule(None, exclude=["curl"])
    assert rule(rec(user_agent=GOOGLEBOT)) is None
    assert rule(rec(user_agent="curl/8.5.0")) == "excluded_ua"


def test_chain_classifies_user_agents_last():
    classify = CountingClassifier({})
    chain = FilterChain([PageRule(), UserAgentRule(classify)])
    reasons = [chain.reason(rec(uri, status, user_agent=ua)) for uri, status, ua in [
        ("/a.css", 200, "ua-asset"), ("/", 404, "ua-404"), ("/", 200, "ua-page")]]
    assert reasons == ["asset", "status", None]
    assert list(classify.calls) == ["ua-page"]


SAFARI_IOS = ("Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 "
              "(KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1")
UA_CASES = [
    # search crawlers
    (GOOGLEBOT, "bot"),
    ("Mozilla/5.0 (Linux; Android 6.0.1; Nexus 5X Build/MMB29P) AppleWebKit/537.36 (KHTML, like "
     "Gecko) Chrome/131.0.6778.69 Mobile Safari/537.36 (compatible; Googlebot/2.1; "
     "+http://www.google.com/bot.html)", "bot"),
    ("Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)", "bot"),
    ("Mozilla/5.0 (compatible; YandexBot/3.0; +http://yandex.com/bots)", "bot"),
    ("Mozilla/5.0 (compatible; Baiduspider/2.0; +http://www.baidu.com/search/spider.html)",
     "bot"),
    ("DuckDuckBot/1.1; (+http://duckduckgo.com/duckduckbot.html)", "bot"),
    ("Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_5) AppleWebKit/605.1.15 (KHTML, like Gecko) "
     "Version/13.1.1 Safari/605.1.15 (Applebot/0.1; +http://www.apple.com/go/applebot)", "bot"),
    # AI crawlers
    ("Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; compatible; GPTBot/1.2; "
     "+https://openai.com/gptbot)", "bot"),
    ("Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko); compatible; ChatGPT-User/1.0; "
     "+https://openai.com/bot", "bot"),
    ("Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; compatible; ClaudeBot/1.0; "
     "+claudebot@anthropic.com)", "bot"),
    ("Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; compatible; PerplexityBot/1.0; "
     "+https://perplexity.ai/perplexitybot)", "bot"),
    ("Mozilla/5.0 (Linux; Android 5.0) AppleWebKit/537.36 (KHTML, like Gecko) Mobile "
     "Safari/537.36 (compatible; Bytespider; spider-feedback@bytedance.com)", "bot"),
    ("CCBot/2.0 (https://commoncrawl.org/faq/)", "bot"),
    ("Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) "
     "Chrome/119.0.0.0 Safari/537.36 (Amazonbot/0.1; "
     "+https://developer.amazon.com/support/amazonbot)", "bot"),
    ("meta-externalagent/1.1 (+https://developers.facebook.com/docs/sharing/webmasters/crawler)",
     "bot"),
    # uptime monitors and health checks (Matomo lists the big services as bots)
    ("Mozilla/5.0+(compatible; UptimeRobot/2.0; http://www.uptimerobot.com/)", "bot"),
    ("Pingdom.com_bot_version_1.4_(http://www.pingdom.com/)", "bot"),
    ("ELB-HealthChecker/2.0", "bot"),
    ("kube-probe/1.31", "monitor"),
    # HTTP libraries
    ("curl/8.5.0", "library"),
    ("python-requests/2.32.3", "library"),
    ("Go-http-client/2.0", "library"),
    ("Wget/1.21.4", "library"),
    ("okhttp/4.12.0", "library"),
    ("axios/1.7.7", "library"),
    ("Python/3.11 aiohttp/3.9.5", "library"),
    # headless browsers
    ("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
     "HeadlessChrome/131.0.0.0 Safari/537.36", "headless"),
    # real browsers: never flagged
    (CHROME, None),
    (FIREFOX, None),
    ("Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) "
     "Version/18.1 Safari/605.1.15", None),
    (CHROME + " Edg/131.0.0.0", None),
    (SAFARI_IOS, None),
    ("Mozilla/5.0 (Linux; Android 14; SAMSUNG SM-S921B) AppleWebKit/537.36 (KHTML, like Gecko) "
     "SamsungBrowser/26.0 Chrome/122.0.0.0 Mobile Safari/537.36", None),
    ("Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
     "Chrome/131.0.0.0 Mobile Safari/537.36", None),
    ("", None),
]


@pytest.fixture(scope="module")
def ua_rule() -> UserAgentRule:
    return UserAgentRule(default_classify())


@pytest.mark.parametrize("ua, reason", UA_CASES)
def test_user_agents_with_the_real_classifier(ua_rule, ua, reason):
    assert ua_rule(rec(user_agent=ua)) == reason


# ---- the CLI: one log, run with and without each option ----------------------------------

FORMAT = ('nginx:$remote_addr - - [$time_local] "$request" $status $body_bytes_sent '
          '"$http_referer" "$http_user_agent" "$http_x_forwarded_for" $host '
          '"$sent_http_content_type" $upstream_cache_status')
CURL = "curl/8.5.0"


def logline(ip, uri, *, status=200, method="GET", ua=CHROME, ref="-", xff="-",
            host="example.com", ctype="text/html", when="24/Nov/2026:10:00:00 +0000") -> str:
    return (f'{ip} - - [{when}] "{method} {uri} HTTP/1.1" {status} 100 "{ref}" "{ua}" '
            f'"{xff}" {host} "{ctype}" HIT')


LINES = [
    logline("203.0.113.1", "/"),
    logline("203.0.113.1", "/blog/first", ref="https://example.com/"),
    logline("203.0.113.1", "/blog/second", when="25/Nov/2026:10:00:00 +0000"),
    logline("203.0.113.1", "/site.css", ctype="text/css"),
    logline("203.0.113.2", "/files/guide.pdf", ref="https://www.example.com/blog/first",
            ctype="application/pdf"),
    logline("203.0.113.2", "/files/guide.pdf", ctype="application/pdf"),
    logline("203.0.113.2", "/nope", status=404),
    logline("10.1.1.1", "/admin/", ua=FIREFOX),
    logline("10.1.1.1", "/pricing", ua=FIREFOX, when="26/Nov/2026:10:00:00 +0000"),
    logline("66.249.66.1", "/blog/first", ua=GOOGLEBOT),
    logline("192.0.2.9", "/", ua=CURL),
    logline("10.0.0.2", "/", xff="198.51.100.77, 10.0.0.3"),
    logline("203.0.113.3", "/shop/", host="shop.example.com"),
    logline("203.0.113.3", "/", host="unknown.example.net"),
    logline("203.0.113.4", "/contact", method="POST", status=302),
]
@pytest.fixture
def log(tmp_path):
    path = tmp_path / "access.log"
    path.write_text("\n".join(LINES) + "\n")
    return path


def run(log, tmp_path, capsys, *options: str) -> tuple[dict, list[dict]]:
    out = tmp_path / "events.ndjson"
    code = main(["send", str(log), "--format", FORMAT, "--dry-run", "--json", "--no-progress",
                 "--output", str(out), *options])
    summary = json.loads(capsys.readouterr().out)
    assert code == 0
    assert summary["lines_read"] == len(LINES)
    assert summary["lines_read"] == (summary["events"] + sum(summary["filtered"].values())
                                     + summary["duplicates"] + summary["malformed"])
    events = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(events) == summary["events"]
    return summary, events


def paths(events: list[dict]) -> list[str]:
    return [e["body"]["url"].split("/", 3)[3] for e in events]


def test_cli_defaults(log, tmp_path, capsys):
    summary, events = run(log, tmp_path, capsys, "--domain", "example.com")
    assert summary["filtered"] == {"asset": 3, "bot": 1, "library": 1, "method": 1, "status": 1}
    assert paths(events) == ["", "blog/first", "blog/second", "admin/", "pricing", "", "shop/",
                             ""]
    assert {e["body"]["domain"] for e in events} == {"example.com"}
    hosts = {e["body"]["url"].split("/")[2] for e in events}
    assert hosts == {"example.com", "shop.example.com", "unknown.example.net"}
    assert {e["body"]["name"] for e in events} == {"pageview"}


OPTION_CASES = [
    # (options, the reason that appears, lines it counts, events it takes away). A reason
    # also takes lines that a later rule would have filtered (the rules run in order).
    (["--exclude-path", "/admin/*"], "excluded_path", 1, 1),
    (["--include-path", "/blog/*"], "not_included_path", 7, 6),
    (["--exclude-ip", "10.0.0.0/8"], "excluded_ip", 3, 3),
    (["--exclude-ua", "firefox"], "excluded_ua", 2, 2),
    (["--since", "2026-11-25"], "before_since", 13, 6),
    (["--until", "2026-11-24"], "after_until", 2, 2),
    (["--until", "2026-11-25T00:00:00+00:00"], "after_until", 2, 2),
    (["--since", "2026-11-25T01:00", "--timezone", "Europe/Berlin"], "before_since", 13, 6),
]


@pytest.mark.parametrize("options, reason, count, taken", OPTION_CASES)
def test_cli_each_filter_option(log, tmp_path, capsys, options, reason, count, taken):
    base, _ = run(log, tmp_path, capsys, "--domain", "example.com")
    summary, _ = run(log, tmp_path, capsys, "--domain", "example.com", *options)
    assert reason not in base["filtered"]
    assert summary["filtered"][reason] == count
    assert summary["events"] == base["events"] - taken


def test_cli_keep_bots(log, tmp_path, capsys):
    base, _ = run(log, tmp_path, capsys, "--domain", "example.com")
    summary, events = run(log, tmp_path, capsys, "--domain", "example.com", "--keep-bots")
    assert "bot" not in summary["filtered"] and "library" not in summary["filtered"]
    assert summary["events"] == base["events"] + 2
    assert {GOOGLEBOT, CURL} <= {e["headers"]["User-Agent"] for e in events}


def test_cli_track_downloads(log, tmp_path, capsys):
    summary, events = run(log, tmp_path, capsys, "--domain", "example.com", "--track-downloads")
    assert summary["filtered"]["asset"] == 1
    assert summary["filtered"]["download_not_from_site"] == 1
    (download,) = [e["body"] for e in events if e["body"]["name"] == "File Download"]
    assert download == {"name": "File Download", "url": "https://www.example.com/blog/first",
                        "domain": "example.com",
                        "props": {"url": "https://example.com/files/guide.pdf"}}


def test_cli_track_404(log, tmp_path, capsys):
    summary, events = run(log, tmp_path, capsys, "--domain", "example.com", "--track-404")
    assert "status" not in summary["filtered"]
    (missing,) = [e["body"] for e in events if e["body"]["name"] == "404"]
    assert missing["url"] == "https://example.com/nope" and missing["props"] == {"path": "/nope"}


@pytest.mark.parametrize("use_file", [False, True])
def test_cli_domain_map(log, tmp_path, capsys, use_file):
    pairs = ["www.example.com=example.com", "shop.example.com=shop.example.com"]
    if use_file:
        (tmp_path / "sites.txt").write_text("# host = site\n" + "\n".join(pairs) + "\n\n")
        options = ["--domain-map", f"@{tmp_path / 'sites.txt'}"]
    else:
        options = [arg for pair in pairs for arg in ("--domain-map", pair)]
    summary, events = run(log, tmp_path, capsys, *options)
    assert summary["filtered"]["unmapped_host"] == 1
    assert summary["unmapped_hosts"] == {"unknown.example.net": 1}
    domains = Counter(e["body"]["domain"] for e in events)
    assert domains == {"example.com": 6, "shop.example.com": 1}
    fallback, events = run(log, tmp_path, capsys, *options, "--domain", "example.com")
    assert "unmapped_host" not in fallback["filtered"] and fallback["unmapped_hosts"] == {}
    assert fallback["events"] == summary["events"] + 1


def test_cli_client_ip_from_xff(log, tmp_path, capsys):
    def ips(*options):
        _, events = run(log, tmp_path, capsys, "--domain", "example.com", *options)
        return [e["headers"]["X-Forwarded-For"] for e in events]

    base = ips()
    assert "10.0.0.2" in base and "198.51.100.77" not in base
    trusted = ips("--client-ip-from", "xff", "--trusted-proxy", "10.0.0.0/8")
    assert trusted == [("198.51.100.77" if ip == "10.0.0.2" else ip) for ip in base]
    one_hop = ips("--client-ip-from", "xff")  # the logged client is the one proxy
    assert one_hop == [("10.0.0.3" if ip == "10.0.0.2" else ip) for ip in base]


def test_cli_explain_shows_sample_lines_per_reason(log, tmp_path, capsys):
    summary, _ = run(log, tmp_path, capsys, "--domain", "example.com", "--explain", "2")
    samples = summary["filter_samples"]
    assert set(samples) == set(summary["filtered"])
    for reason, lines in samples.items():
        assert len(lines) == min(2, summary["filtered"][reason])
        assert all(line in LINES for line in lines)
    assert samples["bot"] == [LINES[9]]
    code = main(["send", str(log), "--format", FORMAT, "--dry-run", "--no-progress",
                 "--domain", "example.com", "--explain", "1"])
    text = capsys.readouterr().out
    assert code == 0
    assert f"filtered as library, e.g.:\n  {LINES[10]}" in text
    quiet, _ = run(log, tmp_path, capsys, "--domain", "example.com")
    assert quiet["filter_samples"] == {}


def test_cli_props(log, tmp_path, capsys):
    _, events = run(log, tmp_path, capsys, "--domain", "example.com", "--prop", "status=status",
                    "--prop", "site host=host", "--prop", "ctype=content_type",
                    "--prop", "cache=upstream_cache_status",
                    "--prop", "missing=no_such_field")
    first = events[0]["body"]["props"]
    assert first == {"status": "200", "site host": "example.com", "ctype": "text/html",
                     "cache": "HIT"}


@pytest.mark.parametrize("options, message", [
    (["--domain-map", "example.com"], "HOST=DOMAIN"),
    (["--domain-map", "@/nonexistent/map.txt"], "cannot read"),
    (["--prop", "status"], "NAME=FIELD"),
    (["--prop", "x" * 301 + "=status"], "300 bytes"),
    (["--domain", "example.com", "--prop", "url=uri", "--track-downloads"], "--prop url"),
    (["--domain", "example.com", *[f"--prop=p{i}=status" for i in range(30)], "--track-404"],
     "at most 30"),
    (["--domain", "example.com", "--trusted-proxy", "10.0.0.0/8"], "--client-ip-from xff"),
    (["--domain", "example.com", "--exclude-ip", "10.0.0.0/33"], "CIDR"),
    (["--domain", "example.com", "--since", "yesterday"], "2026-11-24"),
    ([], "--domain or --domain-map"),
])
def test_cli_option_errors_exit_2(log, capsys, options, message):
    try:
        code = main(["send", str(log), "--dry-run", *options])
    except SystemExit as exc:  # argparse's own errors
        code = exc.code
    assert code == 2
    assert message in capsys.readouterr().err
