"""The command line: a thin layer over the pipeline. `plausible-import --help` to start."""
from __future__ import annotations

import argparse
import os
import signal
import sys
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from parsers.registry import UnknownFormat, get_parser, load_all
from parsers.timefmt import TimeParser

from . import __version__
from .delivery import DeliveryError, DryRunSink, EventsApiSink, check_health
from .pipeline import Pipeline, private_file
from .sources import InputError
from .summary import Counters
from .transform import EventBuilder

EXIT_OK, EXIT_UNDELIVERED, EXIT_USAGE = 0, 1, 2

SEND_EXAMPLES = """\
examples:
  # see what would be sent, without a server
  plausible-import send sample_logs/nginx_combined.log --domain example.com --dry-run

  # send to your Plausible server (or set PLAUSIBLE_URL)
  plausible-import send /var/log/nginx/access.log --domain example.com \\
      --url https://plausible.example.com

  # inspect every event it would send, as JSON lines
  plausible-import send access.log.2.gz --domain example.com --dry-run --output events.ndjson

note: the Events API records events when they arrive, not when they happened.
  `send` is exact for live and recent traffic; for history, use `export`.
"""


def _env(name: str, default: str | None = None) -> str | None:
    return os.environ.get(name) or default


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="plausible-import",
        description="Turn web server access logs into Plausible Analytics data.",
        epilog="Run `plausible-import COMMAND --help` for each command's options and examples.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True

    send = commands.add_parser(
        "send", help="send page visits from logs to Plausible's Events API",
        description="Read access logs and send one event per page visit to Plausible.",
        epilog=SEND_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_input_options(send)
    add_site_options(send)
    add_send_options(send)
    add_report_options(send)
    send.set_defaults(run=run_send)

    formats = commands.add_parser(
        "formats", help="list the log formats it can read",
        description="List the named log formats (use one with --format NAME).")
    formats.set_defaults(run=run_formats)
    return parser


def add_input_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("input")
    g.add_argument("logs", nargs="+", metavar="LOG",
                   help="log files, directories or globs; gzip/bzip2/xz/zstd are read as is; "
                        "'-' reads standard input. Rotated sets are read oldest first.")
    g.add_argument("--format", metavar="NAME|nginx:FMT|apache:FMT",
                   help="log format: a name from `plausible-import formats`, or your server's "
                        "format line, e.g. nginx:'$remote_addr - [$time_local] \"$request\" ...'. "
                        "Default: detected per file.")
    g.add_argument("--timezone", metavar="TZ", default=_env("PLAUSIBLE_IMPORT_TIMEZONE"),
                   help="time zone of log timestamps that carry no offset (default UTC)")
    g.add_argument("--rejects", metavar="FILE",
                   help="write every malformed line here, with file:line and the reason")


def add_site_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("site")
    g.add_argument("--domain", default=_env("PLAUSIBLE_DOMAIN"),
                   help="the site's domain as registered in Plausible (env PLAUSIBLE_DOMAIN)")
    g.add_argument("--host", help="host name for page URLs (default: the domain)")
    g.add_argument("--scheme", default="https", choices=("https", "http"),
                   help="scheme for page URLs (default https)")


def add_send_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("delivery")
    g.add_argument("--url", default=_env("PLAUSIBLE_URL"),
                   help="your Plausible server's base URL, e.g. https://plausible.io "
                        "(env PLAUSIBLE_URL); /api/event is appended")
    g.add_argument("--dry-run", action="store_true",
                   help="process everything, send nothing (touches no network)")
    g.add_argument("--output", metavar="FILE",
                   help="also write each event as one JSON line (body and headers) to FILE, "
                        "or '-' for standard output")
    g.add_argument("--concurrency", type=int, default=8,
                   help="visitors sent at the same time (each visitor's events stay in order)")
    g.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for an answer")
    g.add_argument("--dead-letter", metavar="FILE",
                   help="write events the server rejected (4xx) here, with its answer")


def add_report_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("report")
    g.add_argument("--json", action="store_true",
                   help="print the summary as a JSON object on standard output")
    g.add_argument("--no-progress", action="store_true",
                   help="no progress bar (it is shown only when stderr is a terminal anyway)")


class UsageError(Exception):
    pass


def _time_parser(args: argparse.Namespace) -> TimeParser:
    if not args.timezone:
        return TimeParser()
    try:
        return TimeParser(ZoneInfo(args.timezone))
    except (ZoneInfoNotFoundError, ValueError):
        raise UsageError(f"--timezone: unknown time zone {args.timezone!r}") from None


def run_send(args: argparse.Namespace) -> int:
    if not args.domain:
        raise UsageError("--domain is required (or set PLAUSIBLE_DOMAIN)")
    if not args.dry_run and not args.url:
        raise UsageError("--url is required to send (or set PLAUSIBLE_URL); "
                         "use --dry-run to try without a server")
    if args.json and args.output == "-":
        raise UsageError("--output - and --json both want standard output; give --output a file")
    times = _time_parser(args)
    if args.format:
        get_parser(args.format, times)  # fail on a bad --format before reading anything
    counters = Counters()
    opened = []

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
            check_health(args.url, timeout=args.timeout)
            sink = EventsApiSink(args.url, counters, concurrency=args.concurrency,
                                 timeout=args.timeout, dead_letter=private(args.dead_letter))
            if output is not None:
                sink = TeeSink(sink, output)
        pipeline = Pipeline(
            inputs=args.logs, builder=EventBuilder(args.domain, args.host, args.scheme),
            sink=sink, counters=counters, format=args.format, times=times,
            progress=sys.stderr.isatty() and not args.no_progress, rejects=private(args.rejects))
        with _stop_on_signals(pipeline) as stopper:
            pipeline.run()
    finally:
        for f in opened:
            f.close()
    report(counters, args)
    if stopper.signum is not None:
        return 128 + stopper.signum
    if pipeline.failed_inputs:
        return EXIT_USAGE
    if counters.undelivered or counters.dead_lettered:
        return EXIT_UNDELIVERED
    return EXIT_OK


class TeeSink:
    """Writes each event to `--output` and passes it on."""

    def __init__(self, sink, output) -> None:
        self.sink, self.output = sink, output

    def submit(self, event) -> None:
        self.output.write(event.to_json_line() + "\n")
        self.sink.submit(event)

    def close(self) -> None:
        self.sink.close()


class _stop_on_signals:
    """Ctrl-C / SIGTERM: stop reading, let the sink finish, then report."""

    def __init__(self, pipeline: Pipeline) -> None:
        self.pipeline = pipeline
        self.previous: dict = {}
        self.signum: int | None = None

    def __enter__(self):
        def stop(signum, frame):
            self.pipeline.stop_requested = True
            self.signum = signum
            self.pipeline.counters.warn(f"stopped by {signal.Signals(signum).name}")

        for sig in (signal.SIGINT, signal.SIGTERM):
            self.previous[sig] = signal.signal(sig, stop)
        return self

    def __exit__(self, *exc) -> None:
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)


def report(counters: Counters, args: argparse.Namespace) -> None:
    problems = counters.check()
    for problem in problems:
        counters.warn("accounting error (please report): " + problem)
    if args.json:
        print(counters.to_json())
    else:
        out = sys.stderr if getattr(args, "output", None) == "-" else sys.stdout
        print(counters.render(), file=out)


def run_formats(args: argparse.Namespace) -> int:
    presets = load_all()
    width = max(len(n) for n in presets)
    for name, preset in sorted(presets.items()):
        print(f"{name:<{width}}  {preset.description}")
    print("\ncustom: --format nginx:'<log_format>' or --format apache:'<LogFormat>'")
    return EXIT_OK


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.run(args)
    except (UsageError, UnknownFormat) as exc:
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
