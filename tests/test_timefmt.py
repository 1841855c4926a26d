"""`TimeParser.clf_many` (CLF stamps converted at once, for the columnar events) gives what
`clf` gives for each stamp, or None where it cannot tell (then `clf` of each decides)."""
from __future__ import annotations

import random
from datetime import timedelta, timezone

import numpy as np
import pytest

from parsers.timefmt import (
    CLF_SURE,
    FIRST_SECOND,
    LAST_SECOND,
    MONTHS,
    W3C_TIME_SURE,
    TimeParser,
    sure_rows,
)

EDGES = ["29/Feb/2024:23:59:59 +0000", "29/Feb/2023:12:00:00 +0000",  # no such day: Mar 1
         "31/Dec/1999:23:59:60 +0000", "01/Jan/2000:00:00:00 -1200", "00/Mar/2026:00:00:00 +1400",
         "15/Aug/2026:05:30:00 +0530", "31/Jun/2026:24:61:99 -0959", "01/Jan/0001:00:00:00 +0000",
         "31/Dec/9999:23:59:59 +0000", "10/Oct/2000:13:55:36 -0700"]  # the first, last second


def random_stamps(count: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    return [f"{rng.randrange(32):02}/{rng.choice(list(MONTHS))}/{rng.randrange(1, 10000):04}:"
            f"{rng.randrange(100):02}:{rng.randrange(100):02}:{rng.randrange(100):02} "
            f"{rng.choice('+-')}{rng.randrange(10000):04}" for _ in range(count)]


@pytest.mark.parametrize("bracketed", [False, True])
def test_many_stamps_at_once_are_each_one_converted(bracketed):
    stamps = EDGES + random_stamps(5000, seed=3)
    if bracketed:
        stamps = [f"[{stamp}]" for stamp in stamps]
    # a zone for stamps without an offset: it must not apply to those with one
    times = TimeParser(timezone(timedelta(hours=3)))
    assert times.clf_many(stamps) == [TimeParser().clf(stamp) for stamp in stamps]
    assert times.clf_many([]) == []


@pytest.mark.parametrize("odd", [
    "10/Oct/2000:13:55:36.123 -0700",  # fractional seconds
    "10/Oct/2000:13:55:36",  # no offset: the default zone's
    "10/Oct/2000:13:55:36 -07:00", "10/oct/2000:13:55:36 -0700", "10/Okt/2000:13:55:36 -0700",
    "10/Oct/2000 13:55:36 -0700", "10/Oct/2000:13:55:36 *0700", "1O/Oct/2000:13:55:36 -0700",
    "10/Oct/2000:13:55:36 -07\u00b9\u00b2", "10/Oct/2000:13:55:3\udcff -0700",
    "01/Jan/0000:00:00:00 +0000",  # no year 0: clf refuses it
    "[10/Oct/2000:13:55:36 -0700", "10/Oct/2000:13:55:36 -0700]x", "x10/Oct/2000:13:55:36 -0700"])
def test_stamps_of_other_forms_are_left_to_clf(odd):
    stamps = ["10/Oct/2000:13:55:36 -0700"] * 3 + [odd]
    assert TimeParser().clf_many(stamps) is None
    assert TimeParser().clf_many(stamps[:3]) == [TimeParser().clf(stamps[0])] * 3


def test_w3c_columns_at_once_are_each_row_converted():
    rng = random.Random(4)
    dates = ["2024-02-29", "2023-12-31", "2007-4-11", "1970-01-01", "2026-11-26", "2000-02-29"]
    rows = [(rng.choice(dates), f"{rng.randrange(24):02}:{rng.randrange(60):02}:"
             f"{rng.randrange(61):02}") for _ in range(3000)] + [("2026-11-26", "23:59:60")]
    days, times_of_day = (list(column) for column in zip(*rows, strict=True))
    assert TimeParser().w3c_many(days, times_of_day) == [
        TimeParser().w3c(day, time_of_day) for day, time_of_day in rows]
    assert TimeParser().w3c_many([], []) == []


@pytest.mark.parametrize("date, odd", [
    ("2026-11-26", "13:05:09.5"), ("2026-11-26", "24:00:00"), ("2026-11-26", "13:60:00"),
    ("2026-11-26", "13:05:61"), ("2026-11-26", "13-05-09"), ("2026-11-26", " 3:05:09"),
    ("2026-11-26", "13:05:\u0669\u0669"), ("2026-11-26", "13:5:9"), ("2026-13-01", "13:05:09")])
def test_w3c_times_of_other_forms_are_left_to_w3c(date, odd):
    assert TimeParser().w3c_many(["2026-11-26", date], ["13:05:09", odd]) is None


def test_the_first_and_last_second_a_datetime_holds():
    times = TimeParser()
    assert times.clf("01/Jan/0001:00:00:00 +0000") == FIRST_SECOND
    assert times.clf("31/Dec/9999:23:59:59 +0000") == LAST_SECOND
    assert times.w3c("9999-12-31", "23:59:59") == LAST_SECOND


@pytest.mark.parametrize("convert", [
    lambda t: t.clf("31/Dec/9999:23:59:59 -0001"), lambda t: t.clf("01/Jan/0001:00:00:00 +0001"),
    lambda t: t.clf("[31/Dec/9999:23:59:60 +0000]"), lambda t: t.w3c("9999-12-31", "23:59:60"),
    lambda t: t.w3c("10000-01-01", "00:00:00"), lambda t: t.iso("9999-12-31T23:30:00-01:00"),
    lambda t: t.strptime("9999-12-31 23:30 -0100", "%Y-%m-%d %H:%M %z"),
    lambda t: t.epoch("nan"), lambda t: t.epoch("inf"), lambda t: t.epoch("-1e12"),
    lambda t: t.auto(1e30), lambda t: t.auto("99999999999999999999999")])
def test_a_stamp_no_datetime_holds_fails_to_convert(convert):
    """Its line is malformed: no output could write its date (JSON lines, CSV dates)."""
    with pytest.raises(ValueError):
        convert(TimeParser())


def test_out_of_range_stamps_are_left_to_the_one_by_one_conversions():
    times = TimeParser()
    assert times.clf_many(["10/Oct/2000:13:55:36 -0700", "31/Dec/9999:23:59:59 -0001"]) is None
    assert times.w3c_many(["2026-11-26", "9999-12-31"], ["13:05:09", "23:59:60"]) is None


@pytest.mark.parametrize(("regex", "stamp"), [
    (CLF_SURE, "[01/Mar/2026:00:00:00 +0000]"), (CLF_SURE, "31/Dec/1999:23:59:59 -0130"),
    (CLF_SURE, "[29/Feb/1899:24:00:60 +0000]"), (W3C_TIME_SURE, "23:59:59"),
    (W3C_TIME_SURE, "19:60:09")])
def test_sure_rows_is_the_regexs_fullmatch(regex, stamp):
    """numpy's check of a column of stamps of one width, on stamps with bytes changed at
    random: what the regex says of each."""
    rng = random.Random(stamp)
    texts = [stamp]
    for _ in range(3000):
        chars = list(stamp)
        for _ in range(rng.randint(1, 2)):
            chars[rng.randrange(len(chars))] = rng.choice("0123456789:/+- []JanFebDecx\x00\x7f")
        texts.append("".join(chars))
    rows = np.frombuffer("".join(texts).encode(), np.uint8).reshape(len(texts), len(stamp))
    assert sure_rows(regex, rows).tolist() == [regex.fullmatch(t) is not None for t in texts]
