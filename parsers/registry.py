"""The registry of named formats, `--format` resolution and auto-detection.

A format module registers its presets at import time; `load_all` imports every format module.
"""
from __future__ import annotations

import importlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property

from .base import ParseError, Parser, SkipLine
from .formatstring import FormatParser
from .timefmt import TimeParser

# Registration order breaks ties: in detection, a preset listed earlier wins over a later one
# that reads the same lines into the same fields (combined before varnishncsa, ...); in the
# "closest formats" of a file nothing fits, a JSON layout that found no keys it knows ranks
# before a text format whose `\S*` swallowed the same JSON line.
FORMAT_MODULES = ("jsonlogs", "clf", "haproxy", "aws", "w3c")
SNIFF_LINES = 50
CLOSEST_SHOWN = 3


@dataclass(frozen=True)
class Preset:
    name: str
    description: str
    create: Callable[[TimeParser], Parser]


PRESETS: dict[str, Preset] = {}
# Families a user can paste a format string of: `--format nginx:'...'`. name -> parser class
# (FormatParser, or a subclass that post-processes what the family logs).
FAMILY_PARSERS: dict[str, Callable[..., Parser]] = {"nginx": FormatParser, "apache": FormatParser}


def register(preset: Preset) -> None:
    PRESETS[preset.name] = preset


def register_format_string(name: str, family: str, fmt: str, description: str,
                           tail: str = "") -> None:
    def create(times: TimeParser) -> Parser:
        return FAMILY_PARSERS[family](family, fmt, name=name, description=description,
                                      time_parser=times, tail=tail)

    register(Preset(name, description, create))


def register_family(family: str, parser_class: Callable[..., Parser]) -> None:
    FAMILY_PARSERS[family] = parser_class


def load_all() -> dict[str, Preset]:
    for module in FORMAT_MODULES:
        importlib.import_module(f"{__package__}.{module}")
    return PRESETS


class UnknownFormat(ValueError):
    """No preset fits a file; the message names the closest ones and where the first line failed.
    `summary`: the message in one line (a warning's)."""

    def __init__(self, message: str, summary: str | None = None) -> None:
        super().__init__(message)
        self.summary = summary or message.splitlines()[0]


def get_parser(spec: str, times: TimeParser | None = None) -> Parser:
    """A parser for `--format`: a preset name, or `<family>:<format string>` (nginx, apache,
    haproxy), the format as written in the server's config."""
    times = times or TimeParser()
    load_all()
    family, sep, fmt = spec.partition(":")
    if sep and family in FAMILY_PARSERS:
        try:
            parser = FAMILY_PARSERS[family](family, pasted_format(family, fmt), time_parser=times)
        except (ValueError, re.error) as exc:
            raise UnknownFormat(f"cannot use --format {family}:...: {exc}") from None
        if not getattr(parser, "fields", None):
            raise UnknownFormat(f"--format {family}:{fmt!r} names no {family} variable")
        return parser
    if spec not in PRESETS:
        raise UnknownFormat(
            f"unknown format {spec!r}; see `plausible-import formats`, or paste your server's "
            "format as nginx:'<log_format>', apache:'<LogFormat>' or haproxy:'<log-format>'")
    return PRESETS[spec].create(times)


_DIRECTIVE = re.compile(r"^\s*(?:log_format\s+\S+\s+(?:escape=\S+\s+)?|LogFormat\s+|log-format\s+)")
_QUOTED_STRING = re.compile(r"""\s*(?:'((?:[^'\\]|\\.)*)'|"((?:[^"\\]|\\.)*)")""")
_AFTER_STRINGS = re.compile(r"\s*(?:\w+\s*)?;?\s*")  # nginx's `;`, Apache's nickname


def pasted_format(family: str, text: str) -> str:
    """The format string out of what a user copied from a config file: the directive name,
    the surrounding quotes (with their backslash escapes), nginx's concatenated 'part' 'part',
    the trailing `;` or Apache nickname are dropped. Anything else is a bare format string,
    returned as it is."""
    directive = _DIRECTIVE.match(text)
    body = text[directive.end():] if directive else text
    parts, pos, quotes = [], 0, set()
    while m := _QUOTED_STRING.match(body, pos):
        quote = "'" if m.group(1) is not None else '"'
        quotes.add(quote)
        parts.append(re.sub(r"\\(['\"\\])", r"\1", m.group(1) if quote == "'" else m.group(2)))
        pos = m.end()
    # A bare format may start with a quoted field ("$request" $status): only a directive, one
    # string, or nginx's single-quoted pieces say the quotes are the config's.
    config = directive or len(parts) == 1 or quotes == {"'"}
    if not parts or not config or not _AFTER_STRINGS.fullmatch(body, pos):
        return text
    return "".join(parts)


