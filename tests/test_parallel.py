"""Parsing big files by chunks (importer/parallel.py), in worker processes or (--workers 1) in
the main process, gives exactly what parsing them line by line gives: the same events in the
same order with the same origins, the same counters (samples included), the same --rejects
lines and the same checkpoint positions and dedupe, on generated logs with malformed lines,
several files, gzip, CRLF, bad UTF-8 and W3C headers mid-file.

Chunks are made tiny so that a small file is cut into hundreds of them."""
from __future__ import annotations

import gzip
import io
import json
import os
import random
import zlib
from collections import Counter
from pathlib import Path

import pytest

from importer import chunkwork, parallel
from importer.delivery import DryRunSink
from importer.digests import DigestMap
from importer.events import Event
from importer.filters import FilterChain
from importer.pipeline import Pipeline
from importer.sources import Chunk, open_source
from importer.state import SENT, UNDELIVERED, Checkpoint
from importer.summary import Counters, difference, merge, snapshot
from importer.transform import EventBuilder
from tests.bench.genlog import CF_FIELDS, generate


@pytest.fixture
def tiny_chunks(monkeypatch):
    monkeypatch.setattr(parallel, "MIN_BYTES", 0)
    monkeypatch.setattr(parallel, "CHUNK_BYTES", 3000)


class Recorder:
    """A sink that keeps every event and settles it at once: undelivered when `fails` says so,
    else sent."""

    def __init__(self, counters: Counters, on_done=None, fails=lambda event: False) -> None:
        self.counters, self.on_done, self.fails = counters, on_done, fails
        self.events: list[Event] = []

    def submit(self, event: Event) -> None:
        self.events.append(event)
        outcome = UNDELIVERED if self.fails(event) else SENT
        setattr(self.counters, outcome, getattr(self.counters, outcome) + 1)
        if self.on_done is not None:
            self.on_done([(event, outcome)])

    def stop(self) -> None:
        pass

    def close(self) -> None:
        pass


def run_as(inputs: list[Path], workers: int, *, state: Path | None = None, explain: int = 0,
           fails=lambda event: False, rules=None) -> tuple[dict, list[Event], str]:
    counters = Counters(explain=explain)
    checkpoint = Checkpoint(None if state is None else str(state), in_flight=4)
    sink = Recorder(counters, checkpoint.on_done, fails)
    rejects = io.StringIO()
    chain = FilterChain(rules) if rules is not None else FilterChain()
    chain.rules.append(_count_hosts(counters))  # a rule with a side effect on the counters
    pipeline = Pipeline(inputs=[str(p) for p in inputs], builder=EventBuilder("example.com"),
                        sink=sink, counters=counters, filters=chain, rejects=rejects,
                        checkpoint=checkpoint, workers=workers)
    return summary_of(pipeline, checkpoint), sink.events, rejects.getvalue()


LINES = 0  # for `run`'s workers: 1, but every file read line by line (the reference)


def run(inputs: list[Path], workers: int, **kwargs) -> tuple[dict, list[Event], str]:
    if workers != LINES:
        return run_as(inputs, workers, **kwargs)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(parallel, "MIN_BYTES", float("inf"))
        return run_as(inputs, 1, **kwargs)


def summary_of(pipeline: Pipeline, checkpoint: Checkpoint) -> dict:
    """The summary of a run of `pipeline` (its buckets add up), without its elapsed time."""
    try:
        pipeline.run()
    finally:
        checkpoint.close()
    assert pipeline.counters.check() == []
    summary = pipeline.counters.as_dict()
    del summary["elapsed_s"]
    return summary


def _count_hosts(counters: Counters):
    def rule(record) -> None:
        counters.unmapped_hosts[record.client_ip.split(".")[0]] += 1

    return rule


