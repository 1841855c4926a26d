"""EventsApiSink against the fake Plausible (tests/receiver.py): order, retries, dead letters,
drops, early stop, pacing, stopping. Every test checks that each event ends exactly once."""
from __future__ import annotations

import gc
import json
import threading
import time
import weakref
from collections import Counter, defaultdict
from dataclasses import astuple

import pytest

from importer.delivery import (
    FAILURES_IN_A_ROW,
    DeliveryError,
    EventsApiSink,
    check_health,
)
from importer.events import Event, Origin
from importer.ratelimit import Pace
from importer.retry import RetryPolicy
from importer.summary import Counters
from tests.plausible_rules import BROWSER_UA
from tests.receiver import Fault, Receiver
from tests.servers import free_port

FAST_RETRY = RetryPolicy(max_retries=30, max_time=30.0, base=0.005, cap=0.05)


def event(i: int, visitor: int = 0, domain: str = "example.com", when: float | None = None,
          **fields) -> Event:
    return Event("pageview", f"https://example.com/page/{i}?v={visitor}", domain,
                 f"198.51.100.{visitor}", BROWSER_UA, time.time() if when is None else when,
                 origin=Origin("test.log", i, i * 100), **fields)


class Run:
    """A sink plus the record of its on_done calls, for the exactly-once checks."""

    def __init__(self, url: str, **options) -> None:
        self.counters = Counters()
        self.outcomes: dict[int, list[str]] = defaultdict(list)
        self.lock = threading.Lock()
        self.logged: list[str] = []
        options.setdefault("retry", FAST_RETRY)
        self.sink = EventsApiSink(url, self.counters, on_done=self._done,
                                  log=self.logged.append, **options)

    def _done(self, outcomes: list[tuple[Event, str]]) -> None:
        with self.lock:
            for ev, outcome in outcomes:
                self.outcomes[ev.origin.lineno].append(outcome)

    def send(self, events: list[Event]) -> Run:
        for ev in events:
            self.counters.events += 1
            self.sink.submit(ev)
        return self

    def close(self) -> Run:
        self.sink.close()
        c = self.counters
        assert len(self.outcomes) == c.events, "on_done for every event (line numbers unique)"
        assert all(len(v) == 1 for v in self.outcomes.values()), "on_done once per event"
        assert c.sent + c.dead_lettered + c.undelivered == c.events
        tally = Counter(v[0] for v in self.outcomes.values())
        assert tally == {k: n for k, n in (("sent", c.sent), ("dead_lettered", c.dead_lettered),
                                           ("undelivered", c.undelivered)) if n}
        return self


def arrivals_by_visitor(rx: Receiver) -> dict[str, list[int]]:
    seen: dict[str, list[int]] = defaultdict(list)
    for body in rx.events:
        page, visitor = body["url"].rsplit("/", 1)[1].split("?v=")
        seen[visitor].append(int(page))
    return seen


def test_every_visitors_order_holds_under_concurrency_and_faults():
    with Receiver(seed=7, hang_seconds=1.0) as rx:
        # Faults before processing (lost), and after (the server has it, the client doesn't
        # know): a retry then sends it twice, which must still not reorder anything.
        rx.faults.random(0.25, ["500", "502", "503", "reset", "timeout:0.3", "500!", "reset!"])
        visitors, per_visitor = 24, 12
        events = [event(i * visitors + v, visitor=v) for i in range(per_visitor)
                  for v in range(visitors)]
        for n, ev in enumerate(events):  # line numbers in submission order
            ev.origin = Origin("test.log", n, n)
        run = Run(rx.url, concurrency=8, timeout=0.2).send(events).close()

        assert run.counters.sent == len(events)
        assert run.counters.notes["retried_requests"] > 0
        seen = arrivals_by_visitor(rx)
        assert len(seen) == visitors
        for visitor, pages in seen.items():
            # in log order; a page twice only back to back (a retry of a processed request)
            assert pages == sorted(pages), f"visitor {visitor} out of order: {pages}"
            assert sorted(set(pages)) == [i * visitors + int(visitor)
                                          for i in range(per_visitor)]
        assert len({r.peer for r in rx.requests}) > 1, "visitors went concurrently"


def test_retry_after_is_waited_out():
    with Receiver() as rx:
        rx.faults.next("429:1")
        Run(rx.url).send([event(0)]).close()
        first, second = rx.requests
        assert first.status == 429 and second.status == 202
        assert second.time - first.time >= 0.9


