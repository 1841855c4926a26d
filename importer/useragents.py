"""Who sent a request, read from its User-Agent the way Plausible's server reads it.

Plausible parses User-Agents with Matomo's device-detector database (Elixir's UAInspector); we use
the `device-detector` PyPI port of the same database. `detect` gives the kind of client (bot,
headless browser, HTTP library, uptime monitor, or a real client) and, for real clients, the
device class, browser and OS exactly as Plausible stores them (lib/plausible/ingestion/event.ex:
`screen_size`, `browser_name`, `browser_version`, `os_name`, `os_version`).

A full parse costs ~1 ms per distinct UA once warm (~13 ms without importer/uaprefilter.py; the
first one ~0.5 s: the database loads) and the library does not cache, so `UserAgentClassifier`
caches per UA, spreads a batch of misses over worker processes, and exports its cache to
importer/uacache.py, which keeps it between runs. The library (importer/uadetect.py) is
imported only when a user agent is new.
"""
from __future__ import annotations

import hashlib
import importlib.util
import multiprocessing
import re
import weakref
from collections.abc import Callable, Hashable, Iterable, Mapping
from concurrent.futures import ProcessPoolExecutor
from dataclasses import astuple, dataclass, fields
from itertools import repeat

KINDS = frozenset(("bot", "headless", "library", "monitor", ""))


def _library_version() -> str:
    """device_detector.__version__, read without importing the library: a run whose user
    agents are all known from earlier runs never imports it."""
    spec = importlib.util.find_spec("device_detector")
    with open(spec.origin, encoding="utf-8") as f:
        return re.search(r"""__version__ = ['"]([^'"]+)""", f.read())[1]


# Bump the leading number when what `detect` returns changes; a saved cache with another version
# is discarded (importer/uacache.py keeps this string next to the classifications).
CACHE_VERSION = f"1/device-detector-{_library_version()}"


@dataclass(frozen=True, slots=True)
class UserAgentInfo:
    """One User-Agent, classified. Empty strings mean unknown, as in Plausible's CSV files."""

    kind: str = ""  # "bot", "headless", "library", "monitor", or "" for a normal client
    device: str = ""  # "Mobile", "Tablet", "Desktop" or ""
    browser: str = ""
    browser_version: str = ""  # major.minor
    os: str = ""
    os_version: str = ""  # major.minor

    @property
    def plausible_drops(self) -> bool:
        """Plausible's server would drop an event with this UA (still answering 202)."""
        return self.kind in ("bot", "headless")


N_FIELDS = len(fields(UserAgentInfo))
UNKNOWN = UserAgentInfo()
BOT = UserAgentInfo(kind="bot")  # Matomo stops at a bot and reports nothing else about it

def detect(ua: str) -> UserAgentInfo:
    """Classify one User-Agent (uncached: ~1 ms; the first call loads the database, ~0.5 s).
    An empty UA is unknown, not a bot."""
    if not ua:
        return UNKNOWN
    from .uadetect import detect as full_detect  # device-detector only when a UA is new

    return full_detect(ua)


def detect_kind(ua: str) -> str:
    """`detect(ua).kind` for ~1/3 of the cost: skips the OS and device databases."""
    if not ua:
        return ""
    from .uadetect import detect_kind as kind_only

    return kind_only(ua)


def preload() -> None:
    """Load device-detector, its database and importer/uaprefilter.py's index, and compile
    what common user agents need: before forking processes that will classify user agents, so
    that they share all that instead of each loading it (~1 s; ~5 s more the first time on a
    machine, when the index is built)."""
    from .uadetect import warm_up

    warm_up()


def ua_key(ua: str) -> str:
    """The default persistence key: a short stable digest instead of a UA of up to kilobytes."""
    return hashlib.blake2b(ua.encode("utf-8", "surrogatepass"), digest_size=16).hexdigest()


def _detect_rows(detect_fn: Callable[[str], UserAgentInfo], uas: list[str]) -> list[tuple]:
    return [astuple(detect_fn(ua)) for ua in uas]


