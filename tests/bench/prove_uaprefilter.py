"""Proof: importer/uaprefilter.py, and the device-detector work importer/uadetect.py skips
where it is installed (secondary clients; for a kind, all but the client's name and type),
change no answer. Every field of `detect` and `detect_kind`, with and without them, and
`detect_kind` with them against the kind of the plain `detect` (device-detector's own), on
device-detector's own fixture user agents (Matomo's test suite, ~38,000) and the distinct
user agents of a generated log (tests/bench/genlog.py).

Run from the repository root:
    python tests/bench/prove_uaprefilter.py [--lines 1000000] [--reference FILE]

The two runs are separate processes, side by side; each prints its CPU time per user agent.
The plain run takes ~10 minutes; with --reference its answers are kept in FILE and reused
while the user agents and the library version are the same.
"""
from __future__ import annotations

import argparse
import glob
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import astuple

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


def fixture_uas() -> list[str]:
    import device_detector
    import yaml_rs

    pattern = os.path.join(os.path.dirname(device_detector.__file__), "tests", "fixtures", "**",
                           "*.yml")
    uas: dict[str, None] = {}
    for path in sorted(glob.glob(pattern, recursive=True)):
        with open(path, encoding="utf-8") as f:
            entries = yaml_rs.loads(f.read())
        for entry in entries if isinstance(entries, list) else []:
            ua = entry.get("user_agent") if isinstance(entry, dict) else None
            if isinstance(ua, str) and ua:
                uas[ua] = None
    return list(uas)


def genlog_uas(lines: int) -> list[str]:
    from genlog import Generator

    return list(dict.fromkeys(req.user_agent for req in Generator(1, lines, 7.0).requests(lines)))


def classify(mode: str, uas_path: str, out_path: str) -> None:
    if mode == "plain":
        from importer import uaprefilter

        uaprefilter.install = lambda: 0  # before importer.uadetect installs it
    from importer.uadetect import detect, detect_kind

    with open(uas_path, encoding="utf-8") as f:
        uas = json.load(f)
    started = time.process_time()
    rows = []
    for ua in uas:
        kind = detect_kind(ua)  # first: what a parse worker asks for a new user agent
        rows.append([*astuple(detect(ua)), kind])
    cpu = time.process_time() - started
    with open(out_path, "w", encoding="utf-8") as f:
        json.dump({"rows": rows, "cpu": cpu}, f)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--lines", type=int, default=1_000_000, help="generated log lines")
    p.add_argument("--reference", help="file to keep the plain run's answers in, and reuse")
    p.add_argument("--mode", choices=("plain", "prefilter"), help=argparse.SUPPRESS)
    p.add_argument("--uas", help=argparse.SUPPRESS)
    p.add_argument("--out", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.mode:
        classify(args.mode, args.uas, args.out)
        return 0
    fixtures, generated = fixture_uas(), genlog_uas(args.lines)
    uas = list(dict.fromkeys(fixtures + generated))
    print(f"{len(fixtures):,} fixture user agents + {len(generated):,} from a "
          f"{args.lines:,}-line generated log = {len(uas):,} distinct")
    import device_detector

    digest = hashlib.sha256(json.dumps([device_detector.__version__, uas]).encode()).hexdigest()
    results = {}
    if args.reference and os.path.exists(args.reference):
        with open(args.reference, encoding="utf-8") as f:
            saved = json.load(f)
        if saved.get("digest") == digest:
            results["plain"] = saved
            print(f"plain answers from {args.reference}")
    with tempfile.TemporaryDirectory() as work:
        uas_path = os.path.join(work, "uas.json")
        with open(uas_path, "w", encoding="utf-8") as f:
            json.dump(uas, f)
        runs = {mode: subprocess.Popen([sys.executable, __file__, "--mode", mode, "--uas",
                                        uas_path, "--out", os.path.join(work, mode)], cwd=ROOT)
                for mode in ("plain", "prefilter") if mode not in results}
        for mode, run in runs.items():
            if run.wait() != 0:
                raise SystemExit(f"{mode} run failed")
            with open(os.path.join(work, mode), encoding="utf-8") as f:
                results[mode] = json.load(f)
    if args.reference and "plain" in runs:
        with open(args.reference, "w", encoding="utf-8") as f:
            json.dump({**results["plain"], "digest": digest}, f)
    plain, fast = results["plain"]["rows"], results["prefilter"]["rows"]
    differ = [(ua, a, b) for ua, a, b in zip(uas, plain, fast, strict=True) if a != b]
    # `detect_kind` against the kind device-detector's own full parse gives (`detect`'s, plain)
    differ += [(ua, a[:1], b[-1:]) for ua, a, b in zip(uas, plain, fast, strict=True)
               if a[0] != b[-1]]
    for mode, result in results.items():
        print(f"{mode:<10} {1000 * result['cpu'] / len(uas):6.2f} ms CPU per user agent "
              "(detect + detect_kind)")
    print(f"user agents whose answers differ: {len(differ)}")
    for ua, a, b in differ[:10]:
        print(f"  {ua!r}\n    plain     {a}\n    prefilter {b}")
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main())
