"""What the export looks up for a session's first event: device, browser and OS from the user
agent, and the location from the address.

device-detector takes ~1 ms per new user agent once warm, and a process warming up spends
~1 s more (the database loads, each regex compiles on first use). Real logs hold thousands of
distinct user agents (tests/bench/genlog.py: ~4,800 in 1M lines). Most are classified before
they get here: the bot filter meets each user agent first, in the parse workers, and while an
`AgentLookup` is open it classifies them fully (UserAgentClassifier.full_kinds), which the main
process learns with the chunk's events. The others (no bot filter, a kind-only row from an
earlier `send` in importer/uacache.py) go to `AgentLookup`'s own worker processes as soon as a
session starts with them, while the main process goes on with the log; by the time the session
is closed the answer is usually there. Those classified by earlier runs are not classified again.
"""
from __future__ import annotations

import multiprocessing
import signal
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import astuple
from functools import lru_cache

from parsers.base import CACHE_LIMIT, remember

from .useragents import UserAgentClassifier, UserAgentInfo, classifier, detect

# Location values Plausible treats as unknown (Plausible.Ingestion.Geolocation).
IGNORED_COUNTRIES = frozenset(("ZZ", "XX", "T1"))

Location = tuple[str, str, int]  # country, region (ISO 3166-2), city (GeoNames id, 0: unknown)


def _detect_rows(uas: list[str]) -> list[tuple]:
    return [astuple(detect(ua)) for ua in uas]


def _ignore_interrupts() -> None:
    # Ctrl-C reaches the whole process group: the main process decides when to stop, and still
    # needs this worker's answers to write what was read.
    signal.signal(signal.SIGINT, signal.SIG_IGN)


class AgentLookup:
    """User agent -> UserAgentInfo (Plausible's device, browser and OS names), classified in
    `workers` background processes (0: in this process, when asked). Each distinct user agent is
    classified once, and not at all if `cache` knows it (from an earlier run: importer/uacache.py);
    `cache` learns the answers."""

    CHUNK = 8  # user agents per task: small, so answers come back soon after they are asked

    def __init__(self, workers: int = 2, cache: UserAgentClassifier = classifier) -> None:
        self.workers = workers
        self.cache = cache
        # The bot filter classifies each user agent before it gets here (in the parse
        # workers, forked later): fully, so that most are known when asked for.
        cache.full_kinds = True
        # What `found` answered lately (one lookup, not a digest and a probe, per session);
        # `cache` has the rest.
        self._known: dict[str, UserAgentInfo] = {}
        # user agent -> (its chunk's answer, the chunk), None until the chunk is sent
        self._asked: dict[str, tuple[Future, list[str]] | None] = {}
        self._chunk: list[str] = []
        self._pool: ProcessPoolExecutor | None = None

    def found(self, ua: str) -> UserAgentInfo | None:
        """The classification of `ua` if it is at hand: classified here, or known to `cache`."""
        info = self._known.get(ua)
        if info is None:
            info = self.cache.known(ua)
            if info is not None:
                remember(self._known, ua, info)
        return info

    def want(self, ua: str) -> None:
        """A session starts with `ua`: have it classified in the background if it is new."""
        if ua in self._asked or self.found(ua) is not None:
            return
        self._asked[ua] = None
        self._chunk.append(ua)
        if len(self._chunk) >= self.CHUNK:
            self._send()

    def _send(self) -> None:
        chunk, self._chunk = self._chunk, []
        if not chunk:
            return
        if not self.workers:
            self._store(chunk, _detect_rows(chunk))
            return
        if self._pool is None:
            context = multiprocessing.get_context(
                "fork" if "fork" in multiprocessing.get_all_start_methods() else None)
            self._pool = ProcessPoolExecutor(self.workers, mp_context=context,
                                             initializer=_ignore_interrupts)
        sent = (self._pool.submit(_detect_rows, chunk), chunk)
        for ua in chunk:
            self._asked[ua] = sent

    def _store(self, chunk: list[str], rows: list[tuple]) -> None:
        for ua, row in zip(chunk, rows, strict=True):
            info = remember(self._known, ua, UserAgentInfo(*row))
            self.cache.remember(ua, info)
            self._asked.pop(ua, None)

    def ready(self, ua: str) -> bool:
        """Would `get(ua)` answer without waiting? (Sends its chunk if still being filled.)"""
        if ua in self._asked and self._asked[ua] is None:
            self._send()
        if self.found(ua) is not None:
            return True
        sent = self._asked.get(ua)
        return sent is not None and sent[0].done()

    def get(self, ua: str) -> UserAgentInfo:
        """The classification of a user agent given to `want` (waits for it if need be)."""
        info = self.found(ua)
        if info is not None:
            return info
        self.want(ua)  # if it was not given yet
        if self._asked.get(ua, ()) is None:
            self._send()
        sent = self._asked.get(ua)
        if sent is not None:
            future, chunk = sent
            self._store(chunk, future.result())
        # Stored in `cache` too: `_known` may have been emptied by a later one of its chunk.
        return self.found(ua)

    def close(self) -> None:
        self.cache.full_kinds = False
        if self._pool is not None:
            self._pool.shutdown(cancel_futures=True)
            self._pool = None


class GeoIp:
    """Country, region and city of an address from a GeoLite2 / DB-IP City or Country .mmdb,
    as Plausible's Geolocation stores them (its city overrides for a few districts are not
    applied)."""

    def __init__(self, path: str) -> None:
        import maxminddb

        self.reader = maxminddb.open_database(path)
        self.lookup = lru_cache(maxsize=CACHE_LIMIT)(self._lookup)

    def _lookup(self, ip: str) -> Location | None:
        try:
            found = self.reader.get(ip)
        except ValueError:  # not an address
            return None
        country = ((found or {}).get("country") or {}).get("iso_code")
        if not country or country in IGNORED_COUNTRIES:
            return None
        subdivisions = found.get("subdivisions") or []
        region = f"{country}-{subdivisions[0]['iso_code']}" if subdivisions else ""
        city = (found.get("city") or {}).get("geoname_id") or 0
        return country, region, city

    def close(self) -> None:
        self.reader.close()
