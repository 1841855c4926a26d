"""Outlet A: deliver events to Plausible's Events API, fast, politely and without losing any.

One sending thread runs everything that touches the network: it takes events from a bounded
inbox (back-pressure to the reader), keeps each visitor's events in order (`VisitorQueues`: a
visitor's next event goes only once the previous one is final), paces them (`Pace`,
`TokenBucket`), keeps up to `concurrency` requests in flight (`CurlTransport`) and decides each
answer's fate (`RetryPolicy`). Every event ends exactly once as "sent", "dead_lettered" or
"undelivered", reported to `on_done` and counted.
"""
from __future__ import annotations

import heapq
import json
import sys
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import IO
from urllib.parse import urlsplit

from .drops import DropMonitor, Judgement
from .events import Event
from .inbox import Inbox
from .ordering import VisitorQueues
from .ratelimit import UNLIMITED, Pace, Throughput, TokenBucket
from .retry import RetryPolicy, Verdict, classify, parse_retry_after
from .summary import Counters
from .transport import CurlTransport, Response, fetch, header_lines

SENT, DEAD_LETTERED, UNDELIVERED = "sent", "dead_lettered", "undelivered"
# Throughput ~ in flight / round trip: 256 / 50 ms = 5,120 events/s at most. One visitor's
# events go one at a time, so fewer are ready than in flight allows: at 128 a server 50 ms away
# got ~1,500-2,100 events/s end to end (bench_send.py), at 256 ~2,400.
DEFAULT_CONCURRENCY = 256
MAX_CONCURRENCY = 512  # select() watches at most 1024 descriptors
# plausible.io is shared, and a site over its ingest limit loses events silently (202 with
# x-plausible-dropped); it publishes no figure, so stay well below anything a live site sends.
PLAUSIBLE_CLOUD_RATE = 50.0
STOP_GRACE_S = 3.0  # after Ctrl-C / SIGTERM, how long requests in flight may still finish
ADAPTIVE_FLOOR = 1.0  # events/s: --adaptive-rate slows down no further
FAILURES_IN_A_ROW = 20  # refused or given up, with no success between: the setup is wrong
HELD = "an earlier event of the same visitor is undelivered (sent after it, it would break order)"
# Final outcomes, (event, "sent" | "dead_lettered" | "undelivered"), reported in batches: the
# sending thread hands over all of one wake-up's answers at once (the checkpoint journals them
# with one write), before any of their visitors' next events can go.
OnDone = Callable[[list[tuple[Event, str]]], None]
_compact_json = json.JSONEncoder(separators=(",", ":")).encode  # one encoder, not one per event


def encode_request(event: Event) -> None:
    """Give `event` its request, body and header lines (`Event.wire`): work the parse workers
    can do ahead (the pipeline's `prepare`), off the sending thread."""
    event.wire = (_compact_json(event.body()).encode(), header_lines(event.headers()))


class DeliveryError(Exception):
    """The server cannot take events at all: unreachable, wrong URL, not a Plausible server."""


def base_url(url: str) -> str:
    """The server's base URL as given to --url: http(s) only, without a trailing /api/event."""
    url = url.strip().rstrip("/")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"expected the server's http:// or https:// URL, not {url!r}")
    for endpoint in ("/api/event", "/api/health"):
        url = url.removesuffix(endpoint)
    return url


def event_endpoint(base: str) -> str:
    return base.rstrip("/") + "/api/event"


def default_rate(base: str) -> float:
    """Events per second when --rate is not given: limited for plausible.io only (see above);
    a self-hosted server is its owner's, and its answers pace the sender anyway."""
    host = (urlsplit(base).hostname or "").lower()
    if host == "plausible.io" or host.endswith(".plausible.io"):
        return PLAUSIBLE_CLOUD_RATE
    return UNLIMITED


