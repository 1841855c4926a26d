"""A few lines of every preset, with what each line must parse into.

The cloud formats (CloudFront, ALB, ELB, S3, Cloudflare, Bunny, IIS) are written from the
vendors' published format documentation: the field order and names, the escaping (CloudFront
URL-encodes, IIS writes `+` for spaces in the user agent), the timestamp forms. The other
presets' lines are in the shapes their servers write (checked against real servers in
test_realservers_formats.py). Used by test_formats.py and test_cloud_formats.py.
"""
from __future__ import annotations

import calendar
from dataclasses import dataclass, field


def utc(text: str) -> float:
    """'2026-11-20 10:00:00.25' (UTC) as epoch seconds."""
    date, _, clock = text.partition(" ")
    whole, _, frac = clock.partition(".")
    parts = [int(x) for x in date.split("-")] + [int(x) for x in whole.split(":")]
    return calendar.timegm(tuple(parts)) + (float("0." + frac) if frac else 0.0)


@dataclass(frozen=True)
class Sample:
    preset: str
    lines: tuple[str, ...]  # the start of a file: header lines included
    records: tuple[dict, ...]  # for each line that is a request: the fields it must parse into
    detects_as: tuple[str, ...] = ()  # presets that read it the same (ties), besides `preset`
    fields: tuple[dict, ...] = field(default=())  # per request: entries of LogRecord.fields


FIREFOX = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"
CHROME = ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
          "Chrome/126.0.0.0 Safari/537.36")
IPHONE = ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 "
          "(KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1")


def rec(**kw) -> dict:
    """Every LogRecord field a test compares, defaulting to None."""
    keys = ("time", "client_ip", "method", "uri", "protocol", "status", "bytes_sent",
            "referrer", "user_agent", "host", "scheme", "xff", "content_type")
    unknown = set(kw) - set(keys)
    assert not unknown, unknown
    return {k: kw.get(k) for k in keys}


def tabs(*lines: str) -> tuple[str, ...]:
    """CloudFront lines written with single spaces here for legibility; the files use tabs."""
    return tuple(ln if ln.startswith("#") else ln.replace(" ", "\t") for ln in lines)


# --- CloudFront standard logs: 33 tab-separated fields, #Version and #Fields headers ----------
CLOUDFRONT_HEADER = (
    "#Fields: date time x-edge-location sc-bytes c-ip cs-method cs(Host) cs-uri-stem sc-status "
    "cs(Referer) cs(User-Agent) cs-uri-query cs(Cookie) x-edge-result-type x-edge-request-id "
    "x-host-header cs-protocol cs-bytes time-taken x-forwarded-for ssl-protocol ssl-cipher "
    "x-edge-response-result-type cs-protocol-version fle-status fle-encrypted-fields c-port "
    "time-to-first-byte x-edge-detailed-result-type sc-content-type sc-content-len "
    "sc-range-start sc-range-end")
CLOUDFRONT = Sample(
    "cloudfront",
    tabs(
        "#Version: 1.0",
        CLOUDFRONT_HEADER,
        "2026-11-20 10:00:01 FRA56-P1 5120 203.0.113.10 GET d111111abcdef8.cloudfront.net "
        "/pricing/ 200 https://www.google.com/ "
        "Mozilla/5.0%20(X11;%20Linux%20x86_64;%20rv:128.0)%20Gecko/20100101%20Firefox/128.0 "
        "utm_source=news%2520letter&ref=a%252Fb - Hit "
        "SOX4xwn4XV6Q4rgb7XiVGOHms_BGlTAC4KyHmureZmBNrjGdRLiNIQ== www.example.com https 412 "
        "0.002 - TLSv1.3 TLS_AES_128_GCM_SHA256 Hit HTTP/2.0 - - 51234 0.001 Hit "
        "text/html;%20charset=utf-8 5000 - -",
        "2026-11-20 10:00:02 IAD89-C3 335 2001:db8::42 HEAD d111111abcdef8.cloudfront.net "
        "/caf%25C3%25A9/menu 304 - curl/8.5.0 - - RefreshHit "
        "2kP01Cgw2cMXMKlogaJwkCt7MVHA8Flxtt_ncRESDd9POQpVWSM64w== www.example.com http 98 0.338 "
        "198.51.100.1 - - RefreshHit HTTP/1.1 - - 61052 0.300 RefreshHit - - - -",
    ),
    (
        rec(time=utc("2026-11-20 10:00:01"), client_ip="203.0.113.10", method="GET",
            uri="/pricing/?utm_source=news%20letter&ref=a%2Fb", protocol="HTTP/2.0", status=200,
            bytes_sent=5120, referrer="https://www.google.com/", user_agent=FIREFOX,
            host="www.example.com", scheme="https", content_type="text/html; charset=utf-8"),
        rec(time=utc("2026-11-20 10:00:02"), client_ip="2001:db8::42", method="HEAD",
            uri="/caf%C3%A9/menu", protocol="HTTP/1.1", status=304, bytes_sent=335,
            user_agent="curl/8.5.0", host="www.example.com", scheme="http", xff="198.51.100.1"),
    ),
    fields=({"x-edge-location": "FRA56-P1", "x-edge-result-type": "Hit",
             "cs(Host)": "d111111abcdef8.cloudfront.net", "time-taken": "0.002"},
            {"x-edge-location": "IAD89-C3", "x-edge-result-type": "RefreshHit"}),
)

