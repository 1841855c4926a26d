"""Records to events: URLs, client addresses, sites, custom events and props, checked against
what Plausible's server accepts (tests/plausible_rules.py)."""
from __future__ import annotations

import ipaddress
import random
from collections import Counter
from email.message import Message

import pytest

from importer.clientip import BadAddress, ClientIpResolver, clean_address
from importer.sites import SiteRouter, parse_mapping, read_map_file, site_domain
from importer.transform import EventBuilder, MalformedRecord, PropSpec
from importer.urls import clean_target, split_target
from parsers.base import LogRecord
from tests import plausible_rules


def rec(uri: str = "/", **kw) -> LogRecord:
    kw.setdefault("client_ip", "203.0.113.9")
    return LogRecord(method="GET", uri=uri, status=kw.pop("status", 200), **kw)


def accepted(event) -> None:
    """Plausible's validation finds nothing wrong, and takes exactly our address."""
    checked = plausible_rules.check_event(event.body())
    assert checked.errors == {}, checked.errors
    headers = Message()
    for name, value in event.headers().items():
        headers[name] = value
    assert plausible_rules.client_ip(headers, "127.0.0.1") == event.ip


URL_CASES = [
    # (record, builder options, expected url)
    (rec("/"), {}, "https://example.com/"),
    (rec("/blog/x?utm_source=news&utm_medium=email"), {},
     "https://example.com/blog/x?utm_source=news&utm_medium=email"),
    (rec("/a?b=c#section"), {}, "https://example.com/a?b=c"),
    (rec("/a b/\"q\"<>"), {}, "https://example.com/a%20b/%22q%22%3C%3E"),
    (rec("/100%/x%zz?p=%"), {}, "https://example.com/100%25/x%25zz?p=%25"),
    (rec("/ok%20fine/%C3%A9"), {}, "https://example.com/ok%20fine/%C3%A9"),
    (rec("/café/naïve"), {}, "https://example.com/caf%C3%A9/na%C3%AFve"),
    (rec("/q?x={1|2}^`"), {}, "https://example.com/q?x=%7B1%7C2%7D%5E%60"),
    (rec("/x\ufffd"), {}, "https://example.com/x%EF%BF%BD"),  # invalid UTF-8, replaced
    (rec("index.html"), {}, "https://example.com/index.html"),
    (rec("http://Proxy.Example:8080/x?y=1"), {}, "https://proxy.example/x?y=1"),
    (rec("/", host="WWW.Example.com:8443"), {}, "https://www.example.com/"),
    (rec("/", host="[2001:DB8::1]:443"), {}, "https://[2001:db8::1]/"),
    (rec("/", host="bad host!"), {}, "https://example.com/"),
    (rec("/", host="_"), {}, "https://example.com/"),
    (rec("/", scheme="http"), {}, "http://example.com/"),
    (rec("/"), {"scheme": "http"}, "http://example.com/"),
    (rec("/", scheme="HTTPS"), {"scheme": "http"}, "https://example.com/"),
    (rec("/chat", scheme="wss"), {"scheme": "http"}, "https://example.com/chat"),  # CloudFront
    (rec("/chat", scheme="ws"), {}, "http://example.com/chat"),
    (rec("/", scheme="gopher"), {}, "https://example.com/"),
    (rec("/", host="internal:8080"), {"host": "www.example.com"}, "https://www.example.com/"),
    (rec("/"), {"domain": "www.example.com,rollup.example"}, "https://example.com/"),
]


@pytest.mark.parametrize("record, options, url", URL_CASES)
def test_urls(record, options, url):
    builder = EventBuilder(**({"domain": "example.com"} | options))
    event = builder.build(record)
    assert event.url == url
    assert event.name == "pageview"
    accepted(event)


def test_split_target():
    assert split_target("/a?b") == (None, "/a?b")
    assert split_target("https://user@h.example/p") == ("h.example", "/p")
    assert split_target("http://h.example?q=1") == ("h.example", "/?q=1")
    assert split_target("HTTP://h.example") == ("h.example", "/")
    assert clean_target("/a#b c") == "/a"


