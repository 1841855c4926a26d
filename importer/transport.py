"""HTTP for the Events API: libcurl's multi interface through pycurl.

Chosen by measurement (tests/bench/bench_delivery.py, README): one Python thread driving a
CurlMulti keeps a hundred requests in flight and posts tens of thousands of small JSON bodies a
second to a local server, several times what requests, urllib3 or aiohttp manage in one process,
because the HTTP work runs in C without the GIL and Python only hands over bodies and collects
status codes. The same loop waits for a remote server's answers concurrently, which is what hides
its round-trip time. libcurl also brings HTTP/2 (multiplexed) over TLS, proxies from the usual
environment variables and the system's CA store.
"""
from __future__ import annotations

import io
import select
from dataclasses import dataclass
from typing import Any

import pycurl

from parsers.base import remember

ERROR_BODY_BYTES = 2000  # of an error answer, kept for the dead-letter file and messages


@dataclass(slots=True)
class Response:
    status: int | None  # None: no HTTP answer (refused, reset, timed out)
    error: str = ""  # libcurl's message when status is None
    headers: bytes = b""  # the raw header block, for the few headers anyone asks about
    body: bytes = b""  # error answers and GETs only; a 202's "ok" is not kept

    def header(self, name: str) -> str | None:
        """The last value of header `name` (case-insensitive), or None."""
        wanted = name.lower().encode("ascii") + b":"
        if wanted not in self.headers.lower():
            return None
        value = None
        for line in self.headers.split(b"\r\n"):
            if line.lower().startswith(wanted):
                value = line[len(wanted):].strip().decode("latin-1")
        return value

    def describe(self) -> str:
        """One line for messages: 'HTTP 404: {...}' or the connection error."""
        if self.status is None:
            return self.error
        text = self.body[:200].decode("utf-8", "replace").replace("\n", " ").strip()
        return f"HTTP {self.status}" + (f": {text}" if text else "")


def header_lines(headers: dict[str, str]) -> list[bytes]:
    """Request headers as libcurl takes them, each value byte for byte as the log had it.

    Log text keeps undecodable bytes as surrogate escapes; they go back out as the same bytes.
    CR, LF and NUL cannot be inside a header, so they become spaces.
    """
    lines = []
    for item in headers.items():
        line = _known_lines.get(item)
        if line is None:
            line = remember(_known_lines, item, _header_line(*item))
        lines.append(line)
    lines.append(b"Expect:")  # no 100-continue round trip before larger bodies
    return lines


# Each event's headers were encoded anew, ~3 us of every event's ~60 in a parse worker; a
# visitor's user agent and address repeat from event to event.
_known_lines: dict[tuple[str, str], bytes] = {}


def _header_line(name: str, value: str) -> bytes:
    raw = value.encode("utf-8", "surrogateescape")
    if b"\r" in raw or b"\n" in raw or b"\0" in raw:
        raw = raw.replace(b"\r", b" ").replace(b"\n", b" ").replace(b"\0", b" ")
    # "Name;" is libcurl's way to send a header with an empty value.
    return name.encode("ascii") + (b": " + raw if raw else b";")


def _common_options(handle: pycurl.Curl, timeout: float) -> None:
    handle.setopt(pycurl.NOSIGNAL, 1)  # libcurl's signal-based DNS timeout is unsafe in threads
    handle.setopt(pycurl.TIMEOUT_MS, max(1, int(timeout * 1000)))
    handle.setopt(pycurl.CONNECTTIMEOUT_MS, max(1, int(min(timeout, 10.0) * 1000)))


def _keep_going(*_progress: int) -> int:
    return 0


def fetch(url: str, timeout: float) -> Response:
    """One GET, blocking (the health check); redirects are not followed but reported."""
    handle = pycurl.Curl()
    body, headers = io.BytesIO(), io.BytesIO()
    try:
        _common_options(handle, timeout)
        handle.setopt(pycurl.URL, url)
        handle.setopt(pycurl.WRITEDATA, body)
        handle.setopt(pycurl.WRITEHEADER, headers)
        # A progress callback runs Python now and then while libcurl waits: that is when a
        # Ctrl-C (KeyboardInterrupt) can surface, at once instead of after the timeout.
        handle.setopt(pycurl.NOPROGRESS, 0)
        handle.setopt(pycurl.XFERINFOFUNCTION, _keep_going)
        handle.perform()
        return Response(handle.getinfo(pycurl.RESPONSE_CODE), headers=headers.getvalue(),
                        body=body.getvalue())
    except pycurl.error as exc:
        return Response(None, error=exc.args[-1] or f"curl error {exc.args[0]}")
    finally:
        handle.close()