# --- IIS W3C extended: space-separated, columns from #Fields, UTC, `+` for spaces in the UA ---
IIS = Sample(
    "w3c",
    (
        "\ufeff#Software: Microsoft Internet Information Services 10.0",
        "#Version: 1.0",
        "#Date: 2026-11-20 00:00:00",
        "#Fields: date time s-ip cs-method cs-uri-stem cs-uri-query s-port cs-username c-ip "
        "cs(User-Agent) cs(Referer) sc-status sc-substatus sc-win32-status time-taken",
        "2026-11-20 00:00:01 10.0.0.4 GET /default.aspx - 443 - 203.0.113.9 "
        "Mozilla/5.0+(Windows+NT+10.0;+Win64;+x64)+AppleWebKit/537.36+(KHTML,+like+Gecko)+"
        "Chrome/126.0.0.0+Safari/537.36 https://www.bing.com/search?q=shop 200 0 0 15",
        "2026-11-20 00:00:02 10.0.0.4 GET /products/list.aspx cat=3&page=2 443 alice "
        "2001:db8::7 Mozilla/5.0+(iPhone;+CPU+iPhone+OS+17_5+like+Mac+OS+X)+AppleWebKit/605.1.15"
        "+(KHTML,+like+Gecko)+Version/17.5+Mobile/15E148+Safari/604.1 - 404 0 2 31",
        # IIS restarted with more fields logged: a new header takes over mid-file.
        "#Software: Microsoft Internet Information Services 10.0",
        "#Fields: date time s-sitename cs-method cs-uri-stem cs-uri-query c-ip cs-version "
        "cs-host cs(User-Agent) cs(Referer) sc-status sc-bytes cs(X-Forwarded-For)",
        "2026-11-20 00:05:00 W3SVC1 GET /about - 10.1.2.3 HTTP/1.1 www.example.com "
        "curl/8.5.0 - 200 5120 198.51.100.20",
    ),
    (
        rec(time=utc("2026-11-20 00:00:01"), client_ip="203.0.113.9", method="GET",
            uri="/default.aspx", status=200, referrer="https://www.bing.com/search?q=shop",
            user_agent=CHROME),
        rec(time=utc("2026-11-20 00:00:02"), client_ip="2001:db8::7", method="GET",
            uri="/products/list.aspx?cat=3&page=2", status=404, user_agent=IPHONE),
        rec(time=utc("2026-11-20 00:05:00"), client_ip="10.1.2.3", method="GET", uri="/about",
            protocol="HTTP/1.1", status=200, bytes_sent=5120, user_agent="curl/8.5.0",
            host="www.example.com", xff="198.51.100.20"),
    ),
    fields=({"s-ip": "10.0.0.4", "time-taken": "15"}, {"cs-username": "alice",
                                                        "sc-win32-status": "2"},
            {"s-sitename": "W3SVC1"}),
)

