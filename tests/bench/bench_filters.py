"""Benchmark: the filter chain and event builder per line, next to parsing, on a generated log.

Run from the repository root:  python -m tests.bench.bench_filters [--lines 300000]

The log comes from tests/bench/genlog.py (seeded: assets, crawlers, scripts, probes, pages).
Lines are parsed once up front; then each option set runs the filter chain over every record
twice: cold (every distinct user agent is classified once: device-detector) and warm (the
per-UA verdicts are cached, as for the rest of any real log), and the builder (warm) over the
records that pass. Times are per line read (filters) and per event (builder).
"""
from __future__ import annotations

import argparse
import gc
import time
from collections import Counter

from importer.cli import build_parser
from importer.filteropts import builder_from_args, filters_from_args
from importer.summary import Counters
from parsers.registry import get_parser
from tests.bench.genlog import generate

OPTION_SETS = {
    "defaults": [],
    "every option": [
        "--exclude-path", "/admin/*", "--exclude-path", "/search*", "--exclude-ip", "10.0.0.0/8",
        "203.0.113.0/24", "--exclude-ua", "Firefox/118", "--since", "2026-03-02",
        "--until", "2026-03-07", "--track-downloads", "--track-404", "--prop", "status=status",
        "--domain-map", "example.com=example.com", "--client-ip-from", "xff",
        "--trusted-proxy", "10.0.0.0/8"],
}


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--lines", type=int, default=300_000)
    args = p.parse_args()

    lines = list(generate(args.lines, "combined", seed=1))
    parser = get_parser("combined")
    records = []
    parse_s = timed(lambda: records.extend(parser.parse(line) for line in lines))
    gc.freeze()  # keep the collector from rescanning the parsed records: not part of the cost
    distinct = len({r.user_agent for r in records})
    print(f"{len(records):,} lines, {distinct} distinct user agents")
    print(f"{'parse (reference)':<34} {parse_s / len(records) * 1e6:6.2f} us/line")

    for name, options in OPTION_SETS.items():
        ns = build_parser().parse_args(["send", "-", "--domain", "example.com", *options])
        counters = Counters()
        builder = builder_from_args(ns, counters)
        chain = filters_from_args(ns, counters, builder)
        reasons: Counter = Counter()

        def run(chain=chain, reasons=reasons):
            reason = chain.reason
            for record in records:
                reasons[reason(record)] += 1

        cold = timed(run)
        reasons.clear()
        warm = timed(run)
        passed = [r for r in records if chain.reason(r) is None]
        build = builder.build
        timed(lambda passed=passed, build=build: [build(r) for r in passed])  # warm the caches
        build_s = timed(lambda passed=passed, build=build: [build(r) for r in passed])
        n = len(records)
        print(f"{name + ', filters cold':<34} {cold / n * 1e6:6.2f} us/line")
        print(f"{name + ', filters warm':<34} {warm / n * 1e6:6.2f} us/line")
        print(f"{name + ', builder':<34} {build_s / max(len(passed), 1) * 1e6:6.2f} us/event "
              f"({len(passed):,} events)")
        print("  reasons: " + ", ".join(f"{k or 'event'} {v:,}" for k, v in reasons.most_common()))


if __name__ == "__main__":
    main()
