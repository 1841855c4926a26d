"""Benchmark: classifying distinct User-Agents, one process vs `classify_many` across cores,
and a next run's start from the user-agent cache the first one saved (importer/uacache.py).

Run from the repository root:  python -m tests.bench.bench_useragents [--n 600] [--workers 2]

The UAs are generated (fixed seed) from the shapes that dominate real access logs: desktop and
mobile browsers across many versions and device models, in-app browsers, crawlers and HTTP
libraries. Every UA is distinct, so every one is a cache miss: the worst case a new log brings.
"""
from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import astuple

from importer.uacache import persisted
from importer.useragents import UserAgentClassifier, detect, detect_kind

# A next run, in a new process as cron starts it: the cache's rows in, every UA looked up.
NEXT_RUN = """
import json, sys, time
t0 = time.perf_counter()
from dataclasses import astuple
from importer.uacache import persisted
from importer.useragents import classifier
uas = json.load(sys.stdin)
with persisted(classifier, sys.exit, sys.argv[1]):
    t1 = time.perf_counter()
    infos = [classifier.classify(ua) for ua in uas]
    t2 = time.perf_counter()
print(json.dumps({"start": t1 - t0, "lookups": t2 - t1, "total": time.perf_counter() - t0,
                  "device_detector": "device_detector" in sys.modules,
                  "infos": [astuple(info) for info in infos]}))
"""


def next_run(uas: list[str], store: str) -> dict:
    done = subprocess.run([sys.executable, "-c", NEXT_RUN, store], input=json.dumps(uas),
                          capture_output=True, text=True, check=True,
                          env={**os.environ, "PYTHONPATH": os.getcwd()})
    return json.loads(done.stdout)

ANDROID_MODELS = (
    "SM-G991B", "SM-A525F", "SM-S911B", "SM-A146P", "Pixel 7", "Pixel 6a", "M2101K6G",
    "Redmi Note 8 Pro", "CPH2211", "moto g(30)", "VOG-L29", "RMX3363", "K",
)
CRAWLERS = (
    "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
    "Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)",
    "Mozilla/5.0 (compatible; AhrefsBot/7.0; +http://ahrefs.com/robot/)",
    "Mozilla/5.0 (compatible; SemrushBot/7~bl; +http://www.semrush.com/bot.html)",
    "Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; compatible; GPTBot/1.2;"
    " +https://openai.com/gptbot)",
)


def _browser_ua(rng: random.Random) -> str:
    chrome = f"{rng.randint(90, 131)}.0.{rng.randint(4000, 6999)}.{rng.randint(0, 250)}"
    firefox = f"{rng.randint(90, 133)}.0"
    ios = f"{rng.randint(14, 18)}_{rng.randint(0, 7)}"
    webkit = "AppleWebKit/605.1.15 (KHTML, like Gecko)"
    android = f"Linux; Android {rng.randint(8, 15)}; {rng.choice(ANDROID_MODELS)}"
    shapes = (
        f"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko)"
        f" Chrome/{chrome} Safari/537.36",
        f"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko)"
        f" Chrome/{chrome} Safari/537.36 Edg/{chrome}",
        f"Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:{firefox}) Gecko/20100101 Firefox/{firefox}",
        f"Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_{rng.randint(1, 7)}) {webkit}"
        f" Version/{rng.randint(14, 18)}.{rng.randint(0, 6)} Safari/605.1.15",
        f"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko)"
        f" Chrome/{chrome} Safari/537.36",
        f"Mozilla/5.0 (iPhone; CPU iPhone OS {ios} like Mac OS X) {webkit}"
        f" Version/{ios.replace('_', '.')} Mobile/15E148 Safari/604.1",
        f"Mozilla/5.0 (iPhone; CPU iPhone OS {ios} like Mac OS X) {webkit}"
        f" CriOS/{chrome} Mobile/15E148 Safari/604.1",
        f"Mozilla/5.0 (iPad; CPU OS {ios} like Mac OS X) {webkit}"
        f" Version/{ios.replace('_', '.')} Mobile/15E148 Safari/604.1",
        f"Mozilla/5.0 ({android}) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/{chrome}"
        f" Mobile Safari/537.36",
        f"Mozilla/5.0 ({android}) AppleWebKit/537.36 (KHTML, like Gecko)"
        f" SamsungBrowser/{rng.randint(15, 26)}.0 Chrome/{chrome} Mobile Safari/537.36",
        f"Mozilla/5.0 (iPhone; CPU iPhone OS {ios} like Mac OS X) {webkit} Mobile/15E148"
        f" Instagram {rng.randint(250, 350)}.0.0.{rng.randint(10, 40)}.{rng.randint(100, 130)}"
        f" (iPhone14,5; iOS {ios}; en_US; en; scale=3.00; 1170x2532; {rng.randint(10**8, 10**9)})",
    )
    return rng.choice(shapes)