# --- AWS Application Load Balancer: fields appended over the years (a tail) -----------------
ALB = Sample(
    "alb",
    (
        # The launch-era fields only (up to trace_id).
        'http 2026-11-20T10:00:00.186641Z app/my-loadbalancer/50dc6c495c0c9188 '
        '192.168.131.39:2817 10.0.0.1:80 0.000 0.001 0.000 200 200 34 366 '
        '"GET http://www.example.com:80/ HTTP/1.1" "curl/7.46.0" - - '
        'arn:aws:elasticloadbalancing:us-east-2:123456789012:targetgroup/my-targets/'
        '73e2d6bc24d8a067 "Root=1-58337262-36d228ad5d99923122bbe354"',
        # Every documented field, and one AWS has not documented yet.
        'h2 2026-11-20T10:00:01.000000Z app/my-loadbalancer/50dc6c495c0c9188 '
        '198.51.100.77:42000 10.0.0.66:9000 0.000 0.002 0.000 404 404 5 257 '
        '"GET https://shop.example.com:443/missing?x=1 HTTP/2.0" "' + FIREFOX + '" '
        'ECDHE-RSA-AES128-GCM-SHA256 TLSv1.2 '
        'arn:aws:elasticloadbalancing:us-east-2:123456789012:targetgroup/my-targets/'
        '73e2d6bc24d8a067 "Root=1-58337327-72bd00b0343d75b906739c42" "shop.example.com" '
        '"arn:aws:acm:us-east-2:123456789012:certificate/12345678-1234-1234-1234-123456789012" '
        '1 2026-11-20T09:59:59.999000Z "waf,forward" "-" "-" "10.0.0.66:9000" "404" "-" "-" '
        'TID_1234abcd future-field',
    ),
    (
        rec(time=utc("2026-11-20 10:00:00.186641"), client_ip="192.168.131.39", method="GET",
            uri="http://www.example.com:80/", protocol="HTTP/1.1", status=200, bytes_sent=366,
            user_agent="curl/7.46.0"),
        rec(time=utc("2026-11-20 10:00:01"), client_ip="198.51.100.77", method="GET",
            uri="https://shop.example.com:443/missing?x=1", protocol="HTTP/2.0", status=404,
            bytes_sent=257, user_agent=FIREFOX),
    ),
    fields=({"type": "http", "target": "10.0.0.1:80", "received_bytes": "34",
             "trace_id": "Root=1-58337262-36d228ad5d99923122bbe354", "domain_name": ""},
            {"type": "h2", "domain_name": "shop.example.com", "actions_executed": "waf,forward",
             "target_status_code": "404", "conn_trace_id": "TID_1234abcd"}),
)

# --- AWS Classic Load Balancer ----------------------------------------------------------------
ELB = Sample(
    "elb",
    (
        '2026-11-20T10:00:00.945958Z my-loadbalancer 192.168.131.39:2817 10.0.0.1:80 0.000073 '
        '0.001048 0.000057 200 200 0 29 "GET http://www.example.com:80/ HTTP/1.1" '
        '"curl/7.38.0" - -',
        '2026-11-20T10:00:01.000000Z my-loadbalancer 203.0.113.7:56321 10.0.0.1:443 0.000086 '
        '0.001048 0.001337 200 200 0 57 "GET https://www.example.com:443/blog/?p=2 HTTP/1.1" '
        '"' + CHROME + '" DHE-RSA-AES128-SHA TLSv1.2',
        # A TCP listener: no HTTP fields.
        '2026-11-20T10:00:02.000000Z my-loadbalancer 203.0.113.8:40000 10.0.0.1:80 0.001069 '
        '0.000028 0.000041 - - 82 305 "- - - " "-" - -',
    ),
    (
        rec(time=utc("2026-11-20 10:00:00.945958"), client_ip="192.168.131.39", method="GET",
            uri="http://www.example.com:80/", protocol="HTTP/1.1", status=200, bytes_sent=29,
            user_agent="curl/7.38.0"),
        rec(time=utc("2026-11-20 10:00:01"), client_ip="203.0.113.7", method="GET",
            uri="https://www.example.com:443/blog/?p=2", protocol="HTTP/1.1", status=200,
            bytes_sent=57, user_agent=CHROME),
        rec(time=utc("2026-11-20 10:00:02"), client_ip="203.0.113.8", bytes_sent=305),
    ),
    fields=({"elb": "my-loadbalancer", "backend": "10.0.0.1:80", "ssl_cipher": "-"},
            {"ssl_protocol": "TLSv1.2", "backend_status_code": "200"},
            {"request": "- - - "}),
)