def check_health(base: str, timeout: float = 10.0) -> None:
    """GET /api/health; a one-line DeliveryError naming the URL unless Plausible answers ready."""
    url = base.rstrip("/") + "/api/health"
    response = fetch(url, timeout)
    if response.status is None:
        raise DeliveryError(f"cannot reach {url}: {response.error} (check --url)")
    if 300 <= response.status < 400:
        where = response.header("location") or "elsewhere"
        raise DeliveryError(f"{url} redirects to {where}; give that server's base URL as --url")
    try:
        body = json.loads(response.body or b"null")
    except ValueError:
        body = None
    if not isinstance(body, dict) or "clickhouse" not in body:
        raise DeliveryError(
            f"{url} answered HTTP {response.status} but not like a Plausible server; "
            "check --url (the server's base URL, e.g. https://plausible.example.com)")
    if response.status != 200:
        raise DeliveryError(f"{url}: the server is not ready (HTTP {response.status}: "
                            f"{json.dumps(body, separators=(',', ':'))})")


def _duration(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds / size:g}{unit}"
    return f"{seconds:g}s"


def _count_dropped(by_site: Counter[str], domain: str, dropped: int) -> None:
    """Count an answer's `x-plausible-dropped: N` per site: an event for "a.com,b.com" is one
    per listed site, and N says how many of them the server threw away, not which. All of them:
    each site counts one; fewer: they count under "a.com or b.com" (N of them)."""
    sites = [site.strip() for site in domain.split(",") if site.strip()] or [domain]
    if dropped >= len(sites):
        by_site.update(sites)
    else:
        by_site[" or ".join(sites)] += dropped


def _warn(message: str) -> None:
    print(f"plausible-import: warning: {message}", file=sys.stderr, flush=True)


@dataclass(slots=True, eq=False)
class _Job:
    event: Event
    key: Hashable  # the visitor
    due: float  # monotonic time from which it may go (--pace)
    body: bytes = b""  # encoded on the first attempt, reused by retries
    headers: list[bytes] | None = None
    retries: int = 0
    first_try: float = 0.0


