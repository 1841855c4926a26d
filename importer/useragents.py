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
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import ProcessPoolExecutor
from dataclasses import astuple, dataclass, fields
from itertools import repeat

from .digests import DigestMap

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
    """`detect(ua).kind` for a small share of the cost: skips the OS and device databases
    and all of the client but its name and type."""
    if not ua:
        return ""
    from .uadetect import detect_kind as kind_only

    return kind_only(ua)


def preload() -> None:
    """Load device-detector, its database and importer/uaprefilter.py's index, and compile
    what common user agents need (their kinds; all of it with `classifier.full_kinds`): before
    forking processes that will classify user agents, so that they share all that instead of
    each loading it (~0.1 s for kinds, ~0.3 s for all; ~1 s / ~5 s more the first time on
    a machine, when the index is built)."""
    from .uadetect import warm_up

    warm_up(full=classifier.full_kinds)


def ua_key(ua: str) -> bytes:
    """The default key: a short stable digest instead of a UA of up to kilobytes."""
    return hashlib.blake2b(ua.encode("utf-8", "surrogatepass"), digest_size=16).digest()


def _detect_rows(detect_fn: Callable[[str], UserAgentInfo], uas: list[str]) -> list[tuple]:
    return [astuple(detect_fn(ua)) for ua in uas]


Answer = str | UserAgentInfo  # a kind alone (what the bot filter needs), or all of it


