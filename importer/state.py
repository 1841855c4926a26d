"""Checkpoints and dedupe: reruns, rotation, crashes and cron never double-count or lose an event.

One SQLite database (WAL mode) per target, i.e. per Plausible URL and set of domains, by default
$XDG_STATE_HOME/plausible-import/<host>_<domain>_<hash>.sqlite (~/.local/state/... without
XDG_STATE_HOME); `--state PATH` picks another. It never holds a raw IP address, user agent or
log line: events are known by a keyed hash, files by a keyed hash of their first bytes.

Schema (version 1):
  meta(name, value)   schema (1); secret (32 random bytes, the key of every hash here);
                      target (URL and domains, for `status`); max_time (the latest event time
                      among `seen`: a newer event cannot be a duplicate, so it skips the lookup)
  files               one row per log file, known by content, not by name or inode:
    head_len, fingerprint   keyed BLAKE2b of the first min(64 KiB, size) decompressed bytes, so
                            access.log renamed to access.log.1 and gzipped to access.log.2.gz is
                            the same file; a file smaller than 64 KiB that grew is found by its
                            shorter head and its fingerprint extended
    path            absolute path it was last read from (shown by `status`, for --forget)
    position        decompressed offset before which every line has a final outcome (the low-
                    water mark: an undelivered event holds it back, so a rerun re-reads it)
    lineno          lines before `position`
    done_stamp      "size:mtime_ns" of the file when it was read to its end with nothing left
                    pending: an unchanged file is skipped without decompressing it
    sent, dead_lettered     events from this file, over all runs
    pending, pending_to     events the last run could not deliver, and the offset after the
                            last of them (pending is cleared once a run has read past it)
    first_seen, updated     unix times
  seen(key, file_id)  keyed BLAKE2b (16 bytes, importer/eventkeys.py) of (time, client IP,
                      user agent, method, request target, status, size, virtual host,
                      X-Forwarded-For if logged) of every event sent or dead-lettered, and the
                      file it came from (--forget drops them with the file)
  runs                pid, started, finished, in_flight (the sink's concurrency): a run left
                      unfinished was killed, and up to in_flight of its events may have reached
                      Plausible without being recorded; the next run reports it.

Next to the database, `<db>-acks0` and `<db>-acks1` journal each final outcome with one write
as it happens (a kill -9 loses none); a commit every COMMIT_INTERVAL_S folds them into `seen`
together with the file positions, in one transaction. So after a kill, the events re-sent are
only those whose requests were in flight, at most the sink's concurrency; everything else the
rerun re-reads is recognised in `seen` and counted as a duplicate.

A dry run opens the state read-only: it starts where a real run would and drops what a real run
would drop, but records nothing (a dry run then a real run still sends everything). Without a
state file (`Checkpoint()`), dedupe works within the run only; `export` uses it that way
(its keys: importer/runkeys.py). Each file's progress within a run: importer/cursor.py.
"""
from __future__ import annotations

import fcntl
import hashlib
import math
import os
import re
import sqlite3
import struct
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

from parsers.base import LogRecord

from . import eventkeys
from .cursor import DEAD_LETTERED, SENT, UNDELIVERED, Cursor, Entry, file_row, settle
from .events import Event
from .runkeys import RunKeys
from .sources import InputError, Source, open_source

SCHEMA_VERSION = 1
SPILL_KEYS = 50_000  # in-run dedupe keys kept in memory (~6 MB) before a spill (runkeys.py)
HEAD_BYTES = 64 * 1024
COMMIT_INTERVAL_S = 0.5
RUNS_KEPT = 1000
_IN_FLIGHT = object()  # not None: what `keys.get` answers for a key that is not there either

FILES_TABLE = """CREATE TABLE IF NOT EXISTS {schema}.files (
    id INTEGER PRIMARY KEY, head_len INTEGER NOT NULL, fingerprint BLOB NOT NULL,
    path TEXT NOT NULL, position INTEGER NOT NULL DEFAULT 0, lineno INTEGER NOT NULL DEFAULT 0,
    done_stamp TEXT, sent INTEGER NOT NULL DEFAULT 0, dead_lettered INTEGER NOT NULL DEFAULT 0,
    pending INTEGER NOT NULL DEFAULT 0, pending_to INTEGER NOT NULL DEFAULT 0,
    first_seen REAL NOT NULL, updated REAL NOT NULL, UNIQUE (head_len, fingerprint))"""