def combined_bytes(lines: int, seed: int) -> bytes:
    """A generated combined log, with the damage real logs have."""
    rng = random.Random(seed)
    out = []
    for line in generate(lines, "combined", seed=seed, malformed=0.02):
        raw = line.encode()
        r = rng.random()
        if r < 0.01:
            raw += b"\r"  # CRLF
        elif r < 0.015:
            raw = raw.replace(b"Mozilla", b"Mozi\xffla")  # invalid UTF-8
        elif r < 0.02:
            raw = b""
        elif r < 0.022:
            raw = raw.replace(b" - ", b" \x00- ", 1)
        out.append(raw + b"\n")
    return b"".join(out)


def cloudfront_text(lines: int, seed: int) -> str:
    """CloudFront lines whose #Fields header changes column order halfway through."""
    rows = list(generate(lines, "cloudfront", seed=seed))
    header, data = rows[:2], rows[2:]
    names = CF_FIELDS.split()
    order = list(range(len(names)))
    order[4], order[7] = order[7], order[4]  # c-ip and cs-uri-stem swap places
    swapped = ["#Fields: " + " ".join(names[i] for i in order)]
    for row in data[len(data) // 2:]:
        values = row.split("\t")
        swapped.append("\t".join(values[i] for i in order))
    return "\n".join(header + data[:len(data) // 2] + swapped) + "\n"


@pytest.fixture
def logs(tmp_path: Path) -> list[Path]:
    a = tmp_path / "access.log.1"
    a.write_bytes(combined_bytes(6000, seed=1))
    b = tmp_path / "access.log.2.gz"
    b.write_bytes(gzip.compress(combined_bytes(3000, seed=2)))
    c = tmp_path / "cloudfront.log"
    c.write_text(cloudfront_text(3000, seed=3))
    return [b, a, c]


@pytest.mark.parametrize("workers", [2, 1])
@pytest.mark.parametrize("explain", [3, 0])  # 0: the sieve decides lines in bulk
def test_chunks_give_what_lines_give(logs, tiny_chunks, workers, explain):
    serial = run(logs, workers=LINES, explain=explain)
    chunked = run(logs, workers=workers, explain=explain)
    summary, events, rejects = chunked
    assert summary["lines_read"] == 12000 + 2 + 1  # the CloudFront headers are lines too
    assert summary["malformed"] > 50 and summary["events"] > 1000
    assert summary["notes"]["invalid_utf8"] > 10
    assert len(summary["malformed_samples"]) == 5
    assert bool(summary["filter_samples"]) == bool(explain)
    assert {e.origin.source for e in events} == {str(p) for p in logs}
    assert rejects.count("\n") == summary["malformed"]
    assert chunked == serial


def test_a_chunk_is_parsed_again_only_after_a_header_line_changed(tmp_path, tiny_chunks,
                                                                  monkeypatch):
    """Chunks go to the workers with the header lines at the top of the file; those sent
    before a chunk with another `#Fields:` header is applied are parsed again, after it."""
    log = tmp_path / "cloudfront.log"
    results = []
    real = parallel.Workers._next
    monkeypatch.setattr(parallel.Workers, "_next", lambda self, seq, pending:
                        results.append(seq) or real(self, seq, pending))
    for changed in (False, True):
        rows = cloudfront_text(3000, seed=3).splitlines(keepends=True)
        if not changed:  # only the header lines at the top
            rows = rows[:2] + [row for row in rows[2:] if not row.startswith("#")]
        log.write_text("".join(rows))
        results.clear()
        serial = run([log], workers=LINES, explain=3)
        assert run([log], workers=2, explain=3) == serial
        assert run([log], workers=1, explain=3) == serial
        again = len(results) - len(set(results))
        assert (0 < again <= 2 * parallel.IN_FLIGHT_PER_WORKER) if changed else again == 0


def test_events_keep_their_line_numbers_and_offsets(logs, tiny_chunks):
    _, events, _ = run(logs[1:2], workers=2)
    data = logs[1].read_bytes()
    ends = [i + 1 for i, byte in enumerate(data) if byte == ord("\n")]
    for event in events:
        assert event.origin.offset == ends[event.origin.lineno - 1]


def test_checkpoint_positions_and_dedupe_match_over_reruns(tmp_path, tiny_chunks):
    """Runs over a growing log and an overlapping copy, with some events undelivered each time:
    each run reads, dedupes, sends and holds back exactly as in-process."""
    results = {}
    for workers in (LINES, 1, 2):
        root = tmp_path / f"w{workers}"
        root.mkdir()
        log, overlap = root / "access.log", root / "overlap.log"
        all_lines = combined_bytes(4000, seed=5).splitlines(keepends=True)
        overlap.write_bytes(b"".join(all_lines[3000:3600]))
        runs = []
        for attempt, upto in enumerate((1500, 2500, 4000, 4000)):
            log.write_bytes(b"".join(all_lines[:upto]))
            fails = (lambda e, a=attempt: zlib.crc32(e.url.encode()) % 7 == a) \
                if attempt < 3 else (lambda e: False)
            summary, events, _ = run([log, overlap], workers, state=root / "state.sqlite",
                                     fails=fails)
            runs.append((summary, [(e.url, e.origin.lineno) for e in events]))
        results[workers] = json.dumps(runs).replace(str(root), "ROOT")
    assert results[1] == results[2] == results[LINES]
    runs = json.loads(results[2])
    assert runs[-1][0]["events"] < runs[0][0]["events"]  # reruns send only what is new


def dry_run(inputs: list[Path], workers: int, state: Path, output: io.StringIO | None
            ) -> tuple[dict, str]:
    """A dry run as the CLI makes it: read-only state, the events only counted or written."""
    counters = Counters(explain=3)
    checkpoint = Checkpoint(str(state), readonly=True)
    pipeline = Pipeline(inputs=[str(p) for p in inputs], builder=EventBuilder("example.com"),
                        sink=DryRunSink(counters, output), counters=counters,
                        checkpoint=checkpoint, workers=workers)
    return summary_of(pipeline, checkpoint), "" if output is None else output.getvalue()


def test_a_dry_run_that_only_counts_gets_what_it_counts_from_the_workers(tmp_path, tiny_chunks,
                                                                        monkeypatch):
    """Without --output the workers send only each event's key, time (and line, for the
    summary's samples): dedupe, counts and samples come out as with the events whole."""
    lines = combined_bytes(3000, seed=11).splitlines(keepends=True)
    log, sent, state = tmp_path / "access.log", tmp_path / "sent.log", tmp_path / "state"
    log.write_bytes(b"".join(lines[:2000] + lines[1990:2010]))  # repeated lines nearby
    sent.write_bytes(b"".join(lines[100:300]))
    run([sent], workers=1, state=state)  # sent before: duplicates from the state too
    run([log], workers=1, state=state,  # and some of this log: sent or not, read again
        fails=lambda e: zlib.crc32(e.url.encode()) % 5 == 0)
    counted = []
    monkeypatch.setattr(parallel.Applier, "_count",
                        lambda self, slim, cursor, real=parallel.Applier._count:
                        counted.append(len(slim[0])) or real(self, slim, cursor))
    monkeypatch.setattr(parallel, "MIN_BYTES", float("inf"))
    serial, _ = dry_run([log], 1, state, None)
    monkeypatch.setattr(parallel, "MIN_BYTES", 0)
    assert not counted
    whole, events = dry_run([log], 2, state, io.StringIO())
    assert not counted and events.count("\n") == whole["events"]
    slim, _ = dry_run([log], 2, state, None)
    assert sum(counted) > whole["events"] > 0
    assert slim == whole == serial
    counted.clear()
    assert dry_run([log], 1, state, None)[0] == serial and sum(counted) > whole["events"]
    assert slim["duplicates"] > 20 and slim["filtered"]["already_sent"] > 20
    assert slim["filter_samples"]["already_sent"]


def test_dedupe_without_state_matches_in_process(tmp_path, tiny_chunks, monkeypatch):
    """A dry run or an export dedupes a chunk's events at once: the same duplicates as
    in-process, within a chunk, across chunks and files, before and after keys spill."""
    monkeypatch.setattr("importer.state.SPILL_KEYS", 100)
    lines = combined_bytes(3000, seed=7).splitlines(keepends=True)
    log, copy = tmp_path / "access.log", tmp_path / "copy.log"
    log.write_bytes(b"".join(lines[:2000] + lines[1990:2010]))  # repeated lines nearby
    copy.write_bytes(b"".join(lines[500:700] + lines[1900:3000]))  # old and recent ones
    serial = run([log, copy], workers=LINES, explain=3)
    parallel_ = run([log, copy], workers=2, explain=3)
    assert parallel_[0]["duplicates"] > 40
    assert parallel_ == serial == run([log, copy], workers=1, explain=3)


def test_chunks_of_a_file_changed_under_the_workers_are_sent_to_them(logs, tiny_chunks,
                                                                     monkeypatch):
    """Workers read plain files' chunks themselves; where the bytes are no longer the ones
    the main process read (rotated, truncated, rewritten), they get them from it instead."""
    serial = run(logs, workers=LINES, explain=3)
    real_pread = parallel.os.pread
    spans = []
    main = os.getpid()

    def pread(fd, length, offset):  # in the workers: a file changing under them
        data = real_pread(fd, length, offset)
        if os.getpid() == main:
            return data
        spans.append(offset)
        if len(spans) % 3 == 1:
            return data[:-1]  # shorter
        if len(spans) % 3 == 2:
            return data[:-1] + b"!"  # different
        return data

    monkeypatch.setattr(parallel.os, "pread", pread)
    assert run(logs, workers=2, explain=3) == serial


def test_a_file_changed_here_too_is_left_with_a_warning(logs, tiny_chunks, monkeypatch):
    """Where the main process no longer finds a chunk's bytes either (truncated, rewritten),
    the file is left there, and the run says so: the books balance, the other files read."""
    whole = run(logs, workers=2)[0]
    monkeypatch.setattr(chunkwork.PlainFile, "read_fd", staticmethod(lambda fd, span: None))
    summary = run(logs, workers=2)[0]
    plain = [str(p) for p in logs if p.suffix != ".gz"]
    assert [w.split(":")[0] for w in summary["warnings"]] == plain
    assert all("changed while being read; kept the lines before byte 0" in w
               for w in summary["warnings"])
    assert summary["lines_read"] == 3000 == whole["lines_read"] - 6000 - 3003


def test_a_failing_worker_stops_the_run_with_its_traceback(logs, tiny_chunks):
    def explode(record):
        if record.status == 404:
            raise RuntimeError("boom in a rule")

    with pytest.raises(parallel.WorkerError, match="boom in a rule"):
        run(logs[1:2], workers=2, rules=[explode])


def test_small_files_are_parsed_in_process(logs):
    counters = Counters()
    pipeline = Pipeline(inputs=[str(logs[1])], builder=EventBuilder("example.com"),
                        sink=Recorder(counters), counters=counters,
                        filters=FilterChain([]), workers=2)
    pipeline.run()
    assert pipeline._workers.files == 0 and counters.lines_read == 6000


def test_one_worker_reads_big_files_by_chunks_in_the_main_process(logs, tiny_chunks,
                                                                   monkeypatch):
    """--workers 1 (one core): big files go through the workers' chunk path (sieve, events
    made column by column), but here, with no process forked."""
    examined = []
    real = chunkwork.examine_chunk

    def examine_chunk(*args, **kwargs):
        examined.append((os.getpid(), len(parallel_children())))
        return real(*args, **kwargs)

    def snapshot(counters):  # what the sending thread may change meanwhile: not read here
        raise AssertionError("the run's own counters walked")

    monkeypatch.setattr(chunkwork, "examine_chunk", examine_chunk)
    monkeypatch.setattr(chunkwork, "snapshot", snapshot)
    summary, events, _ = run(logs, workers=1)
    assert len(examined) > 100 and set(examined) == {(os.getpid(), 0)}
    assert {e.origin.source for e in events} == {str(p) for p in logs}
    assert all(e.origin.lineno > 0 for e in events)


def test_a_small_file_after_a_big_one_is_read_as_ever(tmp_path, monkeypatch):
    """Reading a big file in-process as a worker would leaves nothing of a worker behind: a
    small file read line by line after it counts and explains its malformed lines, its events
    know their lines, user agents are classified as ever."""
    from importer import useragents

    big, small = tmp_path / "big.log", tmp_path / "small.log"
    big.write_text("\n".join(generate(4000, "combined", seed=8)) + "\n")
    small.write_bytes(combined_bytes(500, seed=9))
    monkeypatch.setattr(parallel, "MIN_BYTES", big.stat().st_size)
    monkeypatch.setattr(parallel, "CHUNK_BYTES", 20_000)
    for explain in (0, 2):
        serial = run([big, small], workers=LINES, explain=explain)
        summary, events, rejects = run([big, small], workers=1, explain=explain)
        assert (summary, events, rejects) == serial
        assert summary["malformed"] > 5 and len(summary["malformed_samples"]) == 5
        assert all(s.startswith(f"{small}:") and "fails at column" in s
                   for s in summary["malformed_samples"])
        assert {e.origin.source for e in events} == {str(big), str(small)}
    assert useragents.classifier.found is None and useragents.classifier.on_miss is None
    counters = Counters()
    pipeline = Pipeline(inputs=[str(big)], builder=EventBuilder("example.com"),
                        sink=Recorder(counters), counters=counters)
    pipeline.run()
    assert pipeline._workers.files == 1
    assert "_malformed" not in vars(pipeline) and pipeline.origins


def test_chunks_split_lines_as_lines_does(logs):
    """Chunk.lines over any chunk size gives the lines `Source.lines` gives."""
    for path in logs:
        expected = [(ln.lineno, ln.end, ln.text, ln.invalid_utf8)
                    for ln in open_source(str(path)).lines()]
        for size in (50, 4096):
            chunks = list(open_source(str(path)).chunks(size=size))
            got = [(ln.lineno, ln.end, ln.text, ln.invalid_utf8)
                   for chunk in chunks for ln in chunk.lines()]
            assert got == expected
            assert all(isinstance(c, Chunk) and c.end - c.start >= len(c.data) for c in chunks)
            # Unnumbered (as workers get them): the same lines, numbered from 1 in each chunk.
            before, renumbered = 0, []
            for chunk in open_source(str(path)).chunks(size=size, numbered=False):
                assert chunk.lineno == 0
                lines = chunk.lines()
                renumbered += [(before + ln.lineno, ln.end, ln.text, ln.invalid_utf8)
                               for ln in lines]
                before += len(lines)
            assert renumbered == expected


def test_counter_differences_merge_like_counting_in_place():
    worker, main = Counters(explain=2), Counters(explain=2)
    main.filter("asset", "line 0")
    worker.warn("before the snapshot")
    before = snapshot(worker)
    for n in range(1, 4):
        worker.filter("asset", f"line {n}")
    worker.notes["invalid_utf8"] += 2
    worker.lines_read += 7
    worker.warn("a warning")
    merge(main, difference(before, worker))
    assert main.filtered == Counter(asset=4)
    assert main.filter_samples == {"asset": ["line 0", "line 1"]}
    assert main.notes == Counter(invalid_utf8=2) and main.lines_read == 7
    assert main.warnings == ["a warning"] and main.explain == 2


def test_workers_share_what_they_learn_about_user_agents(logs, tiny_chunks, monkeypatch):
    """A user agent classified by one worker is not classified again by the other (each
    costs ~2 ms, and both workers meet nearly every user agent of a log)."""
    from importer import useragents

    monkeypatch.setattr(useragents, "detect_kind", lambda ua: "bot" if "bot" in ua else "")
    # not what earlier tests taught it
    monkeypatch.setattr(useragents.classifier, "_known", DigestMap())
    counters = Counters()
    pipeline = Pipeline(inputs=[str(logs[1])], builder=EventBuilder("example.com"),
                        sink=Recorder(counters), counters=counters, workers=2)
    pipeline.run()
    known = len(useragents.classifier._known)  # the main process learned them all
    assert known > 100  # the user agents of page views
    assert pipeline._workers.found < 1.3 * known  # twice only in a race (~1.8 unshared)


@pytest.mark.parametrize(("known", "keep_bots", "loads"), [
    (0, False, True),  # a first run: the workers will classify, loaded before they fork
    (1, False, False),  # a rerun: the first lines' user agents are all known
    (0.9, False, False),  # ... but for some of lines an earlier filter dropped (assets)
    (0, True, False),  # --keep-bots: the parse workers classify nothing
])
def test_device_detector_is_loaded_before_the_fork_only_if_the_workers_will_need_it(
        logs, tiny_chunks, monkeypatch, known, keep_bots, loads):
    from importer import useragents
    from importer.filters import PageRule, UserAgentRule

    classifier = useragents.UserAgentClassifier(detect_fn=lambda ua: useragents.BOT)
    monkeypatch.setattr(useragents, "classifier", classifier)
    monkeypatch.setattr(useragents, "detect_kind", lambda ua: "")
    agents = sorted(_user_agents(logs[1]))
    assert len(agents) >= 5
    # as importer/uacache.py gives what earlier runs found
    classifier.import_cache({classifier._key(ua): ("",)
                             for ua in agents[:int(known * len(agents))]})
    loaded = []
    monkeypatch.setattr(useragents, "preload", lambda: loaded.append(len(parallel_children())))
    rule = UserAgentRule(None if keep_bots else classifier.kind)
    run([logs[1]], 2, rules=[PageRule(), rule])
    assert loaded == ([0] if loads else [])  # once, before any worker was started


def parallel_children() -> list:
    import multiprocessing

    return multiprocessing.active_children()


def _user_agents(path: Path) -> set[str]:
    with open(path, "rb") as f:
        return {line.rsplit(b'"', 2)[-2].decode("utf-8", "replace")
                for line in f.read().splitlines()[:50] if line.count(b'"') >= 2}


def test_workers_pass_on_what_they_find_out_every_few_user_agents_and_take_the_others(
        monkeypatch):
    import queue

    from importer import useragents
    from importer.useragents import ua_key

    detected = []
    monkeypatch.setattr(useragents, "detect_kind", lambda ua: detected.append(ua) or "bot")
    clf = useragents.UserAgentClassifier()
    clf.import_cache([(ua_key("known before"), ("",))])  # from an earlier run
    news, sent = queue.Queue(), queue.Queue()
    learning = parallel._Learning(clf, news, sent, me=1)
    own = [f"bot {i}" for i in range(learning.EVERY - 1)]
    for ua in own[:-1]:  # a worker classifies user agents one by one
        clf.kind(ua)
    news.put([(ua_key("theirs"), "library")])
    clf.kind(own[-1])  # not enough of its own to send yet
    # its 16th miss: the news is looked at first (every LOOK_EVERY misses)
    assert sent.empty() and clf.kind("theirs") == "library" and "theirs" not in detected
    assert clf.kind("known before") == ""  # used: the main process saves it
    clf.kind("one more")
    got, me, found = sent.get_nowait()
    assert (got, me) == ("learned", 1)
    assert found == [(ua_key(ua), "bot") for ua in own] + [(ua_key("known before"), "")]
    learning.publish()  # at the end of a chunk: whatever is left
    assert sent.get_nowait() == ("learned", 1, [(ua_key("one more"), "bot")]) and sent.empty()
    learning.publish()
    assert sent.empty()


def test_a_worker_looks_at_the_news_every_few_misses(monkeypatch):
    import queue

    from importer import useragents
    from importer.useragents import ua_key

    detected = []
    monkeypatch.setattr(useragents, "detect_kind", lambda ua: detected.append(ua) or "bot")
    clf = useragents.UserAgentClassifier()
    news, sent = queue.Queue(), queue.Queue()
    learning = parallel._Learning(clf, news, sent, me=0)
    news.put([(ua_key("theirs"), "library")])
    for i in range(learning.LOOK_EVERY - 1):
        clf.kind(f"bot {i}")
    assert not news.empty()  # not looked at yet
    assert clf.kind("theirs") == "library" and news.empty()  # a look before this miss
    assert "theirs" not in detected and len(detected) == learning.LOOK_EVERY - 1


@pytest.mark.parametrize("workers", [2, 1])
def test_a_stop_request_ends_the_run_with_the_books_balanced(logs, tiny_chunks, workers):
    """Ctrl-C or a fatal delivery error sets `stop_requested`: the workers' chunks still in
    flight are dropped (a rerun reads them), in-process the chunk being read is finished, and
    every line counted is in a bucket."""
    counters = Counters()
    pipeline = Pipeline(inputs=[str(logs[1])], builder=EventBuilder("example.com"),
                        sink=Recorder(counters), counters=counters,
                        filters=FilterChain([]), workers=workers)

    class Stopping(Recorder):
        def submit(self, event: Event) -> None:
            super().submit(event)
            if len(self.events) == 50:
                pipeline.stop_requested = True

    pipeline.sink = Stopping(counters)
    pipeline.run()
    assert counters.check() == []
    assert counters.events >= 50 and counters.lines_read < 6000


KILLED_WORKER = """
import gzip, os, sys
from importer import parallel
from importer.filters import FilterChain
from importer.pipeline import Pipeline
from importer.summary import Counters, difference, merge, snapshot
from importer.transform import EventBuilder
from tests.test_parallel import Recorder

parallel.MIN_BYTES, parallel.CHUNK_BYTES = 0, 64 << 10
main = os.getpid()

def die(record):  # a worker killed outright, as by the out-of-memory killer
    if os.getpid() != main:
        os.kill(os.getpid(), 9)

counters = Counters()
pipeline = Pipeline(inputs=[sys.argv[1]], builder=EventBuilder("example.com"),
                    sink=Recorder(counters), counters=counters,
                    filters=FilterChain([die]), workers=2)
try:
    pipeline.run()
except parallel.WorkerError as exc:
    print("stopped:", exc)
"""


def test_a_killed_worker_ends_the_run_and_the_process_exits(tmp_path):
    """Chunks queued for a dead worker fill its pipe; exiting must not wait to flush them."""
    import subprocess
    import sys

    log = tmp_path / "access.log.gz"
    line = ('127.0.0.1 - - [10/Oct/2024:13:55:36 +0000] "GET /page HTTP/1.1" 200 512 "-" '
            '"Mozilla/5.0"\n')
    with gzip.open(log, "wt") as out:  # compressed: the chunks' bytes go through the pipes
        out.write(line * 60_000)
    root = Path(__file__).resolve().parents[1]
    done = subprocess.run([sys.executable, "-c", KILLED_WORKER, str(log)], cwd=root,
                          capture_output=True, text=True, timeout=60)
    assert "stopped: a worker process died" in done.stdout, done.stderr
    assert done.returncode == 0
