"""Benchmark of the Events API delivery engine, side by side with wrk and plain HTTP clients.

    python tests/bench/bench_delivery.py [--events 100000] [--runs 5]

Starts Debian's nginx on 127.0.0.1 with a temporary config (POST /api/event -> 202 "ok",
GET /api/health -> Plausible's health JSON), then measures in --runs interleaved rounds
(medians; each ratio against the wrk run of the same round):

  wrk          2 threads, 64 connections, a small Lua script POSTing an event body
  urllib3      one PoolManager, sequential POSTs
  curl multi   a bare pycurl CurlMulti loop with 64 handles (the transport's ceiling)
  sink         EventsApiSink (ordering per visitor + token bucket on), all events answered

then the sink against a server that answers every request 50 ms late (an asyncio server in its
own process: Debian's nginx has no echo_sleep), the token bucket's accuracy at a set rate, and
the sink's peak memory (RSS) for a small and a 10x larger input streamed through it.
Not collected by pytest; prints a table and writes nothing.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from importer.delivery import EventsApiSink  # noqa: E402
from importer.events import Event  # noqa: E402
from importer.summary import Counters  # noqa: E402

HEALTH = '{"postgres":"ok","clickhouse":"ok","sites_cache":"ok","sessions":"ok"}'
UA = ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
      "Chrome/131.0.0.0 Safari/537.36")
BODY = json.dumps({"name": "pageview", "url": "https://example.com/blog/some-post?page=2",
                   "domain": "example.com", "referrer": "https://www.google.com/"})
VISITORS = 5000  # distinct (ip, ua) pairs; each has events/VISITORS events, in order


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {timeout} s")


class Nginx:
    """Debian's nginx, one worker (the other core is the client's), answering like Plausible."""

    def __init__(self, workdir: Path) -> None:
        self.dir = workdir
        self.port = free_port()
        self.proc: subprocess.Popen | None = None

    def __enter__(self) -> Nginx:
        nginx = shutil.which("nginx", path=os.pathsep.join([os.environ["PATH"], "/usr/sbin"]))
        if nginx is None:
            sys.exit("nginx is not installed (apt-get install nginx)")
        temps = " ".join(f"{kind}_temp_path {self.dir}/{kind};"
                         for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
        (self.dir / "nginx.conf").write_text(f"""
{"user root;" if os.geteuid() == 0 else ""}
worker_processes 1;
daemon off;
pid {self.dir}/nginx.pid;
error_log {self.dir}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    keepalive_requests 10000000;
    {temps}
    server {{
        listen 127.0.0.1:{self.port};
        location = /api/event {{ return 202 ok; }}
        location = /api/health {{ default_type application/json; return 200 '{HEALTH}'; }}
    }}
}}
""")
        self.proc = subprocess.Popen(
            [nginx, "-p", str(self.dir), "-c", str(self.dir / "nginx.conf"),
             "-e", str(self.dir / "error.log")], stderr=subprocess.DEVNULL)
        wait_for_port(self.port)
        return self

    def __exit__(self, *exc: object) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGQUIT)
        self.proc.wait(10)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


# --- a server that answers 50 ms late (run in its own process) --------------------------------

async def _slow_serve(port: int, latency: float) -> None:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = re.search(rb"(?i)content-length:\s*(\d+)", head)
                if length:
                    await reader.readexactly(int(length.group(1)))
                await asyncio.sleep(latency)
                if head.startswith(b"GET /api/health"):
                    body, status = HEALTH.encode(), b"200 OK"
                else:
                    body, status = b"ok", b"202 Accepted"
                writer.write(b"HTTP/1.1 " + status + b"\r\nContent-Length: "
                             + str(len(body)).encode() + b"\r\n\r\n" + body)
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", port, backlog=1024)
    async with server:
        await server.serve_forever()


class SlowServer:
    def __init__(self, latency: float) -> None:
        self.latency = latency
        self.port = free_port()
        self.proc: subprocess.Popen | None = None

    def __enter__(self) -> SlowServer:
        self.proc = subprocess.Popen([sys.executable, __file__, "--serve-slow", str(self.port),
                                      "--latency", str(self.latency)])
        wait_for_port(self.port)
        return self

    def __exit__(self, *exc: object) -> None:
        assert self.proc is not None
        self.proc.terminate()
        self.proc.wait(10)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


# --- the contenders --------------------------------------------------------------------------

def events(n: int) -> Iterator[Event]:
    """n events over VISITORS visitors, generated on the fly (so memory reflects the sink)."""
    now = time.time()
    for i in range(n):
        v = i % VISITORS
        yield Event("pageview", f"https://example.com/blog/post-{i % 97}?page={i % 7}",
                    "example.com", f"10.{v >> 16 & 255}.{v >> 8 & 255}.{v & 255}", UA, now,
                    referrer="https://www.google.com/")


def run_sink(url: str, n: int, **options) -> tuple[float, Counters]:
    counters = Counters()
    started = time.perf_counter()
    sink = EventsApiSink(url, counters, **options)
    for event in events(n):
        counters.events += 1
        sink.submit(event)
    sink.close()
    elapsed = time.perf_counter() - started
    assert counters.sent == n, counters.as_dict()
    return n / elapsed, counters


def run_wrk(url: str, seconds: float, connections: int = 64) -> float:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(f"wrk.method = 'POST'\nwrk.body = {json.dumps(BODY)}\n"
                     "wrk.headers['Content-Type'] = 'application/json'\n"
                     "wrk.headers['X-Forwarded-For'] = '203.0.113.9'\n")
    try:
        out = subprocess.run(["wrk", "-t2", f"-c{connections}", f"-d{seconds:g}s", "-s",
                              script.name, url + "/api/event"],
                             capture_output=True, text=True, check=True).stdout
    finally:
        os.unlink(script.name)
    return float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))


def run_urllib3(url: str, n: int) -> float:
    import urllib3

    http = urllib3.PoolManager()
    started = time.perf_counter()
    for _ in range(n):
        http.request("POST", url + "/api/event", body=BODY,
                     headers={"Content-Type": "application/json", "User-Agent": UA})
    return n / (time.perf_counter() - started)


def run_curl_multi(url: str, n: int, handles: int = 64) -> float:
    import io

    import pycurl

    multi, free = pycurl.CurlMulti(), []
    for _ in range(handles):
        c = pycurl.Curl()
        c.setopt(pycurl.URL, url + "/api/event")
        c.setopt(pycurl.WRITEDATA, io.BytesIO())
        free.append(c)
    body = BODY.encode()
    headers = [b"Content-Type: application/json", b"User-Agent: " + UA.encode(), b"Expect:"]
    started, sent, done = time.perf_counter(), 0, 0
    while done < n:
        while free and sent < n:
            c = free.pop()
            c.setopt(pycurl.POSTFIELDS, body)
            c.setopt(pycurl.HTTPHEADER, headers)
            multi.add_handle(c)
            sent += 1
        multi.perform()
        while True:
            queued, ok, failed = multi.info_read()
            for c in ok + [f[0] for f in failed]:
                multi.remove_handle(c)
                free.append(c)
                done += 1
            if not queued:
                break
        if not free:
            multi.select(0.01)
    return n / (time.perf_counter() - started)


def peak_rss_mb(url: str, n: int) -> float:
    """Peak RSS of a fresh process streaming n events through the sink."""
    out = subprocess.run([sys.executable, __file__, "--rss-probe", url, "--events", str(n)],
                         capture_output=True, text=True, check=True).stdout
    return float(out.strip())


def interleaved(runs: int, contenders: dict[str, Callable[[], float]]) -> dict[str, list[float]]:
    """Each round runs every contender once, so load from elsewhere hits all of them alike."""
    results: dict[str, list[float]] = {name: [] for name in contenders}
    for _ in range(runs):
        for name, fn in contenders.items():
            results[name].append(fn())
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--serve-slow", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--latency", type=float, default=0.05, help=argparse.SUPPRESS)
    parser.add_argument("--rss-probe", metavar="URL", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_slow:
        asyncio.run(_slow_serve(args.serve_slow, args.latency))
        return
    if args.rss_probe:
        run_sink(args.rss_probe, args.events, rate=1e9)
        print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
        return

    n, runs = args.events, args.runs
    wrk = "wrk -t2 -c64 (the machine's ceiling)"
    with tempfile.TemporaryDirectory() as tmp, Nginx(Path(tmp)) as nginx:
        urllib.request.urlopen(nginx.url + "/api/health").read()
        fast = interleaved(runs, {
            wrk: lambda: run_wrk(nginx.url, 3),
            "urllib3, sequential": lambda: run_urllib3(nginx.url, n // 10),
            "pycurl CurlMulti, 64 handles, bare loop": lambda: run_curl_multi(nginx.url, n),
            "EventsApiSink, concurrency 16, rate limit on": lambda: run_sink(
                nginx.url, n, concurrency=16, rate=1e9)[0],
            "EventsApiSink, concurrency 128, rate limit on": lambda: run_sink(
                nginx.url, n, concurrency=128, rate=1e9)[0],
        })
        target_rate = 5000.0
        paced = run_sink(nginx.url, int(target_rate * 3), rate=target_rate)[0]
        small, large = peak_rss_mb(nginx.url, n // 2), peak_rss_mb(nginx.url, n * 5)
    with SlowServer(0.05) as slow:
        slow_results = interleaved(max(1, runs // 2), {
            f"EventsApiSink, 50 ms server, concurrency {c}": lambda c=c: run_sink(
                slow.url, n // 5, concurrency=c, rate=1e9)[0] for c in (64, 128, 256)})

    print(f"\n{n:,} events per sink run over {VISITORS:,} visitors; median of {runs} "
          f"interleaved rounds ({os.cpu_count()} cores)\n")
    print(f"{'against nginx (202) on 127.0.0.1':<48} {'events/s':>9} {'x wrk':>6}   runs")
    for name, values in fast.items():
        # the ratio is the median of per-round ratios: each against the wrk run next to it
        ratio = statistics.median(v / w for v, w in zip(values, fast[wrk], strict=True))
        print(f"{name:<48} {statistics.median(values):>9,.0f} {ratio:>6.2f}   "
              + " ".join(f"{v:,.0f}" for v in values))
    print()
    for name, values in slow_results.items():
        print(f"{name:<48} {statistics.median(values):>9,.0f}          "
              + " ".join(f"{v:,.0f}" for v in values))
    print(f"\n--rate {target_rate:g}: measured {paced:,.0f} events/s over {target_rate * 3:,.0f}"
          " events")
    print(f"peak RSS: {small:,.0f} MB for {n // 2:,} events, {large:,.0f} MB for {n * 5:,} "
          "events")


if __name__ == "__main__":
    main()
