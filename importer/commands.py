"""What each command does, once its options are parsed: `cli.py` builds the parser and
calls the `run_*` function a subcommand names."""
from __future__ import annotations

import argparse
import glob
import json
import os
import signal
import sys
import time
from contextlib import AbstractContextManager, nullcontext
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from parsers.registry import get_parser, load_all
from parsers.timefmt import TimeParser

from . import runlog, uacache, useragents
from .delivery import (
    DryRunSink,
    EventsApiSink,
    check_health,
    default_rate,
    encode_request,
)
from .filteropts import builder_from_args, filters_from_args
from .filters import time_rule
from .pipeline import Pipeline, private_file
from .ratelimit import UNLIMITED
from .retry import RetryPolicy
from .state import Checkpoint, default_state_path, state_dir
from .summary import Counters

if TYPE_CHECKING:
    from .export import ExportSink

EXIT_OK, EXIT_UNDELIVERED, EXIT_USAGE = 0, 1, 2
EXIT_LOCKED = 75  # sysexits' EX_TEMPFAIL: another run holds the state; try again later
EXIT_INTERRUPTED = 128 + signal.SIGINT  # as shells report a Ctrl-C


def _domains(args: argparse.Namespace) -> str:
    """The target's set of domains: --domain and every --domain-map site."""
    mapped = [pair[1] for pair in getattr(args, "domain_map", None) or ()]
    return ",".join(filter(None, [args.domain or "", *mapped]))


def _checkpoint(args: argparse.Namespace) -> Checkpoint:
    """The state of this target: read-only in a dry run (it must not advance), in memory
    when a dry run has no --url to name one."""
    path = args.state
    if path is None and args.url:
        path = default_state_path(args.url, _domains(args))
    if args.dry_run:
        if args.forget or args.reset:
            raise UsageError("--forget and --reset change the checkpoint; a dry run doesn't")
        return Checkpoint(path, readonly=True)
    checkpoint = Checkpoint(path, in_flight=args.concurrency,
                            target=f"{args.url} {_domains(args)}")
    try:
        _forget(checkpoint, args)
    except BaseException:
        checkpoint.close()  # else the next run would report this one as killed
        raise
    return checkpoint


def _forget(checkpoint: Checkpoint, args: argparse.Namespace) -> None:
    if args.reset:
        checkpoint.reset()
        print(f"plausible-import: reset {checkpoint.path}", file=sys.stderr)
    for path in args.forget:
        if not checkpoint.forget(path):
            raise UsageError(f"--forget {path}: not in {checkpoint.path}")
        print(f"plausible-import: forgot {path}", file=sys.stderr)


def _ua_cache(args: argparse.Namespace, counters: Counters) -> AbstractContextManager:
    """The user agents earlier runs classified, known during the run (dry runs too: the cache
    changes no outcome, only the time it takes)."""
    if args.no_ua_cache:
        return nullcontext()
    return uacache.persisted(useragents.classifier, counters.warn)


class UsageError(Exception):
    pass


def _time_parser(args: argparse.Namespace) -> TimeParser:
    zone = _zone(args.timezone, "--timezone")
    return TimeParser() if zone is None else TimeParser(zone)


def _zone(name: str | None, option: str) -> ZoneInfo | None:
    if not name:
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise UsageError(f"{option}: unknown time zone {name!r}") from None