SCHEMA = [
    "CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value)",
    FILES_TABLE.format(schema="main"),
    "CREATE TABLE IF NOT EXISTS seen (key BLOB PRIMARY KEY, file_id INTEGER) WITHOUT ROWID",
    "CREATE INDEX IF NOT EXISTS seen_by_file ON seen (file_id)",
    "CREATE TABLE IF NOT EXISTS runs (id INTEGER PRIMARY KEY, pid INTEGER, started REAL, "
    "finished REAL, in_flight INTEGER, interrupted INTEGER NOT NULL DEFAULT 0)",
]


class StateError(Exception):
    """The state cannot be used: another run holds it, or it is from a newer version."""


class StateLocked(StateError):
    """Another run holds the state: not broken, busy (the command line exits 75 for it)."""


def state_dir() -> str:
    root = os.environ.get("XDG_STATE_HOME") or os.path.expanduser("~/.local/state")
    return os.path.join(root, "plausible-import")


def default_state_path(url: str | None, domains: str) -> str:
    """One database per target: the URL and the set of domains (order and www. don't matter)."""
    sites = sorted({d.strip().lower().removeprefix("www.") for d in domains.split(",")} - {""})
    target = (url or "").strip().rstrip("/")
    digest = hashlib.sha256(f"{target.lower()}\n{','.join(sites)}".encode()).hexdigest()[:10]
    host = urlsplit(target).hostname or "no-url"
    slug = re.sub(r"[^A-Za-z0-9.-]+", "_", f"{host}_{sites[0] if sites else 'none'}")[:80]
    return os.path.join(state_dir(), f"{slug}_{digest}.sqlite")


class _Journal:
    """Final outcomes, fixed-size records (each batch of them in one write), taken in turns by
    two files: a commit switches to the other file, folds the retired one into the database,
    then empties it."""

    RECORD = struct.Struct("<16sqdB")  # key, file id (0: none), event time (NaN: none), sent?

    def __init__(self, base: str) -> None:
        self.paths = [base + "-acks0", base + "-acks1"]
        self.fds = [os.open(p, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600) for p in self.paths]
        self.active = 0

    def append(self, records: bytes) -> None:
        os.write(self.fds[self.active], records)

    def switch(self) -> int:
        retired, self.active = self.active, 1 - self.active
        return retired

    def clear(self, which: int) -> None:
        os.ftruncate(self.fds[which], 0)

    def read_all(self) -> list[tuple[bytes, int, float, int]]:
        records = []
        for path in self.paths:
            with open(path, "rb") as f:
                data = f.read()
            whole = len(data) - len(data) % self.RECORD.size  # a torn last record never acked
            records.extend(self.RECORD.iter_unpack(data[:whole]))
        return records

    def close(self) -> None:
        for fd, path in zip(self.fds, self.paths, strict=True):
            os.close(fd)
            os.unlink(path)


@dataclass
class FileStatus:
    path: str
    lines: int  # lines done (before `position`)
    position: int
    sent: int
    pending: int
    dead_lettered: int
    updated: float
    state: str  # "up to date", "N bytes to read", "changed", "replaced", "not found"


@dataclass
class RunInfo:
    started: float
    in_flight: int


