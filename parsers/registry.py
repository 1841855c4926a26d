"""The registry of named formats, `--format` resolution and auto-detection.

A format module registers its presets at import time; `load_all` imports every format module.
"""
from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass

from .base import ParseError, Parser, SkipLine
from .timefmt import TimeParser

FORMAT_MODULES = ("clf",)
SNIFF_LINES = 50


@dataclass(frozen=True)
class Preset:
    name: str
    description: str
    create: Callable[[TimeParser], Parser]


PRESETS: dict[str, Preset] = {}


def register(preset: Preset) -> None:
    PRESETS[preset.name] = preset


def register_format_string(name: str, family: str, fmt: str, description: str) -> None:
    from .formatstring import FormatParser

    register(Preset(name, description, lambda times: FormatParser(
        family, fmt, name=name, description=description, time_parser=times)))


def load_all() -> dict[str, Preset]:
    for module in FORMAT_MODULES:
        importlib.import_module(f"{__package__}.{module}")
    return PRESETS


class UnknownFormat(ValueError):
    """No preset fits a file; the message names the closest ones and where the first line failed."""


def get_parser(spec: str, times: TimeParser | None = None) -> Parser:
    """A parser for `--format`: a preset name, or `nginx:<log_format>` / `apache:<LogFormat>`."""
    from .formatstring import FormatParser

    times = times or TimeParser()
    load_all()
    family, sep, fmt = spec.partition(":")
    if sep and family in ("nginx", "apache"):
        return FormatParser(family, fmt, time_parser=times)
    if spec not in PRESETS:
        raise UnknownFormat(
            f"unknown format {spec!r}; see `plausible-import formats`, or paste your server's "
            "format as nginx:'<log_format>' or apache:'<LogFormat>'")
    return PRESETS[spec].create(times)


def detect(lines: list[str], times: TimeParser | None = None) -> Parser:
    """The preset that parses most of `lines` (the first lines of a file); ties go to the one
    that fills more fields. Raises UnknownFormat with the closest candidates."""
    times = times or TimeParser()
    sample = [ln for ln in lines[:SNIFF_LINES] if ln.strip()]
    scored = []
    for preset in load_all().values():
        parser = preset.create(times)
        ok = filled = 0
        for line in sample:
            try:
                record = parser.parse(line)
            except SkipLine:
                ok += 1
                continue
            except (ParseError, ValueError):
                continue
            ok += 1
            filled += sum(v is not None for v in (
                record.time, record.client_ip, record.uri, record.status, record.user_agent,
                record.referrer, record.host))
        scored.append((ok / len(sample) if sample else 0.0, filled, preset.name, parser))
    scored.sort(key=lambda s: (s[0], s[1]), reverse=True)
    if scored and scored[0][0] >= 0.5:
        return scored[0][3]
    raise UnknownFormat(_closest_message(sample, scored))


def _closest_message(sample: list[str], scored: list) -> str:
    if not sample:
        return "the file has no lines to detect a format from"
    first = sample[0]
    lines = ["no known format fits; closest:"]
    for share, _, name, parser in scored[:3]:
        where = ""
        explain = getattr(parser, "failure_position", None)
        if explain is not None:
            pos, expected = explain(first)
            where = f", first line fails at column {pos + 1}" + (
                f" (expected {expected})" if expected else "")
        lines.append(f"  {name}: parsed {share:.0%} of the first {len(sample)} lines{where}")
    shown = first if len(first) <= 300 else first[:300] + "..."
    lines.append(f"first line: {shown}")
    lines.append("use --format with a preset name (`plausible-import formats`) or your server's "
                 "own format string: --format 'nginx:<log_format>' / 'apache:<LogFormat>'")
    return "\n".join(lines)
