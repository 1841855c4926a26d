"""Timestamp parsing shared by every format, with a per-string cache.

Access logs repeat the same second many times in a row, so parsing each distinct timestamp
string once and caching the result is what makes time parsing cheap (see measurements.md).
"""
from __future__ import annotations

import calendar
import re
from datetime import UTC, datetime, timedelta, tzinfo

import numpy as np

from .base import CACHE_LIMIT, remember

MONTHS = {m: i for i, m in enumerate(
    ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"), 1)}

# Stamps of these forms always convert (`clf`, `w3c_seconds`): checking a column of them with
# one regex each costs a fraction of converting them (importer/bulk.py); others may still.
_HMS = r"(?:[01]\d|2[0-3]):[0-5]\d:[0-5]\d"
CLF_SURE = re.compile(r"\[?(?:0[1-9]|[12]\d|3[01])/(?:" + "|".join(MONTHS) + r")/(?:19|20)\d\d:"
                      + _HMS + r"(?: [+-]\d{4})?\]?", re.ASCII)
W3C_TIME_SURE = re.compile(_HMS, re.ASCII)
# A W3C time of day written in full (`13:05:09`) is its minute plus its seconds: most are
# distinct over a log's days (86,400 a day), so they are added up, not cached.
_MINUTES = {f"{h:02}:{m:02}": h * 3600 + m * 60 for h in range(24) for m in range(60)}
_SECONDS = {f"{s:02}": s for s in range(61)}  # 60: a leap second

# `clf_many`'s layout, `dd/Mon/yyyy:HH:MM:SS +hhmm`: where its digits are, its other bytes.
_CLF_WIDTH = 26
_CLF_DIGITS = np.array([0, 1, 7, 8, 9, 10, 12, 13, 15, 16, 18, 19, 22, 23, 24, 25])
_CLF_MARKS = {2: b"/", 6: b"/", 11: b":", 14: b":", 17: b":", 20: b" "}
_MONTH_CODES = np.array(sorted(int.from_bytes(m.encode(), "big") for m in MONTHS))
_MONTH_OF_CODE = np.array([MONTHS[c.to_bytes(3, "big").decode()] for c in _MONTH_CODES.tolist()])
_EPOCH_DAY = 719_468  # _days_from_civil(1970, 1, 1)
# What a datetime can hold (years 1 to 9999, UTC): a stamp outside it is malformed, not an
# event that no output (JSON lines, CSV dates) could write.
FIRST_SECOND = -62_135_596_800.0  # 0001-01-01T00:00:00Z
LAST_SECOND = 253_402_300_799.0  # 9999-12-31T23:59:59Z
_W3C_DIGITS = np.array([0, 1, 3, 4, 6, 7])  # of `HH:MM:SS`



class TimeParser:
    """Timestamp text to UTC epoch seconds; `default_tz` applies to stamps without an offset."""

    def __init__(self, default_tz: tzinfo = UTC) -> None:
        self.default_tz = default_tz
        self._cache: dict[str, float] = {}
        # CLF stamps as logged -> epoch; compiled formats look here before calling clf().
        self.clf_stamps: dict[str, float] = {}
        self._minutes: dict[str, float] = {}  # CLF stamps at second 00
        self._days: dict[str, float] = {}  # W3C dates: one entry a day, never full
        self._times_of_day: dict[str, float] = {}  # W3C times: 86,400 a day at most

    def _cached(self, text: str, parse) -> float:
        value = self._cache.get(text)
        if value is None:
            value = remember(self._cache, text, parse(text))
        return value

    def clf(self, text: str) -> float:
        """`26/Nov/2026:12:00:00 +0100` (nginx $time_local, Apache %t), brackets optional."""
        # A busy log repeats each second on many lines: one lookup then. In a quiet log most
        # seconds are distinct: parse each minute once and add the seconds (the same number:
        # offsets change on whole minutes).
        value = self.clf_stamps.get(text)
        if value is not None:
            return value
        t = text.strip("[]")
        second = _SECONDS.get(t[18:20])
        if second is None and t[18:20].isdecimal():
            second = int(t[18:20])
        if second is not None and t[17:18] == ":" and t[20:21] in ("", " "):
            minute = t[:17] + t[20:]  # the stamp without its seconds
            value = self._minutes.get(minute)
            if value is None:
                value = remember(self._minutes, minute, self._parse_clf(t[:18] + "00" + t[20:]))
            value += second
        else:
            value = self._cached(text, self._parse_clf)
        if not FIRST_SECOND <= value <= LAST_SECOND:  # `bounded`, its message made only if needed
            bounded(value, text)
        stamps = self.clf_stamps
        if len(stamps) >= CACHE_LIMIT:  # `remember`, inline: most stamps are new
            stamps.clear()
        stamps[text] = value
        return value

    def clf_many(self, texts: list[str]) -> list[float] | None:
        """`clf` of each text, at once (numpy over the bytes), where every one is written
        `dd/Mon/yyyy:HH:MM:SS +hhmm` in ASCII, in brackets or not (what a log writes); None
        otherwise (then `clf` of each). It adds up the same whole numbers `clf` does: any
        digits (a day 00 is the day before the 1st, as `calendar.timegm` has it), any offset;
        a year 0000, which `clf` rejects, is left to it."""
        n = len(texts)
        if not n:
            return []
        width = len(texts[0])
        if width not in (_CLF_WIDTH, _CLF_WIDTH + 2) or set(map(len, texts)) != {width}:
            return None
        try:
            data = "".join(texts).encode("ascii")
        except UnicodeEncodeError:
            return None
        rows = np.frombuffer(data, np.uint8).reshape(n, width)
        if width != _CLF_WIDTH:
            if not ((rows[:, 0] == ord("[")).all() and (rows[:, -1] == ord("]")).all()):
                return None
            rows = rows[:, 1:-1]
        digits = (rows[:, _CLF_DIGITS] - ord("0")).astype(np.int64)  # uint8: others wrap
        if (digits > 9).any() or any((rows[:, at] != ord(mark)).any()
                                     for at, mark in _CLF_MARKS.items()):
            return None
        signs = rows[:, 21]
        if not ((signs == ord("+")) | (signs == ord("-"))).all():
            return None
        codes = (rows[:, 3].astype(np.int64) << 16) | (rows[:, 4].astype(np.int64) << 8) \
            | rows[:, 5]
        found = np.searchsorted(_MONTH_CODES, codes).clip(0, len(_MONTH_CODES) - 1)
        year = digits[:, 2] * 1000 + digits[:, 3] * 100 + digits[:, 4] * 10 + digits[:, 5]
        if (_MONTH_CODES[found] != codes).any() or not year.all():
            return None
        pair = digits[:, 0::2] * 10 + digits[:, 1::2]  # day, (yy, yy), hh, mm, ss, oh, om
        days = _days_from_civil(year, _MONTH_OF_CODE[found]) + pair[:, 0] - 1 - _EPOCH_DAY
        offset = np.where(signs == ord("-"), -1, 1) * (pair[:, 6] * 3600 + pair[:, 7] * 60)
        epoch = days * 86_400 + pair[:, 3] * 3600 + pair[:, 4] * 60 + pair[:, 5] - offset
        if epoch.min() < FIRST_SECOND or epoch.max() > LAST_SECOND:
            return None
        return epoch.astype(np.float64).tolist()

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
            frac = float("0." + digits) if digits.isdecimal() else 0.0
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
        return bounded(dt.timestamp(), text)

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
        return bounded(dt.timestamp(), text)

    def auto(self, value: object) -> float:
        """A timestamp whose form is not fixed (JSON logs): a number or digits are Unix time
        in s, ms, us or ns (told apart by size), `26/Nov/2026:12:00:00 +0100` is CLF, anything
        else ISO 8601."""
        if isinstance(value, int | float) and not isinstance(value, bool):
            return bounded(epoch_any_unit(float(value)), value)
        text = str(value)
        if text[:1].isdecimal() and text.replace(".", "", 1).isdecimal():
            return bounded(epoch_any_unit(float(text)), text)
        if text[2:3] == "/" or text[1:2] == "/" or text[:1] == "[":
            return self.clf(text)
        return self.iso(text)

    def w3c(self, date: str, time_of_day: str) -> float:
        """W3C extended `date` and `time` columns: UTC by the format's definition (IIS,
        CloudFront); IIS 5 wrote dates unpadded (`2007-4-11`). It fails where one of its
        parts, `w3c_day` and `w3c_seconds`, fails."""
        day = self._days.get(date)
        if day is None:
            day = self.w3c_day(date)
        value = day + self.w3c_seconds(time_of_day)
        if FIRST_SECOND <= value <= LAST_SECOND:  # `bounded`, its message made only if needed
            return value
        return bounded(value, f"{date} {time_of_day}")

    def w3c_many(self, dates: list[str], times_of_day: list[str]) -> list[float] | None:
        """`w3c` of each date and time, at once, where every time is written `HH:MM:SS` in
        ASCII (what CloudFront and IIS write) and every date converts; None otherwise (then
        `w3c` of each)."""
        n = len(times_of_day)
        if set(map(len, times_of_day)) - {8}:
            return None
        try:
            days = {date: self.w3c_day(date) for date in set(dates)}
            data = "".join(times_of_day).encode("ascii")
        except (ValueError, UnicodeEncodeError):
            return None
        rows = np.frombuffer(data, np.uint8).reshape(n, 8)
        digits = (rows[:, _W3C_DIGITS] - ord("0")).astype(np.int64)  # uint8: others wrap
        pair = digits[:, 0::2] * 10 + digits[:, 1::2]  # hh, mm, ss
        if (digits > 9).any() or (rows[:, 2] != ord(":")).any() or (rows[:, 5] != ord(":")).any() \
                or (pair > (23, 59, 60)).any():
            return None
        seconds = pair[:, 0] * 3600 + pair[:, 1] * 60 + pair[:, 2]
        epoch = np.fromiter(map(days.__getitem__, dates), np.float64, n) + seconds
        if n and (epoch.min() < FIRST_SECOND or epoch.max() > LAST_SECOND):
            return None
        return epoch.tolist()

    def w3c_day(self, date: str) -> float:
        day = self._days.get(date)
        if day is None:
            day = self._days[date] = _parse_w3c(date, "00:00:00")
        return day

    def w3c_seconds(self, time_of_day: str) -> float:
        minute = _MINUTES.get(time_of_day[:5])
        if minute is not None and time_of_day[5:6] == ":":
            seconds = _SECONDS.get(time_of_day[6:])
            if seconds is not None:
                return minute + seconds
        seconds = self._times_of_day.get(time_of_day)
        if seconds is None:
            seconds = remember(self._times_of_day, time_of_day, _seconds_of_day(time_of_day))
        return seconds

    @staticmethod
    def epoch(text: str, scale: float = 1.0) -> float:
        """Unix time as a number: seconds (`1764158400.123`), or milli/micro seconds via scale."""
        try:
            return bounded(float(text) / scale, text)
        except ValueError:
            raise ValueError(f"bad epoch timestamp {text!r}") from None


def _hms(places: np.ndarray, at: int) -> np.ndarray:
    """Per text: whether its bytes at..at+8 are `_HMS`."""
    ok = (places[at + 2] == ord(":")) & (places[at + 5] == ord(":"))
    for i in (0, 1, 3, 4, 6, 7):
        ok &= places[at + i] - np.uint8(48) <= 9  # a byte below "0" wraps past 9
    # hours [01]\d|2[0-3], minutes and seconds [0-5]\d
    ok &= (places[at] <= ord("1")) | ((places[at] == ord("2")) & (places[at + 1] <= ord("3")))
    return ok & (places[at + 3] <= ord("5")) & (places[at + 6] <= ord("5"))


def _clf(places: np.ndarray, at: int) -> np.ndarray:
    """Per text: whether its bytes at..at+26 are CLF_SURE's `dd/Mon/yyyy:HH:MM:SS +hhmm`."""
    ok = np.ones(places.shape[1], bool)
    for i in (0, 1, 7, 8, 9, 10, 22, 23, 24, 25):
        ok &= places[at + i] - np.uint8(48) <= 9
    day = places[at].astype(np.int16) * 10 + places[at + 1] - 528  # 528: "00"
    century = places[at + 7].astype(np.int16) * 10 + places[at + 8] - 528
    ok &= (day >= 1) & (day <= 31) & ((century == 19) | (century == 20))
    ok &= (places[at + 21] == ord("+")) | (places[at + 21] == ord("-"))
    for mark, byte in ((2, "/"), (6, "/"), (11, ":"), (20, " ")):
        ok &= places[at + mark] == ord(byte)
    codes = (places[at + 3].astype(np.int32) << 16) | (places[at + 4].astype(np.int32) << 8) \
        | places[at + 5]
    return ok & np.isin(codes, _MONTH_CODES) & _hms(places, at + 12)


def sure_rows(regex: re.Pattern, rows: np.ndarray) -> np.ndarray | None:
    """Per row of ASCII texts of one width (bytes, a row each): whether `regex` (a `*_SURE`
    of this module) matches it whole, by numpy; None for another regex or for a width whose
    texts it does not tell (RE2 does then)."""
    width = rows.shape[1]
    if regex is W3C_TIME_SURE:
        return _hms(rows.T.copy(), 0) if width == 8 else np.zeros(len(rows), bool)
    if regex is CLF_SURE and width == _CLF_WIDTH:
        return _clf(rows.T.copy(), 0)
    if regex is CLF_SURE and width == _CLF_WIDTH + 2:
        places = rows.T.copy()  # a byte's place in each text, contiguous
        return (places[0] == ord("[")) & (places[-1] == ord("]")) & _clf(places, 1)
    return None


def bounded(value: float, text: object) -> float:
    """`value`, if a datetime can hold it (see LAST_SECOND; NaN cannot); else ValueError."""
    if FIRST_SECOND <= value <= LAST_SECOND:
        return value
    raise ValueError(f"timestamp out of range {text!r}")


def epoch_any_unit(value: float) -> float:
    """Unix time in seconds from s, ms, us or ns: a count in seconds stays below 1e11 until
    the year 5138, so the magnitude tells the unit."""
    for limit, scale in ((1e17, 1e9), (1e14, 1e6), (1e11, 1e3)):
        if value >= limit:
            return value / scale
    return value


def _days_from_civil(year: np.ndarray, month: np.ndarray) -> np.ndarray:
    """Days from 0000-03-01 to the 1st of each month (proleptic Gregorian, H. Hinnant's
    algorithm), for years 1..9999."""
    year = year - (month <= 2)
    era = year // 400
    of_era = year - era * 400
    day_of_year = (153 * (month + np.where(month > 2, -3, 9)) + 2) // 5
    day_of_era = of_era * 365 + of_era // 4 - of_era // 100 + day_of_year
    return era * 146_097 + day_of_era


def _seconds_of_day(t: str) -> float:
    if len(t) == 8 and t[2] == ":" and t[5] == ":" and t[:2].isdecimal():
        hh, mm, ss = int(t[:2]), int(t[3:5]), int(t[6:])
        if hh < 24 and mm < 60 and ss < 61:
            return hh * 3600 + mm * 60 + ss
    return _parse_w3c("1970-01-01", t)


def _parse_w3c(date: str, time_of_day: str) -> float:
    try:
        year, month, day = (int(x) for x in date.split("-"))
        parts = time_of_day.split(":")
        hh, mm = int(parts[0]), int(parts[1])
        seconds = float(parts[2]) if len(parts) > 2 else 0.0
    except (ValueError, IndexError):
        raise ValueError(f"bad date/time {date!r} {time_of_day!r}") from None
    if not (1 <= month <= 12 and 1 <= day <= 31 and hh < 24 and mm < 60 and seconds < 61):
        raise ValueError(f"bad date/time {date!r} {time_of_day!r}")
    return calendar.timegm((year, month, day, hh, mm, 0)) + seconds


def _offset_seconds(offset: str, text: str) -> int:
    sign = -1 if offset[0] == "-" else 1
    digits = offset.lstrip("+-").replace(":", "")
    if len(digits) != 4 or not digits.isdecimal():
        raise ValueError(f"bad timezone offset in timestamp {text!r}")
    return sign * (int(digits[:2]) * 3600 + int(digits[2:]) * 60)


def _tz_offset(tz: tzinfo, epoch: float) -> float:
    """Offset of a wall-clock time read in `tz`. A zoneinfo zone reads a naive time as local
    wall time: a repeated hour (DST ends) is taken as its first pass, a skipped one with the
    offset before the jump, as datetime does for `--since` and ISO stamps."""
    if tz is UTC:
        return 0.0
    naive = datetime(1970, 1, 1) + timedelta(seconds=epoch)
    off = tz.utcoffset(naive)
    return off.total_seconds() if off else 0.0
