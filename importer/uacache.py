"""User-Agent classifications kept between runs, so that a cron job meeting the same visitors'
browsers every few minutes does not classify them again, nor even load device-detector (~3 s,
then ~0.35 ms per new user agent for `send`, ~1 ms for `export`).

One SQLite database (WAL mode) for every target and command: $XDG_STATE_HOME/plausible-import/
useragents.db (~/.local/state/... without XDG_STATE_HOME), next to the checkpoints. Like them it
never holds a raw user agent: rows are known by a keyed BLAKE2b of the user agent, with a secret
of 32 random bytes kept in the same file. Deleting the file (with its -wal and -shm) clears it;
`--no-ua-cache` runs without it.

Schema:
  meta(name, value)   secret; version (useragents.CACHE_VERSION: rows of another version, i.e.
                      another device-detector or another reading of it, are deleted on open)
  agents              key (16 bytes), used (unix time of the last run that asked for it), and
                      the UserAgentInfo fields; device .. os_version are NULL where a run needed
                      only the kind (send's bot filter)

Two runs at once (cron overlapping an export) share it safely: each reads it once when it
starts and writes what it found in one short transaction when it ends (SQLite waits for the
other's). Past LIMIT rows, the least recently used go.
"""
from __future__ import annotations

import hashlib
import os
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import closing, contextmanager

from .state import state_dir
from .useragents import CACHE_VERSION, N_FIELDS, UserAgentClassifier

FILE_NAME = "useragents.db"  # not *.sqlite: `status` lists those as checkpoints
LIMIT = 100_000  # rows: ~10 MB, read in ~0.1 s; far more distinct user agents than most sites see

SCHEMA = [
    "CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value)",
    "CREATE TABLE IF NOT EXISTS agents (key BLOB PRIMARY KEY, used INTEGER NOT NULL, "
    "kind TEXT NOT NULL, device TEXT, browser TEXT, browser_version TEXT, os TEXT, "
    "os_version TEXT) WITHOUT ROWID",
    "CREATE INDEX IF NOT EXISTS agents_by_use ON agents (used)",
]
# A kind alone (device .. os_version NULL) never replaces a full row: it only marks it used.
SAVE = ("INSERT INTO agents VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (key) DO UPDATE SET "
        "used = excluded.used, "
        "kind = CASE WHEN excluded.device IS NULL THEN kind ELSE excluded.kind END, "
        "device = coalesce(excluded.device, device), "
        "browser = coalesce(excluded.browser, browser), "
        "browser_version = coalesce(excluded.browser_version, browser_version), "
        "os = coalesce(excluded.os, os), os_version = coalesce(excluded.os_version, os_version)")
EVICT = ("DELETE FROM agents WHERE key IN (SELECT key FROM agents ORDER BY used "
         "LIMIT max(0, (SELECT count(*) FROM agents) - ?))")


def default_path() -> str:
    return os.path.join(state_dir(), FILE_NAME)


class UserAgentStore:
    """The database at `path`, created if need be (private to this user)."""

    def __init__(self, path: str, limit: int = LIMIT) -> None:
        self.path = path
        self.limit = limit
        if not os.path.exists(path):
            os.makedirs(os.path.dirname(os.path.abspath(path)), mode=0o700, exist_ok=True)
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
        self.db = sqlite3.connect(path, isolation_level=None, timeout=30)
        try:
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=NORMAL")  # a cache: a power cut may lose a run
            self.db.execute("BEGIN IMMEDIATE")
            for statement in SCHEMA:
                self.db.execute(statement)
            self.db.execute("INSERT OR IGNORE INTO meta VALUES ('secret', ?)", (os.urandom(32),))
            if self._meta("version") != CACHE_VERSION:
                self.db.execute("DELETE FROM agents")
                self.db.execute("INSERT OR REPLACE INTO meta VALUES ('version', ?)",
                                (CACHE_VERSION,))
            self.db.execute("COMMIT")
        except BaseException:
            self.db.close()
            raise
        self._hasher = hashlib.blake2b(key=self._meta("secret"), digest_size=16,
                                       person=b"useragent")

    def _meta(self, name: str):
        row = self.db.execute("SELECT value FROM meta WHERE name = ?", (name,)).fetchone()
        return None if row is None else row[0]

    def key(self, ua: str) -> bytes:
        hasher = self._hasher.copy()  # keying costs more than hashing a user agent
        hasher.update(ua.encode("utf-8", "surrogatepass"))
        return hasher.digest()

    def load(self) -> Iterator[tuple[bytes, tuple]]:
        """Every row, as UserAgentClassifier.import_cache takes them (one at a time: there
        may be LIMIT)."""
        for row in self.db.execute("SELECT key, kind, device, browser, browser_version, os, "
                                   "os_version FROM agents"):
            yield row[0], row[1:] if row[2] is not None else row[1:2]

    def save(self, rows: Mapping[bytes, tuple] | Iterable[tuple[bytes, tuple]]) -> None:
        """Add or refresh `rows` (UserAgentClassifier.export_cache), then trim to the limit."""
        now = int(time.time())
        pairs = rows.items() if isinstance(rows, Mapping) else rows
        padding = {1: (None,) * (N_FIELDS - 1), N_FIELDS: ()}  # a kind alone: NULL the rest
        db = self.db
        db.execute("BEGIN IMMEDIATE")
        try:
            db.executemany(SAVE, ((key, now, *row, *padding[len(row)]) for key, row in pairs))
            db.execute(EVICT, (self.limit,))
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    def close(self) -> None:
        self.db.close()


@contextmanager
def persisted(classifier: UserAgentClassifier, warn: Callable[[str], None],
              path: str | None = None) -> Iterator[None]:
    """Within the block, `classifier` knows what earlier runs found; after it, what this run
    found is saved. A store that cannot be used is reported through `warn`, and the run goes
    on without it: it only saves time."""
    path = path or default_path()
    try:
        store = UserAgentStore(path)
    except (OSError, sqlite3.Error) as exc:
        warn(f"user-agent cache {path} not used: {exc}")
        yield
        return
    with closing(store):
        try:
            classifier.use_store(store.key, store.load())
        except sqlite3.Error as exc:
            warn(f"user-agent cache {path} not read: {exc}")
            classifier.use_store(store.key, ())
        try:
            yield
        finally:
            try:
                store.save(classifier.export_cache())
            except sqlite3.Error as exc:
                warn(f"user-agent cache {path} not saved: {exc}")
