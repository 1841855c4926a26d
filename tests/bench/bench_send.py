"""End-to-end benchmark of `plausible-import send`, as a user runs it, side by side with wrk.

    python tests/bench/bench_send.py [--events 200000] [--runs 3] [--slow-events 50000]

Generates a combined log (genlog's traffic, kept to human page views, so nearly every line
becomes an event and the figure is about sending), starts Debian's nginx answering 202 (the
setup of bench_delivery.py) and runs in --runs interleaved rounds (medians):

  wrk                  2 threads, 64 connections (the machine's ceiling)
  send, --workers N    `python -m importer send LOG --url ... --domain example.com --no-progress
                       --json` in a fresh process: durable state in a temporary XDG_STATE_HOME
                       (a user's default, new each run), ordering per visitor and the token
                       bucket on (as always), for each N of --workers

then `send` against a server that answers every request 50 ms late. events/s = events sent /
the process's wall time (start-up and health check included); CPU is the process's user+system
seconds, its worker processes included. `--compare DIR` runs another checkout's code (e.g. a
`git worktree` of main) in the same rounds, for a before/after. Not collected by pytest.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(HERE))

from bench_delivery import Nginx, SlowServer, run_wrk  # noqa: E402
from genlog import BROWSERS, IN_APP, Generator, combined  # noqa: E402

HUMAN_UA_STARTS = tuple(ua.split("{", 1)[0] for ua in BROWSERS + IN_APP)


def page_views(path: Path, events: int, seed: int = 1) -> None:
    """A log of `events` human page views (GET, 200, not an asset), in genlog's time order."""
    gen = Generator(seed, events * 6, 7.0)
    kept = 0
    with path.open("w") as out:
        for req in gen.requests(events * 20):
            if (req.method == "GET" and req.status == 200
                    and not req.path.startswith(("/static/", "/favicon"))
                    and req.user_agent.startswith(HUMAN_UA_STARTS)
                    and "HeadlessChrome" not in req.user_agent):
                out.write(combined(req, 3600) + "\n")
                kept += 1
                if kept == events:
                    return
    raise RuntimeError(f"only {kept} page views generated")


def run_send(url: str, log: Path, *extra: str, root: Path = ROOT) -> tuple[float, float, dict]:
    """(events/s, CPU seconds, the run's JSON summary) of one fresh `send` process running the
    code in `root`."""
    with tempfile.TemporaryDirectory() as state:
        env = {**os.environ, "XDG_STATE_HOME": state, "PYTHONPATH": str(root)}
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, "-m", "importer", "send", str(log), "--url", url,
             "--domain", "example.com", "--no-progress", "--json", *extra],
            capture_output=True, text=True, env=env, cwd=root)
        wall = time.perf_counter() - started
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        sys.exit(f"send failed ({proc.returncode}): {proc.stderr[-2000:]}")
    summary = json.loads(proc.stdout)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return summary["sent"] / wall, cpu, summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--slow-events", type=int, default=50_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--workers", default="1,2", help="--workers values to run (default 1,2)")
    parser.add_argument("--compare", type=Path, metavar="DIR",
                        help="also run the code of this checkout, in the same rounds")
    args = parser.parse_args()
    workers = [w.strip() for w in args.workers.split(",")]
    roots = {"": ROOT} | ({f" [{args.compare.name}]": args.compare} if args.compare else {})

    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        log, slow_log = tmp_path / "pages.log", tmp_path / "pages-slow.log"
        page_views(log, args.events)
        page_views(slow_log, args.slow_events, seed=2)
        (tmp_path / "nginx").mkdir()
        wrk_name = "wrk -t2 -c64 (the machine's ceiling)"
        rates: dict[str, list[float]] = {wrk_name: []}
        cpus: dict[str, list[float]] = {}
        with Nginx(tmp_path / "nginx") as nginx:
            for _ in range(args.runs):
                rates[wrk_name].append(run_wrk(nginx.url, 3))
                for n in workers:
                    for label, root in roots.items():
                        name = f"send --workers {n}{label}"
                        rate, cpu, summary = run_send(nginx.url, log, "--workers", n, root=root)
                        assert summary["sent"] == args.events, summary
                        rates.setdefault(name, []).append(rate)
                        cpus.setdefault(name, []).append(cpu)
        with SlowServer(0.05) as slow:
            for _ in range(max(1, args.runs // 2)):
                for label, root in roots.items():
                    name = f"send, 50 ms server{label}"
                    rate, cpu, summary = run_send(slow.url, slow_log, root=root)
                    assert summary["sent"] == args.slow_events, summary
                    rates.setdefault(name, []).append(rate)
                    cpus.setdefault(name, []).append(cpu)

    print(f"\n{args.events:,} page views per send run (50 ms server: {args.slow_events:,}); "
          f"median of {args.runs} interleaved rounds ({os.cpu_count()} cores; load "
          f"{os.getloadavg()[0]:.2f})\n")
    print(f"{'':<44} {'events/s':>9} {'x wrk':>6} {'CPU s':>6}   runs (events/s)")
    wrk = rates[wrk_name]
    for name, values in rates.items():
        ratio = ""
        if "50 ms" not in name:  # each against the wrk run of its round
            ratio = f"{statistics.median(v / w for v, w in zip(values, wrk, strict=True)):.2f}"
        cpu = f"{statistics.median(cpus[name]):.1f}" if name in cpus else ""
        print(f"{name:<44} {statistics.median(values):>9,.0f} {ratio:>6} {cpu:>6}   "
              + " ".join(f"{v:,.0f}" for v in values))


if __name__ == "__main__":
    main()