def run_send(args: argparse.Namespace) -> int:
    if not args.dry_run and not args.url:
        raise UsageError("--url is required to send (or set PLAUSIBLE_URL); "
                         "use --dry-run to try without a server")
    if args.json and args.output == "-":
        raise UsageError("--output - and --json both want standard output; give --output a file")
    times = _time_parser(args)
    if args.format:
        get_parser(args.format, times)  # fail on a bad --format before reading anything
    if args.follow and args.logs == ["-"]:
        raise UsageError("--follow reads files; standard input is read to its end anyway")
    counters = Counters()
    builder = builder_from_args(args, counters)
    filters = filters_from_args(args, counters, builder)
    checkpoint = _checkpoint(args)
    for run in checkpoint.interrupted:
        started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(run.started))
        counters.warn(f"the run started {started} was killed before it finished: Plausible may "
                      f"have recorded up to {run.in_flight} of its events (those in flight) "
                      "twice; everything else it sent was recorded and is not sent again")
    opened = []
    dead_letter = None

    def private(path: str | None):
        if path is None:
            return None
        if path == "-":
            return sys.stdout
        f = private_file(path)
        opened.append(f)
        return f

    try:
        output = private(args.output)
        if args.dry_run:
            sink = DryRunSink(counters, output)
        else:
            dead_letter = _dead_letter_file(args, checkpoint, opened)
            sink = _events_api_sink(args, counters, dead_letter,
                                    on_fatal=lambda reason: _stop_reading(pipeline),
                                    on_done=checkpoint.on_done)
            if output is not None:
                sink = TeeSink(sink, output)
        pipeline = Pipeline(
            inputs=args.logs, builder=builder, filters=filters,
            sink=sink, counters=counters, format=args.format, times=times,
            progress=sys.stderr.isatty() and not args.no_progress, rejects=private(args.rejects),
            checkpoint=checkpoint, follow=args.follow, workers=args.workers,
            prepare=None if args.dry_run else encode_request)
        with _ua_cache(args, counters), _stop_on_signals(pipeline, sink) as stopper:
            pipeline.run()
    finally:
        for f in opened:
            f.close()
        checkpoint.close()  # after the sink's close: every outcome is in
    if counters.dead_lettered and isinstance(dead_letter, _LazyPrivateFile):
        counters.warn(f"rejected events and the server's answers are in {dead_letter.path}")
    report(counters, args)
    if stopper.signum is not None:
        return 128 + stopper.signum  # 130 for Ctrl-C, 143 for SIGTERM, as shells report them
    fatal = getattr(sink, "fatal", None)
    if fatal:
        print(f"plausible-import: error: {fatal}", file=sys.stderr)
    if pipeline.failed_inputs:
        return EXIT_USAGE
    if counters.undelivered or counters.dead_lettered:
        return EXIT_UNDELIVERED
    return EXIT_OK


def run_export(args: argparse.Namespace) -> int:
    times = _time_parser(args)
    if args.format:
        get_parser(args.format, times)  # fail on a bad --format before reading anything
    site_zone = _zone(args.site_timezone or args.timezone, "--site-timezone")
    # Rows are dated in the site's time zone, so a date given to --since/--until is read there.
    args.since, args.until = _in_zone(args.since, site_zone), _in_zone(args.until, site_zone, True)
    counters = Counters()
    builder = builder_from_args(args, counters)
    filters = filters_from_args(args, counters, builder)
    if not (args.since or args.until):  # with them, the time rule is already there
        filters.rules.insert(0, time_rule(None, None))  # a visit without a time has no date
    try:
        os.makedirs(args.out, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"--out {args.out}: {exc.strerror}") from None
    try:
        # One folder per site when there can be several (--domain-map, or --domain a,b); as
        # many processes classify user agents as parse logs (--workers 1: all in this one).
        several = builder.sites.routing or "," in (builder.sites.default or "")
        from .export import ExportSink  # its tables and referrer lists: export only (~20 ms)

        sink = ExportSink(args.out, counters, zone=site_zone, geoip_path=args.geoip,
                          per_site_dirs=several, make_zip=args.zip,
                          workers=args.workers if args.workers > 1 else 0)
    except ImportError:
        raise UsageError("--geoip needs the maxminddb package: pip install maxminddb") from None
    except (OSError, RuntimeError, ValueError) as exc:
        raise UsageError(f"--geoip {args.geoip}: {exc}") from None
    rejects = private_file(args.rejects) if args.rejects else None
    try:
        pipeline = Pipeline(
            inputs=args.logs, builder=builder, filters=filters, sink=sink, counters=counters,
            format=args.format, times=times, workers=args.workers,
            checkpoint=Checkpoint(),  # dedupe within the run; no state: files are rewritten
            progress=sys.stderr.isatty() and not args.no_progress, rejects=rejects)
        with _ua_cache(args, counters), _stop_on_signals(pipeline, sink) as stopper:
            pipeline.run()
    finally:
        if rejects is not None:
            rejects.close()
    report(counters, args, sink)
    if stopper.signum is not None:
        return 128 + stopper.signum
    return EXIT_USAGE if pipeline.failed_inputs else EXIT_OK


