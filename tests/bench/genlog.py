"""A seeded generator of realistic access logs, for benchmarks and large-input tests.

    python tests/bench/genlog.py --lines 1000000 --format combined --seed 1 > access.log
    python tests/bench/genlog.py --lines 1000000 --format cloudfront --seed 1 > cf.log

Traffic is simulated as visits over several days, in time order: each human visit requests a
few pages, and each page pulls its assets (css, js, images, fonts, favicon) with the page as
referrer; crawlers, monitors and scripts make up a share of the lines; statuses, methods,
IPv4/IPv6 addresses and external referrers (search, social, UTM-tagged links) vary as in real
logs. The same seed always gives the same bytes.
"""
from __future__ import annotations

import argparse
import random
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from urllib.parse import quote

START = 1772323200.0  # 2026-03-01 00:00:00 UTC
SITE = "example.com"

BROWSERS = [
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/{v}.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/{v}.0.0.0 Safari/537.36",
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/{v}.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:{v}.0) Gecko/20100101 Firefox/{v}.0",
    "Mozilla/5.0 (X11; Ubuntu; Linux x86_64; rv:{v}.0) Gecko/20100101 Firefox/{v}.0",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.{m} Safari/605.1.15",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_{m} like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.{m} Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Linux; Android 14; SM-S918B) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/{v}.0.0.0 Mobile Safari/537.36",
    "Mozilla/5.0 (Linux; Android 13; Pixel 7) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/{v}.0.0.0 Mobile Safari/537.36",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/{v}.0.0.0 Safari/537.36 Edg/{v}.0.0.0",
    "Mozilla/5.0 (iPad; CPU OS 16_{m} like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/16.{m} Mobile/15E148 Safari/604.1",
]
CRAWLERS = [
    "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
    "Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; compatible; Googlebot/2.1; "
    "+http://www.google.com/bot.html) Chrome/120.0.6099.129 Safari/537.36",
    "Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)",
    "Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; compatible; GPTBot/1.1; "
    "+https://openai.com/gptbot)",
    "Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; compatible; ClaudeBot/1.0; "
    "+claudebot@anthropic.com)",
    "Mozilla/5.0 (compatible; AhrefsBot/7.0; +http://ahrefs.com/robot/)",
    "Mozilla/5.0 (compatible; SemrushBot/7~bl; +http://www.semrush.com/bot.html)",
    "Mozilla/5.0 (compatible; YandexBot/3.0; +http://yandex.com/bots)",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "HeadlessChrome/120.0.0.0 Safari/537.36",
]
CRAWLERS += [
    "Mozilla/5.0 (compatible; Bytespider; spider-feedback@bytedance.com)",
    "facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)",
    "Twitterbot/1.0", "Mozilla/5.0 (compatible; Applebot/0.1; +http://www.apple.com/go/applebot)",
    "DuckDuckBot/1.1; (+http://duckduckgo.com/duckduckbot.html)",
    "Mozilla/5.0 (compatible; PetalBot;+https://webmaster.petalsearch.com/site/petalbot)",
    "Mozilla/5.0 (compatible; MJ12bot/v1.4.8; http://mj12bot.com/)",
    "Mozilla/5.0 (compatible; DotBot/1.2; +https://opensiteexplorer.org/dotbot)",
    "Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)",
    "Mozilla/5.0 (compatible; Discordbot/2.0; +https://discordapp.com)",
]
SCRIPTS = ["curl/8.{m}.0", "curl/7.8{m}.0", "python-requests/2.3{m}.0", "Go-http-client/1.1",
           "Go-http-client/2.0", "Wget/1.21.{m}", "okhttp/4.{m}.0", "axios/1.{m}.2",
           "Java/17.0.{m}", "python-httpx/0.2{m}.0", "node-fetch/1.0",
           "Mozilla/5.0+(compatible; UptimeRobot/2.0; http://www.uptimerobot.com/)"]
