"""A map from 16-byte digests to small numbers, in ~40 bytes an entry.

What a run knows about user agents (importer/useragents.py) grows with the number of distinct
ones its logs hold (~40,000 in 10M lines of tests/bench/genlog.py's log), and each parse worker
keeps its own copy. Kept as {user agent: answer} it cost ~400 bytes per user agent and process;
a dict of 16-byte digests still ~100. Here the digests lie side by side in one bytearray and the
numbers in one array: no object per entry, so peak memory stays nearly flat as logs grow.
"""
from __future__ import annotations

from array import array
from collections.abc import Iterable, Iterator

KEY_BYTES = 16


class DigestMap:
    """digest (16 bytes, uniformly random: a BLAKE2b) -> a number from 1 to 2**32 - 1.

    Open addressing with linear probing: the digest's first bytes pick its slot, and 0 marks
    an empty one. Looked up per new or evicted user agent, never per line."""

    __slots__ = ("_keys", "_values", "_mask", "size")

    def __init__(self, capacity: int = 1024) -> None:
        if capacity & (capacity - 1):
            raise ValueError("the capacity must be a power of 2")
        self._empty(capacity)

    def _empty(self, capacity: int) -> None:
        self._keys = bytearray(KEY_BYTES * capacity)
        self._values = array("I", bytes(4 * capacity))
        self._mask = capacity - 1
        self.size = 0

    def _slot(self, key: bytes) -> int:
        """Where `key` is, or the empty slot where it would go."""
        if len(key) != KEY_BYTES:
            raise ValueError(f"not a {KEY_BYTES}-byte digest: {key!r}")
        keys, values, mask = self._keys, self._values, self._mask
        i = int.from_bytes(key, "little") & mask
        while values[i]:
            at = i * KEY_BYTES
            if keys[at:at + KEY_BYTES] == key:
                return i
            i = (i + 1) & mask
        return i

    def get(self, key: bytes) -> int:
        """The number stored for `key`, 0 if none is."""
        return self._values[self._slot(key)]

    def __setitem__(self, key: bytes, value: int) -> None:
        if not 0 < value < 1 << 32:
            raise ValueError(f"not a number from 1 to 2**32 - 1: {value}")
        i = self._slot(key)
        if not self._values[i]:
            self._keys[i * KEY_BYTES:(i + 1) * KEY_BYTES] = key
            self.size += 1
        self._values[i] = value
        if 3 * self.size > 2 * len(self._values):  # at most 2/3 full: probes stay short
            self._grow()

    def add_missing(self, pairs: Iterable[tuple[bytes, int]]) -> None:
        """Set each key of `pairs` that holds no number yet (the first of a key repeated
        wins): what a run loads from earlier runs, ~5x faster than item by item, sized once."""
        pairs = list(pairs)
        capacity = len(self._values)
        while 3 * (self.size + len(pairs)) > 2 * capacity:
            capacity *= 2
        if capacity != len(self._values):
            held = list(self.items())
            self._empty(capacity)
            pairs = held + pairs  # held first: they stay
        keys, values, mask, added = self._keys, self._values, self._mask, 0
        for key, value in pairs:
            if len(key) != KEY_BYTES or not 0 < value < 1 << 32:
                raise ValueError(f"not a {KEY_BYTES}-byte digest and a number from 1 to "
                                 f"2**32 - 1: {key!r}, {value}")
            i = int.from_bytes(key, "little") & mask
            while values[i]:
                if keys[i * KEY_BYTES:(i + 1) * KEY_BYTES] == key:
                    break
                i = (i + 1) & mask
            else:
                keys[i * KEY_BYTES:(i + 1) * KEY_BYTES] = key
                values[i] = value
                added += 1
        self.size += added

    def _grow(self) -> None:
        held = list(self.items())
        self._empty(2 * len(self._values))
        self.add_missing(held)

    def __len__(self) -> int:
        return self.size

    def items(self) -> Iterator[tuple[bytes, int]]:
        keys = self._keys
        for i, value in enumerate(self._values):
            if value:
                yield bytes(keys[i * KEY_BYTES:(i + 1) * KEY_BYTES]), value