class EventsApiSink:
    """Sends submitted events; `close()` returns once every one of them is final."""

    def __init__(self, base: str, counters: Counters, *,
                 concurrency: int = DEFAULT_CONCURRENCY, timeout: float = 10.0,
                 rate: float = UNLIMITED, pace: Pace | None = None,
                 retry: RetryPolicy | None = None, max_age: float = 3600.0,
                 adaptive_rate: bool = False, dead_letter: IO[str] | None = None,
                 on_done: OnDone | None = None, on_fatal: Callable[[str], None] | None = None,
                 log: Callable[[str], None] = _warn) -> None:
        self.endpoint = event_endpoint(base)
        self.counters = counters
        self.max_age = max_age
        self.adaptive_rate = adaptive_rate
        self.dead_letter = dead_letter
        self.on_done = on_done
        self.on_fatal = on_fatal
        self.log = log
        self.fatal: str | None = None  # why the run was stopped early, if it was
        self._pace = pace or Pace()
        self._retry = retry or RetryPolicy()
        self._bucket = TokenBucket(rate)
        self._max_rate = rate
        self._throughput = Throughput()
        self._drops = DropMonitor()
        self._jumped: set[str] = set()
        self._old_events = 0
        self._undelivered_reasons: Counter[str] = Counter()
        self._failures_in_a_row = 0
        self._stop_at: float | None = None  # in-flight requests are abandoned at this time
        self._crash: BaseException | None = None
        self._outcomes: list[tuple[Event, str]] = []  # for on_done, at the next flush
        self._queues: VisitorQueues[_Job] = VisitorQueues()
        self._arrivals: deque[_Job] = deque()  # taken from the inbox, not yet due (--pace)
        self._timers: list[tuple[float, int, _Job]] = []  # retries waiting for their time
        self._timer_seq = 0
        self._capacity = max(4096, 32 * concurrency)  # events held in memory past the inbox
        self._inbox: Inbox[Event] = Inbox(1024)
        self._transport = CurlTransport(self.endpoint, concurrency, timeout)
        self._thread = threading.Thread(target=self._run, name="delivery", daemon=True)
        self._thread.start()

    # -- the reading thread --

    def submit(self, event: Event) -> None:
        if self.max_age and event.time is not None and time.time() - event.time > self.max_age:
            self._old_events += 1
        if not self._inbox.put(event):
            self._count_undelivered("the run was stopped")
            if self.on_done is not None:
                self.on_done([(event, UNDELIVERED)])

    def stop(self) -> None:
        """Stop sending (Ctrl-C, SIGTERM): nothing new goes out, requests in flight get
        STOP_GRACE_S to finish, the rest stays undelivered for a rerun. A second call abandons
        them at once. Safe to call from a signal handler."""
        now = time.monotonic()
        self._stop_at = now if self._stop_at is not None else now + STOP_GRACE_S
        self._inbox.refusing = True
        self._inbox.wake()

    def close(self) -> None:
        self._inbox.close()
        while self._thread.is_alive():
            self._thread.join(0.2)  # a timeout, so signal handlers run meanwhile
        self._inbox.release()
        self._report()
        if self._crash is not None:
            raise RuntimeError("the delivery thread failed") from self._crash

    def _report(self) -> None:
        c = self.counters
        if self._old_events:
            c.notes["older_than_max_age"] += self._old_events
            c.warn(f"{self._old_events:,} events happened more than {_duration(self.max_age)} "
                   "before they were sent, and Plausible records every event at the time it "
                   "arrives: they count as today's traffic. For past traffic use "
                   "`plausible-import export` (CSV import keeps the dates); --max-age 0 turns "
                   "this check off")
        if self._undelivered_reasons:
            reason, n = self._undelivered_reasons.most_common(1)[0]
            c.warn(f"{sum(self._undelivered_reasons.values()):,} events undelivered, a rerun "
                   f"sends them; most often ({n:,}): {reason}")

    # -- the sending thread --

    def _run(self) -> None:
        try:
            self._loop()
        except BaseException as exc:  # a bug: keep the accounting whole, re-raise in close()
            self._crash = exc
            self._stop_at = 0.0
            self._inbox.refusing = True
            self._wind_down(float("inf"))
        finally:
            self._flush()
            self._transport.close()

    def _flush(self) -> None:
        """Report the outcomes settled since the last flush (sending thread)."""
        if self._outcomes and self.on_done is not None:
            outcomes, self._outcomes = self._outcomes, []
            self.on_done(outcomes)

    def _loop(self) -> None:
        inbox, queues, transport = self._inbox, self._queues, self._transport
        while True:
            now = time.monotonic()
            token_wait = 0.0
            if self._stop_at is not None:
                self._wind_down(now)
                if transport.in_flight == 0 and inbox.drained:
                    return
            else:
                self._take_arrivals(now)
                self._admit(now)
                self._release_retries(now)
                token_wait = self._dispatch(now)
                if queues.pending == 0 and not self._arrivals and inbox.drained:
                    return
            timeout = self._next_wake(now, token_wait)
            answers, woken = transport.wait(timeout, inbox.wake_fd)
            if woken:
                inbox.woken()
            now = time.monotonic()
            for tag, response in answers:
                self._answered(tag, response, now)
            self._flush()

    def _take_arrivals(self, now: float) -> None:
        room = self._capacity - self._queues.pending - len(self._arrivals)
        if room > 0:
            due = self._pace.due
            self._arrivals.extend(_Job(e, e.visitor, due(e.time, now))
                                  for e in self._inbox.take(room))

    def _admit(self, now: float) -> None:
        arrivals, queues = self._arrivals, self._queues
        while arrivals and arrivals[0].due <= now:
            job = arrivals.popleft()
            if not queues.add(job.key, job):
                self._undelivered(job.event, HELD)

    def _release_retries(self, now: float) -> None:
        while self._timers and self._timers[0][0] <= now:
            job = heapq.heappop(self._timers)[2]
            self._queues.ready.appendleft((job.key, job))

    def _dispatch(self, now: float) -> float:
        """Send ready jobs while there are free slots and tokens; returns the token wait."""
        ready, transport, bucket = self._queues.ready, self._transport, self._bucket
        while ready and transport.free:
            wait = bucket.take(now)
            if wait > 0:
                return wait
            job = ready.popleft()[1]
            if job.headers is None:
                event = job.event
                if event.wire is None:
                    encode_request(event)
                job.body, job.headers = event.wire
                job.first_try = now
            transport.post(job.body, job.headers, job)
        return 0.0

    def _next_wake(self, now: float, token_wait: float) -> float:
        """Seconds until something is due: a retry, a paced event, a token, the stop deadline.
        Answers and inbox news wake the loop earlier."""
        waits = [1.0]
        if self._timers:
            waits.append(self._timers[0][0] - now)
        if self._stop_at is not None:
            if self._transport.in_flight:
                waits.append(self._stop_at - now)
            return max(0.0, min(waits))  # close() wakes it through the inbox
        if self._queues.ready and self._transport.free:
            waits.append(token_wait)
        if self._arrivals:
            waits.append(self._arrivals[0].due - now)
        elif self._queues.pending < self._capacity and self._inbox.sleep_unless_waiting():
            return 0.0
        return max(0.0, min(waits))

    def _answered(self, job: _Job, response: Response, now: float) -> None:
        verdict = classify(response.status)
        if verdict is Verdict.SENT:
            self._sent(job, response, now)
        elif verdict is Verdict.RETRY:
            self._retry_later(job, response, now)
        elif self.fatal is not None:
            # Once the server refuses everything, an answer says nothing about the event:
            # keep it for the rerun instead of dead-lettering it.
            self._give_up(job, "refused after the run was stopped early", count_failure=False)
        else:
            self._reject(job, response)

    def _sent(self, job: _Job, response: Response, now: float) -> None:
        self._failures_in_a_row = 0
        dropped = response.header("x-plausible-dropped")
        dropped = int(dropped) if dropped and dropped.isdecimal() else 0
        domain = job.event.domain
        c = self.counters
        with c.lock:
            c.sent += 1
            if dropped:
                c.dropped_by_server += 1
                _count_dropped(c.dropped_by_domain, domain, dropped)
        self._settle(job, SENT)
        self._throughput.add(now)
        judgement = self._drops.observe(domain, dropped > 0)
        if judgement is not None:
            self._judge(judgement)

    def _retry_later(self, job: _Job, response: Response, now: float) -> None:
        retry_after = parse_retry_after(response.header("retry-after"))
        if retry_after is not None:
            self._bucket.pause_until(now + retry_after)  # the server asked everyone to wait
        delay = None
        if self._stop_at is None:
            delay = self._retry.delay(job.retries, now - job.first_try, retry_after)
        if delay is None:
            tries = f"{job.retries + 1} attempt" + ("s" if job.retries else "")
            self._give_up(job, f"{response.describe()} (gave up after {tries})")
            return
        job.retries += 1
        self._timer_seq += 1
        heapq.heappush(self._timers, (now + delay, self._timer_seq, job))
        with self.counters.lock:
            self.counters.notes["retried_requests"] += 1

    def _reject(self, job: _Job, response: Response) -> None:
        c = self.counters
        error = response.body.decode("utf-8", "replace")
        with c.lock:
            c.dead_lettered += 1
            c.dead_letter_reasons[f"HTTP {response.status} {error[:200]}"] += 1
        if self.dead_letter is not None:
            record = {
                "status": response.status, "error": error,
                "time": datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
                "origin": None if job.event.origin is None else str(job.event.origin),
                "event": json.loads(job.event.to_json_line()),
            }
            self.dead_letter.write(json.dumps(record) + "\n")  # ASCII: surrogates survive
            self.dead_letter.flush()  # few, and each one already counts as final
        self._settle(job, DEAD_LETTERED)
        self._count_failure(response.describe())

    def _give_up(self, job: _Job, reason: str, count_failure: bool = True) -> None:
        """The job's event stays undelivered, and so do its visitor's later events."""
        self._undelivered(job.event, reason)
        for later in self._queues.hold(job.key):
            self._undelivered(later.event, HELD)
        if count_failure:
            self._count_failure(reason)

    def _count_failure(self, what: str) -> None:
        """A systematic failure (every request refused: a wrong URL, a proxy denying access;
        or the server gone) stops the run rather than failing a million events one by one."""
        self._failures_in_a_row += 1
        if self._failures_in_a_row < FAILURES_IN_A_ROW or self.fatal is not None:
            return
        self.fatal = (f"the last {self._failures_in_a_row} events all failed at {self.endpoint} "
                      f"(last: {what}); stopped early: check --url, --domain and the server, "
                      "then rerun to send the rest")
        if self._stop_at is None:
            self.stop()
        if self.on_fatal is not None:
            self.on_fatal(self.fatal)

    def _settle(self, job: _Job, outcome: str) -> None:
        if self.on_done is not None:  # nobody to tell: keep nothing (memory stays flat)
            self._outcomes.append((job.event, outcome))
        self._queues.done(job.key)

    def _undelivered(self, event: Event, reason: str) -> None:
        """Count one event as undelivered (sending thread)."""
        self._count_undelivered(reason)
        if self.on_done is not None:
            self._outcomes.append((event, UNDELIVERED))

    def _count_undelivered(self, reason: str) -> None:
        c = self.counters
        with c.lock:
            c.undelivered += 1
            self._undelivered_reasons[reason] += 1

    def _judge(self, judgement: Judgement) -> None:
        if judgement.jump:
            domain = judgement.domain
            if domain not in self._jumped:
                self._jumped.add(domain)
                self.log(f"the server now drops {judgement.share:.0%} of the events for "
                         f"{domain} (before: {judgement.usual:.0%}); a site over its ingest "
                         "rate limit is the usual cause: try a lower --rate, or --adaptive-rate")
                self.counters.warn(f"drop share for {domain} jumped to {judgement.share:.0%} "
                                   f"mid-run (was {judgement.usual:.0%})")
            if self.adaptive_rate:
                current = min(self._bucket.rate, self._throughput.rate or UNLIMITED)
                self._bucket.set_rate(max(ADAPTIVE_FLOOR, current / 2))
                self.log(f"--adaptive-rate: slowing down to {self._bucket.rate:,.1f} events/s")
        elif self.adaptive_rate and self._bucket.rate < self._max_rate:
            self._bucket.set_rate(min(self._max_rate, self._bucket.rate * 1.25))

    def _wind_down(self, now: float) -> None:
        """Stopping: everything not in flight stays undelivered; in-flight requests may finish
        until the stop deadline, then they are abandoned (the server may have taken them)."""
        reason = "the run was stopped"
        for job in self._arrivals:
            self._undelivered(job.event, reason)
        self._arrivals.clear()
        for event in self._inbox.take(self._inbox.capacity):
            self._undelivered(event, reason)
        for job in self._queues.drain():
            self._undelivered(job.event, reason)
        for _, _, job in self._timers:
            self._undelivered(job.event, reason)
            self._queues.done(job.key)
        self._timers.clear()
        if self._stop_at is not None and now >= self._stop_at:
            for job in self._transport.cancel_all():
                self._undelivered(job.event, "abandoned in flight when the run was stopped")
                self._queues.done(job.key)


class DryRunSink:
    """Processes events without sending; `--output` gets each as one inspectable JSON line."""

    def __init__(self, counters: Counters, output: IO[str] | None = None) -> None:
        self.counters = counters
        self.output = output

    def submit(self, event: Event) -> None:
        self.counters.dry_run += 1
        if self.output is not None:
            self.output.write(event.to_json_line() + "\n")

    @property
    def counts_only(self) -> bool:
        return self.output is None

    def submit_all(self, events: Iterable[Event], count: int) -> None:
        """`submit` each of `count` events; without --output they are only counted, and
        `events` (which may make them as it goes) is left unread."""
        if self.output is None:
            self.counters.dry_run += count
            return
        for event in events:
            self.submit(event)

    def stop(self) -> None:
        """Nothing is in flight in a dry run."""

    def close(self) -> None:
        if self.output is not None:
            self.output.flush()