def test_url_over_2000_bytes_loses_its_query_and_is_counted():
    builder = EventBuilder("example.com")
    long_query = "/landing?utm_source=x&junk=" + "a" * 2100
    event = builder.build(rec(long_query))
    assert event.url == "https://example.com/landing"
    assert builder.notes == {"url_truncated": 1}
    accepted(event)
    fits = "/landing?q=" + "é" * 300  # 1,800 bytes once percent-encoded: kept
    assert builder.build(rec(fits)).url.endswith("%C3%A9")
    assert builder.notes == {"url_truncated": 1}
    with pytest.raises(MalformedRecord, match="even without its query"):
        builder.build(rec("/" + "p" * 2000))


def test_referrer_and_user_agent_pass_through():
    ua = "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0"
    event = EventBuilder("example.com").build(
        rec("/", referrer="https://news.ycombinator.com/item?id=1", user_agent=ua, time=5.0))
    assert event.referrer == "https://news.ycombinator.com/item?id=1"
    assert event.headers()["User-Agent"] == ua and event.time == 5.0
    assert EventBuilder("example.com").build(rec("/")).body().get("referrer") is None


@pytest.mark.parametrize("logged, sent", [
    ("203.0.113.9", "203.0.113.9"),
    ("203.0.113.9:51234", "203.0.113.9"),
    ("[2001:db8::1]:443", "2001:db8::1"),
    ("[2001:db8::1]", "2001:db8::1"),
    ("2001:DB8:0:0::1", "2001:db8::1"),
    ("::ffff:203.0.113.9", "203.0.113.9"),  # a dual-stack socket's view of an IPv4 client
    (" 198.51.100.4 ", "198.51.100.4"),
])
def test_client_address_cleaning(logged, sent):
    assert clean_address(logged) == sent
    event = EventBuilder("example.com").build(rec(client_ip=logged))
    assert event.ip == sent and event.headers()["X-Forwarded-For"] == sent
    accepted(event)


@pytest.mark.parametrize("logged, reason", [
    ("unknown", "not an IP address: 'unknown'"),
    ("client.example.net", "not an IP address"),  # Apache with HostnameLookups On
    ("256.1.1.1", "not an IP address"),
    ("1.2.3.4, 5.6.7.8", "not an IP address"),
    (None, "no client address"),
])
def test_invalid_client_address_is_malformed_with_the_reason(logged, reason):
    with pytest.raises(MalformedRecord, match=reason):
        EventBuilder("example.com").build(rec(client_ip=logged))


TRUSTED = [ipaddress.ip_network(n) for n in ("10.0.0.0/8", "2001:db8:ffff::/48")]
XFF_CASES = [
    # (peer, X-Forwarded-For, trusted proxies, visitor or the error)
    ("10.0.0.1", "198.51.100.1", TRUSTED, "198.51.100.1"),
    ("10.0.0.1", "198.51.100.1, 10.0.0.2", TRUSTED, "198.51.100.1"),
    ("10.0.0.1", "6.6.6.6, 198.51.100.1, 10.0.0.2", TRUSTED, "198.51.100.1"),  # spoofed left
    ("10.0.0.1", "10.0.0.3, 10.0.0.2", TRUSTED, "10.0.0.3"),  # all trusted: the leftmost
    ("203.0.113.5", "198.51.100.1", TRUSTED, "203.0.113.5"),  # not via our proxy: forged
    ("10.0.0.1", None, TRUSTED, "10.0.0.1"),
    ("10.0.0.1", "[2001:db8::5]:1234", TRUSTED, "2001:db8::5"),
    ("2001:db8:ffff::1", "198.51.100.1:4711", TRUSTED, "198.51.100.1"),
    ("10.0.0.1", "6.6.6.6, 198.51.100.1", [], "198.51.100.1"),  # the peer is the one proxy
    ("10.0.0.1", "unknown, 198.51.100.1", TRUSTED, "198.51.100.1"),  # never looked at
    ("10.0.0.1", "198.51.100.1, unknown", TRUSTED, "in X-Forwarded-For: not an IP address"),
    (None, "198.51.100.1, 10.0.0.2", TRUSTED, "198.51.100.1"),  # the log has only the chain
    (None, None, TRUSTED, "no client address and no X-Forwarded-For"),
]


