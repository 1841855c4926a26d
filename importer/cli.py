"""The command line: a thin layer over the pipeline. `plausible-import --help` to start."""
from __future__ import annotations

import argparse
import glob
import json
import os
import signal
import sys
import time
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from parsers.registry import UnknownFormat, get_parser, load_all
from parsers.timefmt import TimeParser

from . import __version__, runlog
from .checkconfig import add_check_config_command
from .config import add_global_options, run_all
from .delivery import (
    DEFAULT_CONCURRENCY,
    MAX_CONCURRENCY,
    PLAUSIBLE_CLOUD_RATE,
    DeliveryError,
    DryRunSink,
    EventsApiSink,
    base_url,
    check_health,
    default_rate,
)
from .export import ExportSink
from .filteropts import OptionError, add_filter_options, builder_from_args, filters_from_args
from .filters import time_rule
from .parallel import default_workers
from .pipeline import Pipeline, private_file
from .ratelimit import UNLIMITED, Pace
from .retry import RetryPolicy
from .sources import InputError
from .state import Checkpoint, StateError, StateLocked, default_state_path, state_dir
from .summary import Counters

EXIT_OK, EXIT_UNDELIVERED, EXIT_USAGE = 0, 1, 2
EXIT_LOCKED = 75  # sysexits' EX_TEMPFAIL: another run holds the state; try again later

SEND_EXAMPLES = """\
examples:
  # see what would be sent, without a server
  plausible-import send sample_logs/nginx_combined.log --domain example.com --dry-run

  # send to your Plausible server (or set PLAUSIBLE_URL)
  plausible-import send /var/log/nginx/access.log --domain example.com \\
      --url https://plausible.example.com

  # inspect every event it would send, as JSON lines
  plausible-import send access.log.2.gz --domain example.com --dry-run --output events.ndjson

  # from cron every 5 minutes: each run sends only what is new since the last one, through
  # rotation (renamed, gzipped, copytruncated); `plausible-import status` shows how far it got.
  # (The first run sends all the files hold: `export` older days first, see the note below.)
  */5 * * * *  plausible-import send '/var/log/nginx/access.log*' --domain example.com

  # or keep running and send each new line within seconds (Ctrl-C stops; restart continues)
  plausible-import send '/var/log/nginx/access.log*' --domain example.com --follow

note: the Events API records events when they arrive, not when they happened.
  `send` is exact for live and recent traffic; for history, use `export`.
"""


EXPORT_EXAMPLES = """\
examples:
  # history up to the day before live sending began (on 2026-11-01), as Plausible's CSV
  # import files: --until with a date includes that whole day
  plausible-import export /var/log/nginx/access.log* --domain example.com \\
      --until 2026-10-31 --out import/ --zip

  # dates in the site's time zone (Plausible: Site settings > General > Reporting time zone)
  plausible-import export access.log.*.gz --domain example.com \\
      --site-timezone Europe/Berlin --out import/

then upload the files in Site settings > Imports & Exports > Import from CSV.
Live traffic from that day on: `plausible-import send --follow` (or a cron job).
"""

STATUS_EXAMPLES = """\
examples:
  # every target this user has sent to
  plausible-import status

  # one target, as JSON
  plausible-import status --url https://plausible.example.com --domain example.com --json

  # the checkpoints of the shipped systemd units (StateDirectory=plausible-import)
  sudo XDG_STATE_HOME=/var/lib plausible-import status
"""

FORMATS_EXAMPLES = """\
examples:
  plausible-import formats

  # a named format instead of detection
  plausible-import send access.log --format combined --domain example.com --dry-run

  # your server's own format line, verbatim (nginx:'<log_format>' works the same way)
  plausible-import send access.log --domain example.com --dry-run \\
      --format apache:'%h %l %u %t "%r" %>s %b "%{Referer}i" "%{User-Agent}i" %D'
"""

MAIN_EPILOG = """\
Run `plausible-import COMMAND --help` for each command's options and examples.

Every option can also be set in the environment (PLAUSIBLE_URL, PLAUSIBLE_DOMAIN, and
PLAUSIBLE_IMPORT_<OPTION> for the others, e.g. PLAUSIBLE_IMPORT_DEAD_LETTER) or as a key in a
TOML file given with --config (dead-letter = "..."), whose [jobs.NAME] tables are separate runs.
A flag beats the environment, which beats the file. Check a file: `plausible-import check-config`.

exit codes: 0 done; 1 events left undelivered (a rerun sends them); 2 usage, config or input
error; 75 another run is using the same state (try later); 130/143 stopped by Ctrl-C/SIGTERM.
"""


