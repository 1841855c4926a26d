"""Every option three ways -- a flag, an environment variable, a key in a TOML file -- and jobs.

Precedence, highest first: flag > environment > config file > built-in default.

    flag                  environment                    TOML key (top level or [jobs.NAME])
    --url URL             PLAUSIBLE_URL                  url = "https://plausible.example.com"
    --domain DOMAIN       PLAUSIBLE_DOMAIN               domain = "example.com"
    --dead-letter FILE    PLAUSIBLE_IMPORT_DEAD_LETTER   dead-letter = "/var/lib/x/dead.ndjson"
    --keep-bots           PLAUSIBLE_IMPORT_KEEP_BOTS=1   keep-bots = true
    --exclude-path GLOB   PLAUSIBLE_IMPORT_EXCLUDE_PATH  exclude-path = ["/admin/*", "/wp-*"]
    LOG...                PLAUSIBLE_IMPORT_LOGS          logs = ["/var/log/nginx/access.log*"]

The spellings come from each argparse action's `dest`, and the environment and file values
become the parser's defaults before the command line is parsed, so an option added anywhere
gets all three. A list in the environment is split as a shell would; in the file it is an array,
or a table ({"www.example.com" = "example.com"} gives www.example.com=example.com). A list on
the command line replaces the lower layers' list rather than adding to it.

A file's top-level keys apply to every run; `[jobs.NAME]` tables are separate runs (`command`
says which: send unless set), done in file order, or one of them with `--job NAME`.
"""
from __future__ import annotations

import argparse
import shlex
import sys
import tomllib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import date, time
from typing import Any

from . import runlog

ENV_PREFIX = "PLAUSIBLE_IMPORT_"
ENV_NAMES = {"url": "PLAUSIBLE_URL", "domain": "PLAUSIBLE_DOMAIN"}  # Plausible's own names
NOT_IN_FILE = {"config", "job"}  # they choose the file and the table, so cannot be in one
ONE_OFF = {"reset", "forget"}  # flags only: a file or the environment would repeat them each run
DEFAULT_COMMAND = "send"
SELF_CONFIGURED = {"check-config"}  # commands that read the file themselves, errors and all
TRUE, FALSE = {"1", "true", "yes", "on"}, {"0", "false", "no", "off"}
EXIT_USAGE = 2

Where = str  # "environment PLAUSIBLE_URL", "/etc/plausible-import.toml: [jobs.blog] url"


class ConfigError(ValueError):
    """A config file or environment value that cannot be used; the message says where."""


def env_name(dest: str) -> str:
    return ENV_NAMES.get(dest) or ENV_PREFIX + dest.upper()


def file_key(dest: str) -> str:
    return dest.replace("_", "-")


def add_global_options(parser: argparse.ArgumentParser) -> None:
    """The options of every command, accepted before or after the command's name."""
    _add_globals(parser, top=True)
    for sub in commands(parser).values():
        _add_globals(sub, top=False)


def _add_globals(p: argparse.ArgumentParser, top: bool) -> None:
    # After the command's name they are absent unless given, so the top level's value stays.
    text, switch = (None, False) if top else (argparse.SUPPRESS, argparse.SUPPRESS)
    g = p.add_argument_group("configuration and unattended runs")
    g.add_argument("--config", metavar="FILE", default=text,
                   help="read options from this TOML file (env PLAUSIBLE_IMPORT_CONFIG); "
                        "a flag beats the environment, which beats the file")
    g.add_argument("--job", metavar="NAME", default=text,
                   help="run only the file's [jobs.NAME] (default: each job in turn)")
    g.add_argument("--quiet", "-q", action="store_true", default=switch,
                   help="print only errors and a one-line summary (for cron)")
    g.add_argument("--log-json", action="store_true", default=switch,
                   help="write messages, warnings and the summary to stderr as JSON objects, "
                        "one a line (for journald and log shippers)")


def commands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _options(parser: argparse.ArgumentParser) -> Iterator[argparse.Action]:
    """The actions that take a value from the environment or a file."""
    for action in parser._actions:
        if not isinstance(action, (argparse._HelpAction, argparse._VersionAction,
                                   argparse._SubParsersAction)):
            yield action


