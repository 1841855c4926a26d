"""The command line: a thin layer over the pipeline. `plausible-import --help` to start."""
from __future__ import annotations

import argparse
import gc
import os
import sys

from parsers.registry import UnknownFormat

from . import __version__
from .checkconfig import add_check_config_command
from .commands import (
    EXIT_INTERRUPTED,
    EXIT_LOCKED,
    EXIT_OK,
    EXIT_UNDELIVERED,
    EXIT_USAGE,
    UsageError,
    run_export,
    run_formats,
    run_send,
    run_status,
)
from .config import add_global_options, run_all
from .delivery import (
    DEFAULT_CONCURRENCY,
    MAX_CONCURRENCY,
    PLAUSIBLE_CLOUD_RATE,
    DeliveryError,
    base_url,
)
from .filteropts import OptionError, add_filter_options
from .parallel import default_workers
from .ratelimit import Pace
from .sources import InputError
from .state import StateError, StateLocked

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
    status.add_argument("--url", type=_url,
                        help="the target's Plausible URL (env PLAUSIBLE_URL)")
    status.add_argument("--domain",
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
    g.add_argument("--timezone", metavar="TZ",
                   help="time zone of log timestamps that carry no offset, e.g. HAProxy's "
                        "(default UTC; W3C, CloudFront and AWS times are UTC by definition)")
    g.add_argument("--rejects", metavar="FILE",
                   help="write every malformed line here, with file:line and the reason "
                        "(the file is readable by you only: lines hold IP addresses)")


def add_site_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("site")
    g.add_argument("--domain",
                   help="the site's domain as registered in Plausible (env PLAUSIBLE_DOMAIN)")
    g.add_argument("--host",
                   help="host name for page URLs (default: the logged host, else the domain)")
    g.add_argument("--scheme", default="https", choices=("https", "http"),
                   help="scheme for page URLs (default https)")


def add_send_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("delivery")
    g.add_argument("--url", type=_url,
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
    if not text.isdecimal() or not 1 <= int(text) <= MAX_CONCURRENCY:
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
    g.add_argument("--no-ua-cache", action="store_true",
                   help="neither use nor update the user agents classified by earlier runs "
                        "(kept in useragents.db beside the checkpoints; delete it to clear it)")


def add_state_options(p: argparse.ArgumentParser, follow: bool = False) -> None:
    g = p.add_argument_group("checkpoint")
    g.add_argument("--state", metavar="PATH",
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



def main(argv: list[str] | None = None) -> int:
    """Flags over the environment over `--config`'s file; each of its jobs in turn."""
    # A run keeps tens of thousands of small objects alive at any time (events in flight,
    # requests, checkpoint entries, parsed chunks), and with the default thresholds the cyclic
    # garbage collector scanned them all again and again: ~11% of the sending process's CPU
    # (bench_send.py). Hardly anything a run makes is cyclic garbage: collect 70x less often.
    gc.set_threshold(50_000, 20, 20)
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
    except KeyboardInterrupt:
        # Ctrl-C outside a run's own signal handling (the health check, loading formats or the
        # user-agent database): one line, as for any other way a run ends early.
        print("plausible-import: interrupted (Ctrl-C)", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