def test_an_event_that_keeps_failing_is_undelivered_and_holds_back_its_visitor():
    with Receiver() as rx:
        rx.faults.next("503")  # the first request: visitor 1's first event
        run = Run(rx.url, concurrency=1, retry=RetryPolicy(max_retries=0))
        run.send([event(0, visitor=1), event(1, visitor=2), event(2, visitor=1),
                  event(3, visitor=2)]).close()
        assert run.outcomes == {0: ["undelivered"], 1: ["sent"], 2: ["undelivered"],
                                3: ["sent"]}
        # visitor 1's second event was not sent ahead of its first: a rerun sends both in order
        assert arrivals_by_visitor(rx) == {"2": [1, 3]}
        assert any("undelivered" in w for w in run.counters.warnings)


def test_gives_up_after_max_retry_time():
    with Receiver(hang_seconds=5.0) as rx:
        rx.faults.chance("timeout", 1.0)
        started = time.monotonic()
        run = Run(rx.url, timeout=0.2, retry=RetryPolicy(max_retries=100, max_time=0.6,
                                                         base=0.01, cap=0.02))
        run.send([event(0)]).close()
        assert run.outcomes == {0: ["undelivered"]}
        assert len(rx.requests) >= 2 and time.monotonic() - started < 5


def test_rejected_events_go_to_the_dead_letter_file(tmp_path):
    path = tmp_path / "dead.ndjson"
    with Receiver() as rx, open(path, "w", encoding="utf-8") as dead:
        too_long = {"note": "x" * 2500}  # Plausible: values at most 2000 bytes -> 400
        run = Run(rx.url, dead_letter=dead)
        run.send([event(0), event(1, props=too_long), event(2)]).close()
    assert run.outcomes == {0: ["sent"], 1: ["dead_lettered"], 2: ["sent"]}
    [record] = [json.loads(line) for line in path.read_text().splitlines()]
    assert record["status"] == 400
    assert "2000 bytes" in record["error"]
    assert record["origin"] == "test.log:1"
    assert record["event"]["body"]["props"] == too_long
    assert record["event"]["headers"]["X-Forwarded-For"] == "198.51.100.0"
    assert run.counters.dead_lettered == 1
    assert any(reason.startswith("HTTP 400") for reason in run.counters.dead_letter_reasons)


def test_a_systematic_4xx_stops_the_run_early():
    with Receiver() as rx:
        stopped = []
        # a wrong base path: every POST is a 404
        run = Run(rx.url + "/typo", concurrency=4, on_fatal=stopped.append)
        run.send([event(i, visitor=i) for i in range(500)]).close()
        assert stopped and "404" in stopped[0] and "/typo/api/event" in stopped[0]
        assert run.sink.fatal == stopped[0]
        assert len(rx.requests) < FAILURES_IN_A_ROW + 10  # not 500 of them
        assert run.counters.dead_lettered <= FAILURES_IN_A_ROW + 4
        assert run.counters.undelivered >= 500 - len(rx.requests)  # kept for a rerun


def test_a_server_gone_for_good_stops_the_run_early():
    port = free_port()  # nothing listens
    stopped = []
    run = Run(f"http://127.0.0.1:{port}", concurrency=4, on_fatal=stopped.append,
              retry=RetryPolicy(max_retries=1, base=0.001, cap=0.001))
    run.send([event(i, visitor=i) for i in range(300)]).close()
    assert stopped and run.counters.undelivered == 300


def test_server_drops_of_an_event_for_several_sites_are_counted_per_site():
    with Receiver(domains={"a.example", "b.example"}) as rx:
        events = [event(0, domain="a.example,b.example"),  # both known: kept
                  event(1, domain="a.example,unknown.example"),  # one of two dropped
                  event(2, domain="gone.example,unknown.example"),  # both dropped
                  event(3, domain="unknown.example")]
        run = Run(rx.url, concurrency=1).send(events).close()
    c = run.counters
    assert c.sent == 4 and c.dropped_by_server == 3
    assert c.dropped_by_domain == {"a.example or unknown.example": 1, "gone.example": 1,
                                   "unknown.example": 2}


def test_server_drops_are_counted_per_domain_and_a_jump_warned():
    # The site's ingest limit lets 300 events in, then drops the rest: a jump mid-run.
    with Receiver(domains={"example.com"}, rate_limits={"example.com": (300, 60.0)}) as rx:
        events = [event(i, visitor=i % 50) for i in range(600)]
        events += [event(600 + i, domain="unknown.example") for i in range(5)]
        run = Run(rx.url, concurrency=8, adaptive_rate=True).send(events).close()
    c = run.counters
    assert c.sent == 605
    assert c.dropped_by_domain == {"example.com": 300, "unknown.example": 5}
    assert c.dropped_by_server == 305
    assert any("drops 50% of the events for example.com" in m for m in run.logged)
    assert any("slowing down" in m for m in run.logged)
    assert run.sink._bucket.rate < float("inf")