def _in_zone(when: datetime | date | None, zone: ZoneInfo | None, end: bool = False
             ) -> datetime | date | None:
    """A --since/--until without an offset, placed in `zone` (a date alone: from its start, or
    for --until to its end)."""
    if when is None or zone is None:
        return when
    if isinstance(when, datetime):
        return when if when.tzinfo else when.replace(tzinfo=zone)
    return datetime.combine(when + timedelta(days=end), datetime.min.time(), tzinfo=zone)


class TeeSink:
    """Writes each event to `--output` and passes it on."""

    def __init__(self, sink, output) -> None:
        self.sink, self.output = sink, output

    def submit(self, event) -> None:
        self.output.write(event.to_json_line() + "\n")
        self.sink.submit(event)

    def stop(self) -> None:
        self.sink.stop()

    def close(self) -> None:
        self.sink.close()


class _LazyPrivateFile:
    """Created (owner-only) on the first write, so a clean run leaves no empty file behind."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.file = None

    def write(self, text: str) -> int:
        if self.file is None:
            self.file = private_file(self.path, "a")
        return self.file.write(text)

    def flush(self) -> None:
        if self.file is not None:
            self.file.flush()

    def close(self) -> None:
        if self.file is not None:
            self.file.close()


def _dead_letter_file(args: argparse.Namespace, checkpoint: Checkpoint, opened: list):
    """--dead-letter FILE, else a file beside the state: rejected events are never only counted."""
    if args.dead_letter == "-":
        return sys.stdout
    path = args.dead_letter or (
        checkpoint.path + ".dead-letter.ndjson" if checkpoint.path else None)
    if path is None:
        return None
    f = _LazyPrivateFile(path)
    opened.append(f)
    return f


def _events_api_sink(args: argparse.Namespace, counters: Counters, dead_letter,
                     on_fatal, on_done) -> EventsApiSink:
    """Check the server first: a wrong --url fails in one line before any log is read."""
    check_health(args.url, timeout=args.timeout)
    rate = default_rate(args.url) if args.rate is None else (args.rate or UNLIMITED)
    return EventsApiSink(
        args.url, counters, concurrency=args.concurrency, timeout=args.timeout, rate=rate,
        pace=args.pace, retry=RetryPolicy(args.max_retries, args.max_retry_time),
        max_age=args.max_age, adaptive_rate=args.adaptive_rate, dead_letter=dead_letter,
        on_fatal=on_fatal, on_done=on_done)


def _stop_reading(pipeline: Pipeline) -> None:
    pipeline.stop_requested = True


class _stop_on_signals:
    """Ctrl-C / SIGTERM: stop reading, give requests in flight a few seconds, then report.
    A second signal abandons them at once."""

    def __init__(self, pipeline: Pipeline, sink) -> None:
        self.pipeline = pipeline
        self.sink = sink
        self.previous: dict = {}
        self.signum: int | None = None

    def __enter__(self):
        def stop(signum, frame):
            self.pipeline.stop_requested = True
            self.sink.stop()
            if self.signum is None:
                self.pipeline.counters.warn(f"stopped by {signal.Signals(signum).name}")
            self.signum = signum

        for sig in (signal.SIGINT, signal.SIGTERM):
            self.previous[sig] = signal.signal(sig, stop)
        return self

    def __exit__(self, *exc) -> None:
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)


def report(counters: Counters, args: argparse.Namespace,
           export: ExportSink | None = None) -> None:
    problems = counters.check()
    for problem in problems:
        counters.warn("accounting error (please report): " + problem)
    if args.json:
        if export is None:
            print(counters.to_json())
        else:
            print(json.dumps({**counters.as_dict(), "export": export.as_dict()}, indent=2))
    elif not runlog.summarize(counters, args, export=export and export.as_dict()):
        out = sys.stderr if getattr(args, "output", None) == "-" else sys.stdout
        print(counters.render(), file=out)
        if export is not None:
            print(export.render(), file=out)


def run_status(args: argparse.Namespace) -> int:
    if args.state:
        paths = [args.state]
    elif args.domain:
        paths = [default_state_path(args.url, _domains(args))]
    else:
        paths = sorted(glob.glob(os.path.join(state_dir(), "*.sqlite")))
    missing = [p for p in paths if not os.path.exists(p)]
    if missing:
        raise UsageError(f"no checkpoint at {missing[0]} (check --url and --domain, or --state)")
    if (args.forget or args.reset) and len(paths) != 1:
        raise UsageError("--forget and --reset need one target: give --state or --domain")
    targets = []
    for path in paths:
        if args.forget or args.reset:
            with Checkpoint(path) as checkpoint:
                _forget(checkpoint, args)
        with Checkpoint(path, readonly=True) as checkpoint:
            targets.append({"state": path, "target": checkpoint.target,
                            "files": [vars(f) for f in checkpoint.status()]})
    if args.json:
        print(json.dumps(targets, indent=2))
    else:
        print("\n\n".join(_render_status(**target) for target in targets)
              or f"no checkpoints in {state_dir()}")
    return EXIT_OK


def _render_status(state: str, target: str, files: list[dict]) -> str:
    lines = [f"state:  {state}", f"target: {target or '?'}"]
    if not files:
        return "\n".join([*lines, "no files yet"])
    rows = [("LINES DONE", "SENT", "PENDING", "DEAD", "UPDATED", "NOW", "FILE")]
    rows.extend((
        f"{f['lines']:,}", f"{f['sent']:,}", f"{f['pending']:,}", f"{f['dead_lettered']:,}",
        time.strftime("%Y-%m-%d %H:%M", time.localtime(f["updated"])), f["state"], f["path"],
    ) for f in files)
    widths = [max(len(row[i]) for row in rows) for i in range(6)]
    for row in rows:
        cells = [cell.rjust(w) if i < 4 else cell.ljust(w)
                 for i, (cell, w) in enumerate(zip(row, widths, strict=False))]
        lines.append("  ".join([*cells, row[-1]]))
    return "\n".join(lines)


FORMAT_EXAMPLES = (
    ("nginx", '$remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent '
              '"$http_referer" "$http_user_agent" $request_time'),
    ("apache", '%h %l %u %t "%r" %>s %b "%{Referer}i" "%{User-Agent}i" %D'),
    ("haproxy", "%ci:%cp [%tr] %ft %b/%s %TR/%Tw/%Tc/%Tr/%Ta %ST %B %CC %CS %tsc "
                "%ac/%fc/%bc/%sc/%rc %sq/%bq %hr %hs %{+Q}r"),
)


def run_formats(args: argparse.Namespace) -> int:
    presets = load_all()
    width = max(len(n) for n in presets)
    print("Named formats (--format NAME; without --format each file's format is detected):")
    for name, preset in sorted(presets.items()):
        print(f"  {name:<{width}}  {preset.description}")
    print("\nOr paste your server's own format line, as its config has it:")
    for family, example in FORMAT_EXAMPLES:
        print(f"  --format {family}:'{example}'")
    print("Variables it does not know are kept as fields (usable as props). An nginx JSON "
          "log_format works the same way.")
    return EXIT_OK