# --- Amazon S3 server access logs -------------------------------------------------------------
S3_OWNER = "79a59df900b949e55d96a1e698fbacedfd6e09d98eacf8f8d5218e7cd47ef2be"
S3 = Sample(
    "s3",
    (
        f"{S3_OWNER} amzn-s3-demo-bucket1 [20/Nov/2026:00:00:38 +0000] 192.0.2.3 {S3_OWNER} "
        '3E57427F3EXAMPLE REST.GET.VERSIONING - "GET /amzn-s3-demo-bucket1?versioning HTTP/1.1" '
        '200 - 113 - 7 - "-" "S3Console/0.4" - '
        "s9lzHYrFp76ZVxRcpX9+5cjAnEH2ROuNkd2BHfIa6UkFVdtjf5mKR3/eTPFvsiP/XV/VLi31234= SigV4 "
        "ECDHE-RSA-AES128-GCM-SHA256 AuthHeader amzn-s3-demo-bucket1.s3.us-west-1.amazonaws.com "
        "TLSV1.2 arn:aws:s3:us-west-1:123456789012:accesspoint/example-AP Yes us-east-1",
        # An older line: it ends after the user agent and version id.
        f"{S3_OWNER} www.example.com [20/Nov/2026:01:02:03 +0100] 203.0.113.44 - "
        '891CE47D2EXAMPLE WEBSITE.GET.OBJECT blog/index.html "GET /blog/ HTTP/1.1" 200 - 2764 '
        '2764 21 20 "https://www.google.com/" "' + FIREFOX + '" -',
    ),
    (
        rec(time=utc("2026-11-20 00:00:38"), client_ip="192.0.2.3", method="GET",
            uri="/amzn-s3-demo-bucket1?versioning", protocol="HTTP/1.1", status=200,
            bytes_sent=113, user_agent="S3Console/0.4",
            host="amzn-s3-demo-bucket1.s3.us-west-1.amazonaws.com"),
        rec(time=utc("2026-11-20 00:02:03"), client_ip="203.0.113.44", method="GET",
            uri="/blog/", protocol="HTTP/1.1", status=200, bytes_sent=2764,
            referrer="https://www.google.com/", user_agent=FIREFOX),
    ),
    fields=({"bucket": "amzn-s3-demo-bucket1", "operation": "REST.GET.VERSIONING",
             "request_id": "3E57427F3EXAMPLE", "acl_required": "Yes",
             "source_region": "us-east-1"},
            {"bucket": "www.example.com", "key": "blog/index.html", "object_size": "2764",
             "turn_around_time": "20"}),
)

# --- Cloudflare Logpush, HTTP requests dataset (NDJSON), in its three timestamp formats -------
CLOUDFLARE = Sample(
    "cloudflare",
    (
        '{"CacheCacheStatus":"hit","ClientCountry":"de","ClientIP":"198.51.100.23",'
        '"ClientRequestHost":"www.example.com","ClientRequestMethod":"GET",'
        '"ClientRequestPath":"/pricing","ClientRequestProtocol":"HTTP/2",'
        '"ClientRequestReferer":"https://duckduckgo.com/","ClientRequestScheme":"https",'
        '"ClientRequestURI":"/pricing?plan=pro","ClientRequestUserAgent":"' + FIREFOX + '",'
        '"EdgeResponseBytes":5120,"EdgeResponseContentType":"text/html",'
        '"EdgeResponseStatus":200,"EdgeStartTimestamp":"2026-11-20T10:00:00Z",'
        '"RayID":"7d1a2b3c4d5e6f70","ZoneName":"example.com"}',
        '{"ClientIP":"2001:db8::9","ClientRequestHost":"www.example.com",'
        '"ClientRequestMethod":"GET","ClientRequestURI":"/","ClientRequestReferer":"",'
        '"ClientRequestUserAgent":"curl/8.5.0","EdgeResponseStatus":301,'
        '"EdgeStartTimestamp":1795600000123456789,"RayID":"7d1a2b3c4d5e6f71"}',
        '{"ClientIP":"203.0.113.1","ClientRequestMethod":"GET","ClientRequestPath":"/docs",'
        '"EdgeResponseStatus":200,"EdgeStartTimestamp":1795600001}',
    ),
    (
        rec(time=utc("2026-11-20 10:00:00"), client_ip="198.51.100.23", method="GET",
            uri="/pricing?plan=pro", protocol="HTTP/2", status=200, bytes_sent=5120,
            referrer="https://duckduckgo.com/", user_agent=FIREFOX, host="www.example.com",
            scheme="https", content_type="text/html"),
        rec(time=1795600000.1234567, client_ip="2001:db8::9", method="GET", uri="/",
            status=301, user_agent="curl/8.5.0", host="www.example.com"),
        rec(time=1795600001.0, client_ip="203.0.113.1", method="GET", uri="/docs", status=200),
    ),
    fields=({"CacheCacheStatus": "hit", "ClientCountry": "de", "RayID": "7d1a2b3c4d5e6f70"},
            {"RayID": "7d1a2b3c4d5e6f71"}, {}),
)