class Checkpoint:
    """The state of one target. `Checkpoint()` (no path) dedupes within the run only;
    `readonly=True` reads a state without changing it (dry runs); otherwise it is locked to
    this process and every settled event is recorded (see the module docstring)."""

    def __init__(self, path: str | None = None, *, readonly: bool = False, in_flight: int = 0,
                 target: str = "") -> None:
        self.path = path
        self.durable = path is not None and not readonly
        self.lock = threading.Lock()  # progress in memory; the only lock on_done takes
        self.db_lock = threading.Lock()
        self.keys: dict[bytes, Entry | None] = {}  # in flight (entry) or settled, not committed
        # Without durable state, this run's keys (a dry run, an export): nothing settles them.
        self.run_keys = None if self.durable else RunKeys(SPILL_KEYS)
        self.by_event: dict[int, Entry] = {}
        self.cursors: dict[int, Cursor] = {}
        self.batch: list[tuple[bytes, int, float, int]] = []
        self.interrupted: list[RunInfo] = []
        self._lockfile = _take_lock(path) if self.durable else None
        self.db = self._connect(path, readonly)
        self.secret = self._meta("secret")
        self._hasher = eventkeys.event_hasher(self.secret)
        self.max_time = float(self._meta("max_time") or "-inf")
        if self.durable:
            if target:
                self._set_meta("target", target)
            self.journal = _Journal(path)
            self._replay()
            self._run_id = self._start_run(in_flight)
            self._commit_lock = threading.Lock()
            self._closing = threading.Event()
            self._committer = threading.Thread(target=self._commit_loop, name="checkpoint",
                                               daemon=True)
            self._committer.start()

    @property
    def target(self) -> str:
        """The URL and domains this state was written for."""
        return self._meta("target") or ""

    # -- setup --

    def _connect(self, path: str | None, readonly: bool) -> sqlite3.Connection:
        exists = path is not None and os.path.exists(path)
        if path is None or (readonly and not exists):
            db = sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False)
            _create(db)
            return db
        if not exists:
            os.makedirs(os.path.dirname(os.path.abspath(path)), mode=0o700, exist_ok=True)
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))  # private: paths, hashes
        db = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")  # a kill -9 loses nothing committed
        if readonly:
            # This run's new files go to a temporary copy of `files`; `seen` is only read.
            db.execute(FILES_TABLE.format(schema="temp"))
            db.execute("INSERT INTO temp.files SELECT * FROM main.files")
        else:
            _create(db)
        version = db.execute("SELECT value FROM meta WHERE name = 'schema'").fetchone()
        if version is not None and int(version[0]) > SCHEMA_VERSION:
            raise StateError(f"{path} was written by a newer plausible-import")
        return db

    def _meta(self, name: str):
        row = self.db.execute("SELECT value FROM meta WHERE name = ?", (name,)).fetchone()
        return None if row is None else row[0]

    def _set_meta(self, name: str, value) -> None:
        self.db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (name, value))

    def _start_run(self, in_flight: int) -> int:
        db, now = self.db, time.time()
        with self.db_lock:
            db.execute("BEGIN IMMEDIATE")
            self.interrupted = [RunInfo(*row) for row in db.execute(
                "SELECT started, in_flight FROM runs WHERE finished IS NULL")]
            db.execute("UPDATE runs SET finished = ?, interrupted = 1 WHERE finished IS NULL",
                       (now,))
            db.execute("DELETE FROM runs WHERE id <= (SELECT MAX(id) FROM runs) - ?",
                       (RUNS_KEPT,))
            run_id = db.execute("INSERT INTO runs (pid, started, in_flight) VALUES (?, ?, ?)",
                                (os.getpid(), now, in_flight)).lastrowid
            db.execute("COMMIT")
        return run_id

    # -- files --

    def open(self, source: Source) -> Cursor:
        """The cursor for `source`, known by content: `start` is where to read from and
        `up_to_date` says there is nothing new."""
        if source.path is None:
            return Cursor(self, None)  # standard input: deduped, not positioned
        try:
            stat = os.stat(source.path)
        except OSError:
            return Cursor(self, None)  # vanished: the reader reports it
        stamp = f"{stat.st_size}:{stat.st_mtime_ns}"  # before the head: it may grow meanwhile
        head = source.head(HEAD_BYTES)
        if not head:
            return Cursor(self, None)  # nothing to know it by, nothing to read
        path = os.path.abspath(source.path)
        with self.db_lock:
            row = self._match(head)
            if row is None:
                now = time.time()
                file_id = self.db.execute(
                    "INSERT INTO files (head_len, fingerprint, path, first_seen, updated) "
                    "VALUES (?, ?, ?, ?, ?)",
                    (len(head), self._fingerprint(head), path, now, now)).lastrowid
                row = (file_id, len(head), 0, 0, None, 0, 0)
            elif len(head) > row[1]:  # it grew: know it by its longer head from now on
                self.db.execute("UPDATE OR IGNORE files SET head_len = ?, fingerprint = ? "
                                "WHERE id = ?", (len(head), self._fingerprint(head), row[0]))
        file_id, _, position, lineno, done_stamp, pending, pending_to = row
        with self.lock:
            cursor = self.cursors.get(file_id)
            if cursor is None:
                cursor = Cursor(self, file_id, (position, lineno), (pending, pending_to))
                cursor.eof = (position, done_stamp) if done_stamp else None
                self.cursors[file_id] = cursor
            start = cursor.read
            if source.compression == "plain" and stat.st_size < start[0]:
                start = (0, 0)  # it shrank under the same head: truncated, read it again
            cursor.start, cursor.stamp, cursor.path = start, stamp, path
            cursor.up_to_date = cursor.eof == (start[0], stamp)
        return cursor

    def _fingerprint(self, head: bytes) -> bytes:
        return hashlib.blake2b(head, key=self.secret, digest_size=16, person=b"head").digest()

    def _match(self, head: bytes) -> tuple | None:
        """The file whose head this is, or whose whole (short) head this one starts with."""
        query = ("SELECT id, head_len, position, lineno, done_stamp, pending, pending_to "
                 "FROM files WHERE head_len = ? AND fingerprint = ?")
        lengths = [len(head)] + [n for (n,) in self.db.execute(
            "SELECT DISTINCT head_len FROM files WHERE head_len < ? ORDER BY head_len DESC",
            (len(head),))]
        for n in lengths:
            row = self.db.execute(query, (n, self._fingerprint(head[:n]))).fetchone()
            if row is not None:
                return row
        return None

    def knows(self, source: Source) -> bool:
        """Whether this run has read `source`'s content (under another name, before)."""
        head = source.head(HEAD_BYTES)
        with self.db_lock:
            row = self._match(head) if head else None
        return row is not None and row[0] in self.cursors

    # -- dedupe --

    def key(self, record: LogRecord) -> bytes:
        return eventkeys.event_key(record, self._hasher)

    def keys_of(self, columns: Sequence[Sequence]) -> list[bytes]:
        """`key` of many records at once, from a column of each of KEY_FIELDS."""
        return eventkeys.keys_of(self._hasher, columns)

    def seen_in(self, key: bytes) -> int | None:
        """The file a recorded event came from (0 for standard input); None if unknown."""
        with self.db_lock:
            row = self.db.execute("SELECT file_id FROM seen WHERE key = ?", (key,)).fetchone()
        return None if row is None else row[0] or 0

    # -- outcomes (any thread) --

    def on_done(self, outcomes: list[tuple[Event, str]]) -> None:
        """The sink's callback: these events are final. Cheap: one journal write for those
        that count."""
        records = []
        with self.lock:
            for event, outcome in outcomes:
                entry = self.by_event.pop(id(event), None)
                if entry is None:
                    continue
                if outcome in (SENT, DEAD_LETTERED):
                    self.keys[entry.key] = None  # still a duplicate until committed to `seen`
                    records.append((entry.key, entry.cursor.file_id or 0,
                                    math.nan if entry.time is None else entry.time,
                                    outcome == SENT))
                else:
                    outcome = UNDELIVERED  # anything else is not final: a rerun sends it
                    self.keys.pop(entry.key, None)
                settle(entry, outcome)
            if records:
                pack = _Journal.RECORD.pack
                self.journal.append(b"".join([pack(*record) for record in records]))
                self.batch.extend(records)

    # -- commits --

    def _commit_loop(self) -> None:
        while not self._closing.wait(COMMIT_INTERVAL_S):
            self.commit()

    def commit(self) -> None:
        """Write settled keys and every file's low-water mark in one transaction."""
        with self._commit_lock:
            with self.lock:
                batch, self.batch = self.batch, []
                retired = self.journal.switch()
                rows = [row for c in self.cursors.values() if (row := file_row(c))]
            if batch or rows:
                with self.db_lock:
                    self.db.execute("BEGIN IMMEDIATE")
                    self._fold(batch)
                    self.db.executemany(
                        "UPDATE files SET position = ?, lineno = ?, sent = sent + ?, "
                        "dead_lettered = dead_lettered + ?, pending = ?, pending_to = ?, "
                        "done_stamp = ?, path = ?, updated = ? WHERE id = ?", rows)
                    self.db.execute("COMMIT")
            self.journal.clear(retired)
            with self.lock:
                keys = self.keys
                for key, _, _, _ in batch:
                    if keys.get(key, _IN_FLIGHT) is None:
                        del keys[key]  # `seen` answers for it now (max_time is raised)

    def _fold(self, records: list[tuple[bytes, int, float, int]]) -> None:
        """Put journal records into `seen` (in the caller's transaction; idempotent)."""
        self.db.executemany("INSERT OR IGNORE INTO seen VALUES (?, ?)",
                            [(key, file_id or None) for key, file_id, _, _ in records])
        self._raise_max_time(records)

    def _raise_max_time(self, records: list[tuple[bytes, int, float, int]]) -> None:
        times = [t for _, _, t, _ in records if not math.isnan(t)]
        if times and max(times) > self.max_time:
            self.max_time = max(times)
            self._set_meta("max_time", repr(self.max_time))

    def _replay(self) -> None:
        """Fold in the outcomes a killed run journaled but never committed, with their counts
        (a record already in `seen` was committed, counts included)."""
        records = self.journal.read_all()
        if records:
            self.db.execute("BEGIN IMMEDIATE")
            for key, file_id, _, sent in records:
                if self.db.execute("INSERT OR IGNORE INTO seen VALUES (?, ?)",
                                   (key, file_id or None)).rowcount:
                    column = "sent" if sent else "dead_lettered"
                    self.db.execute(f"UPDATE files SET {column} = {column} + 1 WHERE id = ?",
                                    (file_id,))
            self._raise_max_time(records)
            self.db.execute("COMMIT")
        self.journal.clear(0)
        self.journal.clear(1)

    def close(self) -> None:
        """Commit what is settled and let go of the state (call after the sink's close)."""
        if self.durable:
            self._closing.set()
            self._committer.join()
            self.commit()
            with self.db_lock:
                self.db.execute("UPDATE runs SET finished = ? WHERE id = ?",
                                (time.time(), self._run_id))
            self.journal.close()
            self._lockfile.close()
        else:
            self.run_keys.close()
        self.db.close()

    def __enter__(self) -> Checkpoint:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- commands --

    def forget(self, path: str) -> int:
        """Start `path` over: its position and the dedupe keys of its events go. It is found by
        content, or by the path it was read from if it no longer exists."""
        head = open_source(path).head(HEAD_BYTES) if os.path.isfile(path) else b""
        with self.db_lock:
            ids = {file_id for (file_id,) in self.db.execute(
                "SELECT id FROM files WHERE path = ?", (os.path.abspath(path),))}
            row = self._match(head) if head else None
            if row is not None:
                ids.add(row[0])
            self.db.execute("BEGIN IMMEDIATE")
            for file_id in ids:
                self.db.execute("DELETE FROM seen WHERE file_id = ?", (file_id,))
                self.db.execute("DELETE FROM files WHERE id = ?", (file_id,))
            self.db.execute("COMMIT")
        return len(ids)

    def reset(self) -> None:
        """Start everything over: no file is known, no event was sent."""
        with self.db_lock:
            self.db.execute("BEGIN IMMEDIATE")
            for table in ("files", "seen"):
                self.db.execute(f"DELETE FROM {table}")
            self.db.execute("DELETE FROM meta WHERE name = 'max_time'")
            self.db.execute("COMMIT")
        self.max_time = -math.inf

    def status(self) -> list[FileStatus]:
        """Every known file, with what its path holds now."""
        with self.db_lock:
            rows = self.db.execute(
                "SELECT path, lineno, position, sent, pending, dead_lettered, updated, "
                "head_len, fingerprint, done_stamp FROM files ORDER BY path, first_seen"
            ).fetchall()
        return [FileStatus(*row[:7], self._file_state(row[0], row[2], *row[7:])) for row in rows]

    def _file_state(self, path: str, position: int, head_len: int, fingerprint: bytes,
                    done_stamp: str | None) -> str:
        try:
            source = open_source(path)
            stat = os.stat(path)
        except (InputError, OSError):
            return "not found"
        head = source.head(HEAD_BYTES)
        if len(head) < head_len or self._fingerprint(head[:head_len]) != fingerprint:
            return "replaced"  # rotated away: the path holds another file now
        if done_stamp == f"{stat.st_size}:{stat.st_mtime_ns}":
            return "up to date"
        if source.compression == "plain" and stat.st_size >= position:
            return f"{stat.st_size - position:,} bytes to read"
        return "changed"


def _create(db: sqlite3.Connection) -> None:
    for statement in SCHEMA:
        db.execute(statement)
    db.execute("INSERT OR IGNORE INTO meta VALUES ('schema', ?)", (SCHEMA_VERSION,))
    db.execute("INSERT OR IGNORE INTO meta VALUES ('secret', ?)", (os.urandom(32),))


def _take_lock(path: str):
    """One run at a time per state (a cron job overlapping a slow run must not send twice)."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), mode=0o700, exist_ok=True)
    lockfile = open(path + ".lock", "a+")  # noqa: SIM115 - held for the checkpoint's life
    try:
        fcntl.flock(lockfile, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        lockfile.close()
        raise StateLocked(f"another plausible-import run is using {path}; "
                         "wait for it to finish (or give another --state)") from None
    return lockfile
