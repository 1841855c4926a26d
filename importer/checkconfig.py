"""`plausible-import check-config FILE`: is this config file usable? Sends and writes nothing."""
from __future__ import annotations

import argparse
import glob
import os
import sys
from collections.abc import Callable, Mapping
from functools import partial
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from parsers.registry import UnknownFormat, get_parser
from parsers.timefmt import TimeParser

from .config import (
    ENV_PREFIX,
    ConfigError,
    ConfigFile,
    env_name,
    known_keys,
    load,
    parse_run,
    raising,
    unknown_keys,
)
from .filteropts import OptionError, builder_from_args
from .summary import Counters

EXIT_OK, EXIT_INVALID = 0, 2

EXAMPLES = """\
examples:
  plausible-import check-config /etc/plausible-import.toml
  PLAUSIBLE_IMPORT_CONFIG=/etc/plausible-import.toml plausible-import check-config

It reads the file as a run would, over the environment (PLAUSIBLE_URL, PLAUSIBLE_IMPORT_...),
and checks each job: unknown keys, values of the wrong type, a missing domain or url, a log
format or time zone it does not know. Log paths that match no file yet are warnings.
Exit 0: usable; 2: not (each problem is printed with the file, job and key).
"""

Parser = Callable[[], argparse.ArgumentParser]


def add_check_config_command(commands: argparse._SubParsersAction, build_parser: Parser) -> None:
    p = commands.add_parser(
        "check-config", help="check a config file without sending anything",
        description="Check that a TOML config file is usable, job by job, without reading a "
                    "log or sending anything.",
        epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("config", metavar="FILE", nargs="?", default=argparse.SUPPRESS,
                   help="the TOML file (default: --config or PLAUSIBLE_IMPORT_CONFIG)")
    p.set_defaults(run=partial(run_check_config, build_parser))


def run_check_config(build_parser: Parser, args: argparse.Namespace) -> int:
    path = getattr(args, "config", None)
    if not path:
        print("plausible-import: error: check-config FILE: which file? (or set "
              "PLAUSIBLE_IMPORT_CONFIG)", file=sys.stderr)
        return EXIT_INVALID
    errors, warnings, jobs = check(build_parser, path, os.environ)
    for line in jobs:
        print(f"{path}: {line}")
    for line in warnings:
        print(f"plausible-import: warning: {line}", file=sys.stderr)
    for line in errors:
        print(f"plausible-import: error: {line}", file=sys.stderr)
    if errors:
        print(f"{path}: {len(errors)} problem{'s' if len(errors) > 1 else ''}")
        return EXIT_INVALID
    print(f"{path}: ok")
    return EXIT_OK


def check(build_parser: Parser, path: str,
          environ: Mapping[str, str]) -> tuple[list[str], list[str], list[str]]:
    """(errors, warnings, one line per job) for the config file at `path`."""
    try:
        config = load(path)
    except ConfigError as exc:
        return [str(exc)], [], []
    errors = unknown_keys(config, build_parser(), [None, *config.jobs])
    warnings = _unknown_environment(build_parser(), environ)
    described = []
    for job in list(config.jobs) or [None]:
        label = f"[jobs.{job}]" if job else "top level"
        try:
            command = config.command(job)
        except ConfigError as exc:
            errors.append(str(exc))
            continue
        warnings.extend(_ignored(config, job, command, build_parser()))
        try:
            args = parse_run(raising(build_parser()), config, (job, command), [], environ,
                             name_command=True, errors=errors)
        except ConfigError as exc:
            errors.extend(line if line.startswith(path) else f"{path}: {label}: {line}"
                          for line in str(exc).splitlines())
            continue
        errors.extend(f"{config.where(job, key)}: {problem}"
                      for key, problem in _problems(args, command))
        warnings.extend(f"{config.where(job, 'logs')}: {pattern} matches no file yet"
                        for pattern in getattr(args, "logs", None) or []
                        if pattern != "-" and not glob.glob(pattern))
        described.append(f"{'job ' + job if job else 'one run'}: {_describe(args, command)}")
    return errors, warnings, described


def _problems(args: argparse.Namespace, command: str) -> list[tuple[str, str]]:
    """(key, problem) for what argparse cannot see: values that only fail together or later."""
    problems = []
    if command == "send" and not args.dry_run and not args.url:
        problems.append(("url", "missing: where to send? (url = \"https://...\", PLAUSIBLE_URL, "
                                "or dry-run = true)"))
    if hasattr(args, "domain_map"):
        try:
            builder_from_args(args, Counters())
        except OptionError as exc:
            problems.append(("domain", str(exc)))
    for key in ("timezone", "site_timezone"):
        if getattr(args, key, None):
            try:
                ZoneInfo(getattr(args, key))
            except (ZoneInfoNotFoundError, ValueError):
                problems.append((key, f"unknown time zone {getattr(args, key)!r}"))
    if getattr(args, "format", None):
        try:
            get_parser(args.format, TimeParser())
        except UnknownFormat as exc:
            problems.append(("format", str(exc).splitlines()[0]))
    return problems


def _ignored(config: ConfigFile, job: str | None, command: str,
             parser: argparse.ArgumentParser) -> list[str]:
    """A job's keys its command does not take (top-level keys serve many commands: no warning)."""
    if job is None:
        return []
    known = known_keys(parser)
    return [f"{config.where(job, dest)}: `{command}` has no such option; ignored"
            for dest in config.jobs[job]
            if dest in known and command not in known[dest] and "" not in known[dest]]


def _unknown_environment(parser: argparse.ArgumentParser, environ: Mapping[str, str]) -> list[str]:
    names = {env_name(dest) for dest in known_keys(parser)}
    return [f"environment {name}: no such option; ignored" for name in sorted(environ)
            if name.startswith(ENV_PREFIX) and name not in names]


def _describe(args: argparse.Namespace, command: str) -> str:
    """One line for a person checking the file: what, from how many paths, for which site(s),
    to where."""
    parts = [command]
    if logs := getattr(args, "logs", None):
        parts.append(f"{len(logs)} log path" + ("s" if len(logs) > 1 else ""))
    if getattr(args, "domain", None):
        parts.append(f"for {args.domain}")
    elif getattr(args, "domain_map", None):
        parts.append("for the sites of domain-map")
    if command == "send":
        parts.append("as a dry run" if args.dry_run else f"to {args.url}")
    elif getattr(args, "out", None):
        parts.append(f"to {args.out}")
    return " ".join(parts)