# --- Bunny CDN raw logs: pipe-separated, Unix milliseconds -----------------------------------
BUNNY = Sample(
    "bunny",
    (
        "HIT|200|1795600000421|412|390|163.172.53.229|-|https://example.b-cdn.net/video.mp4|WA|"
        + FIREFOX + "|322b688bd63fb63f2babe9de30a5d262|DE",
        "MISS|404|1795600001000|0|390|2001:db8::1|https://www.example.com/|"
        "https://cdn.example.com/img/a.png?w=200|FRA|Odd|Agent|9f8e7d6c5b4a39281706f5e4d3c2b1a0|FR",
    ),
    (
        rec(time=1795600000.421, client_ip="163.172.53.229",
            uri="https://example.b-cdn.net/video.mp4", status=200, bytes_sent=412,
            user_agent=FIREFOX),
        rec(time=1795600001.0, client_ip="2001:db8::1",
            uri="https://cdn.example.com/img/a.png?w=200", status=404, bytes_sent=0,
            referrer="https://www.example.com/", user_agent="Odd|Agent"),
    ),
    fields=({"x-cache-status": "HIT", "x-pull-zone-id": "390", "x-edge-location": "WA",
             "c-country": "DE"}, {"x-cache-status": "MISS"}),
)

CLOUD = (CLOUDFRONT, IIS, ALB, ELB, S3, CLOUDFLARE, BUNNY)

# --- Servers' own formats ---------------------------------------------------------------------
GOOGLE = "https://www.google.com/"
TRAEFIK_JSON = Sample(
    "traefik_json",
    (
        '{"ClientAddr":"203.0.113.5:51000","ClientHost":"203.0.113.5","ClientPort":"51000",'
        '"ClientUsername":"-","DownstreamContentSize":5120,"DownstreamStatus":200,'
        '"Duration":1234567,"OriginContentSize":5120,"OriginDuration":1000000,'
        '"OriginStatus":200,"Overhead":234567,"RequestAddr":"www.example.com",'
        '"RequestContentSize":0,"RequestCount":42,"RequestHost":"www.example.com",'
        '"RequestMethod":"GET","RequestPath":"/blog/?page=2","RequestPort":"-",'
        '"RequestProtocol":"HTTP/2.0","RequestScheme":"https","RetryAttempts":0,'
        '"RouterName":"blog@docker","ServiceName":"blog@docker",'
        '"StartLocal":"2026-11-20T11:00:00.123456789+01:00",'
        '"StartUTC":"2026-11-20T10:00:00.123456789Z","entryPointName":"websecure",'
        '"level":"info","msg":"","request_Referer":"https://www.google.com/",'
        '"request_User-Agent":"' + CHROME + '","time":"2026-11-20T11:00:00+01:00"}',
    ),
    (rec(time=utc("2026-11-20 10:00:00.123456"), client_ip="203.0.113.5", method="GET",
         uri="/blog/?page=2", protocol="HTTP/2.0", status=200, bytes_sent=5120,
         referrer=GOOGLE, user_agent=CHROME, host="www.example.com", scheme="https"),),
    fields=({"RouterName": "blog@docker", "entryPointName": "websecure"},),
)
TRAEFIK = Sample(
    "traefik",
    ('192.168.1.1 - - [20/Nov/2026:13:55:36 +0100] "GET /api/items?id=3 HTTP/1.1" 200 1234 '
     '"-" "curl/8.0.1" 42 "api-router@docker" "http://10.0.0.5:8080" 3ms',),
    (rec(time=utc("2026-11-20 12:55:36"), client_ip="192.168.1.1", method="GET",
         uri="/api/items?id=3", protocol="HTTP/1.1", status=200, bytes_sent=1234,
         user_agent="curl/8.0.1"),),
    fields=({"request_count": "42", "router_name": "api-router@docker",
             "server_url": "http://10.0.0.5:8080", "duration_ms": "3"},),
)
HAPROXY = Sample(
    "haproxy",
    ("Nov 20 10:00:00 lb1 haproxy[812]: 203.0.113.10:41978 [20/Nov/2026:10:00:00.938] web "
     "app/app1 0/0/0/1/1 200 397 - - ---- 1/1/0/0/0 0/0 {www.example.com|" + GOOGLE + "|"
     + FIREFOX + '} "GET /?q=#22x#22 HTTP/1.1"',
     "2001:db8::42:42006 [20/Nov/2026:10:00:01.000] web~ app/<NOSRV> -1/-1/-1/-1/0 503 216 - - "
     'SC-- 0/0/0/0/0 0/0 "GET /down HTTP/1.1"'),
    (rec(time=utc("2026-11-20 10:00:00.938"), client_ip="203.0.113.10", method="GET",
         uri='/?q="x"', protocol="HTTP/1.1", status=200, bytes_sent=397, referrer=GOOGLE,
         user_agent=FIREFOX, host="www.example.com"),
     rec(time=utc("2026-11-20 10:00:01"), client_ip="2001:db8::42", method="GET", uri="/down",
         protocol="HTTP/1.1", status=503, bytes_sent=216)),
    fields=({"b": "app", "s": "app1", "tsc": "----", "Ta": "1"},
            {"ft": "web~", "s": "<NOSRV>", "Tw": "-1", "tsc": "SC--"}),
)

