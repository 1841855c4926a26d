"""Checkpoints and dedupe (importer/state.py) through the real pipeline and real files: reruns,
growth, rotation by rename and gzip, copytruncate, overlapping inputs, undelivered events,
dry runs, kills, --forget/--reset and status. The sink is a stand-in that settles events the
way the contract says (on_done exactly once, at once or later)."""
from __future__ import annotations

import gzip
import os
import shutil
import sqlite3
import subprocess
import sys
import textwrap
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from importer.eventkeys import KEY_FIELDS
from importer.events import Event
from importer.filters import FilterChain
from importer.pipeline import Pipeline
from importer.state import (
    DEAD_LETTERED,
    HEAD_BYTES,
    SENT,
    UNDELIVERED,
    Checkpoint,
    StateError,
    default_state_path,
)
from importer.summary import Counters
from importer.transform import EventBuilder
from parsers.base import LogRecord

ROOT = Path(__file__).resolve().parent.parent
UA = ("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
      "Chrome/130.0.0.0 Safari/537.36")
T0 = datetime(2026, 11, 20, 8, 0, 0, tzinfo=UTC)


def log_lines(first: int, last: int, ip: str = "203.0.113.{n}") -> str:
    """Combined-format lines for pages first..last-1, one second apart (all distinct events)."""
    out = []
    for i in range(first, last):
        when = (T0 + timedelta(seconds=i)).strftime("%d/%b/%Y:%H:%M:%S +0000")
        out.append(f'{ip.format(n=i % 50)} - - [{when}] "GET /page/{i} HTTP/1.1" 200 512 '
                   f'"-" "{UA}"\n')
    return "".join(out)


def page(url: str) -> int:
    return int(url.rsplit("/", 1)[1])


class FakeSink:
    """Settles each event with `outcome(event)`: at once, or (hold=True) only at close, so that
    it is still in flight while later lines are read."""

    def __init__(self, counters: Counters, on_done, outcome=lambda event: SENT,
                 hold: bool = False) -> None:
        self.counters, self.on_done, self.outcome, self.hold = counters, on_done, outcome, hold
        self.held: list[Event] = []
        self.sent: list[int] = []

    def submit(self, event: Event) -> None:
        if self.hold:
            self.held.append(event)
        else:
            self._settle(event)

    def _settle(self, event: Event) -> None:
        outcome = self.outcome(event)
        setattr(self.counters, outcome, getattr(self.counters, outcome) + 1)
        if outcome == SENT:
            self.sent.append(page(event.url))
        self.on_done([(event, outcome)])

    def stop(self) -> None:
        pass

    def close(self) -> None:
        for event in self.held:
            self._settle(event)


def run(inputs, state: Path | None, outcome=lambda event: SENT, hold=False,
        readonly=False, fmt: str | None = "combined") -> tuple[Counters, FakeSink]:
    counters = Counters()
    checkpoint = Checkpoint(None if state is None else str(state), readonly=readonly,
                            in_flight=4)
    sink = FakeSink(counters, checkpoint.on_done, outcome, hold)
    pipeline = Pipeline(inputs=[str(i) for i in inputs], builder=EventBuilder("example.com"),
                        sink=sink, counters=counters, format=fmt, filters=FilterChain([]),
                        checkpoint=checkpoint)
    try:
        pipeline.run()
    finally:
        checkpoint.close()
    assert counters.check() == []
    return counters, sink


@pytest.fixture
def state(tmp_path: Path) -> Path:
    return tmp_path / "state" / "target.sqlite"


def test_rerun_sends_nothing_new_and_skips_reading(tmp_path, state):
    log = tmp_path / "access.log"
    log.write_text(log_lines(0, 300))
    first, sink = run([log], state)
    assert sorted(sink.sent) == list(range(300))
    second, sink = run([log], state)
    assert sink.sent == [] and second.lines_read == 0
    assert second.notes["already_imported_lines"] == 300


def test_grown_file_sends_only_its_new_lines(tmp_path, state):
    log = tmp_path / "access.log"
    log.write_text(log_lines(0, 100))
    run([log], state)
    for start in (100, 150):  # cron: appended to between runs, twice
        with log.open("a") as f:
            f.write(log_lines(start, start + 50))
        counters, sink = run([log], state)
        assert sorted(sink.sent) == list(range(start, start + 50))
        assert counters.lines_read == 50


