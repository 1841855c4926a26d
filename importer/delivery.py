"""Outlet A: deliver events to Plausible's Events API.

Order per visitor is what Plausible builds sessions from, so each visitor's events go one after
another, in log order, while different visitors go concurrently: a visitor is pinned to one
lane (worker) by a hash of its key, and each lane sends sequentially.
"""
from __future__ import annotations

import json
import queue
import threading
import zlib
from dataclasses import dataclass
from typing import IO

import urllib3
from urllib3.util.retry import Retry

from .events import Event
from .summary import Counters


class DeliveryError(Exception):
    """The server cannot take events at all: unreachable, wrong URL, not a Plausible server."""


DEFAULT_RETRY = Retry(
    total=6, connect=6, read=6, status=6, backoff_factor=0.5, backoff_jitter=0.5,
    status_forcelist=(429, 500, 502, 503, 504), allowed_methods=None,
    respect_retry_after_header=True, raise_on_status=False)


def event_endpoint(base_url: str) -> str:
    return base_url.rstrip("/") + "/api/event"


def check_health(base_url: str, timeout: float = 10.0) -> None:
    """GET /api/health; a clear one-line error unless it answers like Plausible."""
    url = base_url.rstrip("/") + "/api/health"
    http = urllib3.PoolManager(retries=Retry(total=2, backoff_factor=0.2))
    try:
        response = http.request("GET", url, timeout=timeout)
    except urllib3.exceptions.HTTPError as exc:
        raise DeliveryError(f"{base_url}: cannot reach the server ({exc.__class__.__name__})") \
            from None
    try:
        body = json.loads(response.data or b"null")
    except ValueError:
        body = None
    if not isinstance(body, dict) or "clickhouse" not in body:
        raise DeliveryError(
            f"{url} answered {response.status} but not like a Plausible server; "
            "check --url (the server's base URL, e.g. https://plausible.example.com)")
    if response.status != 200:
        raise DeliveryError(f"{url}: the server is not ready (HTTP {response.status}: {body})")


@dataclass
class Outcome:
    status: int | None  # None: no answer after retries
    dropped: int = 0
    body: str = ""


class EventsApiSink:
    """Sends events with `concurrency` lanes; accounts every event in `counters`."""

    def __init__(self, base_url: str, counters: Counters, *, concurrency: int = 8,
                 timeout: float = 10.0, retry: Retry = DEFAULT_RETRY,
                 dead_letter: IO[str] | None = None) -> None:
        self.endpoint = event_endpoint(base_url)
        self.counters = counters
        self.timeout = timeout
        self.dead_letter = dead_letter
        self.http = urllib3.PoolManager(maxsize=concurrency, retries=retry, block=True)
        self.lanes: list[queue.Queue] = [queue.Queue(maxsize=1000) for _ in range(concurrency)]
        self.workers = [threading.Thread(target=self._lane, args=(q,), daemon=True)
                        for q in self.lanes]
        for worker in self.workers:
            worker.start()

    def submit(self, event: Event) -> None:
        key = "\0".join(event.visitor).encode("utf-8", "surrogateescape")
        self.lanes[zlib.crc32(key) % len(self.lanes)].put(event)

    def close(self) -> None:
        for lane in self.lanes:
            lane.put(None)
        for worker in self.workers:
            worker.join()

    def post(self, event: Event) -> Outcome:
        body = json.dumps(event.body(), ensure_ascii=False).encode("utf-8")
        headers = event.headers()
        try:
            response = self.http.request(
                "POST", self.endpoint, body=body, headers=headers, timeout=self.timeout)
        except urllib3.exceptions.HTTPError as exc:
            return Outcome(None, body=f"{exc.__class__.__name__}: {exc}")
        dropped = int(response.headers.get("x-plausible-dropped", "0") or 0)
        return Outcome(response.status, dropped, response.data.decode("utf-8", "replace"))

    def _lane(self, lane: queue.Queue) -> None:
        while True:
            event = lane.get()
            if event is None:
                return
            self._record(event, self.post(event))

    def _record(self, event: Event, outcome: Outcome) -> None:
        c = self.counters
        with c.lock:
            if outcome.status is not None and 200 <= outcome.status < 300:
                c.sent += 1
                if outcome.dropped:
                    c.dropped_by_server += 1
                    c.dropped_by_domain[event.domain] += 1
            elif outcome.status is not None and 400 <= outcome.status < 500:
                c.dead_lettered += 1
                c.dead_letter_reasons[f"HTTP {outcome.status} {outcome.body[:200]}"] += 1
                if self.dead_letter is not None:
                    self.dead_letter.write(json.dumps({
                        "status": outcome.status, "error": outcome.body,
                        "origin": str(event.origin), "event": json.loads(event.to_json_line()),
                    }, ensure_ascii=False) + "\n")
            else:
                c.undelivered += 1
                c.dead_letter_reasons[f"not delivered: {outcome.status or outcome.body[:200]}"] += 1


class DryRunSink:
    """Processes events without sending; `--output` gets each as one inspectable JSON line."""

    def __init__(self, counters: Counters, output: IO[str] | None = None) -> None:
        self.counters = counters
        self.output = output

    def submit(self, event: Event) -> None:
        self.counters.dry_run += 1
        if self.output is not None:
            self.output.write(event.to_json_line() + "\n")

    def close(self) -> None:
        if self.output is not None:
            self.output.flush()
