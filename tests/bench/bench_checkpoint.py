"""What the checkpoint costs the reader: the pipeline over one log, lines per second, with

  none        no checkpoint (no positions, no dedupe)
  memory      Checkpoint(): dedupe within the run (dry runs without state, export)
  durable     a state file, every event settled at once through on_done (journal + commits)
  re-read     the same again after its positions were wound back: every line is looked up in
              `seen` (what a rerun after an undelivered event or a kill does)
  cron        an unchanged file on the next run (known by its head, nothing read)

    python tests/bench/bench_checkpoint.py [--lines 200000] [--runs 3]

The sink settles each event at once, so the figures are the reader's ceiling, not delivery's.
Prints a table (median of --runs); writes only to a temporary directory.
"""
from __future__ import annotations

import argparse
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from importer.filters import FilterChain  # noqa: E402
from importer.pipeline import Pipeline  # noqa: E402
from importer.state import SENT, Checkpoint  # noqa: E402
from importer.summary import Counters  # noqa: E402
from importer.transform import EventBuilder  # noqa: E402
from tests.test_state import log_lines  # noqa: E402


class SettlingSink:
    def __init__(self, counters: Counters, on_done) -> None:
        self.counters, self.on_done = counters, on_done

    def submit(self, event) -> None:
        self.counters.sent += 1
        if self.on_done is not None:
            self.on_done([(event, SENT)])

    def close(self) -> None:
        pass


def measure(log: Path, checkpoint: Checkpoint | None) -> tuple[float, Counters]:
    counters = Counters()
    sink = SettlingSink(counters, checkpoint.on_done if checkpoint else None)
    pipeline = Pipeline([str(log)], EventBuilder("example.com"), sink, counters,
                        format="combined", filters=FilterChain([]), checkpoint=checkpoint)
    started = time.perf_counter()
    pipeline.run()
    if checkpoint is not None:
        checkpoint.close()
    return time.perf_counter() - started, counters


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--lines", type=int, default=200_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    results: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "access.log"
        with log.open("w") as f:
            for start in range(0, args.lines, 10_000):
                f.write(log_lines(start, min(args.lines, start + 10_000)))
        for run in range(args.runs):
            state = Path(tmp) / f"state{run}.sqlite"
            cases = [
                ("none", lambda: None),
                ("memory", Checkpoint),
                ("durable", lambda s=state: Checkpoint(str(s))),
                ("re-read", lambda s=state: _wound_back(s)),
                ("cron", lambda s=state: Checkpoint(str(s))),
            ]
            for name, make in cases:
                seconds, counters = measure(log, make())
                assert counters.check() == [], counters.check()
                results.setdefault(name, []).append(seconds)
    print(f"{args.lines:,} lines, median of {args.runs}")
    for name, times in results.items():
        median = statistics.median(times)
        print(f"  {name:<8} {median:7.2f} s  {args.lines / median:>10,.0f} lines/s")


def _wound_back(state: Path) -> Checkpoint:
    with sqlite3.connect(state) as db:
        db.execute("UPDATE files SET position = 0, lineno = 0, done_stamp = NULL")
    return Checkpoint(str(state))


if __name__ == "__main__":
    main()