class CurlTransport:
    """Up to `slots` POSTs to one URL in flight at once, each carrying a caller's `tag`.

    Not thread-safe: one thread calls `post`, `wait` and `cancel_all`. Connections stay open
    between requests (libcurl's connection cache), so a steady stream costs no handshakes.
    """

    def __init__(self, url: str, slots: int, timeout: float) -> None:
        self.url = url
        self._multi = pycurl.CurlMulti()
        self._free = [self._new_handle(timeout) for _ in range(slots)]
        self._busy: set[pycurl.Curl] = set()

    def _new_handle(self, timeout: float) -> pycurl.Curl:
        handle = pycurl.Curl()
        _common_options(handle, timeout)
        handle.setopt(pycurl.URL, self.url)
        handle.body, handle.head = io.BytesIO(), io.BytesIO()
        handle.setopt(pycurl.WRITEDATA, handle.body)
        handle.setopt(pycurl.WRITEHEADER, handle.head)
        handle.tag = None
        return handle

    @property
    def free(self) -> int:
        return len(self._free)

    @property
    def in_flight(self) -> int:
        return len(self._busy)

    def post(self, body: bytes, headers: list[bytes], tag: Any) -> None:
        handle = self._free.pop()
        handle.body.seek(0)
        handle.body.truncate()
        handle.head.seek(0)
        handle.head.truncate()
        handle.setopt(pycurl.POSTFIELDS, body)
        handle.setopt(pycurl.HTTPHEADER, headers)
        handle.tag = tag
        self._multi.add_handle(handle)
        self._busy.add(handle)

    def wait(self, timeout: float, wake_fd: int) -> tuple[list[tuple[Any, Response]], bool]:
        """Answers that arrived, waiting up to `timeout` seconds for the first one; the flag
        says whether `wake_fd` became readable meanwhile (the caller has news)."""
        done = self._collect()
        if done or timeout <= 0:
            return done, False
        curl_timeout = self._multi.timeout()  # libcurl's own next deadline (ms), -1 for none
        if curl_timeout >= 0:
            timeout = min(timeout, curl_timeout / 1000)
        readers, writers, errors = self._multi.fdset()
        readable, _, _ = select.select([*readers, wake_fd], writers, errors, timeout)
        return self._collect(), wake_fd in readable

    def cancel_all(self) -> list[Any]:
        """Abandon every request in flight; returns their tags."""
        tags = []
        for handle in list(self._busy):
            tags.append(self._release(handle))
        return tags

    def close(self) -> None:
        self.cancel_all()
        for handle in self._free:
            handle.close()
        self._free.clear()
        self._multi.close()

    def _release(self, handle: pycurl.Curl) -> Any:
        self._multi.remove_handle(handle)
        self._busy.discard(handle)
        self._free.append(handle)
        tag, handle.tag = handle.tag, None
        return tag

    def _collect(self) -> list[tuple[Any, Response]]:
        self._multi.perform()
        done: list[tuple[Any, Response]] = []
        while True:
            queued, ok, failed = self._multi.info_read()
            for handle in ok:
                done.append(self._answered(handle))
            for handle, errno, message in failed:
                error = message or f"curl error {errno}"
                done.append((self._release(handle), Response(None, error=error)))
            if not queued:
                return done

    def _answered(self, handle: pycurl.Curl) -> tuple[Any, Response]:
        status = handle.getinfo(pycurl.RESPONSE_CODE)
        body = b"" if 200 <= status < 300 else handle.body.getvalue()[:ERROR_BODY_BYTES]
        response = Response(status, headers=handle.head.getvalue(), body=body)
        return self._release(handle), response