def test_small_file_growing_past_the_head_size_is_still_known(tmp_path, state):
    log = tmp_path / "access.log"
    log.write_text(log_lines(0, 10))  # ~1.6 kB: known by its whole content
    run([log], state)
    with log.open("a") as f:
        f.write(log_lines(10, 600))  # now well over HEAD_BYTES
    assert log.stat().st_size > HEAD_BYTES
    _, sink = run([log], state)
    assert sorted(sink.sent) == list(range(10, 600))
    log.rename(tmp_path / "access.log.1")  # and by its long head after a rename
    _, sink = run([tmp_path / "access.log.1"], state)
    assert sink.sent == []


def test_rename_then_gzip_rotation_is_recognised(tmp_path, state):
    log = tmp_path / "access.log"
    log.write_text(log_lines(0, 400))
    run([log], state)
    # logrotate renames; the server writes a little more to the renamed file until it reopens.
    rotated = tmp_path / "access.log.1"
    log.rename(rotated)
    with rotated.open("a") as f:
        f.write(log_lines(400, 410))
    log.write_text(log_lines(410, 450))
    counters, sink = run([tmp_path / "access.log*"], state)
    assert sorted(sink.sent) == list(range(400, 450))
    assert counters.duplicates == 0
    # The next rotation compresses it under yet another name: known, and not even decompressed.
    with rotated.open("rb") as src, gzip.open(tmp_path / "access.log.2.gz", "wb") as dst:
        shutil.copyfileobj(src, dst)
    rotated.unlink()
    log.rename(rotated)
    counters, sink = run([tmp_path / "access.log*"], state)
    assert sink.sent == [] and counters.lines_read == 0


def test_copytruncate_is_detected_and_the_new_content_read_from_its_start(tmp_path, state):
    log = tmp_path / "access.log"
    log.write_text(log_lines(0, 200))
    run([log], state)
    shutil.copy(log, tmp_path / "access.log.1")
    with log.open("r+") as f:
        f.truncate(0)
    log.write_text(log_lines(200, 220))  # shorter than what was read before
    _, sink = run([log], state)
    assert sorted(sink.sent) == list(range(200, 220))
    shutil.copy(log, tmp_path / "access.log.1")  # again, now the new content outgrows the old
    with log.open("r+") as f:
        f.truncate(0)
    log.write_text(log_lines(220, 600))
    counters, sink = run([tmp_path / "access.log*"], state)
    assert sorted(sink.sent) == list(range(220, 600))
    assert counters.duplicates == 0


def test_file_truncated_to_the_same_head_is_read_again(tmp_path, state):
    log = tmp_path / "access.log"
    log.write_text(log_lines(0, 1000))
    run([log], state)
    log.write_text(log_lines(0, 600))  # shrank below its position, same first 64 KiB
    assert log.stat().st_size > HEAD_BYTES
    counters, sink = run([log], state)
    assert sink.sent == [] and counters.lines_read == 600
    assert counters.filtered["already_sent"] == 600  # re-read, recognised, not sent
    log.write_text(log_lines(0, 5))  # a small rest is known by its whole content: another file
    counters, sink = run([log], state)
    assert sink.sent == [] and counters.duplicates == 5


def test_overlapping_inputs_are_sent_once_and_counted_as_duplicates(tmp_path, state):
    (tmp_path / "a.log").write_text(log_lines(0, 600))
    (tmp_path / "b.log").write_text(log_lines(400, 1000))  # another server's copy, overlapping
    counters, sink = run([tmp_path / "a.log", tmp_path / "b.log"], state)
    assert sorted(sink.sent) == list(range(1000))
    assert counters.duplicates == 200
    # ...and across runs: a third input overlapping both.
    (tmp_path / "c.log").write_text(log_lines(900, 1100))
    counters, sink = run([tmp_path / "c.log"], state)
    assert sorted(sink.sent) == list(range(1000, 1100))
    assert counters.duplicates == 100


def test_duplicates_of_events_still_in_flight_settle_with_them(tmp_path, state):
    """While the original is in flight a duplicate cannot know whether it will arrive: it waits
    for it. Undelivered, both files stay behind it, and the rerun sends it once."""
    (tmp_path / "a.log").write_text(log_lines(0, 50))
    (tmp_path / "b.log").write_text(log_lines(25, 75))
    failing = {30, 31}
    counters, sink = run([tmp_path / "a.log", tmp_path / "b.log"], state, hold=True,
                         outcome=lambda e: UNDELIVERED if page(e.url) in failing else SENT)
    assert counters.duplicates == 25 and counters.undelivered == 2
    assert sorted(sink.sent) == sorted(set(range(75)) - failing)
    _, sink = run([tmp_path / "b.log"], state)  # b alone: its copies were held back too
    assert sorted(sink.sent) == sorted(failing)
    counters, sink = run([tmp_path / "a.log", tmp_path / "b.log"], state)
    assert sink.sent == [] and counters.duplicates == 2


