"""The delivery engine's parts on their own: retries, rate and pace, order, drops, headers."""
from __future__ import annotations

import io
import random
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from importer.delivery import PLAUSIBLE_CLOUD_RATE, DryRunSink, base_url, default_rate
from importer.drops import WINDOW, DropMonitor
from importer.events import Event
from importer.ordering import VisitorQueues
from importer.ratelimit import UNLIMITED, Pace, Throughput, TokenBucket
from importer.retry import RetryPolicy, Verdict, classify, parse_retry_after
from importer.summary import Counters
from importer.transport import Response, header_lines


@pytest.mark.parametrize(("status", "verdict"), [
    (None, Verdict.RETRY), (202, Verdict.SENT), (200, Verdict.SENT), (408, Verdict.RETRY),
    (429, Verdict.RETRY), (500, Verdict.RETRY), (503, Verdict.RETRY), (504, Verdict.RETRY),
    (400, Verdict.REJECT), (404, Verdict.REJECT), (413, Verdict.REJECT), (301, Verdict.REJECT),
])
def test_classify(status, verdict):
    assert classify(status) is verdict


def test_retry_after_seconds_and_http_date():
    assert parse_retry_after("7") == 7.0
    now = datetime(2026, 1, 1, tzinfo=UTC)
    date = format_datetime(now + timedelta(seconds=30), usegmt=True)
    assert parse_retry_after(date, now=now.timestamp()) == pytest.approx(30.0)
    assert parse_retry_after(format_datetime(now - timedelta(hours=1), usegmt=True),
                             now=now.timestamp()) == 0.0
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None
    assert parse_retry_after("\u00b2") is None  # a digit, not a number: int() would raise


def test_backoff_has_full_jitter_under_an_exponential_cap():
    policy = RetryPolicy(max_retries=8, max_time=1e9, base=0.5, cap=4.0, rng=random.Random(1))
    for n in range(8):
        waits = [policy.delay(n, 0.0) for _ in range(300)]
        ceiling = min(4.0, 0.5 * 2 ** n)
        assert all(0.0 <= w <= ceiling for w in waits)
        # full jitter: the waits spread over the whole range, not around one value
        assert min(waits) < ceiling * 0.1 and max(waits) > ceiling * 0.9


def test_retry_gives_up_on_count_time_and_honours_retry_after():
    policy = RetryPolicy(max_retries=3, max_time=10.0, rng=random.Random(2))
    assert policy.delay(2, 0.0) is not None
    assert policy.delay(3, 0.0) is None  # three retries made: no fourth
    assert policy.delay(0, 0.0, retry_after=4.0) == 4.0
    assert policy.delay(0, 7.0, retry_after=4.0) is None  # would end past max_time


def test_token_bucket_holds_the_rate_and_pauses():
    bucket = TokenBucket(10.0)
    now, granted = 0.0, 0
    while now < 10.0:
        wait = bucket.take(now)
        if wait == 0:
            granted += 1
        else:
            assert wait <= 0.1 + 1e-9
            now += wait
    assert 100 <= granted <= 100 + bucket.burst
    bucket.pause_until(now + 5)
    assert bucket.take(now) == pytest.approx(5.0)
    assert TokenBucket(UNLIMITED).take(0.0) == 0.0


def test_token_bucket_saves_up_at_most_its_burst():
    bucket = TokenBucket(100.0)
    bucket.take(0.0)
    granted = 0
    while bucket.take(3600.0) == 0:  # an hour idle
        granted += 1
    assert granted == bucket.burst == 10


def test_pace_replays_the_log_timeline():
    pace = Pace.parse("realtime")
    assert pace.due(1000.0, now=50.0) == 50.0
    assert pace.due(1030.0, now=51.0) == 80.0  # 30 s later in the log
    assert pace.due(990.0, now=52.0) == 40.0  # logged out of order: due at once
    fast = Pace.parse("10x")
    fast.due(0.0, now=0.0)
    assert fast.due(60.0, now=1.0) == 6.0
    assert Pace.parse("0.5x").factor == 0.5
    assert Pace.parse("max").due(1e9, now=3.0) == 3.0
    assert Pace.parse("realtime").due(None, now=4.0) == 4.0
    for bad in ("fast", "0x", "-2x", "x"):
        with pytest.raises(ValueError):
            Pace.parse(bad)


def test_throughput_tracks_the_recent_rate():
    meter = Throughput(span=100)
    assert meter.rate == 0.0
    for i in range(1000):
        meter.add(i / 100)  # 100 a second for 10 s...
    assert meter.rate == pytest.approx(100)
    for i in range(100):
        meter.add(10 + i / 10)  # ...then 10 a second
    assert meter.rate == pytest.approx(10)


