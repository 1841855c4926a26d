"""Benchmark: `plausible-import export` against GoAccess's full JSON report, and peak memory as
the history grows 10x.

Run from the repository root:
    python tests/bench/bench_export.py [--lines 1000000] [--runs 3]

1. Speed: the same generated combined log (tests/bench/genlog.py) through
   `goaccess LOG --log-format=COMBINED -o report.json` (Debian's goaccess) and through
   `python -m importer export LOG --format combined ...`, alternating, `--runs` times each;
   medians of wall and CPU time. Each round exports twice with a fresh state directory:
   "cold" classifies every user agent, "warm" (a rerun, as cron does) finds them in the
   user-agent cache the cold run saved (importer/uacache.py).
2. Memory: export of 4 days of logs, then of 40 days with the same traffic per day (10x the
   history, 10x the lines): peak RSS of each. Both logs are big enough (200k lines, 48 MB) to
   be read by the parse workers: a smaller one is read in one process, which would compare
   two process layouts rather than two sizes of input.
Each command runs under a small wrapper that reports its children's peak RSS (ru_maxrss).
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_parse import installed_env  # noqa: E402
from genlog import generate  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MEASURE = ("import resource, subprocess, sys; rc = subprocess.run(sys.argv[1:], "
           "stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode; "
           "u = resource.getrusage(resource.RUSAGE_CHILDREN); "
           "print(rc, u.ru_maxrss, u.ru_utime + u.ru_stime)")


def write_log(path: str, lines: int, days: float) -> None:
    with open(path, "w") as f:
        for line in generate(lines, "combined", seed=1, days=days):
            f.write(line + "\n")


def measure(cmd: list[str], state: str) -> tuple[float, int, float]:
    """(wall seconds, peak RSS in MB, CPU seconds) of one run of `cmd`, its state in `state`."""
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", MEASURE, *cmd], capture_output=True, text=True,
                          cwd=ROOT, check=True, env=installed_env(XDG_STATE_HOME=state))
    wall = time.perf_counter() - started
    rc, rss_kb, cpu = done.stdout.split()
    if rc != "0":
        raise SystemExit(f"{cmd[0]} exited {rc}")
    return wall, int(rss_kb) // 1024, float(cpu)


def export_cmd(log: str, out: str) -> list[str]:
    return [sys.executable, "-m", "importer", "export", log, "--format", "combined",
            "--domain", "example.com", "--out", out, "--no-progress"]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--lines", type=int, default=1_000_000)
    p.add_argument("--days", type=float, default=7.0, help="time span of the speed log")
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--per-day", type=int, default=50_000, help="lines a day in the memory runs")
    args = p.parse_args()
    if shutil.which("goaccess") is None:
        raise SystemExit("goaccess is not installed (apt-get install goaccess)")
    work = tempfile.mkdtemp(prefix="bench_export_")
    try:
        log = os.path.join(work, "access.log")
        write_log(log, args.lines, args.days)
        print(f"log: {args.lines:,} lines over {args.days:g} days, "
              f"{os.path.getsize(log) / 1e6:,.0f} MB")
        goaccess = ["goaccess", log, "--log-format=COMBINED", "-o",
                    os.path.join(work, "report.json")]
        results: dict[str, list[tuple[float, int, float]]] = {
            "goaccess": [], "export cold": [], "export warm": []}
        out = os.path.join(work, "out")
        for n in range(args.runs):
            state = os.path.join(work, f"state{n}")  # nothing known: the first run
            results["goaccess"].append(measure(goaccess, state))
            results["export cold"].append(measure(export_cmd(log, out), state))
            results["export warm"].append(measure(export_cmd(log, out), state))
        print(f"{'tool':<12} {'median s':>9} {'CPU s':>6} {'lines/s':>10} {'peak MB':>8}  "
              "runs (s)")
        medians = {}
        for tool, runs in results.items():
            medians[tool] = statistics.median(w for w, _, _ in runs)
            cpu = statistics.median(c for _, _, c in runs)
            print(f"{tool:<12} {medians[tool]:>9.1f} {cpu:>6.1f} "
                  f"{args.lines / medians[tool]:>10,.0f} {max(m for _, m, _ in runs):>8}  "
                  + " ".join(f"{w:.1f}" for w, _, _ in runs))
        for run in ("cold", "warm"):
            print(f"export {run} is {medians['goaccess'] / medians['export ' + run]:.2f}x "
                  "GoAccess's speed")

        print(f"\nmemory, {args.per_day:,} lines a day:")
        for days in (4, 40):
            write_log(log, args.per_day * days, days)
            wall, rss, _ = measure(export_cmd(log, os.path.join(work, f"out{days}")),
                                   os.path.join(work, f"state-memory{days}"))
            print(f"  {args.per_day * days:>10,} lines, {days:>2} days: peak {rss} MB "
                  f"({wall:.1f} s)")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