def test_same_log_given_twice_is_read_once(tmp_path, state):
    log = tmp_path / "access.log"
    log.write_text(log_lines(0, 100))
    shutil.copy(log, tmp_path / "copy.log")
    counters, sink = run([log, tmp_path / "copy.log"], state)
    assert sorted(sink.sent) == list(range(100))
    assert counters.lines_read == 100 and counters.notes["already_imported_lines"] == 100


def test_concatenated_rotations_send_nothing_again(tmp_path, state):
    (tmp_path / "access.log.2").write_text(log_lines(0, 100))
    (tmp_path / "access.log.1").write_text(log_lines(100, 250))
    run([tmp_path / "access.log.*"], state)
    both = (tmp_path / "access.log.1").read_text() + (tmp_path / "access.log.2").read_text()
    (tmp_path / "all.log").write_text(both)  # newer first: known by its head up to the seam
    counters, sink = run([tmp_path / "all.log"], state)
    assert sink.sent == []
    assert counters.lines_read == 100 and counters.duplicates == 100


def test_undelivered_events_hold_the_position_and_a_rerun_sends_exactly_them(tmp_path, state):
    log = tmp_path / "access.log"
    log.write_text(log_lines(0, 200))
    failing = {50, 120}
    counters, sink = run([log], state,
                         outcome=lambda e: UNDELIVERED if page(e.url) in failing else SENT)
    assert counters.undelivered == 2
    files = {f.path: f for f in Checkpoint(str(state), readonly=True).status()}
    assert files[str(log)].lines == 50 and files[str(log)].pending == 2
    counters, sink = run([log], state)
    assert sorted(sink.sent) == sorted(failing)
    assert counters.filtered["already_sent"] == 148  # read again, not sent again
    status = Checkpoint(str(state), readonly=True).status()
    assert [(f.lines, f.pending, f.sent, f.state) for f in status] == [
        (200, 0, 200, "up to date")]
    log.rename(tmp_path / "access.log.1")
    assert Checkpoint(str(state), readonly=True).status()[0].state == "not found"
    log.write_text(log_lines(500, 510))
    assert Checkpoint(str(state), readonly=True).status()[0].state == "replaced"


def test_dead_lettered_events_are_final_and_counted(tmp_path, state):
    log = tmp_path / "access.log"
    log.write_text(log_lines(0, 40))
    run([log], state, outcome=lambda e: DEAD_LETTERED if page(e.url) % 10 == 0 else SENT)
    [status] = Checkpoint(str(state), readonly=True).status()
    assert (status.lines, status.sent, status.dead_lettered, status.pending) == (40, 36, 4, 0)
    log.rename(tmp_path / "moved.log")
    lines = log_lines(0, 40).splitlines(keepends=True)
    (tmp_path / "other.log").write_text("".join(reversed(lines)))  # same events, another file
    counters, sink = run([tmp_path / "other.log"], state)
    assert sink.sent == [] and counters.duplicates == 40


def test_dry_run_neither_advances_nor_records(tmp_path, state):
    log = tmp_path / "access.log"
    log.write_text(log_lines(0, 60))
    (tmp_path / "dup.log").write_text(log_lines(30, 60))
    run([log], state)
    with log.open("a") as f:
        f.write(log_lines(60, 90))
    before = sqlite3.connect(state).execute("SELECT position FROM files").fetchall()
    counters, _ = run([log, tmp_path / "dup.log"], state, readonly=True)
    assert counters.events == 30 and counters.duplicates == 30  # what a real run would do
    assert sqlite3.connect(state).execute("SELECT position FROM files").fetchall() == before
    _, sink = run([log], state)  # the real run still sends everything new
    assert sorted(sink.sent) == list(range(60, 90))


def test_dedupe_without_a_state_file_works_within_the_run(tmp_path):
    (tmp_path / "a.log").write_text(log_lines(0, 30))
    (tmp_path / "b.log").write_text(log_lines(20, 40))
    counters, sink = run([tmp_path / "a.log", tmp_path / "b.log"], None)
    assert sorted(sink.sent) == list(range(40)) and counters.duplicates == 10
    counters, sink = run([tmp_path / "a.log"], None)  # nothing persisted
    assert len(sink.sent) == 30