def known_keys(parser: argparse.ArgumentParser) -> dict[str, set[str]]:
    """Every dest any command takes, with the commands taking it ("" for the top level)."""
    keys: dict[str, set[str]] = {}
    for name, p in {"": parser, **commands(parser)}.items():
        for action in _options(p):
            keys.setdefault(action.dest, set()).add(name)
    return keys


# -- the file --

@dataclass
class ConfigFile:
    path: str
    shared: dict[str, Any]  # top-level keys, by dest
    jobs: dict[str, dict[str, Any]]  # [jobs.NAME] tables, by dest, in file order

    def where(self, job: str | None, dest: str) -> Where:
        return f"{self.path}: " + (f"[jobs.{job}] " if job else "") + file_key(dest)

    def values(self, job: str | None) -> dict[str, tuple[Any, Where]]:
        """The keys of one run: its job's table over the top level, each with where it is."""
        merged = {d: (v, self.where(None, d)) for d, v in self.shared.items()}
        merged.update((d, (v, self.where(job, d))) for d, v in self.jobs.get(job, {}).items())
        for dest in ("command", *NOT_IN_FILE, *ONE_OFF):
            merged.pop(dest, None)
        return merged

    def command(self, job: str | None) -> str:
        value = self.jobs.get(job, {}).get("command", self.shared.get("command", DEFAULT_COMMAND))
        if not isinstance(value, str):
            raise ConfigError(f"{self.where(job, 'command')}: expected a command name")
        return value