@pytest.mark.parametrize("peer, xff, trusted, expected", XFF_CASES)
def test_client_address_from_x_forwarded_for(peer, xff, trusted, expected):
    builder = EventBuilder("example.com", client_ips=ClientIpResolver(True, trusted))
    record = rec(client_ip=peer, xff=xff)
    if expected[0].isdigit():
        event = builder.build(record)
        assert event.ip == expected
        accepted(event)
    else:
        with pytest.raises(MalformedRecord, match=expected):
            builder.build(record)


def test_client_address_results_are_cached_including_failures():
    resolver = ClientIpResolver()
    for _ in range(3):
        with pytest.raises(BadAddress):
            resolver.resolve(rec(client_ip="bogus"))
        assert resolver.resolve(rec(client_ip="203.0.113.1:80")) == "203.0.113.1"
    assert len(resolver._cache) == 2


MAP = [("example.com", "example.com"), ("www.shop.example", "shop.example"),
       ("*.example.com", "example.com"), ("*.eu.example.com", "eu.example.com")]
ROUTER = SiteRouter(None, MAP)


@pytest.mark.parametrize("host, domain", [
    ("example.com", "example.com"),
    ("www.example.com", "example.com"),  # www. is ignored, as Plausible does
    ("EXAMPLE.COM:443", "example.com"),
    ("shop.example", "shop.example"),  # the map's www. is ignored as well
    ("www.shop.example", "shop.example"),
    ("blog.example.com", "example.com"),
    ("a.eu.example.com", "eu.example.com"),  # the longest suffix wins
    ("example.org", None),
    ("notexample.com", None),
    (None, None),
])
def test_site_routing(host, domain):
    assert ROUTER.domain_for(host) == domain
    assert SiteRouter("fallback.example", MAP).domain_for(host) == (
        domain or "fallback.example")


def test_events_get_the_routed_domain_and_unmapped_ones_are_refused():
    builder = EventBuilder(sites=ROUTER)
    event = builder.build(rec("/p", host="www.shop.example"))
    assert (event.domain, event.url) == ("shop.example", "https://www.shop.example/p")
    accepted(event)
    with pytest.raises(MalformedRecord, match="no site for host"):
        builder.build(rec("/p", host="example.org"))


def test_domain_values_and_map_files():
    assert site_domain(" www.example.com ") == "example.com"
    assert site_domain("www.a.example, b.example") == "a.example,b.example"
    assert site_domain("WWW.Example.COM,B.example") == "example.com,b.example"
    assert parse_mapping("WWW.Example.com = www.example.com") == ("www.example.com", "example.com")
    assert parse_mapping("*.example.com example.com") == ("*.example.com", "example.com")
    for bad in ("example.com", "=example.com", "bad host!=example.com", "a.example="):
        with pytest.raises(ValueError, match="HOST=DOMAIN"):
            parse_mapping(bad)
    lines = ["# our sites", "", "a.example=a.example  # main", "b.example b.example", "oops"]
    with pytest.raises(ValueError, match="line 5"):
        read_map_file(lines)
    assert read_map_file(lines[:4]) == [("a.example", "a.example"), ("b.example", "b.example")]


def test_404_event():
    builder = EventBuilder("example.com", track_404=True)
    event = builder.build(rec("/no/such%20page?x=1", status=404))
    assert (event.name, event.url, event.props) == (
        "404", "https://example.com/no/such%20page?x=1", {"path": "/no/such%20page"})
    accepted(event)
    assert builder.build(rec("/fine")).name == "pageview"
    assert EventBuilder("example.com").build(rec("/x", status=404)).name == "pageview"


