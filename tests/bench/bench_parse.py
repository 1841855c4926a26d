"""Parse speed against GoAccess, side by side, and peak memory as the input grows 10x.

    python tests/bench/bench_parse.py                  # 1M lines, combined and CloudFront
    python tests/bench/bench_parse.py --lines 200000 --runs 5 --no-memory

For each format, in the same run and on the same generated file (tests/bench/genlog.py, seed 1,
kept in --data), interleaved `--runs` times, medians reported:
  - GoAccess (Debian's 1.7): `goaccess FILE --log-format=COMBINED|CLOUDFRONT` with every panel
    ignored (it parses and validates every line, keeps nothing), JSON to a temporary file;
  - `python -m importer send FILE --domain example.com --dry-run --json`: a dry run parses,
    filters and builds every event and sends nothing; with --workers auto (one per core) and 1,
    each also with --keep-bots (no user-agent classification), so the difference is the
    classification's share.
Wall time includes start-up for all. The importer runs as a pip install has it: with its
modules' bytecode cached (pip compiles it when installing; PYTHONDONTWRITEBYTECODE in the
environment would make every run compile them again, ~0.07 s). CPU seconds (user + system, all
processes) are shown too: on a shared machine they vary less than wall time. Then the peak
memory of the dry run on the 1x and a 10x combined file: the largest process's peak RSS, and
the peak of the whole process tree (sampled every 50 ms, proportional set size: pages shared
after the fork counted once).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PANELS = ["VISITORS", "REQUESTS", "REQUESTS_STATIC", "NOT_FOUND", "HOSTS", "OS", "BROWSERS",
          "VISIT_TIMES", "VIRTUAL_HOSTS", "REFERRERS", "REFERRING_SITES", "KEYPHRASES",
          "STATUS_CODES", "REMOTE_USER", "CACHE_STATUS", "GEO_LOCATION", "MIME_TYPE", "TLS_TYPE"]
GOACCESS_FORMAT = {"combined": "COMBINED", "cloudfront": "CLOUDFRONT"}
BYTECODE = Path(tempfile.gettempdir()) / "plausible-bench-bytecode"  # out of the source tree


def installed_env(**extra: str) -> dict[str, str]:
    """The environment for running the importer as installed: bytecode cached (in BYTECODE)."""
    env = {key: value for key, value in os.environ.items() if key != "PYTHONDONTWRITEBYTECODE"}
    return {**env, "PYTHONPYCACHEPREFIX": str(BYTECODE), **extra}


def log_file(data: Path, fmt: str, lines: int) -> Path:
    """The generated log, made once and kept (generating 1M lines takes ~15-30 s)."""
    path = data / f"{fmt}_{lines}.log"
    if not path.exists():
        print(f"generating {path} ...", file=sys.stderr)
        tmp = path.with_suffix(".tmp")
        with tmp.open("w") as out:
            subprocess.run([sys.executable, str(ROOT / "tests/bench/genlog.py"), "--lines",
                            str(lines), "--format", fmt, "--seed", "1"], stdout=out, check=True)
        tmp.rename(path)
    return path


class Run:
    """One command, timed, with its peak memory: (wall s, CPU s of all its processes, max RSS
    of one process in MiB, peak PSS of the process tree in MiB)."""

    def __init__(self, cmd: list[str], cwd: Path | None = None, state: Path | None = None
                 ) -> None:
        """`state`: the XDG_STATE_HOME to run in (the user-agent cache lives there); None: a
        new empty one each run, as on a first run."""
        self.cmd, self.cwd, self.state = cmd, cwd, state

    def __call__(self) -> tuple[float, float, float, float]:
        with tempfile.TemporaryDirectory() as fresh:
            return self._timed(installed_env(XDG_STATE_HOME=str(self.state or fresh)))

    def _timed(self, env: dict[str, str]) -> tuple[float, float, float, float]:
        started = time.perf_counter()
        proc = subprocess.Popen(self.cmd, cwd=self.cwd, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, env=env)
        peak = [0]
        done = threading.Event()
        sampler = threading.Thread(target=_sample_tree, args=(proc.pid, peak, done))
        sampler.start()
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - started
        done.set()
        sampler.join()
        proc.returncode = os.waitstatus_to_exitcode(status)
        err = proc.stderr.read().decode(errors="replace")
        if proc.returncode != 0:
            raise SystemExit(f"{' '.join(self.cmd)} failed ({proc.returncode}):\n{err}")
        cpu = usage.ru_utime + usage.ru_stime  # the workers are waited for: included
        return wall, cpu, usage.ru_maxrss / 1024, peak[0] / 1024


def _sample_tree(pid: int, peak: list[int], done: threading.Event) -> None:
    while not done.wait(0.05):
        total = sum(_pss_kib(p) for p in _tree(pid))
        peak[0] = max(peak[0], total)


def _tree(pid: int) -> list[int]:
    pids, i = [pid], 0
    while i < len(pids):
        try:
            with open(f"/proc/{pids[i]}/task/{pids[i]}/children") as f:
                pids.extend(int(c) for c in f.read().split())
        except OSError:
            pass
        i += 1
    return pids


def _pss_kib(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def goaccess(path: Path, fmt: str, out: Path) -> Run:
    return Run(["goaccess", str(path), f"--log-format={GOACCESS_FORMAT[fmt]}", "--no-progress",
                *(f"--ignore-panel={p}" for p in PANELS), "-o", str(out)])


def importer(path: Path, workers: str, *extra: str, state: Path | None = None) -> Run:
    return Run([sys.executable, "-m", "importer", "send", str(path), "--domain", "example.com",
                "--dry-run", "--json", "--no-progress", "--workers", workers, *extra], cwd=ROOT,
               state=state)


def compare(path: Path, fmt: str, lines: int, runs: int, workers: str, tmp: Path) -> dict:
    warm = tmp / f"state-{fmt}"  # a cron job's next run: the user agents are known
    importer(path, workers, state=warm)()
    contenders = {
        "goaccess": goaccess(path, fmt, tmp / "goaccess.json"),
        f"importer --workers {workers}": importer(path, workers),
        f"importer --workers {workers}, next run": importer(path, workers, state=warm),
        "importer --workers 1": importer(path, "1"),
        f"importer --workers {workers} --keep-bots": importer(path, workers, "--keep-bots"),
        "importer --workers 1 --keep-bots": importer(path, "1", "--keep-bots"),
    }
    walls: dict[str, list[float]] = {name: [] for name in contenders}
    cpus: dict[str, list[float]] = {name: [] for name in contenders}
    for i in range(runs):
        for name, run in contenders.items():
            wall, cpu, *_ = run()
            walls[name].append(wall)
            cpus[name].append(cpu)
        print(f"  {fmt} run {i + 1}/{runs}: " + ", ".join(
            f"{name} {w[-1]:.2f}s" for name, w in walls.items()), file=sys.stderr)
    rates = {name: lines / statistics.median(w) for name, w in walls.items()}
    base = rates["goaccess"]
    print(f"\n{fmt}, {lines:,} lines, median of {runs} runs")
    for name, rate in rates.items():
        print(f"  {name:<36} {rate:>10,.0f} lines/s  {rate / base:5.2f}x GoAccess  (wall "
              f"{statistics.median(walls[name]):6.2f}s, CPU {statistics.median(cpus[name]):6.2f}s)")
    return {"format": fmt, "lines": lines, "runs": runs,
            "lines_per_s": {name: round(rate) for name, rate in rates.items()},
            "vs_goaccess": {name: round(rate / base, 2) for name, rate in rates.items()},
            "cpu_s": {name: round(statistics.median(c), 2) for name, c in cpus.items()}}


def memory(data: Path, lines: int, workers: str) -> dict:
    """Peak memory of the dry run on 1x and 10x the lines."""
    figures = {}
    for factor in (1, 10):
        path = log_file(data, "combined", lines * factor)
        wall, _, largest, tree = importer(path, workers)()
        figures[factor] = (largest, tree)
        print(f"  {factor:>2}x ({lines * factor:,} lines): {wall:6.1f}s, largest process "
              f"{largest:6.0f} MiB, all processes {tree:6.0f} MiB", file=sys.stderr)
    (one, one_tree), (ten, ten_tree) = figures[1], figures[10]
    print(f"\npeak memory, combined, --workers {workers}: largest process {one:.0f} -> "
          f"{ten:.0f} MiB ({ten / one - 1:+.0%}), all processes {one_tree:.0f} -> "
          f"{ten_tree:.0f} MiB ({ten_tree / one_tree - 1:+.0%}) for 10x the input")
    return {"lines": [lines, lines * 10], "largest_process_mib": [round(one), round(ten)],
            "all_processes_mib": [round(one_tree), round(ten_tree)],
            "growth": round(ten_tree / one_tree - 1, 3)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--lines", type=int, default=1_000_000)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--formats", default="combined,cloudfront")
    p.add_argument("--workers", default=str(len(os.sched_getaffinity(0))))
    p.add_argument("--data", type=Path, default=Path(tempfile.gettempdir()) / "plausible-bench",
                   help="where the generated logs are kept between runs")
    p.add_argument("--no-memory", action="store_true", help="skip the 1x/10x memory runs")
    args = p.parse_args(argv)
    if shutil.which("goaccess") is None:
        raise SystemExit("goaccess is not installed (apt-get install goaccess)")
    args.data.mkdir(parents=True, exist_ok=True)
    report: dict = {"cores": len(os.sched_getaffinity(0)), "speed": []}
    with tempfile.TemporaryDirectory() as tmp:
        for fmt in args.formats.split(","):
            path = log_file(args.data, fmt, args.lines)
            report["speed"].append(compare(path, fmt, args.lines, args.runs, args.workers,
                                           Path(tmp)))
    if not args.no_memory:
        report["memory"] = memory(args.data, args.lines, args.workers)
    print("\n" + json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
