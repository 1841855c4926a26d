"""Parsing on every core: worker processes parse, filter and build events; the main process
reads, keeps the log's order and does everything that needs run-wide state.

    main:    read raw chunks -> [tasks] -> workers: decode, parse, filter, build, dedupe key
    main:    results, in chunk order <- [results] <-/
             merge counters, dedupe (checkpoint), sink, --rejects, file positions

Workers are forked once per run, when the first file big enough to gain from them comes up,
so they share what the main process has loaded (formats, the user-agent database, caches) and
keep their own caches from file to file. Each runs the pipeline's own `_examine` on its copy
of the pipeline: whatever the filters, the builder and the counters do per line, they do it
the same way there. What a worker counted comes back as a difference of its `Counters` and
is added in the main process in chunk order, so totals and `--explain` samples come out as a
serial run's; malformed lines come back whole, to be counted and written to --rejects in order.
Events come back as columns of values (pickling the dataclasses costs ~10x more), with their
line numbers and offsets, for the checkpoint; to a sink that only counts them, only their
dedupe keys and times come back. Before that, a worker's sieve (importer/bulk.py)
counts the lines of a chunk that a filter rule surely drops, from columns, and the lines every
filter lets through become candidates column by column (importer/bulkevents.py) where they
quietly can; `_examine` sees the others.

A chunk holds about 4 MiB of whole lines. The parser of each file is made in each worker from
the same first lines the main process detected it on; header lines (`#Fields:`) of earlier
chunks are replayed before a chunk, so a W3C/CloudFront parser knows its columns anywhere (the
workers tell which a chunk holds; the main process, which finds only where chunks of a plain
file end, reads none of them).
Small files, standard input and `--follow` polls are read line by line in-process: forking
costs more. With --workers 1 (one core) the main process reads big files by the same chunks
(`InProcess`): the sieve and the events made column by column save it as much as they save a
worker; its counters are counted into at once, the rest goes the same way (chunkapply.py).
"""
from __future__ import annotations

import contextlib
import gc
import multiprocessing
import os
import queue
import signal
import traceback
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from parsers.base import Parser

from .chunkapply import Applier
from .chunkwork import Examiner, FileInfo, PlainFile, remember_header
from .sources import CHUNK_SIZE, Chunk, Line, Source, Span

if TYPE_CHECKING:
    from .cursor import Cursor
    from .pipeline import Pipeline
    from .useragents import UserAgentClassifier

MIN_BYTES = 32 << 20  # decompressed bytes (estimated) below which a file is read line by line
COMPRESSION_RATIO = 10  # a guess at how much compressed files grow, for MIN_BYTES
# Lines go to a worker by 4 MiB: what a chunk costs whatever its size (a pyarrow read, numpy
# set-up, messages, lookups per distinct value) is paid a quarter as often as by the MiB
# (1M lines: ~15% less CPU); 8 MiB gains nothing more.
CHUNK_BYTES = 4 * CHUNK_SIZE
IN_FLIGHT_PER_WORKER = 3  # chunks queued or being parsed per worker


