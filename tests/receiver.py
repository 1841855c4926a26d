"""A stand-in for Plausible's Events API on 127.0.0.1, for the test suite and crash/soak runs.

It answers `POST /api/event` and `GET /api/health` as the real server does (the rules are in
tests/plausible_rules.py), records every request, and injects faults on demand:

    with Receiver(domains={"example.com"}) as rx:
        rx.faults.next("503:2")         # the next request: 503 with Retry-After: 2
        rx.faults.chance("reset", 0.1)  # after that, each request is reset with probability 0.1
        ...post to f"{rx.url}/api/event"...
        assert rx.events == [...]       # bodies accepted for at least one site, in arrival order

Standalone, serving until killed (prints its base URL, then appends each accepted event to
the --record file as one flushed NDJSON line):

    python -m tests.receiver --port 0 --domain example.com --record arrived.ndjson
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import select
import signal
import socket
import socketserver
import struct
import threading
import time
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from email.message import Message
from http.client import responses
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import IO, Any, Self
from urllib.parse import urlsplit

from tests.plausible_rules import BROWSER_UA, Rejection, check_event, client_ip, is_bot, read_params

HEALTH_KEYS = ("postgres", "clickhouse", "sites_cache", "sessions")
DEFAULT_RANDOM_FAULTS = ("500", "502", "503", "reset", "timeout")
MAX_READ = 64_000_000  # a body is read whole (to keep the connection usable) up to this size
_POLL = 0.05  # how often a hanging handler looks whether its client or the receiver stopped
_SERVE_POLL = 0.01  # stop() waits up to this for the accept loop to notice


@dataclass(frozen=True)
class Fault:
    """What the receiver does to one `POST /api/event` instead of its normal answer.

    By default the event is NOT ingested (the fault hits before processing); with
    `processed=True` it is ingested first, so the client fails although the event arrived.
    Spec strings (`Fault.parse`, CLI): "503", "503:5" (Retry-After: 5), "reset",
    "timeout", "timeout:2.5" (hang 2.5 s), "slow:0.2"; a trailing "!" means processed.
    """

    kind: str  # "status" | "reset" | "timeout" | "slow"
    code: int = 0  # "status": the status answered
    retry_after: str | None = None  # "status": the Retry-After header, if any
    seconds: float | None = None  # "slow": delay; "timeout": hang (None: receiver.hang_seconds)
    processed: bool = False

    @classmethod
    def status(
        cls, code: int, retry_after: str | int | None = None, *, processed: bool = False
    ) -> Fault:
        after = None if retry_after is None else str(retry_after)
        return cls("status", code=code, retry_after=after, processed=processed)

    @classmethod
    def reset(cls, *, processed: bool = False) -> Fault:
        """Abort the connection (RST, SO_LINGER 0) without an answer."""
        return cls("reset", processed=processed)

    @classmethod
    def timeout(cls, seconds: float | None = None, *, processed: bool = False) -> Fault:
        """Answer nothing; hang until the client closes, `seconds` pass or the receiver stops."""
        return cls("timeout", seconds=seconds, processed=processed)

    @classmethod
    def slow(cls, seconds: float) -> Fault:
        """Wait `seconds`, then ingest and answer normally."""
        return cls("slow", seconds=seconds, processed=True)

    @classmethod
    def parse(cls, spec: str) -> Fault:
        text = spec.strip()
        processed = text.endswith("!")
        kind, _, arg = text.removesuffix("!").partition(":")
        if kind.isdigit():
            return cls.status(int(kind), arg or None, processed=processed)
        if kind == "reset" and not arg:
            return cls.reset(processed=processed)
        if kind == "timeout":
            return cls.timeout(float(arg) if arg else None, processed=processed)
        if kind == "slow" and arg and not processed:
            return cls.slow(float(arg))
        raise ValueError(f"bad fault spec {spec!r}: try 503, 503:5, reset, timeout:2, slow:0.1")

    def __str__(self) -> str:
        if self.kind == "status":
            text = str(self.code) + (f":{self.retry_after}" if self.retry_after else "")
        else:
            text = self.kind + ("" if self.seconds is None else f":{self.seconds:g}")
        return text + ("!" if self.processed and self.kind != "slow" else "")


def _as_fault(fault: Fault | str) -> Fault:
    return Fault.parse(fault) if isinstance(fault, str) else fault


class FaultPlan:
    """Which `POST /api/event` gets which fault: queued faults first (`next`), then the
    probability rules in the order they were added, each with its own draw from one seeded RNG
    (reproducible for a sequential client). Other paths are never faulted."""

    def __init__(self, seed: int | None = None) -> None:
        self._lock = threading.Lock()
        self._queue: deque[Fault | None] = deque()
        self._rules: list[tuple[float, tuple[Fault, ...]]] = []
        self._rng = random.Random(seed)

    def next(self, fault: Fault | str | None, n: int = 1) -> Self:
        """The next `n` requests (after those already queued) get `fault`; None lets them pass."""
        with self._lock:
            self._queue.extend([None if fault is None else _as_fault(fault)] * n)
        return self

    def chance(self, fault: Fault | str, p: float) -> Self:
        """Each request gets `fault` with probability `p`."""
        return self.random(p, [fault])

    def random(self, p: float, faults: Iterable[Fault | str] = DEFAULT_RANDOM_FAULTS) -> Self:
        """Each request gets, with probability `p`, one of `faults` picked uniformly."""
        with self._lock:
            self._rules.append((p, tuple(_as_fault(f) for f in faults)))
        return self

    def clear(self) -> None:
        with self._lock:
            self._queue.clear()
            self._rules.clear()

    @property
    def queued(self) -> int:
        with self._lock:
            return len(self._queue)

    def draw(self) -> Fault | None:
        with self._lock:
            if self._queue:
                return self._queue.popleft()
            for p, faults in self._rules:
                if self._rng.random() < p:
                    return self._rng.choice(faults)
            return None


@dataclass(eq=False)
class Recorded:
    """One request as the receiver saw and answered it."""

    method: str
    path: str  # as sent, query string included
    headers: Message  # case-insensitive: headers["user-agent"]
    body: bytes
    json: Any  # the body parsed as JSON whatever its Content-Type, or None
    time: float  # time.monotonic() when it had been read
    peer: tuple[str, int]  # the client socket's address: same port = same connection
    client_ip: str | None  # the visitor IP Plausible would use (None: it would crash on it)
    fault: Fault | None = None
    status: int | None = None  # None: never answered (reset, timeout)
    dropped: int = 0  # the x-plausible-dropped count
    errors: dict[str, list[str]] | None = None  # the `errors` of a 400 answer
    domains: list[str] = field(default_factory=list)  # the sites the body named, normalised
    accepted: list[str] = field(default_factory=list)  # ...of which were ingested
    props: dict[str, str] = field(default_factory=dict)  # props as Plausible would store them

    @property
    def user_agent(self) -> str | None:
        value = self.headers.get("User-Agent")
        # http.server decodes header bytes as latin-1; Plausible sees the UTF-8 text.
        return None if value is None else value.encode("latin-1").decode("utf-8", "replace")


class Receiver:
    """Plausible's ingestion endpoint in a background thread. Thread-safe; see module doc."""

    def __init__(
        self,
        domains: Iterable[str] = ("example.com",),
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        rate_limits: Mapping[str, tuple[int, float]] | None = None,
        latency: float = 0.0,
        seed: int | None = None,
        hang_seconds: float = 30.0,
        record: str | os.PathLike[str] | None = None,
    ) -> None:
        self.domains = set(domains)  # the sites that exist; events for others are dropped
        # domain -> (max events, window seconds): a fixed window opened by the first event
        self.rate_limits = dict(rate_limits or {})
        self.latency = latency  # seconds added before every answer
        self.hang_seconds = hang_seconds  # default length of a "timeout" fault
        self.healthy = True  # False: GET /api/health answers 500
        self.faults = FaultPlan(seed)
        self._address = (host, port)
        self._record_path = record
        self._record: IO[str] | None = None
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._requests: list[Recorded] = []
        self._events: list[dict] = []
        self._windows: dict[str, tuple[float, int]] = {}
        self._stopping = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> Self:
        is_bot(BROWSER_UA)  # load the detector's database now, not within a client's timeout
        self._stopping.clear()
        self._server = _Server(self._address, self)
        self._address = self._server.server_address[:2]  # a restart keeps the port (and URL)
        if self._record_path is not None:
            # Open for the receiver's whole life; stop() closes it.
            self._record = open(self._record_path, "a", encoding="utf-8")  # noqa: SIM115
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(_SERVE_POLL,), name="receiver", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and drop open connections (their clients see them closed). `start()`
        serves again on the same port; what was recorded stays."""
        server, self._server = self._server, None
        if server is None:
            return
        self._stopping.set()
        server.shutdown()
        server.close_connections()
        server.server_close()
        self._thread.join()
        with self._lock:
            if self._record is not None:
                self._record.close()
                self._record = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if not self._address[1]:
            raise RuntimeError("receiver never started")
        return self._address[1]

    @property
    def url(self) -> str:
        return f"http://{self._address[0]}:{self.port}"

    @property
    def requests(self) -> list[Recorded]:
        with self._lock:
            return list(self._requests)

    @property
    def events(self) -> list[dict]:
        with self._lock:
            return list(self._events)

    def clear(self) -> None:
        """Forget recorded requests, events and rate-limit windows (not faults or settings)."""
        with self._lock:
            self._requests.clear()
            self._events.clear()
            self._windows.clear()

    def wait_for_events(self, n: int, timeout: float = 5.0) -> bool:
        with self._changed:
            return self._changed.wait_for(lambda: len(self._events) >= n, timeout)

    def wait_for_requests(self, n: int, timeout: float = 5.0) -> bool:
        with self._changed:
            return self._changed.wait_for(lambda: len(self._requests) >= n, timeout)

    # -- serving (handler threads) --

    def _handle(self, handler: _Handler) -> None:
        body = _read_body(handler)
        peer = handler.client_address[:2]
        record = Recorded(
            method=handler.command,
            path=handler.path,
            headers=handler.headers,
            body=body if isinstance(body, bytes) else b"",
            json=_json_or_none(body),
            time=time.monotonic(),
            peer=peer,
            client_ip=client_ip(handler.headers, peer[0]),
        )
        with self._changed:
            self._requests.append(record)
            self._changed.notify_all()
        self._pause(self.latency)
        route = (handler.command, urlsplit(handler.path).path)
        if isinstance(body, int):
            handler.close_connection = True  # the rest of the stream can't be trusted
            self._answer(handler, record, body, {"status": body, "message": responses[body]})
        elif route == ("POST", "/api/event"):
            self._event(handler, record)
        elif route == ("GET", "/api/health"):
            state = "ok" if self.healthy else "error"
            status = 200 if self.healthy else 500
            self._answer(handler, record, status, {key: state for key in HEALTH_KEYS})
        else:
            self._answer(handler, record, 404, {"status": 404, "message": "Not Found"})

    def _event(self, handler: _Handler, record: Recorded) -> None:
        fault = record.fault = self.faults.draw()
        if fault is not None and fault.kind == "slow":
            self._pause(fault.seconds or 0.0)
        elif fault is not None and not fault.processed:
            self._inflict(handler, record, fault)
            return
        status, body, headers = self._ingest(handler, record)
        if fault is not None and fault.kind != "slow":
            self._inflict(handler, record, fault)
            return
        self._answer(handler, record, status, body, headers)

    def _ingest(
        self, handler: _Handler, record: Recorded
    ) -> tuple[int, dict | bytes, dict[str, str]]:
        params = read_params(handler.headers.get("Content-Type"), record.body)
        if isinstance(params, Rejection):
            record.errors = params.body.get("errors")
            return params.status, params.body, {}
        if record.client_ip is None:
            return 500, {"status": 500, "message": "Server error"}, {}
        checked = check_event(params)
        record.domains, record.props = checked.domains, checked.props
        if checked.errors:
            record.errors = checked.errors
            return 400, {"errors": checked.errors}, {}
        user_agent = record.user_agent
        record.accepted = [d for d in checked.domains if self._admit(d, user_agent)]
        record.dropped = len(checked.domains) - len(record.accepted)
        if record.accepted:
            self._keep(record, params)
        return 202, b"ok", {"x-plausible-dropped": str(record.dropped)} if record.dropped else {}

    def _admit(self, domain: str, user_agent: str | None) -> bool:
        """The gatekeeper (known site, ingest limit), then the pipeline's bot step: a bot's
        events count against the limit, as on the server."""
        with self._lock:
            if domain not in self.domains or not self._within_limit(domain):
                return False
        return user_agent is None or not is_bot(user_agent)

    def _within_limit(self, domain: str) -> bool:
        limit = self.rate_limits.get(domain)
        if limit is None:
            return True
        most, window = limit
        now = time.monotonic()
        start, count = self._windows.get(domain, (now, 0))
        if now - start >= window:
            start, count = now, 0
        self._windows[domain] = (start, count + 1)
        return count + 1 <= most

    def _keep(self, record: Recorded, params: dict) -> None:
        with self._changed:
            self._events.append(params)
            if self._record is not None:
                line = {
                    "time": time.time(),
                    "domains": record.accepted,
                    "client_ip": record.client_ip,
                    "user_agent": record.user_agent,
                    "body": params,
                }
                self._record.write(json.dumps(line) + "\n")
                self._record.flush()  # crash tests read it from another process
            self._changed.notify_all()

    def _inflict(self, handler: _Handler, record: Recorded, fault: Fault) -> None:
        if fault.kind == "status":
            headers = {"Retry-After": fault.retry_after} if fault.retry_after else {}
            body = {"status": fault.code, "message": responses.get(fault.code, "Injected fault")}
            self._answer(handler, record, fault.code, body, headers)
            return
        handler.close_connection = True
        if fault.kind == "timeout":
            seconds = self.hang_seconds if fault.seconds is None else fault.seconds
            self._hang(handler.connection, seconds)
            return
        sock = handler.connection
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        handler.rfile.close()  # the makefile holds a reference: close() must really close
        sock.close()  # with linger 0 this sends RST

    def _hang(self, sock: socket.socket, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while not self._stopping.is_set() and (left := deadline - time.monotonic()) > 0:
            readable, _, _ = select.select([sock], [], [], min(left, _POLL))
            if not readable:
                continue
            try:
                if not sock.recv(1, socket.MSG_PEEK):
                    return  # the client gave up and closed: free this thread
            except OSError:
                return
            self._stopping.wait(min(left, _POLL))  # it sent more; keep hanging without spinning

    def _pause(self, seconds: float) -> None:
        if seconds > 0:
            self._stopping.wait(seconds)

    @staticmethod
    def _answer(
        handler: _Handler,
        record: Recorded,
        status: int,
        body: dict | bytes,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        if isinstance(body, dict):
            data = json.dumps(body, separators=(",", ":")).encode()
            content_type = "application/json; charset=utf-8"
        else:
            data, content_type = body, "text/plain; charset=utf-8"
        record.status = status
        try:
            handler.send_response(status)
            handler.send_header("Content-Type", content_type)
            handler.send_header("Content-Length", str(len(data)))
            for name, value in (headers or {}).items():
                handler.send_header(name, value)
            if handler.close_connection:
                handler.send_header("Connection", "close")
            handler.end_headers()
            handler.wfile.write(data)
        except OSError:
            handler.close_connection = True  # the client went away


def _json_or_none(body: bytes | int) -> Any:
    try:
        return json.loads(body) if isinstance(body, bytes) and body else None
    except ValueError:
        return None


def _read_body(handler: _Handler) -> bytes | int:
    """The whole request body, or the status to answer when it can't be read."""
    if "chunked" in handler.headers.get("Transfer-Encoding", "").lower():
        return _read_chunked(handler.rfile)
    length = handler.headers.get("Content-Length", "0").strip()
    if not length.isdigit():
        return 400
    if int(length) > MAX_READ:
        return 413
    return handler.rfile.read(int(length))


