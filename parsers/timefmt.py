"""Timestamp parsing shared by every format, with a per-string cache.

Access logs repeat the same second many times in a row, so parsing each distinct timestamp
string once and caching the result is what makes time parsing cheap (see measurements.md).
"""
from __future__ import annotations

import calendar
from datetime import UTC, datetime, timedelta, tzinfo

MONTHS = {m: i for i, m in enumerate(
    ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"), 1)}

_CACHE_LIMIT = 50_000


class TimeParser:
    """Timestamp text to UTC epoch seconds; `default_tz` applies to stamps without an offset."""

    def __init__(self, default_tz: tzinfo = UTC) -> None:
        self.default_tz = default_tz
        self._cache: dict[str, float] = {}

    def _cached(self, text: str, parse) -> float:
        value = self._cache.get(text)
        if value is None:
            if len(self._cache) >= _CACHE_LIMIT:
                self._cache.clear()
            value = self._cache[text] = parse(text)
        return value

    def clf(self, text: str) -> float:
        """`26/Nov/2026:12:00:00 +0100` (nginx $time_local, Apache %t), brackets optional."""
        return self._cached(text, self._parse_clf)

    def _parse_clf(self, text: str) -> float:
        t = text.strip("[]")
        try:
            day, mon, year = int(t[0:2]), MONTHS[t[3:6]], int(t[7:11])
            hh, mm, ss = int(t[12:14]), int(t[15:17]), int(t[18:20])
        except (KeyError, ValueError, IndexError):
            raise ValueError(f"bad timestamp {text!r}") from None
        frac = 0.0
        rest = t[20:]
        if rest.startswith("."):  # Apache %{...}t with %f, rare
            digits = rest[1:].split(" ", 1)[0]
            frac = float("0." + digits) if digits.isdigit() else 0.0
            rest = rest[1 + len(digits):]
        rest = rest.strip()
        epoch = calendar.timegm((year, mon, day, hh, mm, ss)) + frac
        if rest:
            return epoch - _offset_seconds(rest, text)
        return epoch - _tz_offset(self.default_tz, epoch)

    def iso(self, text: str) -> float:
        """ISO 8601: `2026-11-26T12:00:00+01:00`, `...Z`, `2026-11-26 12:00:00.123`."""
        return self._cached(text, self._parse_iso)

    def _parse_iso(self, text: str) -> float:
        t = text.strip()
        if t.endswith("Z") or t.endswith("z"):
            t = t[:-1] + "+00:00"
        try:
            dt = datetime.fromisoformat(t)
        except ValueError:
            raise ValueError(f"bad timestamp {text!r}") from None
        if dt.tzinfo is None:
            dt = dt.replace(tzinfo=self.default_tz)
        return dt.timestamp()

    def strptime(self, text: str, fmt: str) -> float:
        """Any strftime layout (Apache `%{format}t`, W3C date + time columns)."""
        key = fmt + "\0" + text
        return self._cached(key, lambda _: self._parse_strptime(text, fmt))

    def _parse_strptime(self, text: str, fmt: str) -> float:
        try:
            dt = datetime.strptime(text, fmt)
        except ValueError:
            raise ValueError(f"bad timestamp {text!r} for layout {fmt!r}") from None
        if dt.tzinfo is None:
            dt = dt.replace(tzinfo=self.default_tz)
        return dt.timestamp()

    @staticmethod
    def epoch(text: str, scale: float = 1.0) -> float:
        """Unix time as a number: seconds (`1764158400.123`), or milli/micro seconds via scale."""
        try:
            return float(text) / scale
        except ValueError:
            raise ValueError(f"bad epoch timestamp {text!r}") from None


def _offset_seconds(offset: str, text: str) -> int:
    sign = -1 if offset[0] == "-" else 1
    digits = offset.lstrip("+-").replace(":", "")
    if len(digits) != 4 or not digits.isdigit():
        raise ValueError(f"bad timezone offset in timestamp {text!r}")
    return sign * (int(digits[:2]) * 3600 + int(digits[2:]) * 60)


def _tz_offset(tz: tzinfo, epoch: float) -> float:
    """Offset of a wall-clock time read in `tz` (approximate across DST edges, by one pass)."""
    if tz is UTC:
        return 0.0
    naive = datetime(1970, 1, 1) + timedelta(seconds=epoch)
    off = tz.utcoffset(naive)
    return off.total_seconds() if off else 0.0