def test_visitor_queues_one_out_per_visitor_in_order():
    q: VisitorQueues[str] = VisitorQueues()
    for job in ("a1", "b1", "a2", "a3", "b2"):
        q.add(job[0], job)
    assert [j for _, j in q.ready] == ["a1", "b1"]
    out = [q.ready.popleft(), q.ready.popleft()]
    assert not q.ready  # a2 waits for a1, b2 for b1
    q.done("b")
    assert [j for _, j in q.ready] == ["b2"]
    q.ready.popleft()
    q.done("a")
    assert [j for _, j in q.ready] == ["a2"]
    assert q.pending == 3 and out


def test_visitor_queues_hold_and_drain():
    q: VisitorQueues[str] = VisitorQueues()
    for job in ("a1", "a2", "a3", "b1", "b2", "c1"):
        q.add(job[0], job)
    q.ready.popleft()  # a1 out
    assert q.hold("a") == ["a2", "a3"]
    assert not q.add("a", "a4")  # a later event of a held visitor
    q.ready.popleft()  # b1 out
    assert sorted(q.drain()) == ["b2", "c1"]
    assert q.pending == 1  # b1, still out
    q.done("b")
    assert q.pending == 0 and not q.ready


def test_drop_monitor_flags_a_jump_not_a_steady_share():
    monitor = DropMonitor(window=100)
    verdicts = []
    for i in range(300):  # steady 10% drops (bots): never a jump
        verdict = monitor.observe("a.com", i % 10 == 0)
        if verdict:
            verdicts.append(verdict.jump)
    assert verdicts == [False, False, False]
    jumps = [monitor.observe("a.com", i % 2 == 0) for i in range(100)]  # 50% now
    assert jumps[-1].jump and jumps[-1].share == 0.5 and jumps[-1].usual == pytest.approx(0.1)
    steady = DropMonitor(window=WINDOW)
    assert not any(v and v.jump for v in (steady.observe("b.com", True)
                                          for _ in range(3 * WINDOW)))


def test_header_lines_keep_log_bytes_and_refuse_injection():
    lines = header_lines({"User-Agent": "caf\udce9 \u00e9", "X-Forwarded-For": "1.2.3.4",
                          "Referer": "a\r\nX-Evil: 1", "X-Empty": ""})
    assert lines[0] == b"User-Agent: caf\xe9 \xc3\xa9"  # invalid UTF-8 goes out as it came in
    assert lines[1] == b"X-Forwarded-For: 1.2.3.4"
    assert lines[2] == b"Referer: a  X-Evil: 1"
    assert lines[3] == b"X-Empty;"
    assert lines[-1] == b"Expect:"


def test_header_lines_of_values_seen_before_are_encoded_alike():
    # Encoded lines are remembered per (name, value): a name's line is never another's.
    first = header_lines({"User-Agent": "Bot\r\n1", "X-Forwarded-For": "Bot\r\n1"})
    again = header_lines({"X-Forwarded-For": "9.9.9.9", "User-Agent": "Bot\r\n1"})
    assert first[:2] == [b"User-Agent: Bot  1", b"X-Forwarded-For: Bot  1"]
    assert again[:2] == [b"X-Forwarded-For: 9.9.9.9", b"User-Agent: Bot  1"]


def test_response_header_lookup():
    response = Response(202, headers=b"HTTP/1.1 202 Accepted\r\nX-Plausible-Dropped: 1\r\n"
                                     b"retry-after: 5\r\n\r\n")
    assert response.header("x-plausible-dropped") == "1"
    assert response.header("Retry-After") == "5"
    assert response.header("location") is None
    assert Response(None, error="Connection refused").describe() == "Connection refused"
    assert Response(404, body=b'{"a":1}').describe() == 'HTTP 404: {"a":1}'


def test_base_url_and_default_rate():
    assert base_url(" https://plausible.example.com/ ") == "https://plausible.example.com"
    assert base_url("https://x.example/plausible/api/event") == "https://x.example/plausible"
    for bad in ("plausible.example.com", "ftp://x", "https://"):
        with pytest.raises(ValueError):
            base_url(bad)
    assert default_rate("https://plausible.io") == PLAUSIBLE_CLOUD_RATE
    assert default_rate("https://eu.plausible.io") == PLAUSIBLE_CLOUD_RATE
    assert default_rate("https://plausible.example.com") == UNLIMITED
    assert default_rate("https://notplausible.io") == UNLIMITED


def test_a_dry_run_takes_events_at_once_as_one_by_one():
    """Without --output, `submit_all` counts them and makes none; with it, each is written as
    `submit` writes it."""
    made = []

    def events():
        for n in range(3):
            made.append(n)
            yield Event("pageview", f"https://example.com/{n}", "example.com", "192.0.2.1",
                        "UA", 1700000000.0 + n)

    quiet = DryRunSink(Counters())
    quiet.submit_all(events(), 3)
    assert quiet.counters.dry_run == 3 and made == []
    one, batch = DryRunSink(Counters(), io.StringIO()), DryRunSink(Counters(), io.StringIO())
    for event in events():
        one.submit(event)
    batch.submit_all(events(), 3)
    assert batch.output.getvalue() == one.output.getvalue() and batch.counters.dry_run == 3