def test_visitors_behind_one_proxy_are_not_duplicates_of_each_other(tmp_path, state):
    """Behind a proxy every line logs the proxy's address: the X-Forwarded-For is what tells
    two visitors on the same page in the same second apart (a repeat of one stays a dupe)."""
    when = T0.strftime("%d/%b/%Y:%H:%M:%S +0000")
    log = tmp_path / "proxied.log"
    log.write_text("".join(
        f'10.0.0.1 - - [{when}] "GET /page/1 HTTP/1.1" 200 512 "-" "{UA}" "{xff}"\n'
        for xff in ("198.51.100.7", "198.51.100.8", "198.51.100.8")))
    counters, sink = run([log], state, fmt="nginx_main")
    assert counters.events == 2 and counters.duplicates == 1


def test_header_driven_format_resumes_with_its_columns(tmp_path, state):
    """A W3C log names its columns in a header at the top: resuming mid-file still uses them."""
    log = tmp_path / "u_ex261120.log"
    header = ("#Software: Microsoft Internet Information Services 10.0\n#Version: 1.0\n"
              "#Fields: time c-ip cs(User-Agent) sc-status cs-uri-stem cs-method date\n")

    def rows(first: int, last: int) -> str:
        return "".join(f"08:00:{i % 60:02d} 198.51.100.{i % 9} Mozilla/5.0+(X11) 200 "
                       f"/w3c/{i} GET 2026-11-20\n" for i in range(first, last))

    log.write_text(header + rows(0, 20))
    _, sink = run([log], state, fmt=None)
    assert sorted(sink.sent) == list(range(20))
    with log.open("a") as f:
        f.write(rows(20, 30))
    counters, sink = run([log], state, fmt=None)
    assert sorted(sink.sent) == list(range(20, 30)) and counters.malformed == 0


def test_forget_and_reset_start_over_on_purpose(tmp_path, state):
    (tmp_path / "a.log").write_text(log_lines(0, 30))
    (tmp_path / "b.log").write_text(log_lines(100, 120))
    run([tmp_path / "a.log", tmp_path / "b.log"], state)
    with Checkpoint(str(state)) as checkpoint:
        assert checkpoint.forget(str(tmp_path / "a.log")) == 1
        assert checkpoint.forget(str(tmp_path / "nonexistent.log")) == 0
    _, sink = run([tmp_path / "a.log", tmp_path / "b.log"], state)
    assert sorted(sink.sent) == list(range(30))
    with Checkpoint(str(state)) as checkpoint:
        checkpoint.reset()
    _, sink = run([tmp_path / "a.log", tmp_path / "b.log"], state)
    assert len(sink.sent) == 50


def test_state_holds_no_raw_address_or_user_agent(tmp_path, state):
    log = tmp_path / "access.log"
    log.write_text(log_lines(0, 50, ip="192.0.2.{n}"))
    counters, sink = run([log], state, hold=True)
    raw = b"".join(p.read_bytes() for p in state.parent.iterdir() if p.is_file())
    assert b"192.0.2." not in raw and b"Chrome/130" not in raw and b"/page/" not in raw
    assert os.stat(state).st_mode & 0o077 == 0  # readable by its owner only


def test_one_run_at_a_time_per_state(state):
    with Checkpoint(str(state)):
        with pytest.raises(StateError, match="another plausible-import run"):
            Checkpoint(str(state))
        Checkpoint(str(state), readonly=True).close()  # a dry run or `status` may still look


def test_a_killed_run_loses_no_acknowledged_event(tmp_path, state):
    """Outcomes are journaled as they happen: a process killed before any commit still
    recorded them, and the next start folds them in and reports the interrupted run."""
    log = tmp_path / "access.log"
    log.write_text(log_lines(0, 100))
    script = textwrap.dedent(f"""
        import os, signal
        from tests.test_state import run, page, SENT, UNDELIVERED
        import importer.state as state
        state.COMMIT_INTERVAL_S = 3600  # nothing committed before the kill
        def outcome(event):
            if page(event.url) == 70:
                os.kill(os.getpid(), signal.SIGKILL)
            return SENT
        run([{str(log)!r}], __import__("pathlib").Path({str(state)!r}), outcome)
    """)
    result = subprocess.run([sys.executable, "-c", script], cwd=ROOT, timeout=60)
    assert result.returncode == -9
    with Checkpoint(str(state), in_flight=4) as checkpoint:
        assert [r.in_flight for r in checkpoint.interrupted] == [4]
    counters, sink = run([log], state)
    assert sorted(sink.sent) == list(range(70, 100))  # 0..69 were acknowledged before the kill
    assert counters.filtered["already_sent"] == 70