def _read_chunked(stream: IO[bytes]) -> bytes | int:
    parts, size = [], 0
    try:
        while chunk := int(stream.readline(1024).split(b";")[0].strip(), 16):
            size += chunk
            if size > MAX_READ:
                return 413
            parts.append(stream.read(chunk))
            stream.readline()
    except ValueError:
        return 400
    while stream.readline(1024).strip():
        pass  # trailer fields
    return b"".join(parts)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, so pooled clients reuse connections
    # Headers and body go out in two writes: with Nagle on, a client's delayed ACK stalls
    # every answer by ~40 ms.
    disable_nagle_algorithm = True
    server: _Server

    def do_GET(self) -> None:
        self.server.receiver._handle(self)

    do_POST = do_PUT = do_PATCH = do_DELETE = do_GET

    def log_message(self, format: str, *args: Any) -> None:
        pass  # tests read Receiver.requests instead


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    # socketserver's default backlog of 5 stalls a client with many connections for a second
    # per refused SYN; a sender at --concurrency 128 must not look slow because of the receiver.
    request_queue_size = 1024

    def __init__(self, address: tuple[str, int], receiver: Receiver) -> None:
        self.receiver = receiver
        self._open: set[socket.socket] = set()
        self._open_lock = threading.Lock()
        super().__init__(address, _Handler)

    def server_bind(self) -> None:
        # HTTPServer's own adds a reverse DNS lookup of the address: slow, and not needed.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = self.server_address[:2]

    def process_request(self, request: socket.socket, client_address: Any) -> None:
        with self._open_lock:
            self._open.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: socket.socket) -> None:
        with self._open_lock:
            self._open.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        """Wake the handler threads that wait on idle keep-alive connections."""
        with self._open_lock:
            sockets = list(self._open)
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m tests.receiver", description="A stand-in for Plausible's Events API."
    )
    add = parser.add_argument
    add("--host", default="127.0.0.1")
    add("--port", type=int, default=0, help="0: any free port; the URL is printed on start")
    add("--domain", action="append", dest="domains", help="a known site (default example.com)")
    add("--record", help="append each accepted event to this NDJSON file")
    add("--latency-ms", type=float, default=0.0, help="added before every answer")
    add("--fault-rate", type=float, default=0.0, help="probability of a fault per event")
    add("--fault-kinds", default=",".join(DEFAULT_RANDOM_FAULTS), help="fault specs to draw")
    add("--seed", type=int, help="seed of the fault draws")
    add("--hang-seconds", type=float, default=30.0, help="longest hang of a timeout fault")
    add("--rate-limit", metavar="N/SECONDS", help="ingest limit of every domain")
    args = parser.parse_args(argv)

    domains = args.domains or ["example.com"]
    limits = {}
    if args.rate_limit:
        most, _, window = args.rate_limit.partition("/")
        limits = {domain: (int(most), float(window)) for domain in domains}
    receiver = Receiver(
        domains,
        host=args.host,
        port=args.port,
        rate_limits=limits,
        latency=args.latency_ms / 1000,
        seed=args.seed,
        hang_seconds=args.hang_seconds,
        record=args.record,
    )
    if args.fault_rate > 0:
        receiver.faults.random(args.fault_rate, args.fault_kinds.split(","))
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    with receiver:
        print(receiver.url, flush=True)
        while not stop.wait(0.5):
            pass


if __name__ == "__main__":
    main()