# Apps' embedded browsers name their own build: the long tail of distinct user agents.
IN_APP = [
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_{m}_{p} like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Mobile/21A{b} Instagram {v}.0.0.{p}.{b} (iPhone14,{m}; iOS 17_{m}_{p}; "
    "en_US; en; scale=3.00; 1170x2532; {n})",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_{m} like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Mobile/15E148 [FBAN/FBIOS;FBAV/{v}.0.0.{p}.{b};FBBV/{n};"
    "FBDV/iPhone13,{m};FBMD/iPhone;FBSN/iOS;FBSV/17.{m};FBSS/3;FBID/phone;FBLC/en_US;FBOP/5]",
    "Mozilla/5.0 (Linux; Android 1{m}; SM-A{b} Build/UP1A.{n}; wv) AppleWebKit/537.36 "
    "(KHTML, like Gecko) Version/4.0 Chrome/1{p}{m}.0.{n}.{b} Mobile Safari/537.36",
    "Mozilla/5.0 (Linux; Android 1{m}; {model}) AppleWebKit/537.36 (KHTML, like Gecko) "
    "SamsungBrowser/2{p}.0 Chrome/1{m}{p}.0.0.0 Mobile Safari/537.36",
]
MODELS = ["SM-G991B", "SM-S911B", "Pixel 8", "Pixel 6a", "M2101K6G", "CPH2449", "moto g(60)",
          "RMX3363", "2201117TY", "SM-A546B", "V2202", "Nokia G21"]
PROBES = ["/wp-login.php", "/xmlrpc.php", "/.env", "/admin/config.php", "/.git/config",
          "/phpmyadmin/index.php", "/wp-content/plugins/revslider/temp.php"]
WORDS = ["python", "log", "analytics", "privacy", "nginx", "apache", "server", "deploy",
         "guide", "release", "notes", "pricing", "docs", "install", "setup", "faq", "cloud",
         "backup", "metrics", "cache", "speed", "security"]
EXTERNAL = ["https://www.google.com/", "https://www.google.de/", "https://www.bing.com/",
            "https://duckduckgo.com/", "https://news.ycombinator.com/",
            "https://www.reddit.com/r/selfhosted/", "https://t.co/Ab12Cd34",
            "https://www.facebook.com/", "https://github.com/plausible/analytics",
            "android-app://com.google.android.gm/"]
UTM = ["?utm_source=newsletter&utm_medium=email&utm_campaign=spring",
       "?utm_source=twitter&utm_medium=social", "?ref=producthunt", "?utm_campaign=launch"]
ASSETS = ["/static/css/main.{h}.css", "/static/js/app.{h}.js", "/static/js/vendor.{h}.js",
          "/static/img/logo.svg", "/static/img/hero.{h}.webp", "/static/fonts/inter.woff2",
          "/favicon.ico", "/static/img/photo-{n}.jpg"]
EDGES = ["FRA56-P1", "LHR61-C2", "IAD89-P3", "SFO5-C1", "NRT57-P2", "CDG50-C1"]
CF_FIELDS = (
    "date time x-edge-location sc-bytes c-ip cs-method cs(Host) cs-uri-stem sc-status "
    "cs(Referer) cs(User-Agent) cs-uri-query cs(Cookie) x-edge-result-type x-edge-request-id "
    "x-host-header cs-protocol cs-bytes time-taken x-forwarded-for ssl-protocol ssl-cipher "
    "x-edge-response-result-type cs-protocol-version fle-status fle-encrypted-fields c-port "
    "time-to-first-byte x-edge-detailed-result-type sc-content-type sc-content-len "
    "sc-range-start sc-range-end")
MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


@dataclass(slots=True)
class Request:
    time: float
    ip: str
    method: str
    path: str  # path and query
    status: int
    size: int
    referrer: str  # "-" when none
    user_agent: str
    protocol: str = "HTTP/1.1"


@dataclass
class Visit:
    ip: str
    user_agent: str
    pending: list[tuple[str, str, str]] = field(default_factory=list)  # method, path, referrer


class Generator:
    """Interleaves concurrent visits into one time-ordered request stream."""

    def __init__(self, seed: int, lines: int, days: float) -> None:
        self.rng = random.Random(seed)
        rng = self.rng
        self.step = days * 86400 / max(lines, 1)
        self.now = START
        self.pages = self._pages()
        self.asset_hash = f"{rng.getrandbits(32):08x}"
        self.visits: list[Visit] = []
        # Returning visitors: a fixed population, so addresses and UAs repeat like in real logs.
        self.people = [(self._ip(), self._browser()) for _ in range(max(200, lines // 40))]
        self.bots = [(self._ip(), rng.choice(CRAWLERS + SCRIPTS).format(m=rng.randint(0, 9)))
                     for _ in range(300)]

    def _pages(self) -> list[str]:
        rng = self.rng
        pages = ["/", "/pricing", "/about", "/contact", "/docs/", "/blog/"]
        for _ in range(400):
            slug = "-".join(rng.sample(WORDS, rng.randint(2, 5)))
            pages.append(rng.choice(("/blog/", "/docs/", "/docs/guides/", "/news/")) + slug
                         + rng.choice(("", "", "/", ".html")))
        pages += [f"/products/{n}" for n in range(100, 160)]
        return pages

    def _ip(self) -> str:
        rng = self.rng
        if rng.random() < 0.15:
            return (f"2001:db8:{rng.getrandbits(16):x}:{rng.getrandbits(16):x}::"
                    f"{rng.getrandbits(16):x}")
        first = rng.choice((31, 46, 78, 85, 91, 104, 151, 176, 185, 203))
        return f"{first}.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}"

    def _browser(self) -> str:
        rng = self.rng
        if rng.random() < 0.1:
            return rng.choice(IN_APP).format(
                v=rng.randint(250, 330), m=rng.randint(0, 9), p=rng.randint(0, 9),
                b=rng.randint(100, 999), n=rng.randint(10**8, 10**9), model=rng.choice(MODELS))
        # Browsers update every few weeks: most visitors run one of the last few versions.
        return rng.choice(BROWSERS).format(v=131 - min(int(rng.expovariate(0.5)), 20),
                                           m=rng.randint(0, 6))

    def _page(self) -> str:
        rng = self.rng
        # Zipf-like popularity: a few pages get most of the views.
        path = self.pages[min(int(rng.paretovariate(1.2)) - 1, len(self.pages) - 1)
                          if rng.random() < 0.6 else rng.randrange(len(self.pages))]
        r = rng.random()
        if r < 0.05:
            path += rng.choice(UTM)
        elif r < 0.08:
            path = "/search?q=" + "+".join(rng.sample(WORDS, 2))
        return path

    def _new_visit(self) -> Visit:
        rng = self.rng
        if rng.random() < 0.2:
            ip, ua = rng.choice(self.bots)
            visit = Visit(ip, ua)
            for _ in range(rng.randint(1, 12)):
                path = rng.choice(PROBES) if rng.random() < 0.15 else self._page()
                visit.pending.append(("HEAD" if rng.random() < 0.05 else "GET", path, "-"))
            return visit
        ip, ua = rng.choice(self.people) if rng.random() < 0.7 else (self._ip(), self._browser())
        visit = Visit(ip, ua)
        referrer = rng.choice(EXTERNAL) if rng.random() < 0.45 else "-"
        for _ in range(min(int(rng.expovariate(0.45)) + 1, 15)):
            page = self._page()
            visit.pending.append(("GET", page, referrer))
            page_url = f"https://{SITE}{page}"
            for asset in rng.sample(ASSETS, rng.randint(2, 6)):
                visit.pending.append(
                    ("GET", asset.format(h=self.asset_hash, n=rng.randint(1, 40)), page_url))
            if rng.random() < 0.04:
                visit.pending.append(("POST", "/api/subscribe", page_url))
            referrer = page_url
        return visit

    def requests(self, count: int) -> Iterator[Request]:
        rng = self.rng
        for _ in range(count):
            self.now += rng.expovariate(1.0) * self.step
            if not self.visits or rng.random() < 0.12 or len(self.visits) < 5:
                self.visits.append(self._new_visit())
            i = rng.randrange(len(self.visits))
            visit = self.visits[i]
            method, path, referrer = visit.pending.pop(0)
            if not visit.pending:
                self.visits[i] = self.visits[-1]
                self.visits.pop()
            yield self._respond(visit, method, path, referrer)

    def _respond(self, visit: Visit, method: str, path: str, referrer: str) -> Request:
        rng = self.rng
        is_asset = path.startswith(("/static/", "/favicon"))
        r = rng.random()
        if path in PROBES:
            status = 404
        elif method == "POST":
            status = 201 if r < 0.8 else 400
        elif r < 0.015:
            status = 404
        elif r < 0.02:
            status = rng.choice((301, 302))
        elif r < 0.023:
            status = rng.choice((500, 502, 503))
        elif is_asset and r < 0.35:
            status = 304
        else:
            status = 200
        size = 0 if status in (304, 301, 302) or method == "HEAD" else (
            rng.randint(800, 400_000) if is_asset else rng.randint(3_000, 60_000))
        protocol = "HTTP/2.0" if rng.random() < 0.6 else "HTTP/1.1"
        return Request(self.now, visit.ip, method, path, status, size, referrer, visit.user_agent,
                       protocol)


def combined(req: Request, tz_offset: int) -> str:
    t = time.gmtime(req.time + tz_offset)
    sign = "+" if tz_offset >= 0 else "-"
    off = abs(tz_offset) // 60
    stamp = (f"{t.tm_mday:02d}/{MONTHS[t.tm_mon - 1]}/{t.tm_year}:{t.tm_hour:02d}:"
             f"{t.tm_min:02d}:{t.tm_sec:02d} {sign}{off // 60:02d}{off % 60:02d}")
    return (f'{req.ip} - - [{stamp}] "{req.method} {req.path} {req.protocol}" {req.status} '
            f'{req.size} "{req.referrer}" "{req.user_agent}"')


class CloudFront:
    """CloudFront standard (legacy) log lines; UA and referrer URL-encoded as CloudFront does."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng

    def header(self) -> list[str]:
        return ["#Version: 1.0", "#Fields: " + CF_FIELDS]

    def __call__(self, req: Request, tz_offset: int) -> str:
        rng = self.rng
        t = time.gmtime(req.time)
        path, _, query = req.path.partition("?")
        result = "Hit" if req.path.startswith("/static/") and rng.random() < 0.9 else "Miss"
        taken = f"{rng.uniform(0.001, 0.4):.3f}"
        return "\t".join((
            time.strftime("%Y-%m-%d", t), time.strftime("%H:%M:%S", t), rng.choice(EDGES),
            str(req.size + 400), req.ip, req.method, "d111111abcdef8.cloudfront.net",
            quote(path, safe="/-_.~"), str(req.status), quote(req.referrer, safe=":/?&=-_.~%"),
            quote(req.user_agent, safe="/();:,.+~_-"), query or "-", "-", result,
            f"{rng.getrandbits(128):032x}==", SITE, "https", str(rng.randint(100, 900)), taken,
            "-", "TLSv1.3", "TLS_AES_128_GCM_SHA256", result, req.protocol, "-", "-",
            str(rng.randint(1024, 65535)), taken, result,
            "text/html" if not req.path.startswith("/static/") else "-",
            str(req.size), "-", "-"))


def generate(lines: int, fmt: str, seed: int = 1, days: float = 7.0,
             malformed: float = 0.0, tz_offset: int = 3600) -> Iterator[str]:
    """`lines` log lines (CloudFront header lines not included), each without its newline.

    `malformed` is the share of lines replaced by garbage (truncated or junk lines)."""
    gen = Generator(seed, lines, days)
    write: Callable[[Request, int], str]
    if fmt == "cloudfront":
        write = CloudFront(gen.rng)
        yield from write.header()
    else:
        write = combined
    junk = random.Random(seed + 1)
    for req in gen.requests(lines):
        line = write(req, tz_offset)
        if malformed and junk.random() < malformed:
            line = line[:junk.randint(0, len(line) - 1)] if junk.random() < 0.7 else \
                "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03 garbage"
        yield line


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--lines", type=int, default=100_000)
    p.add_argument("--format", choices=("combined", "cloudfront"), default="combined")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--days", type=float, default=7.0, help="time span of the log")
    p.add_argument("--malformed", type=float, default=0.0, help="share of garbage lines")
    args = p.parse_args(argv)
    out = sys.stdout
    for line in generate(args.lines, args.format, args.seed, args.days, args.malformed):
        out.write(line)
        out.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