def load(path: str) -> ConfigFile:
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except OSError as exc:
        raise ConfigError(f"{path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    jobs = data.pop("jobs", {})
    if not isinstance(jobs, dict) or not all(isinstance(t, dict) for t in jobs.values()):
        raise ConfigError(f"{path}: jobs: expected tables, e.g. [jobs.blog]")
    return ConfigFile(path, _by_dest(path, None, data),
                      {name: _by_dest(path, name, t) for name, t in jobs.items()})


def _by_dest(path: str, job: str | None, table: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in table.items():
        dest = key.replace("-", "_")
        if dest in out:
            raise ConfigError(f"{path}: {'[jobs.' + job + '] ' if job else ''}{key}: "
                              "given twice (as - and _)")
        out[dest] = value
    return out


def unknown_keys(config: ConfigFile, parser: argparse.ArgumentParser,
                 jobs: list[str | None]) -> list[str]:
    """Keys in the top level or these jobs that no command takes, as messages."""
    known = known_keys(parser)
    problems = []
    for job in jobs:
        table = config.jobs[job] if job else config.shared
        for dest in table:
            if dest in NOT_IN_FILE:
                problems.append(f"{config.where(job, dest)}: give --{file_key(dest)} on the "
                                "command line or in the environment, not in the file")
            elif dest in ONE_OFF:
                problems.append(f"{config.where(job, dest)}: a one-off action, flag only "
                                f"(--{file_key(dest)}): in a file it would happen every run")
            elif dest not in known and dest != "command":
                problems.append(f"{config.where(job, dest)}: unknown key (keys are the long "
                                "options without --, e.g. dead-letter)")
    return problems


# -- values as parser defaults --

@dataclass
class Layers:
    """What sits below the command line for one run: the environment over the file."""
    environ: Mapping[str, str]
    file: dict[str, tuple[Any, Where]]

    def find(self, dest: str) -> tuple[Any, Where, bool] | None:
        """(value, where, from the environment) or None."""
        if dest in ONE_OFF:
            return None
        name = env_name(dest)
        if self.environ.get(name):  # set but empty counts as unset, as `export X=` often is
            return self.environ[name], f"environment {name}", True
        if dest in self.file:
            value, where = self.file[dest]
            return value, where, False
        return None


Late = tuple[str, Any, Any]  # (dest, value, the action's default): lists set after parsing


def apply(parser: argparse.ArgumentParser, layers: Layers, errors: list[str]) -> list[Late]:
    """Make `layers`' values `parser`'s defaults. A value that cannot be used is added to
    `errors`. Returns the list options, whose values are set after parsing (see `finish`)."""
    late = []
    for action in _options(parser):
        found = layers.find(action.dest)
        if found is None:
            continue
        raw, where, from_env = found
        try:
            value = convert(parser, action, raw, from_env)
        except ConfigError as exc:
            errors.append(f"{where}: {exc}")
            continue
        action.required = False
        if isinstance(action, argparse._AppendAction):
            # argparse adds a flag's items to the default; the flag's list must replace it.
            late.append((action.dest, value, action.default))
            continue
        action.default = value
        if not action.option_strings:  # a positional given here is optional on the command line
            action.nargs = {None: "?", "+": "*"}.get(action.nargs, action.nargs)
    return late


def finish(args: argparse.Namespace, late: list[Late]) -> None:
    """Lists from the environment or file, where the command line gave none."""
    for dest, value, default in late:
        if getattr(args, dest, default) is default:  # appending makes a new list
            setattr(args, dest, value)


def convert(parser: argparse.ArgumentParser, action: argparse.Action, raw: Any,
            from_env: bool) -> Any:
    """What `action` would store for `raw`: an environment string or a TOML value."""
    if action.nargs == 0:  # a switch
        on = _switch(raw, from_env)
        return on if isinstance(action.const, bool) else (action.const if on else action.default)
    many = isinstance(action, argparse._AppendAction) or action.nargs not in (None, "?")
    if not many:
        return _typed(action, raw if from_env else _text(raw))
    items = shlex.split(raw) if from_env else _items(raw)
    values = [_typed(action, item) for item in items]
    if not isinstance(action, argparse._AppendAction):
        return values
    # Let the action collect them, as the command line would (append, extend, nargs...).
    scratch = argparse.Namespace(**{action.dest: None})
    if action.nargs in (None, "?"):
        for value in values:
            action(parser, scratch, value)
    else:
        action(parser, scratch, values)
    return getattr(scratch, action.dest)


def _switch(raw: Any, from_env: bool) -> bool:
    if from_env and raw.strip().lower() in TRUE | FALSE:
        return raw.strip().lower() in TRUE
    if isinstance(raw, bool):
        return raw
    expected = "1 or 0 (or true/false, yes/no, on/off)" if from_env else "true or false"
    raise ConfigError(f"expected {expected}, got {raw!r}")


def _text(raw: Any) -> str:
    if isinstance(raw, bool | list | dict):
        kind = {bool: "true/false", list: "a list", dict: "a table"}[type(raw)]
        raise ConfigError(f"expected a single value, got {kind}")
    if isinstance(raw, date | time):  # TOML dates and times: since = 2026-11-01
        return raw.isoformat()
    return str(raw)


def _items(raw: Any) -> list[str]:
    if isinstance(raw, dict):
        return [f"{key}={_text(value)}" for key, value in raw.items()]
    if isinstance(raw, list):
        return [_text(item) for item in raw]
    return [_text(raw)]


def _typed(action: argparse.Action, text: str) -> Any:
    value: Any = text
    if callable(action.type):
        try:
            value = action.type(text)
        except argparse.ArgumentTypeError as exc:
            raise ConfigError(str(exc)) from None
        except (TypeError, ValueError):
            name = getattr(action.type, "__name__", "")
            raise ConfigError(f"invalid {name + ' ' if name else ''}value {text!r}") from None
    if action.choices is not None and value not in action.choices:
        raise ConfigError(f"{value!r} is not one of: {', '.join(map(str, action.choices))}")
    return value


# -- runs --

Run = tuple[str | None, str | None]  # (job, command)


def plan(config: ConfigFile | None, job: str | None, command: str | None) -> list[Run]:
    """The runs a command line asks for: one, or one per job (those of `command`, if named)."""
    if config is None:
        if job:
            raise ConfigError("--job NAME needs a config file (--config FILE) with [jobs.NAME]")
        return [(None, command)]
    if job is not None:
        if job not in config.jobs:
            have = f"; its jobs: {', '.join(config.jobs)}" if config.jobs else ", it has none"
            raise ConfigError(f"{config.path}: no [jobs.{job}]{have}")
        return [(job, command or config.command(job))]
    if not config.jobs:
        return [(None, command or config.command(None))]
    if command is None:
        return [(name, config.command(name)) for name in config.jobs]
    # Other commands (formats, status...) run once, with the top level's keys.
    return [(n, command) for n in config.jobs if config.command(n) == command] or [(None, command)]


def parse_run(parser: argparse.ArgumentParser, config: ConfigFile | None, run: Run,
              argv: list[str], environ: Mapping[str, str], name_command: bool,
              errors: list[str] | None = None) -> argparse.Namespace:
    """`argv` parsed over the environment and the run's file keys. `name_command`: argv does not
    name the command, so the run's goes first. Values that cannot be used raise ConfigError, or
    with `errors`, are added to it and left at their defaults."""
    job, command = run
    layers = Layers(environ, config.values(job) if config else {})
    found: list[str] = []
    late = apply(parser, layers, found)
    sub = commands(parser).get(command or "")
    if sub is not None:
        late += apply(sub, layers, found)
    if found and errors is None:
        raise ConfigError("\n".join(found))
    if errors is not None:
        errors.extend(found)
    args = parser.parse_args([command, *argv] if name_command and command else argv)
    finish(args, late)
    args.job = job
    return args


def command_in(argv: list[str], parser: argparse.ArgumentParser) -> str | None:
    """The command named on the command line (the first word that is not an option's)."""
    takes_value = {s for a in _options(parser) if a.nargs != 0 for s in a.option_strings}
    words = iter(argv)
    for word in words:
        if word == "--":
            return next(words, None)
        if word.startswith("-") and word != "-":
            if word in takes_value:  # --config FILE (not --config=FILE)
                next(words, None)
            continue
        return word
    return None


def global_options(argv: list[str], environ: Mapping[str, str],
                   config: ConfigFile | None = None) -> argparse.Namespace:
    """--config, --job, --quiet, --log-json before the full parse: from the flag, else the
    environment, else the file's top level. Mistakes are left for the full parse to report."""
    pre = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    _add_globals(pre, top=True)
    apply(pre, Layers(environ, config.values(None) if config else {}), [])
    pre.error = _raise  # type: ignore[method-assign]
    try:
        return pre.parse_known_args(argv)[0]
    except ConfigError:
        return pre.parse_known_args([])[0]


def _raise(message: str):
    raise ConfigError(message)


def raising(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """`parser` (and its commands) raising ConfigError instead of printing usage and exiting."""
    for p in (parser, *commands(parser).values()):
        p.error = _raise  # type: ignore[method-assign]
    return parser


def run_all(build_parser: Callable[[], argparse.ArgumentParser],
            run: Callable[[argparse.Namespace], int], argv: list[str],
            environ: Mapping[str, str]) -> int:
    """Parse `argv` over the environment and config file and run each job in turn; returns the
    highest exit code (a run stopped by a signal stops the rest)."""
    command = command_in(argv, build_parser())
    opts = global_options(argv, environ)
    with runlog.messages(opts.quiet, opts.log_json):
        config = None
        try:
            if opts.config and command not in SELF_CONFIGURED:
                config = load(opts.config)
                opts = global_options(argv, environ, config)
            runs = [(None, command)] if command in SELF_CONFIGURED else plan(
                config, opts.job, command)
            if config is not None:
                problems = unknown_keys(config, build_parser(),
                                        [None, *dict.fromkeys(job for job, _ in runs if job)])
                if problems:
                    raise ConfigError("\n".join(problems))
        except ConfigError as exc:
            runlog.errors(str(exc))
            return EXIT_USAGE
        code = 0
        for job, run_command in runs:
            try:
                args = parse_run(build_parser(), config, (job, run_command), argv, environ,
                                 name_command=command is None)
            except ConfigError as exc:
                runlog.errors(str(exc))
                code = max(code, EXIT_USAGE)
                continue
            except SystemExit as exc:  # argparse has said why
                if not exc.code:
                    raise
                code = max(code, exc.code if isinstance(exc.code, int) else EXIT_USAGE)
                continue
            with runlog.messages(args.quiet, args.log_json, job=job):
                if len(runs) > 1:
                    print(f"plausible-import: job {job}: {run_command}", file=sys.stderr)
                code = max(code, run(args))
            if code >= 128:
                break
        return code