SERVERS = (
    Sample("combined",
           ('203.0.113.10 - - [20/Nov/2026:11:00:00 +0100] "GET /a?b=c HTTP/1.1" 200 5120 '
            f'"{GOOGLE}" "{FIREFOX}"',),
           (rec(time=utc("2026-11-20 10:00:00"), client_ip="203.0.113.10", method="GET",
                uri="/a?b=c", protocol="HTTP/1.1", status=200, bytes_sent=5120,
                referrer=GOOGLE, user_agent=FIREFOX),)),
    Sample("common",
           ('203.0.113.10 - alice [20/Nov/2026:10:00:00 -0500] "GET /members/ HTTP/1.0" 401 -',),
           (rec(time=utc("2026-11-20 15:00:00"), client_ip="203.0.113.10", method="GET",
                uri="/members/", protocol="HTTP/1.0", status=401),),
           fields=({"remote_user": "alice"},)),
    Sample("vhost_combined",
           ('shop.example.com:443 203.0.113.50 - - [20/Nov/2026:10:00:00 +0000] '
            f'"GET /cart HTTP/1.1" 200 5400 "-" "{IPHONE}"',),
           (rec(time=utc("2026-11-20 10:00:00"), client_ip="203.0.113.50", method="GET",
                uri="/cart", protocol="HTTP/1.1", status=200, bytes_sent=5400,
                user_agent=IPHONE, host="shop.example.com"),),
           fields=({"port": "443"},)),
    Sample("nginx_vhost_combined",
           ('shop.example.com 203.0.113.50 - - [20/Nov/2026:10:00:00 +0000] '
            f'"GET /cart HTTP/1.1" 200 5400 "-" "{IPHONE}"',),
           (rec(time=utc("2026-11-20 10:00:00"), client_ip="203.0.113.50", method="GET",
                uri="/cart", protocol="HTTP/1.1", status=200, bytes_sent=5400,
                user_agent=IPHONE, host="shop.example.com"),)),
    Sample("vhost_common",
           ('shop.example.com 203.0.113.50 - - [20/Nov/2026:10:00:00 +0000] '
            '"GET /cart HTTP/1.1" 200 5400',),
           (rec(time=utc("2026-11-20 10:00:00"), client_ip="203.0.113.50", method="GET",
                uri="/cart", protocol="HTTP/1.1", status=200, bytes_sent=5400,
                host="shop.example.com"),)),
    Sample("nginx_main",
           ('10.0.0.2 - - [20/Nov/2026:10:00:00 +0000] "GET / HTTP/1.1" 200 612 "-" '
            f'"{CHROME}" "198.51.100.7, 10.0.0.1"',),
           (rec(time=utc("2026-11-20 10:00:00"), client_ip="10.0.0.2", method="GET", uri="/",
                protocol="HTTP/1.1", status=200, bytes_sent=612, user_agent=CHROME,
                xff="198.51.100.7, 10.0.0.1"),)),
    Sample("varnishncsa",
           ('127.0.0.1 - - [20/Nov/2026:10:00:00 +0000] "GET http://www.example.com/about/ '
            f'HTTP/1.1" 200 199 "{GOOGLE}" "{CHROME}"',),
           (rec(time=utc("2026-11-20 10:00:00"), client_ip="127.0.0.1", method="GET",
                uri="http://www.example.com/about/", protocol="HTTP/1.1", status=200,
                bytes_sent=199, referrer=GOOGLE, user_agent=CHROME),),
           detects_as=("combined",)),
    Sample("varnishncsa_xff",
           ('203.0.113.10, 127.0.0.1 - - [20/Nov/2026:10:00:00 +0000] '
            f'"GET http://www.example.com/ HTTP/1.1" 200 197 "-" "{FIREFOX}"',),
           (rec(time=utc("2026-11-20 10:00:00"), client_ip="203.0.113.10", method="GET",
                uri="http://www.example.com/", protocol="HTTP/1.1", status=200,
                bytes_sent=197, user_agent=FIREFOX, xff="203.0.113.10, 127.0.0.1"),)),
    Sample("nginx_json",
           ('{"time_local":"20/Nov/2026:10:00:00 +0000","remote_addr":"203.0.113.10",'
            '"request":"GET /x?y=1 HTTP/1.1","status":"200","body_bytes_sent":"512",'
            f'"http_referer":"","http_user_agent":"{FIREFOX}","request_time":"0.004"}}',),
           (rec(time=utc("2026-11-20 10:00:00"), client_ip="203.0.113.10", method="GET",
                uri="/x?y=1", protocol="HTTP/1.1", status=200, bytes_sent=512,
                user_agent=FIREFOX),),
           fields=({"request_time": "0.004"},)),
    Sample("caddy",
           ('{"level":"info","ts":1795600000.5,"logger":"http.log.access.log0",'
            '"msg":"handled request","request":{"remote_ip":"10.0.0.2","remote_port":"5555",'
            '"client_ip":"203.0.113.10","proto":"HTTP/2.0","method":"GET",'
            '"host":"www.example.com","uri":"/?a=1","headers":{"User-Agent":["' + FIREFOX
            + '"],"Referer":["' + GOOGLE + '"]},"tls":{"resumed":false,"version":772}},'
            '"bytes_read":0,"user_id":"","duration":0.001,"size":512,"status":200,'
            '"resp_headers":{"Content-Type":["text/html; charset=utf-8"]}}',),
           (rec(time=1795600000.5, client_ip="203.0.113.10", method="GET", uri="/?a=1",
                protocol="HTTP/2.0", status=200, bytes_sent=512, referrer=GOOGLE,
                user_agent=FIREFOX, host="www.example.com", scheme="https",
                content_type="text/html; charset=utf-8"),),
           fields=({"request.remote_ip": "10.0.0.2", "request.tls.version": "772"},)),
    TRAEFIK, TRAEFIK_JSON, HAPROXY,
)

ALL = CLOUD + SERVERS


def parse_all(sample: Sample, parser=None) -> list:
    """The records of a sample's request lines, read in order by one parser (header lines
    teach it the columns and are skipped)."""
    from parsers.base import SkipLine
    from parsers.registry import get_parser

    parser = parser or get_parser(sample.preset)
    records = []
    for line in sample.lines:
        try:
            records.append(parser.parse(line))
        except SkipLine:
            continue
    return records


def check_sample(sample: Sample, records: list) -> None:
    """Every compared field of every record, and the named `fields` entries."""
    import pytest

    assert len(records) == len(sample.records)
    for i, (record, want) in enumerate(zip(records, sample.records, strict=True)):
        got = {k: getattr(record, k) for k in want}
        assert got["time"] == pytest.approx(want["time"], abs=1e-6), f"record {i}"
        assert {**got, "time": None} == {**want, "time": None}, f"record {i}"
        if sample.fields:
            extra = sample.fields[i]
            assert {k: record.fields.get(k) for k in extra} == extra, f"record {i}"