def realistic_uas(n: int, seed: int = 1) -> list[str]:
    """`n` distinct UAs: ~90% browsers, the rest crawlers and libraries, as in a typical log."""
    rng = random.Random(seed)
    seen: dict[str, None] = {}
    while len(seen) < n:
        roll = rng.random()
        if roll < 0.90:
            ua = _browser_ua(rng)
        elif roll < 0.95:
            ua = rng.choice(CRAWLERS).replace("/2.", f"/{rng.randint(2, 9)}.", 1)
        else:
            ua = rng.choice(("curl/", "python-requests/", "Go-http-client/", "Wget/"))
            ua += f"{rng.randint(1, 8)}.{rng.randint(0, 40)}.{rng.randint(0, 9)}"
        seen[ua] = None
    return list(seen)


def _burn(n: int) -> int:
    return sum(i * i for i in range(n))


def parallel_ceiling(workers: int) -> float:
    """Speedup of pure CPU work in `workers` processes right now (other jobs share this box)."""
    jobs = [2_000_000] * (4 * workers)
    t0 = time.perf_counter()
    for n in jobs:
        _burn(n)
    alone = time.perf_counter() - t0
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork")) as pool:
        t0 = time.perf_counter()
        list(pool.map(_burn, jobs))
        return alone / (time.perf_counter() - t0)


def _cpu_seconds() -> tuple[float, float]:
    """CPU time of this process and of its reaped children (pool workers, once shut down)."""
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time(), children.ru_utime + children.ru_stime


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=600, help="distinct UAs to classify")
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()
    n = args.n

    # Other jobs may share the cores: this says what speedup is possible at all right now.
    ceiling = parallel_ceiling(args.workers)
    print(f"pure-CPU speedup with {args.workers} processes on this box now: x{ceiling:.2f}")
    # The first detections load device-detector's database and compile its common regexes;
    # keep that out of both timings. Each timing then gets its own, equally new, UAs.
    t0 = time.perf_counter()
    for ua in realistic_uas(200, seed=99):
        detect(ua)
    print(f"database load + 200 warm-up UAs: {time.perf_counter() - t0:.2f} s")
    seq_uas, par_uas = realistic_uas(n, seed=1), realistic_uas(n, seed=2)

    seq = UserAgentClassifier()
    t0, (cpu0, _) = time.perf_counter(), _cpu_seconds()
    for ua in seq_uas:
        seq.classify(ua)
    t_seq, cpu_seq = time.perf_counter() - t0, _cpu_seconds()[0] - cpu0

    t0, (cpu0, child0) = time.perf_counter(), _cpu_seconds()
    with UserAgentClassifier(workers=args.workers) as par:
        parallel = par.classify_many(par_uas)
        t_par = time.perf_counter() - t0
    cpu1, child1 = _cpu_seconds()

    sample = par_uas[:100]  # same UAs both ways must give the same answers
    assert all(parallel[ua] == seq.classify(ua) for ua in sample)

    t0 = time.perf_counter()
    for ua in seq_uas:
        seq.classify(ua)
    t_hit = time.perf_counter() - t0

    kind_uas = realistic_uas(n, seed=3)  # new ones: detect_kind does not cache
    t0, cpu0 = time.perf_counter(), time.process_time()
    for ua in kind_uas:
        detect_kind(ua)
    t_kind, cpu_kind = time.perf_counter() - t0, time.process_time() - cpu0

    kinds: dict[str, int] = {}
    for info in parallel.values():
        kinds[info.kind or "client"] = kinds.get(info.kind or "client", 0) + 1
    print(f"{n} distinct UAs per run {kinds}")
    print(f"sequential classify:        {t_seq:6.2f} s wall {1000 * t_seq / n:6.2f} ms/UA"
          f"  (CPU {1000 * cpu_seq / n:.2f} ms/UA)")
    print(f"classify_many, {args.workers} workers:  {t_par:6.2f} s wall"
          f" {1000 * t_par / n:6.2f} ms/UA  speedup x{t_seq / t_par:.2f}"
          f"  (CPU: workers {1000 * (child1 - child0) / n:.2f}"
          f" + parent {1000 * (cpu1 - cpu0) / n:.2f} ms/UA)")
    print(f"detect_kind (kind only):    {t_kind:6.2f} s wall {1000 * t_kind / n:6.2f} ms/UA"
          f"  (CPU {1000 * cpu_kind / n:.2f} ms/UA)")
    print(f"cache hits:                 {1e6 * t_hit / n:6.2f} µs/UA")

    with tempfile.TemporaryDirectory() as work:
        store = os.path.join(work, "useragents.db")
        with persisted(seq, print, store):
            pass  # saves what `seq` classified
        warm = next_run(seq_uas, store)
    assert [tuple(row) for row in warm["infos"]] == [astuple(seq.classify(ua)) for ua in seq_uas]
    print(f"next run, cache saved:      {warm['total']:6.2f} s for all {n} UAs in a new process"
          f" (start {1000 * warm['start']:.0f} ms, lookups {1e6 * warm['lookups'] / n:.1f} µs/UA,"
          f" device_detector imported: {warm['device_detector']})")


if __name__ == "__main__":
    main()