def test_events_older_than_max_age_are_counted_once():
    old = time.time() - 7200
    with Receiver() as rx:
        run = Run(rx.url).send([event(0, when=old), event(1, when=old), event(2)]).close()
        quiet = Run(rx.url, max_age=0).send([event(0, when=old)]).close()
    [warning] = run.counters.warnings
    assert warning.startswith("2 events happened more than 1h before they were sent")
    assert "export" in warning
    assert run.counters.notes["older_than_max_age"] == 2
    assert not quiet.counters.warnings


def test_pace_replays_at_the_logs_pace():
    start = time.time() - 60
    with Receiver() as rx:
        events = [event(i, visitor=i, when=start + 0.4 * i) for i in range(4)]
        Run(rx.url, pace=Pace.parse("2x")).send(events).close()
        times = [r.time for r in rx.requests]
    gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
    assert all(gap >= 0.15 for gap in gaps), gaps  # 0.4 s of log time at 2x: 0.2 s


def test_rate_limit_is_never_exceeded():
    with Receiver() as rx:
        Run(rx.url, rate=40.0).send([event(i, visitor=i) for i in range(50)]).close()
        times = sorted(r.time for r in rx.requests)
    burst = 4  # a tenth of a second's worth
    for i, t in enumerate(times):
        in_half_second = sum(1 for u in times[i:] if u - t < 0.5)
        assert in_half_second <= 40 * 0.5 + burst + 1


def test_stop_finishes_or_abandons_in_flight_requests_within_seconds():
    with Receiver(latency=10.0) as rx:  # every answer takes 10 s
        run = Run(rx.url, concurrency=4)
        producer = threading.Thread(target=run.send,
                                    args=([event(i, visitor=i) for i in range(20_000)],))
        producer.start()
        assert rx.wait_for_requests(4)
        time.sleep(0.3)
        assert producer.is_alive(), "back-pressure: submit blocks while nothing is answered"
        started = time.monotonic()
        run.sink.stop()
        producer.join(5)
        assert not producer.is_alive()
        run.close()
        assert time.monotonic() - started < 6  # grace (3 s) plus a margin
    assert run.counters.sent == 0
    assert run.counters.undelivered == run.counters.events


def test_check_health_names_the_url_in_one_line():
    with Receiver() as rx:
        check_health(rx.url)
        problems = {}
        for name, url in (("not plausible", rx.url + "/typo"),
                          ("unreachable", f"http://127.0.0.1:{free_port()}")):
            with pytest.raises(DeliveryError) as caught:
                check_health(url, timeout=2)
            problems[name] = str(caught.value)
        rx.healthy = False
        with pytest.raises(DeliveryError) as caught:
            check_health(rx.url)
        problems["not ready"] = str(caught.value)
    for message in problems.values():
        assert "\n" not in message and "/api/health" in message
    assert "not like a Plausible server" in problems["not plausible"]
    assert "cannot reach" in problems["unreachable"]
    assert "not ready (HTTP 500" in problems["not ready"]


def test_headers_reach_the_server_byte_for_byte():
    with Receiver() as rx:
        ua = BROWSER_UA + " caf\udce9"  # a byte that was not UTF-8 in the log
        Run(rx.url).send([Event("pageview", "https://example.com/", "example.com",
                                "2001:db8::1", ua, time.time(), origin=Origin("t", 0))]).close()
        [request] = rx.requests
    assert request.headers["User-Agent"].encode("latin-1") == BROWSER_UA.encode() + b" caf\xe9"
    assert request.client_ip == "2001:db8::1"
    assert request.json == {"name": "pageview", "url": "https://example.com/",
                            "domain": "example.com"}


@pytest.mark.parametrize("fault", [Fault.status(502), Fault.reset(), Fault.timeout(0.5)])
def test_each_transient_fault_is_retried(fault):
    with Receiver(hang_seconds=1.0) as rx:
        rx.faults.next(fault)
        run = Run(rx.url, timeout=0.2).send([event(0)]).close()
        assert run.outcomes == {0: ["sent"]}
        assert len(rx.events) == 1 and len(rx.requests) == 2


class Tracked(Event):
    __slots__ = ("__weakref__",)  # Event has slots: no weak references without this


def test_a_sink_keeps_no_event_once_it_is_settled():
    """Memory stays flat however many events go through: without on_done (no checkpoint) the
    sink must not hold on to what it sent."""
    with Receiver() as rx:
        counters = Counters()
        sink = EventsApiSink(rx.url, counters, retry=FAST_RETRY)
        events = [Tracked(*astuple(event(i, visitor=i % 7))) for i in range(300)]
        alive = [weakref.ref(ev) for ev in events]
        for ev in events:
            counters.events += 1
            sink.submit(ev)
        del events, ev
        sink.close()
        assert counters.sent == 300
    gc.collect()
    assert sum(ref() is not None for ref in alive) == 0
