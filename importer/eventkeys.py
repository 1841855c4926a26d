"""What makes two log lines the same event, as a keyed hash: the dedupe key the checkpoint
(importer/state.py) records and a run's dedupe (importer/runkeys.py) compares. The bytes must
never change: earlier runs' state files hold them."""
from __future__ import annotations

import hashlib
from collections.abc import Sequence
from functools import partial

import numpy as np

from parsers.base import LogRecord


def event_hasher(secret: bytes) -> hashlib.blake2b:
    """The keyed hash events are known by; `event_key` copies it (keying costs more than
    hashing a line)."""
    return hashlib.blake2b(key=secret, digest_size=16, person=b"event")


def event_key(record: LogRecord, hasher: hashlib.blake2b) -> bytes:
    """What makes two log lines the same event: same time, client, user agent, method, target,
    status, size and virtual host. Keyed, so the state file reveals none of them."""
    return _key(hasher, record.time, record.client_ip, record.user_agent, record.method,
                record.uri, record.status, record.bytes_sent, record.host, record.xff)


def _key(hasher: hashlib.blake2b, time, client_ip, user_agent, method, uri, status, bytes_sent,
         host, xff) -> bytes:
    """`event_key` of a record with these fields."""
    h = hasher.copy()
    h.update(f"{time}\0{client_ip}\0{user_agent}\0{method}\0{uri}\0{status}\0{bytes_sent}\0"
             f"{host}".encode("utf-8", "surrogateescape"))
    if xff is not None:
        # Behind a proxy the logged client is the proxy: two visitors on the same page in the
        # same second differ only here. Hashed only when logged, so keys of logs without it
        # stay what earlier runs stored.
        h.update(f"\0{xff}".encode("utf-8", "surrogateescape"))
    return h.digest()


def _stamps(times: Sequence[float | None]) -> Sequence[float | str | None]:
    """The times as `_key` writes them, where they are all whole seconds since 1970: a
    float's str() (its repr) is 'N.0' then, and an int's costs a third as much."""
    if set(map(type, times)) != {float}:  # some None (or an int, which str() writes as is)
        return times
    seconds = np.fromiter(times, np.float64, len(times))
    if not ((seconds > 0) & (seconds < 1e15)).all():  # repr goes 1e+16 from there; NaN
        return times
    whole = seconds.astype(np.int64)
    if not (whole == seconds).all():
        return times
    return [f"{second}.0" for second in whole.tolist()]


# The record fields an event's key is made of, in `_key`'s order (see `keys_of`).
KEY_FIELDS = ("time", "client_ip", "user_agent", "method", "uri", "status", "bytes_sent",
              "host", "xff")


def keys_of(hasher: hashlib.blake2b, columns: Sequence[Sequence]) -> list[bytes]:
    """`event_key` of many records at once, from a column of each of KEY_FIELDS."""
    times, *others = columns
    return list(map(partial(_key, hasher), _stamps(times), *others))
