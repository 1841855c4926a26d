"""importer/digests.py: 16-byte digests -> small numbers, in flat arrays."""
from __future__ import annotations

import hashlib

import pytest

from importer.digests import DigestMap


def digest(n: int) -> bytes:
    return hashlib.blake2b(str(n).encode(), digest_size=16).digest()


def test_numbers_are_found_by_their_digest_as_the_map_grows() -> None:
    table = DigestMap(capacity=4)
    expected = {digest(n): n % 7 + 1 for n in range(5000)}
    for key, value in expected.items():
        table[key] = value
    assert len(table) == 5000
    assert all(table.get(key) == value for key, value in expected.items())
    assert dict(table.items()) == expected
    assert table.get(digest(-1)) == 0  # never stored


def test_a_number_stored_again_replaces_the_old_one() -> None:
    table = DigestMap()
    table[digest(1)] = 2
    table[digest(1)] = 3
    assert table.get(digest(1)) == 3 and len(table) == 1


def test_digests_sharing_their_first_bytes_both_stay() -> None:
    """Their slot is picked from the first bytes: they probe on, neither replaces the other."""
    table = DigestMap(capacity=8)
    a, b = bytes(15) + b"\x01", bytes(15) + b"\x02"
    table[a], table[b] = 5, 6
    assert (table.get(a), table.get(b)) == (5, 6)


def test_add_missing_keeps_what_is_held_and_the_first_of_a_repeated_key() -> None:
    table = DigestMap(capacity=4)
    table[digest(0)] = 9
    loaded = [(digest(n), n % 5 + 1) for n in range(3000)] + [(digest(7), 99)]
    table.add_missing(loaded)
    assert len(table) == 3000
    assert table.get(digest(0)) == 9  # held before: stays
    assert table.get(digest(7)) == 3  # the first of the two
    assert all(table.get(digest(n)) == n % 5 + 1 for n in range(1, 3000))
    table.add_missing([(digest(-1), 4)])  # fits without growing
    assert (table.get(digest(-1)), len(table)) == (4, 3001)


@pytest.mark.parametrize("key", [b"short", bytes(17), b""])
def test_only_16_byte_digests(key: bytes) -> None:
    with pytest.raises(ValueError):
        DigestMap()[key] = 1
    with pytest.raises(ValueError):
        DigestMap().add_missing([(key, 1)])


@pytest.mark.parametrize("value", [0, -1, 1 << 32])
def test_numbers_from_1_to_2_32_minus_1(value: int) -> None:
    with pytest.raises(ValueError):
        DigestMap()[digest(1)] = value
    with pytest.raises(ValueError):
        DigestMap().add_missing([(digest(1), value)])