def _env(name: str, default: str | None = None) -> str | None:
    return os.environ.get(name) or default


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="plausible-import",
        description="Turn web server access logs into Plausible Analytics data.",
        epilog=MAIN_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True

    send = commands.add_parser(
        "send", help="send page visits from logs to Plausible's Events API",
        description="Read access logs and send one event per page visit to Plausible.",
        epilog=SEND_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_input_options(send)
    add_site_options(send)
    add_filter_options(send)
    add_send_options(send)
    add_report_options(send)
    add_parallel_options(send)
    add_state_options(send, follow=True)
    send.set_defaults(run=run_send)

    status = commands.add_parser(
        "status", help="show how far each log file got, per target",
        description="Show, per log file, how far `send` got, with its pending and "
                    "dead-lettered events. Without --state, --url or --domain: every target.",
        epilog=STATUS_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    status.add_argument("--url", type=_url, default=_env("PLAUSIBLE_URL"),
                        help="the target's Plausible URL (env PLAUSIBLE_URL)")
    status.add_argument("--domain", default=_env("PLAUSIBLE_DOMAIN"),
                        help="the target's domain(s), comma-separated (env PLAUSIBLE_DOMAIN)")
    status.add_argument("--json", action="store_true", help="print JSON")
    add_state_options(status)
    status.set_defaults(run=run_status)

    export = commands.add_parser(
        "export", help="write Plausible's CSV import files, with visits on their real dates",
        description="Read access logs and write the CSV files Plausible imports (Site settings "
                    "> Imports & Exports): history keeps its dates, which `send` cannot do.",
        epilog=EXPORT_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_input_options(export)
    add_site_options(export)
    add_filter_options(export)
    add_export_options(export)
    add_report_options(export)
    add_parallel_options(export)
    export.set_defaults(run=run_export)

    formats = commands.add_parser(
        "formats", help="list the log formats it can read",
        description="List the named log formats (use one with --format NAME).",
        epilog=FORMATS_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    formats.set_defaults(run=run_formats)

    add_check_config_command(commands, build_parser)
    add_global_options(parser)  # last: every command takes them
    return parser


def add_input_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("input")
    g.add_argument("logs", nargs="+", metavar="LOG",
                   help="log files, directories or globs; gzip/bzip2/xz/zstd are read as is; "
                        "'-' reads standard input. Rotated sets are read oldest first.")
    g.add_argument("--format", metavar="NAME|nginx:FMT|apache:FMT|haproxy:FMT",
                   help="log format: a name from `plausible-import formats`, or your server's "
                        "format line, e.g. nginx:'$remote_addr - [$time_local] \"$request\" ...'. "
                        "Default: detected per file.")
    g.add_argument("--timezone", metavar="TZ", default=_env("PLAUSIBLE_IMPORT_TIMEZONE"),
                   help="time zone of log timestamps that carry no offset, e.g. HAProxy's "
                        "(default UTC; W3C, CloudFront and AWS times are UTC by definition)")
    g.add_argument("--rejects", metavar="FILE",
                   help="write every malformed line here, with file:line and the reason "
                        "(the file is readable by you only: lines hold IP addresses)")


def add_site_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("site")
    g.add_argument("--domain", default=_env("PLAUSIBLE_DOMAIN"),
                   help="the site's domain as registered in Plausible (env PLAUSIBLE_DOMAIN)")
    g.add_argument("--host",
                   help="host name for page URLs (default: the logged host, else the domain)")
    g.add_argument("--scheme", default="https", choices=("https", "http"),
                   help="scheme for page URLs (default https)")


def add_send_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("delivery")
    g.add_argument("--url", type=_url, default=_env("PLAUSIBLE_URL"),
                   help="your Plausible server's base URL, e.g. https://plausible.io "
                        "(env PLAUSIBLE_URL); /api/event is appended")
    g.add_argument("--dry-run", action="store_true",
                   help="process everything, send nothing (touches no network)")
    g.add_argument("--output", metavar="FILE",
                   help="also write each event as one JSON line (body and headers) to FILE, "
                        "or '-' for standard output")
    g.add_argument("--concurrency", type=_concurrency, default=DEFAULT_CONCURRENCY, metavar="N",
                   help="requests in flight at once, for different visitors (each visitor's "
                        f"events go one after another, in log order; default {DEFAULT_CONCURRENCY}"
                        ", enough to hide a remote server's round trip)")
    g.add_argument("--rate", type=_non_negative, metavar="EVENTS_PER_S",
                   help="at most this many events a second; 0: no limit. Default: "
                        f"{PLAUSIBLE_CLOUD_RATE:g} for plausible.io (a site over its ingest "
                        "limit loses events silently), no limit for your own server")
    g.add_argument("--pace", type=_pace, default="max", metavar="realtime|Nx|max",
                   help="replay at the log's own pace (realtime: sessions as they were, shifted "
                        "to now), at N times it (e.g. 10x), or as fast as --rate allows (max, "
                        "the default)")
    g.add_argument("--adaptive-rate", action="store_true",
                   help="slow down when the server starts dropping a larger share of events "
                        "(x-plausible-dropped), and speed up again when it stops")
    g.add_argument("--timeout", type=_positive, default=10.0, metavar="SECONDS",
                   help="seconds to wait for an answer (default 10)")
    g.add_argument("--max-retries", type=int, default=10, metavar="N",
                   help="retries of an event after a connection error, timeout, 429 or 5xx, "
                        "with exponential backoff and jitter (default 10)")
    g.add_argument("--max-retry-time", type=_non_negative, default=300.0, metavar="SECONDS",
                   help="give an event up this long after its first attempt (default 300); it "
                        "stays undelivered and a rerun sends it")
    g.add_argument("--max-age", type=_duration, default="1h", metavar="DURATION",
                   help="warn about events older than this (e.g. 90s, 30m, 1h, 2d; default 1h): "
                        "Plausible records them as today's traffic. 0 turns the check off")
    g.add_argument("--dead-letter", metavar="FILE",
                   help="write events the server rejected (4xx) here as JSON lines, with its "
                        "answer (readable by you only); default: beside the state, "
                        "<state>.dead-letter.ndjson")


def add_export_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("export")
    g.add_argument("--out", required=True, metavar="DIR",
                   help="write imported_<table>_<first>_<last>.csv here (with --domain-map, one "
                        "folder per site)")
    g.add_argument("--site-timezone", metavar="TZ",
                   help="the site's reporting time zone in Plausible: rows are dated in it, "
                        "and --since/--until without an offset are read in it "
                        "(default: --timezone, else UTC)")
    g.add_argument("--zip", action="store_true",
                   help="also put the files in one .zip next to them")
    g.add_argument("--geoip", metavar="FILE.mmdb",
                   help="a GeoLite2 or DB-IP City/Country database: adds the locations table "
                        "(none without it)")


def _url(text: str) -> str:
    try:
        return base_url(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _number(text: str, low: float, what: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = low - 1
    if value < low or value != value:  # also NaN
        raise argparse.ArgumentTypeError(f"expected {what}, not {text!r}")
    return value


def _non_negative(text: str) -> float:
    return _number(text, 0.0, "a number >= 0")


def _positive(text: str) -> float:
    value = _number(text, 0.0, "a number > 0")
    if value == 0:
        raise argparse.ArgumentTypeError(f"expected a number > 0, not {text!r}")
    return value


def _concurrency(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= MAX_CONCURRENCY:
        raise argparse.ArgumentTypeError(f"expected 1 to {MAX_CONCURRENCY}, not {text!r}")
    return int(text)


_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def _duration(text: str) -> float:
    """Seconds from '90', '90s', '30m', '1h' or '2d'."""
    unit = _UNITS.get(text[-1:].lower())
    return _number(text[:-1] if unit else text, 0.0, "a duration like 90s, 30m, 1h or 2d") * (
        unit or 1)


def _pace(text: str) -> Pace:
    try:
        return Pace.parse(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc).removeprefix("--pace: ")) from None


def add_report_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("report")
    g.add_argument("--json", action="store_true",
                   help="print the summary as a JSON object on standard output")
    g.add_argument("--no-progress", action="store_true",
                   help="no progress bar (it is shown only when stderr is a terminal anyway)")


def _process_count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of at least 1, got {text!r}")
    return value


def add_parallel_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("speed")
    g.add_argument("--workers", type=_process_count, default=default_workers(), metavar="N",
                   help="processes that parse big files (default: one per core, "
                        f"{default_workers()} here); 1 parses in the main process")


def add_state_options(p: argparse.ArgumentParser, follow: bool = False) -> None:
    g = p.add_argument_group("checkpoint")
    g.add_argument("--state", metavar="PATH", default=_env("PLAUSIBLE_IMPORT_STATE"),
                   help="the checkpoint database: how far each file got and which events were "
                        "sent (default: one per --url and domains, under $XDG_STATE_HOME or "
                        "~/.local/state, in plausible-import/; env PLAUSIBLE_IMPORT_STATE)")
    g.add_argument("--forget", action="append", default=[], metavar="FILE",
                   help="start FILE over on purpose: read it from its start and send its "
                        "events again (repeatable)")
    g.add_argument("--reset", action="store_true",
                   help="start over on purpose: forget every file and every event sent")
    if follow:
        g.add_argument("--follow", action="store_true",
                       help="after the logs, keep sending new lines within seconds, like "
                            "tail -F: follows rotation, truncation and new files matching a "
                            "glob; Ctrl-C stops, and a restart continues where it stopped")


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
            checkpoint=checkpoint, follow=args.follow, workers=args.workers)
        with _stop_on_signals(pipeline, sink) as stopper:
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
        with _stop_on_signals(pipeline, sink) as stopper:
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


def main(argv: list[str] | None = None) -> int:
    """Flags over the environment over `--config`'s file; each of its jobs in turn."""
    return run_all(build_parser, run, sys.argv[1:] if argv is None else argv, os.environ)


def run(args: argparse.Namespace) -> int:
    try:
        return args.run(args)
    except StateLocked as exc:
        print(f"plausible-import: error: {exc}", file=sys.stderr)
        return EXIT_LOCKED
    except (UsageError, UnknownFormat, OptionError, StateError) as exc:
        print(f"plausible-import: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except InputError as exc:
        print(f"plausible-import: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except DeliveryError as exc:
        print(f"plausible-import: error: {exc}", file=sys.stderr)
        return EXIT_UNDELIVERED
    except BrokenPipeError:
        return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