class UserAgentClassifier:
    """`detect` with a per-UA cache, parallel batches and a persistable cache.

    `classify_many` forks `workers` processes the first time a batch has more than
    `min_parallel` misses and keeps them (warm) until `close()` or the end of a `with` block.
    `detect_fn` must then be a module-level function (it is pickled by name).
    `key` maps a UA to the key used by `export_cache` / `import_cache` (default `ua_key`).
    """

    CHUNK = 16  # UAs per task sent to a worker: ~0.2 s of work, small tail imbalance

    def __init__(
        self,
        *,
        detect_fn: Callable[[str], UserAgentInfo] = detect,
        workers: int = 2,
        min_parallel: int = 50,
        key: Callable[[str], Hashable] = ua_key,
    ) -> None:
        self._detect = detect_fn
        self.workers = workers
        self.min_parallel = min_parallel
        self._key = key
        self._cache: dict[str, UserAgentInfo] = {}
        self._stored: dict[Hashable, tuple] = {}  # imported rows, not yet asked for
        self._kinds: dict[str, str | UserAgentInfo] = {}  # see `kinds`
        self.full_kinds = False  # see `kind`
        # Called before device-detector is asked about a user agent in `kind`: parse workers
        # take in what the others found out meanwhile (importer/parallel.py).
        self.on_miss: Callable[[], None] | None = None
        self._pool: ProcessPoolExecutor | None = None
        self._shutdown: weakref.finalize | None = None  # stops the pool, at most once

    def known(self, ua: str) -> UserAgentInfo | None:
        """The classification of `ua` if it is known (found here, or imported), else None."""
        info = self._cache.get(ua)
        if info is None:
            found = self._kinds.get(ua)
            if isinstance(found, UserAgentInfo):  # classified fully by `kind`
                return found
            if self._stored:
                key = self._key(ua)
                row = self._stored.get(key)
                if row is not None and len(row) == N_FIELDS:  # not a kind-only row
                    del self._stored[key]
                    info = self._cache[ua] = UserAgentInfo(*row)
        return info

    def is_new(self, ua: str) -> bool:
        """Whether classifying `ua` takes device-detector: neither found out here nor known
        from an earlier run (nor empty)."""
        if not ua or ua in self._cache or ua in self._kinds:
            return False
        return not self._stored or self._key(ua) not in self._stored

    def remember(self, ua: str, info: UserAgentInfo) -> None:
        """A classification made elsewhere (importer/lookups.py's workers)."""
        self._cache[ua] = info

    def classify(self, ua: str) -> UserAgentInfo:
        info = self.known(ua)
        if info is None:
            info = self._cache[ua] = self._detect(ua)
        return info

    def kind(self, ua: str) -> str:
        """Only the kind (what a filter needs when sending): ~0.35 ms per new UA instead of
        ~1. With `full_kinds`, the full classification all the same: an export needs it
        anyway, and this way it is made once, where the user agent is first met (a parse
        worker; it shares `kinds`), not again in importer/lookups.py's workers."""
        info = self._cache.get(ua)
        if info is not None:
            return info.kind
        found = self._kinds.get(ua)
        if found is None:
            row = self._stored.pop(self._key(ua), None) if self._stored else None
            if row is not None:
                found = row[0] if len(row) != N_FIELDS else UserAgentInfo(*row)
            else:
                if self.on_miss is not None:
                    self.on_miss()
                    found = self._kinds.get(ua)
                if found is None:
                    found = self._detect(ua) if self.full_kinds else detect_kind(ua)
            # Also when imported: parse workers pass it on to the main process, which then
            # counts it as used when the cache is saved.
            self._kinds[ua] = found
        return found if isinstance(found, str) else found.kind

    @property
    def kinds(self) -> dict[str, str | UserAgentInfo]:
        """UA -> its kind, or its UserAgentInfo where a full one was made or imported: shared
        as is by parse workers (importer/parallel.py) so that one worker's findings spare the
        others the same lookups."""
        return self._kinds

    def classify_many(self, uas: Iterable[str]) -> dict[str, UserAgentInfo]:
        """Classify every distinct UA; more than `min_parallel` misses go to worker processes."""
        wanted = dict.fromkeys(uas)
        misses = [ua for ua in wanted if self.known(ua) is None]
        if self.workers > 1 and len(misses) > self.min_parallel:
            self._classify_in_pool(misses)
        else:
            for ua in misses:
                self.classify(ua)
        return {ua: self._cache[ua] for ua in wanted}

    def _classify_in_pool(self, misses: list[str]) -> None:
        if self._pool is None:
            # Load the database here first: workers forked afterwards inherit it (~3 s each).
            self.classify(misses.pop())
            self._pool = ProcessPoolExecutor(self.workers, mp_context=_fork_context())
            # Stop the workers with the classifier: in Python 3.11 a pool left to the garbage
            # collector races interpreter exit ("Bad file descriptor" at exit).
            self._shutdown = weakref.finalize(self, self._pool.shutdown)
        chunks = [misses[i : i + self.CHUNK] for i in range(0, len(misses), self.CHUNK)]
        results = self._pool.map(_detect_rows, repeat(self._detect), chunks)
        for chunk, rows in zip(chunks, results, strict=True):
            for ua, row in zip(chunk, rows, strict=True):
                self._cache[ua] = UserAgentInfo(*row)

    def close(self) -> None:
        """Stop the worker processes (they are kept between batches so they stay warm)."""
        if self._shutdown is not None:
            self._shutdown()
            self._pool = self._shutdown = None

    def __enter__(self) -> UserAgentClassifier:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def export_cache(self) -> dict[Hashable, tuple]:
        """What this classifier found out or used, as {key(ua): row}: the UserAgentInfo
        fields, or just (kind,) where only the kind was needed. Imported rows never asked for
        are left out: the store they came from still has them."""
        key = self._key
        rows = {key(ua): (found,) if isinstance(found, str) else astuple(found)
                for ua, found in self._kinds.items() if ua not in self._cache}
        rows.update((key(ua), astuple(info)) for ua, info in self._cache.items())
        return rows

    def import_cache(
        self, items: Mapping[Hashable, tuple] | Iterable[tuple[Hashable, tuple]]
    ) -> None:
        """Take back what `export_cache` gave (same `key`, same CACHE_VERSION)."""
        pairs = items.items() if isinstance(items, Mapping) else items
        for key, row in pairs:
            valid = len(row) in (1, N_FIELDS) and all(isinstance(v, str) for v in row)
            if not valid or row[0] not in KINDS:
                raise ValueError(f"not a cached UserAgentInfo: {row!r}")
            self._stored[key] = tuple(row)

    def use_store(self, key: Callable[[str], Hashable],
                  rows: Iterable[tuple[Hashable, tuple]]) -> None:
        """Know user agents by `key` from now on, and import `rows` (earlier runs' findings)."""
        self._key = key
        self._stored = {}
        self.import_cache(rows)


def _fork_context() -> multiprocessing.context.BaseContext | None:
    # Fork shares the parent's loaded database; spawn/forkserver would reload it per worker.
    # The workers only run device-detector's pure-Python parsing, so forking a process that has
    # other threads (delivery) is safe here.
    if "fork" in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("fork")
    return None


# The process-wide classifier: use it so every stage shares one cache.
classifier = UserAgentClassifier()