def test_default_state_path_is_per_target(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    one = default_state_path("https://plausible.example.com", "example.com,shop.example.com")
    assert one == default_state_path("https://plausible.example.com/", "shop.example.com, www."
                                     "example.com")
    assert one.startswith(str(tmp_path / "plausible-import") + os.sep)
    assert one != default_state_path("https://plausible.io", "example.com,shop.example.com")
    assert one != default_state_path("https://plausible.example.com", "example.com")
    monkeypatch.delenv("XDG_STATE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert default_state_path(None, "example.com").startswith(
        str(tmp_path / "home" / ".local" / "state" / "plausible-import"))


def test_stdin_is_deduped_but_not_positioned(tmp_path, state):
    """Piped input has no identity: each run reads it all, and dedupe drops what was sent."""
    data = log_lines(0, 40).encode()
    script = textwrap.dedent(f"""
        from tests.test_state import run
        from pathlib import Path
        counters, sink = run(["-"], Path({str(state)!r}))
        print(len(sink.sent), counters.duplicates)
    """)
    outputs = [subprocess.run([sys.executable, "-c", script], cwd=ROOT, input=data,
                              capture_output=True, timeout=60).stdout.split() for _ in range(2)]
    assert outputs == [[b"40", b"0"], [b"0", b"40"]]


def test_sent_multiset_is_exact_over_many_partial_runs(tmp_path, state):
    """Every event ends up sent exactly once although each run fails a different part."""
    log = tmp_path / "access.log"
    log.write_text(log_lines(0, 500))
    (tmp_path / "overlap.log").write_text(log_lines(450, 520))
    sent: Counter[int] = Counter()
    for attempt in range(6):
        failing = set(range(attempt * 7 % 13, 520, 13)) if attempt < 5 else set()
        _, sink = run([log, tmp_path / "overlap.log"], state, hold=attempt % 2 == 0,
                      outcome=lambda e, f=failing: UNDELIVERED if page(e.url) in f else SENT)
        sent.update(sink.sent)
    assert sent == Counter(range(520))


@pytest.mark.parametrize("readonly_state", [False, True])
def test_runs_without_durable_state_spill_dedupe_keys_and_still_find_duplicates(
        tmp_path, state, monkeypatch, readonly_state):
    """A dry run or an export keeps every key of the run for dedupe; past SPILL_KEYS they move
    to a temporary file (flat memory). Duplicates before and after the spill are still found,
    and a dry run over an existing state file leaves that file's `seen` table untouched."""
    import importer.state as state_module
    from importer.runkeys import RunKeys

    monkeypatch.setattr(state_module, "SPILL_KEYS", 50)
    largest = []
    real_spill = RunKeys.spill

    def spill(self):
        largest.append(len(self.recent))
        real_spill(self)

    monkeypatch.setattr(RunKeys, "spill", spill)
    (tmp_path / "a.log").write_text(log_lines(0, 300))
    (tmp_path / "b.log").write_text(log_lines(100, 400))  # overlaps 100..299, old and recent
    if readonly_state:
        (tmp_path / "other.log").write_text(log_lines(5000, 5010))
        run([tmp_path / "other.log"], state)
        largest.clear()
    counters, sink = run([tmp_path / "a.log", tmp_path / "b.log"],
                         state if readonly_state else None, readonly=readonly_state)
    assert sorted(sink.sent) == list(range(400))
    assert counters.duplicates == 200
    assert len(largest) >= 400 // 50 - 1 and max(largest) <= 50  # memory stayed bounded
    if readonly_state:
        seen = sqlite3.connect(state).execute("SELECT count(*) FROM seen").fetchone()[0]
        assert seen == 10


@pytest.mark.parametrize("times", [
    [1_772_334_929.0, 1_772_334_930.0, 1.0],  # whole seconds: written without float repr
    [1_772_334_929.0, 1_772_334_929.5],  # a fraction among them
    [1_772_334_929.0, None],
    [1_772_334_929, 1_772_334_930.0],  # an int: written as it is
    [0.0, -0.0, -5.0],  # not after 1970
    [1e15, 1e16, 123456789012345678.0],  # repr goes scientific
    [float("nan"), float("inf"), 5.0],
])
def test_keys_of_columns_are_the_keys_of_the_records(tmp_path, times):
    """The keys `keys_of` makes of columns are those of the records, byte for byte (earlier
    runs' state holds them), whatever the times."""
    checkpoint = Checkpoint(str(tmp_path / "s.sqlite"))
    records = [LogRecord(time=when, client_ip=f"203.0.113.{i}", user_agent=UA, method="GET",
                         uri=f"/p{i}", status=200, bytes_sent=i or None,
                         host="example.com" if i % 2 else None, xff="198.51.100.7" if i else None)
               for i, when in enumerate(times)]
    columns = [[getattr(record, field) for record in records] for field in KEY_FIELDS]
    assert checkpoint.keys_of(columns) == [checkpoint.key(record) for record in records]
    checkpoint.close()