def test_file_download_event_comes_from_the_page_that_linked_it():
    builder = EventBuilder("example.com", track_downloads=True)
    event = builder.build(rec("/files/guide.pdf?v=2#p3", host="example.com",
                              referrer="https://www.example.com/docs/?tab=1#top"))
    assert event.name == "File Download"
    assert event.url == "https://www.example.com/docs/?tab=1"  # the page, as the script sends it
    assert event.props == {"url": "https://example.com/files/guide.pdf"}  # without the query
    assert event.referrer is None
    accepted(event)
    assert builder.build(rec("/files/guide.PDF")).name == "pageview"  # not a tracked type
    assert EventBuilder("example.com").build(rec("/files/guide.pdf")).name == "pageview"


def test_props_from_log_fields_within_plausible_limits():
    props = (PropSpec("status", "status"), PropSpec("method", "method"),
             PropSpec("cache", "upstream_cache_status"), PropSpec("empty", "referrer"),
             PropSpec("dash", "dash"), PropSpec("long", "long"))
    builder = EventBuilder("example.com", props=props)
    record = rec("/", fields={"upstream_cache_status": "MISS", "dash": "-", "long": "é" * 1500})
    event = builder.build(record)
    assert {k: v for k, v in event.props.items() if k != "long"} == {
        "status": "200", "method": "GET", "cache": "MISS"}
    assert len(event.props["long"].encode()) == 2000  # cut at a character boundary
    assert builder.notes == Counter({"prop_truncated": 1})
    accepted(event)


def _cleaned(text: str) -> str | None:
    """clean_address's answer, None for a refusal."""
    try:
        return clean_address(text)
    except BadAddress:
        return None


def _canonical(text: str) -> str | None:
    """What ipaddress makes of an address (an IPv4-mapped IPv6 one as its IPv4), None if it
    refuses it."""
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    return str(getattr(address, "ipv4_mapped", None) or address)


def test_canonical_ipv4_shortcut_agrees_with_ipaddress():
    """clean_address answers plain IPv4 without ipaddress: same answer, same refusals."""
    rng = random.Random(7)
    parts = ["0", "1", "9", "10", "01", "99", "100", "199", "200", "249", "250", "255", "256",
             "300", "007", "٣", "1a", ""]
    for _ in range(5000):
        text = ".".join(rng.choice(parts) for _ in range(rng.choice((3, 4, 4, 4, 5))))
        assert _cleaned(text) == _canonical(text), text


def test_canonical_ipv6_shortcut_agrees_with_ipaddress():
    """clean_address answers IPv6 already in canonical form without ipaddress: same answer
    as ipaddress for any form (compressed or not, upper case, leading zeros, dotted, zoned),
    same refusals."""
    rng = random.Random(11)
    groups = ["0", "0", "0", "00", "0000", "1", "a", "A", "ff", "0ab", "ffff", "db8", "2001",
              "10000", "g"]
    for _ in range(20000):
        hextets = [rng.choice(groups) for _ in range(rng.choice((6, 7, 8, 8, 8, 9)))]
        if rng.random() < 0.5:  # compress a run
            at = rng.randrange(len(hextets))
            hextets[at:at + rng.randrange(4)] = [""]
            if hextets[0] == "":
                hextets.insert(0, "")
            if hextets[-1] == "":
                hextets.append("")
        text = ":".join(hextets)
        if rng.random() < 0.5:  # written canonically (zero runs of all lengths, anywhere)
            values = [rng.choice((0, 0, 0, 1, 0xA, 0xDB8, 0xFFFF)) for _ in range(8)]
            text = str(ipaddress.IPv6Address(b"".join(v.to_bytes(2) for v in values)))
        if rng.random() < 0.1:
            text = text.rsplit(":", 2)[0] + ":" + rng.choice(["1.2.3.4", "10.0.0.256"])
        if rng.random() < 0.05:
            text += "%eth0"
        assert _cleaned(text) == _canonical(text), text