class UserAgentClassifier:
    """`detect` with a per-UA cache, parallel batches and a persistable cache.

    `classify_many` forks `workers` processes the first time a batch has more than
    `min_parallel` misses and keeps them (warm) until `close()` or the end of a `with` block.
    `detect_fn` must then be a module-level function (it is pickled by name).
    `key` maps a UA to a 16-byte digest: what the cache knows it by, and what `export_cache` /
    `import_cache` use (default `ua_key`).

    The cache holds no user agent, only its key: a log's distinct user agents grow with it
    (~40,000 in 10M lines of tests/bench/genlog.py's), and each parse worker has its copy.
    """

    CHUNK = 16  # UAs per task sent to a worker: ~0.2 s of work, small tail imbalance

    def __init__(
        self,
        *,
        detect_fn: Callable[[str], UserAgentInfo] = detect,
        workers: int = 2,
        min_parallel: int = 50,
        key: Callable[[str], bytes] = ua_key,
    ) -> None:
        self._detect = detect_fn
        self.workers = workers
        self.min_parallel = min_parallel
        self._key = key
        # key(ua) -> 2 * the number of its answer, + 1 once found out or used in this run
        # (what `export_cache` gives; the others were imported and not asked for).
        self._known = DigestMap()
        self._answers: list[Answer | None] = [None]  # number -> answer (few are distinct)
        self._numbers: dict[Answer, int] = {}
        self.full_kinds = False  # see `kind`
        # (key, answer) found out or first used here since this was last emptied, where other
        # processes take them (importer/parallel.py's parse workers); None: nobody does.
        self.found: list[tuple[bytes, Answer]] | None = None
        # Called before device-detector is asked about a user agent in `kind`: parse workers
        # take in what the others found out meanwhile (importer/parallel.py).
        self.on_miss: Callable[[], None] | None = None
        self._pool: ProcessPoolExecutor | None = None
        self._shutdown: weakref.finalize | None = None  # stops the pool, at most once

    def _answer(self, key: bytes, value: int | None = None) -> Answer | None:
        """What is known about `key` (its number in `_known`, if looked up already), now
        counted as used in this run."""
        if value is None:
            value = self._known.get(key)
        answer = self._answers[value >> 1]
        if value and not value & 1:
            self._known[key] = value | 1
            if self.found is not None:
                self.found.append((key, answer))
        return answer

    def _put(self, key: bytes, answer: Answer, share: bool = True) -> None:
        """Know `answer` for `key`, unless a full classification is known and it is a kind."""
        value = self._known.get(key)
        if isinstance(answer, str) and isinstance(self._answers[value >> 1], UserAgentInfo):
            self._known[key] = value | 1
            return
        self._store(key, answer, share)

    def _store(self, key: bytes, answer: Answer, share: bool = True) -> None:
        """Know `answer` for `key` (found out or used in this run), and pass it on if `share`."""
        self._known[key] = 2 * self._number(answer) + 1
        if share and self.found is not None:
            self.found.append((key, answer))

    def _number(self, answer: Answer) -> int:
        number = self._numbers.get(answer)
        if number is None:
            number = self._numbers[answer] = len(self._answers)
            self._answers.append(answer)
        return number

    def known(self, ua: str) -> UserAgentInfo | None:
        """The classification of `ua` if it is known (found here, or imported), else None."""
        answer = self._answer(self._key(ua))
        return answer if isinstance(answer, UserAgentInfo) else None

    def is_new(self, ua: str) -> bool:
        """Whether classifying `ua` takes device-detector: neither found out here nor known
        from an earlier run (nor empty)."""
        return bool(ua) and not self._known.get(self._key(ua))

    def remember(self, ua: str, info: UserAgentInfo) -> None:
        """A classification made elsewhere (importer/lookups.py's workers)."""
        self._put(self._key(ua), info)

    def learn(self, found: Iterable[tuple[bytes, Answer]]) -> None:
        """What another process found out or used (its `found`): known, and used in this run."""
        for key, answer in found:
            self._put(key, answer, share=False)

    def classify(self, ua: str) -> UserAgentInfo:
        info = self.known(ua)
        if info is None:
            info = self._detect(ua)
            self.remember(ua, info)
        return info

    def kind(self, ua: str) -> str:
        """Only the kind (what a filter needs when sending): ~0.03-0.05 ms per new UA instead
        of ~0.3-1. With `full_kinds`, the full classification all the same: an export needs it
        anyway, and this way it is made once, where the user agent is first met (a parse
        worker; it passes it on in `found`), not again in importer/lookups.py's workers."""
        key = self._key(ua)
        value = self._known.get(key)
        if not value and self.on_miss is not None:
            self.on_miss()
            value = self._known.get(key)
        if value:
            answer = self._answer(key, value)
        else:  # found out here, and so far by nobody else: `_put` without its look-ups
            answer = self._detect(ua) if self.full_kinds else detect_kind(ua)
            self._store(key, answer)
        return answer if isinstance(answer, str) else answer.kind

    def classify_many(self, uas: Iterable[str]) -> dict[str, UserAgentInfo]:
        """Classify every distinct UA; more than `min_parallel` misses go to worker processes."""
        wanted = dict.fromkeys(uas)
        misses = [ua for ua in wanted if self.known(ua) is None]
        if self.workers > 1 and len(misses) > self.min_parallel:
            self._classify_in_pool(misses)
        else:
            for ua in misses:
                self.classify(ua)
        return {ua: self.known(ua) for ua in wanted}

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
                self.remember(ua, UserAgentInfo(*row))

    def close(self) -> None:
        """Stop the worker processes (they are kept between batches so they stay warm)."""
        if self._shutdown is not None:
            self._shutdown()
            self._pool = self._shutdown = None

    def __enter__(self) -> UserAgentClassifier:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def export_cache(self) -> Iterator[tuple[bytes, tuple]]:
        """What this classifier found out or used, as (key(ua), row): the UserAgentInfo
        fields, or just (kind,) where only the kind was needed. Imported rows never asked for
        are left out: the store they came from still has them."""
        rows = [None, *((a,) if isinstance(a, str) else astuple(a) for a in self._answers[1:])]
        for key, value in self._known.items():
            if value & 1:
                yield key, rows[value >> 1]

    def import_cache(
        self, items: Mapping[bytes, tuple] | Iterable[tuple[bytes, tuple]]
    ) -> None:
        """Take back what `export_cache` gave (same `key`, same CACHE_VERSION)."""
        pairs = items.items() if isinstance(items, Mapping) else items
        numbers = {}  # row -> its answer's number, doubled (not used in this run yet)

        def number(row: tuple) -> int:
            found = numbers.get(row)
            if found is None:
                valid = len(row) in (1, N_FIELDS) and all(isinstance(v, str) for v in row)
                if not valid or row[0] not in KINDS:
                    raise ValueError(f"not a cached UserAgentInfo: {row!r}")
                found = numbers[row] = 2 * self._number(
                    row[0] if len(row) == 1 else UserAgentInfo(*row))
            return found

        # What this run found out stays.
        self._known.add_missing((key, number(row)) for key, row in pairs)

    def use_store(self, key: Callable[[str], bytes],
                  rows: Iterable[tuple[bytes, tuple]]) -> None:
        """Know user agents by `key` from now on (forgetting what was known by another key),
        and import `rows` (earlier runs' findings)."""
        self._key = key
        self._known = DigestMap()
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
