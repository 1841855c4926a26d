"""The in-run key store of dry runs and exports (importer/runkeys.py): exact like a set, over
many spills, whatever the order of times, with bursts of keys in one second around the
run's time-index entries, and events without a time."""
from __future__ import annotations

import math
import random

import pytest

from importer.runkeys import STRIDE, RunKeys


def events(seed: int, count: int) -> list[tuple[bytes, float | None]]:
    """Keys whose times come mostly in order, some late, a few missing or NaN; some seconds
    hold more keys than a run's index stride."""
    rng = random.Random(seed)
    out, now = [], 1_700_000_000.0
    while len(out) < count:
        now += rng.choice([0, 0, 1, 2])
        burst = rng.choice([1, 1, 3, STRIDE + 5, 3 * STRIDE])
        for _ in range(burst):
            when: float | None = now - rng.choice([0, 0, 0, 7, 300])  # logged late
            if rng.random() < 0.01:
                when = None if rng.random() < 0.5 else math.nan
            out.append((rng.randbytes(16), when))
    return out[:count]


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_knows_exactly_the_keys_added_across_spills(seed):
    rng = random.Random(seed)
    fresh = events(seed, 6000)
    store, added = RunKeys(limit=500), []
    for key, when in fresh:
        assert not store.knows(key, when)
        store.add(key, when)
        added.append((key, when))
        if rng.random() < 0.2:  # a line seen again: earlier in the run, often long ago
            old_key, old_when = rng.choice(added)
            assert store.knows(old_key, old_when)
    assert len(store.runs) >= 10 and len(store.recent) < 500  # memory stayed bounded
    for key, when in added:  # every one, spilled or not, whatever its time
        assert store.knows(key, when)
    for key, when in events(seed + 100, 2000):  # and none that was not added
        assert not store.knows(key, when)
    store.close()


def test_a_key_is_known_only_with_its_own_time():
    """The time is part of the key (eventkeys.event_key hashes it): a lookup searches its second."""
    store = RunKeys(limit=2)
    store.add(b"k" * 16, 100.0)
    store.add(b"j" * 16, 101.0)
    assert store.runs and store.knows(b"k" * 16, 100.0)
    assert not store.knows(b"k" * 16, 101.0)


def test_bytes_across_two_stored_keys_are_not_a_key():
    store = RunKeys(limit=2)
    first, second = bytes(range(16)), bytes(range(16, 32))
    store.add(first, 100.0)
    store.add(second, 100.0)  # spilled next to each other
    assert store.runs and store.knows(first, 100.0) and store.knows(second, 100.0)
    assert not store.knows(first[8:] + second[:8], 100.0)


@pytest.mark.parametrize("seed", [4, 5])
def test_add_new_in_batches_answers_as_knows_then_add(seed):
    """The batch form (exports and dry runs with workers) against the one-at-a-time form, over
    spills, with repeats within a batch and events an earlier run recorded (asked only for
    events not newer than the floor)."""
    rng = random.Random(seed)
    stream = events(seed, 5000)
    stream += [rng.choice(stream) for _ in range(800)]  # repeats, some in the same batch
    rng.shuffle(stream)
    recorded = {key for key, _ in rng.sample(stream, 300)}
    floor = sorted(w for _, w in stream if w is not None and not math.isnan(w))[len(stream) // 2]

    def earlier(key: bytes, when: float | None) -> str | None:  # as Cursor._recorded
        asked.append(when)
        old = when is None or not when > floor
        return "recorded" if key in recorded and old else None

    one, batched, asked = RunKeys(limit=400), RunKeys(limit=400), []
    expected: dict[int, str] = {}
    for i, (key, when) in enumerate(stream):
        if one.knows(key, when):
            expected[i] = "known"
        elif key in recorded and (when is None or not when > floor):
            expected[i] = "recorded"
        else:
            one.add(key, when)
    got: dict[int, str] = {}
    for start in range(0, len(stream), 97):
        batch = stream[start:start + 97]
        found = batched.add_new([k for k, _ in batch], [w for _, w in batch], "known",
                                earlier, floor)
        got.update((start + i, why) for i, why in found.items())
    assert got == expected and "recorded" in got.values() and "known" in got.values()
    # Asked only where a lookup among the spilled keys was needed anyway.
    assert batched.runs and all(w is None or not w > max(floor, batched.latest) for w in asked)
    assert len(asked) < len(stream)
    one.close()
    batched.close()


def test_add_new_of_keys_newer_than_all_adds_them_at_once():
    """The usual batch (new keys, each newer than every spilled key and the floor) is added
    whole; a repeat within it or of an earlier batch, or a time not newer, is answered one by
    one as before."""
    rng = random.Random(9)

    def never(key: bytes, when: float | None) -> str | None:
        raise AssertionError("asked about an event newer than all")

    keys = RunKeys(limit=50)
    batches = [[(rng.randbytes(16), 1000.0 + 40 * b + i) for i in range(40)] for b in range(4)]
    for batch in batches[:2]:  # the second spills
        assert keys.add_new(*zip(*batch, strict=True), "known", never, -math.inf) == {}
    assert keys.runs
    repeat_earlier, repeat_within = batches[2][:], batches[3][:]
    repeat_earlier[5] = batches[0][3]
    repeat_within[7] = repeat_within[2]
    assert keys.add_new(*zip(*repeat_earlier, strict=True), "known", lambda k, w: None,
                        -math.inf) == {5: "known"}
    assert keys.add_new(*zip(*repeat_within, strict=True), "known", never, -math.inf) == {
        7: "known"}
    assert keys.add_new([rng.randbytes(16)], [1.0], "known", lambda k, w: "recorded",
                        -math.inf) == {0: "recorded"}  # older than the spilled keys
    sent = [*batches[:2], repeat_earlier, repeat_within]
    assert all(keys.knows(key, when) for batch in sent for key, when in batch)
    assert not keys.knows(*batches[2][5])
    keys.close()