@dataclass
class _Trial:
    """How one preset fared on the sample."""

    name: str
    parser: Parser
    ok: int = 0
    filled: int = 0
    failed_line: int | None = None  # index into the sample of its first failing line
    failed_text: str = ""  # that line
    error: Exception | None = None  # why it failed

    @cached_property
    def explained(self) -> tuple[int, str]:
        """(offset, reason) where the first failing line stops fitting; worked out only
        when no preset fits (it re-matches the format piece by piece)."""
        if self.failed_line is None:
            return 0, ""
        return explain_failure(self.parser, self.failed_text, self.error)


def detect(lines: list[str], times: TimeParser | None = None) -> Parser:
    """The preset that parses most of `lines` (the first lines of a file); ties go to the one
    that fills more fields, then to the one registered first. Raises UnknownFormat naming the
    closest candidates and where they failed."""
    times = times or TimeParser()
    sample = [(i + 1, ln) for i, ln in enumerate(lines[:SNIFF_LINES]) if ln.strip()]
    trials = [_try(preset, times, sample) for preset in load_all().values()]
    # Stable sort: among equals, registration order stands.
    trials.sort(key=lambda t: (t.ok, t.filled), reverse=True)
    if sample and trials and trials[0].ok / len(sample) >= 0.5:
        return trials[0].parser
    raise UnknownFormat(_closest_message(sample, trials),
                        "no known format fits" if sample else None)


def _try(preset: Preset, times: TimeParser, sample: list[tuple[int, str]]) -> _Trial:
    trial = _Trial(preset.name, preset.create(times))
    for index, (_, line) in enumerate(sample):
        try:
            record = trial.parser.parse(line)
        except SkipLine:
            trial.ok += 1
            continue
        except (ParseError, ValueError) as exc:
            if trial.failed_line is None:
                trial.failed_line, trial.failed_text, trial.error = index, line, exc
            continue
        trial.ok += 1
        trial.filled += sum(v is not None for v in (
            record.time, record.client_ip, record.uri, record.status, record.user_agent,
            record.referrer, record.host))
    return trial


def explain_failure(parser: Parser, line: str, exc: Exception) -> tuple[int, str]:
    """(character offset, reason) of a line a parser refused."""
    explain = getattr(parser, "failure_position", None)
    if explain is not None:
        position, expected = explain(line)
        return position, f"expected {expected}" if expected else str(exc)
    position = getattr(exc, "position", None)
    return (position if position is not None else 0), getattr(exc, "reason", str(exc))


def _closest_message(sample: list[tuple[int, str]], trials: list[_Trial]) -> str:
    if not sample:
        return "the file has no lines to detect a format from"
    # Among presets that parse equally little, the one that got furthest into its first
    # failing line is the closest.
    closest = sorted(trials, key=lambda t: (t.ok, t.filled, t.explained[0] if t.failed_line == 0
                                            else -1), reverse=True)[:CLOSEST_SHOWN]
    out = ["no known format fits; the closest:"]
    for t in closest:
        where = ""
        if t.failed_line is not None:
            lineno = sample[t.failed_line][0]
            position, reason = t.explained
            where = f"; line {lineno} fails at column {position + 1}: {reason}"
        out.append(f"  {t.name}: parsed {t.ok} of {len(sample)} lines{where}")
    best = closest[0]
    if best.failed_line is not None:
        lineno, line = sample[best.failed_line]
        out.append(f"first line that fails (line {lineno}), where {best.name} stops fitting:")
        out.extend(caret_lines(line, best.explained[0]))
    out.append("use --format with a preset name (`plausible-import formats`) or your server's "
               "own format string: --format 'nginx:<log_format>', 'apache:<LogFormat>' or "
               "'haproxy:<log-format>'")
    return "\n".join(out)


def caret_lines(line: str, position: int, width: int = 160) -> list[str]:
    """The line (a window of it around `position` if it is long) and a caret under the spot."""
    start = max(0, min(position - width // 2, len(line) - width))
    shown = line[start:start + width]
    prefix = "..." if start else ""
    suffix = "..." if start + width < len(line) else ""
    return [f"  {prefix}{shown}{suffix}", "  " + " " * (len(prefix) + position - start) + "^"]