def default_workers() -> int:
    """One worker per core the process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def runner(pipeline: Pipeline, count: int) -> Workers | InProcess:
    """What reads the big files of a run: `count` parse workers, or (1) the main process."""
    return Workers(pipeline, count) if count > 1 else InProcess(pipeline)


def _big(source: Source) -> bool:
    """Whether `source` is a file big enough to be read by chunks."""
    if source.path is None:
        return False
    ratio = 1 if source.compression == "plain" else COMPRESSION_RATIO
    return source.size * ratio >= MIN_BYTES


class InProcess(Applier):
    """--workers 1: big files read by the chunks, sieve and column-wise events the workers
    have (~2.5-3x less CPU than line by line, on 1M-line logs), in the main process; each
    chunk applied as soon as it is examined. The examination counts straight into the run's
    counters (the filters and the builder count into them too), so a chunk is never dropped:
    a stop request ends the file after the chunk being examined (its events go to the stopped
    sink: undelivered, and the cursor stays before them)."""

    def __init__(self, pipeline: Pipeline) -> None:
        super().__init__(pipeline)
        self._examiner: Examiner | None = None  # made for the first big file

    def takes(self, source: Source) -> bool:
        return _big(source)

    def close(self) -> None:
        if self._examiner is not None:
            self._examiner.close()

    def run(self, source: Source, head: list[Line], start: int, lineno: int,
            cursor: Cursor | None, bar, parser: Parser) -> None:
        """Read `source` from `start` (`lineno` lines before it) as the serial loop would."""
        if self._examiner is None:
            self._examiner = Examiner(self.pipeline, in_process=True)
        examine, pipeline = self._examiner, self.pipeline
        info = self._info(source, head, cursor, parser, None)
        examine.open(info, parser)  # the file's format, as detected here
        known: dict[str, str] = {}  # the header lines in force (W3C, CloudFront)
        for line in head if info.headers else ():
            if line.end <= start:
                remember_header(known, line.text)
        self._lineno = lineno
        last_position = 0
        chunks = source.chunks(start, lineno, CHUNK_BYTES, numbered=False)
        try:
            for seq, chunk in enumerate(chunks):
                if pipeline.stop_requested:
                    break
                with examine.posing():
                    _, *result = examine(info, seq, chunk, tuple(known.values()))
                self._apply(source, chunk, result, cursor)
                for text in result[-1]:
                    remember_header(known, text)
                if bar is not None:
                    last_position = self._progress(bar, source, last_position)
        finally:
            chunks.close()
        if bar is not None:
            self._progress(bar, source, last_position)


class WorkerError(RuntimeError):
    """A worker process failed; the message holds its traceback."""


@dataclass(eq=False)
class _Worker:
    proc: multiprocessing.Process
    tasks: multiprocessing.Queue
    news: multiprocessing.Queue  # user-agent kinds the others found out
    busy: int = 0  # chunks sent, results not applied yet


class Workers(Applier):
    """`count` worker processes for one pipeline run, started when a file first needs them;
    `close()` ends them."""

    def __init__(self, pipeline: Pipeline, count: int) -> None:
        super().__init__(pipeline)
        self.count = count
        self.found = 0  # user-agent kinds the workers found out (some twice, in a race)
        self._workers: list[_Worker] = []
        self._results: multiprocessing.Queue | None = None

    def takes(self, source: Source) -> bool:
        """Whether `source` is worth the workers: a big enough file."""
        return self.count > 1 and _big(source)

    def _start(self) -> None:
        context = multiprocessing.get_context("fork")  # the workers share what is loaded
        # What is loaded now lives as long as the run: out of the garbage collector's sight,
        # whose passes in a worker would otherwise write to (and so copy) every page of it.
        gc.freeze()
        self._results = context.Queue()
        for me in range(self.count):
            tasks, news = context.Queue(), context.Queue()
            proc = context.Process(target=_serve, daemon=True,
                                   args=(self.pipeline, tasks, news, self._results, me))
            proc.start()
            self._workers.append(_Worker(proc, tasks, news))

    def close(self) -> None:
        for worker in self._workers:
            worker.tasks.put(None)
        for worker in self._workers:
            worker.proc.join(timeout=10)
            if worker.proc.is_alive():
                worker.proc.kill()
            # Chunks still queued for a worker that died would block the queue's feeder thread
            # in a write to a full pipe nobody reads, and exiting waits for that thread.
            for channel in (worker.tasks, worker.news):
                channel.cancel_join_thread()
                channel.close()
        if self._results is not None:
            self._results.close()
        self._workers, self._results = [], None

    def run(self, source: Source, head: list[Line], start: int, lineno: int,
            cursor: Cursor | None, bar, parser: Parser) -> None:
        """Read `source` from `start` (`lineno` lines before it) as the serial loop would."""
        if not self._workers:
            self.pipeline._before_fork(parser, head)
            self._start()
        plain = source.compression == "plain"
        info = self._info(source, head, cursor, parser, source.path if plain else None)
        with contextlib.ExitStack() as stack:
            if plain:  # the workers read the chunks; here only where they end
                raw = stack.enter_context(source.open_raw())
                chunks = source.spans(raw, start, CHUNK_BYTES)
                fd = raw.fileno()
            else:
                chunks = source.chunks(start, lineno, CHUNK_BYTES, numbered=False)
                fd = None
            stack.callback(chunks.close)
            self._run(source, info, chunks, fd, head, start, lineno, cursor, bar)

    def _run(self, source: Source, info: FileInfo, chunks: Iterator[Chunk | Span], fd: int | None,
             head: list[Line], start: int, lineno: int, cursor: Cursor | None, bar) -> None:
        pipeline = self.pipeline
        # The header lines in force (W3C, CloudFront) before the next chunk to apply: those
        # before `start`, then those the workers found in each chunk applied. A chunk sent
        # before that is known goes with a guess (the header lines at the top, which the
        # first chunk holds), checked as it is applied: if wrong, it is parsed again.
        known: dict[str, str] = {}
        guess: dict[str, str] = {}
        for line in head if info.headers else ():
            remember_header(guess, line.text)
            if line.end <= start:
                remember_header(known, line.text)
        pending: dict[int, tuple] = {}  # results that came back before their turn
        queued: deque[tuple[Chunk | Span, _Worker, dict[str, str]]] = deque()
        done = last_position = 0
        lost = False  # the file changed under the workers and here: the rest is left
        # The workers number each chunk's lines from 1 and count them; `_apply` adds the
        # lines of the chunks before (counting them here cost ~10% of this process's CPU).
        self._lineno = lineno
        for seq, chunk in enumerate(chunks):
            if pipeline.stop_requested:
                break
            if len(queued) >= self.count * IN_FLIGHT_PER_WORKER:
                lost = not self._take(source, info, queued, pending, done, fd, cursor, known,
                                      guess)
                done += 1
                if lost:
                    break
            worker = min(self._workers, key=lambda w: w.busy)  # the least behind
            replay = dict(guess if seq else known)
            worker.tasks.put((info, seq, chunk, tuple(replay.values())))
            worker.busy += 1
            queued.append((chunk, worker, replay))
            if bar is not None:
                last_position = self._progress(bar, source, last_position)
        while queued:
            if lost:  # dropped: as they came back (the next file's come after)
                self._next(done, pending)
                queued.popleft()[1].busy -= 1
            else:
                lost = not self._take(source, info, queued, pending, done, fd, cursor, known,
                                      guess)
            done += 1
        if bar is not None:
            self._progress(bar, source, last_position)

    def _take(self, source: Source, info: FileInfo, queued: deque, pending: dict[int, tuple],
              seq: int, fd: int | None, cursor: Cursor | None, known: dict[str, str],
              guess: dict[str, str]) -> bool:
        """The first queued chunk's result applied (unless a stop is requested: dropped, a
        rerun reads it again); False if its bytes changed here too (the file is left)."""
        chunk, worker, replay = queued.popleft()
        result = self._result(info, seq, pending, chunk, worker, replay, fd, known)
        worker.busy -= 1
        if result is None:
            source.warning = f"the file changed while being read; kept the lines before " \
                             f"byte {chunk.start}"
            return False
        if not self.pipeline.stop_requested:
            self._apply(source, chunk, result, cursor)
            for text in result[-1]:
                remember_header(known, text)
                remember_header(guess, text)
        return True

    def _result(self, info: FileInfo, seq: int, pending: dict[int, tuple], chunk: Chunk | Span,
                worker: _Worker, replay: dict[str, str], fd: int | None,
                known: dict[str, str]) -> tuple | None:
        """Chunk `seq`'s result, as parsed after the `known` header lines. Sent again if it
        went with others, or if its worker found the file changed under a `Span` (then with
        the bytes read here; None if they changed here too)."""
        while True:
            result = self._next(seq, pending)
            if result[0] is None:
                data = PlainFile.read_fd(fd, chunk)
                if data is None:
                    return None
                chunk = Chunk(data, 0, chunk.start, chunk.end)
            elif replay == known:
                return result
            replay = dict(known)
            worker.tasks.put((info, seq, chunk, tuple(replay.values())))

    def _next(self, seq: int, pending: dict[int, tuple]) -> tuple:
        while seq not in pending:
            try:
                got, *result = self._results.get(timeout=1.0)
            except queue.Empty:
                if not all(worker.proc.is_alive() for worker in self._workers):
                    raise WorkerError("a worker process died (out of memory?)") from None
                continue
            if got == "error":
                raise WorkerError(result[0])
            if got == "learned":
                self._share(*result)
                continue
            pending[got] = result
        return pending.pop(seq)

    def _share(self, sender: int, learned: list[tuple]) -> None:
        """User-agent kinds a worker found out: to the others at once (they take them before
        classifying another user agent), and kept for the files read in this process."""
        self.found += len(learned)
        for me, other in enumerate(self._workers):
            if me != sender:
                other.news.put(learned)
        _classifier().learn(learned)


def _serve(pipeline: Pipeline, tasks, news, results, me: int) -> None:
    """A worker's loop: chunks in; (seq, candidates, counter delta, malformed lines, line
    count, the chunk's header lines) out, or (seq, None) for a `Span` whose bytes changed;
    and ("learned", me, user-agent kinds) as it finds them out."""
    # Ctrl-C reaches the whole process group: the main process decides when to stop.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    kinds = _Learning(_classifier(), news, results, me)
    examine = Examiner(pipeline)
    with examine.posing(), contextlib.closing(examine):  # this copy of the pipeline is ours
        while (task := tasks.get()) is not None:
            try:
                kinds.exchange()
                result = examine(*task)
                kinds.publish()
                results.put(result)
            except BaseException:  # noqa: BLE001 - any failure must reach the main process
                results.put(("error", traceback.format_exc()))
                return


def _classifier() -> UserAgentClassifier:
    from .useragents import classifier

    return classifier


class _Learning:
    """What the parse workers find out about user agents (each costs ~0.1 ms for a kind, ~1 ms
    in full, and as visitors come back all week, each worker meets nearly every user agent of a
    log), shared: `exchange` runs before every few user agents a worker classifies. The
    workers meet the same new user agents at the same time (the first chunks of a log hold the
    most common ones), so each tells the others (through the main process, which keeps them
    too) what it found every few, and takes what they found, without waiting for the end of a
    chunk."""

    EVERY = 16  # user agents found out here, sent on together
    # Misses between two looks at the news: a look (~15 us in a busy worker) costs a fair share
    # of a classification (~0.1 ms), and news comes in batches of EVERY.
    LOOK_EVERY = 4

    def __init__(self, classifier: UserAgentClassifier, news, results, me: int) -> None:
        self.classifier = classifier
        classifier.found = []
        classifier.on_miss = self.on_miss
        self.news, self.results, self.me = news, results, me
        self.misses = 0

    def on_miss(self) -> None:
        self.misses += 1
        if len(self.classifier.found) >= self.EVERY or not self.misses % self.LOOK_EVERY:
            self.exchange()

    def exchange(self) -> None:
        if len(self.classifier.found) >= self.EVERY:
            self.publish()
        while True:
            try:
                self.classifier.learn(self.news.get_nowait())
            except queue.Empty:
                return

    def publish(self) -> None:
        found = self.classifier.found
        if found:
            self.classifier.found = []
            self.results.put(("learned", self.me, found))
