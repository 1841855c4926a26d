"""The parse workers' fast path: the lines of a chunk that a filter rule drops are decided
together, from columns, and only the others are examined one by one (Pipeline._examine).

Most lines of a log are filtered (assets, bots...), and a filter reads a few fields of a
record. So instead of a LogRecord per line, the parser reads the chunk as a table
(parsers/columns.py; in C where its lines are columns, parsers/arrowtable.py), each rule's
`steps` (importer/filters.py) judge each distinct value of the field they read once (numpy
spreads the verdicts over the rows), and a line takes the first objection in the rules'
order. A line
is decided here only when that is certain: it fits the format as `parse()` reads it, every
conversion of its fields succeeds (else it is malformed), and a step objects before any step
that is unsure (a download, whose verdict reads more than its target) or any rule without
steps (--exclude-ip, --domain-map's host rule, which counts what it sees). Everything else
(would-be events, malformed, blank, undecodable lines) goes through `_examine` as before, in
order, so this only ever counts a line where `_examine` would: under a filter reason.
"""
from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from itertools import compress, takewhile
from operator import attrgetter

import numpy as np

from parsers.base import CACHE_LIMIT, Parser
from parsers.columns import Derived, Table, Texts

from .filters import UNSURE, FilterChain, Step
from .sources import Chunk, Line

# `split`'s maker of events from a table's rows at some positions: (those it made events of,
# their columns), and what it gives back of them.
Make = Callable[[Table, np.ndarray], tuple[list[int], list[list]]]
Made = tuple[list[int], list[int], list[int], list[str] | None, list[list]]

# A row's verdict as a number, so that the first objection in the rules' order is the least
# (np.minimum over the steps' columns): the step's position, then what it said.
_SHIFT = 16
_UNSURE = (1 << _SHIFT) - 1  # the line is left to the per-line path
PASS = 1 << 40  # no objection (yet)
_MAX_CACHES = 64  # verdict caches kept (a new W3C header derives new fields)


def _none() -> None:
    return None


def _moot(step: Step, table: Table) -> bool:
    """Whether a step on a field the table has lets every line through unjudged: it objects
    to a missing value only, and each line left has one (its conversion was checked)."""
    return step.only_none and table.checked(step.field)


class Sieve:
    """Decides the filtered lines of chunks, keeping what it judged from chunk to chunk."""

    def __init__(self, steps: Sequence[Step], complete: bool = False) -> None:
        self.steps = tuple(steps)
        # The steps are all the filters: a line they all let through is an event's, unless
        # it is malformed (which making its record finds out), so it needs no filtering again
        # and its record is made from its row (Parser.record).
        self.complete = complete
        self._eager = tuple(step.field for step in takewhile(attrgetter("eager"), steps))
        self._fields = tuple(dict.fromkeys(step.field for step in steps))
        self._ids: dict[str, int] = {}  # reason -> its number in a verdict
        self._reasons: list[str] = []
        self._verdicts: dict[tuple[int, Derived], dict] = {}  # (position, field) -> cache
        self._valid: dict[Derived, set] = {}  # values known to convert

    def read_too(self, fields: Iterable[str]) -> None:
        """Have the tables read these fields too (what is made of the rows let through reads
        them: a column read in C costs less than splitting those rows again)."""
        self._fields = tuple(dict.fromkeys((*self._fields, *fields)))

    @classmethod
    def of(cls, filters: FilterChain, explain: int) -> Sieve | None:
        """A sieve for these filters; None if it could decide nothing, or if the filtered
        lines are to be sampled (--explain keeps the first ones of each reason)."""
        steps = filters.steps()
        return cls(steps, filters.stepped) if steps and not explain else None

    def lines(self, chunk: Chunk, parser: Parser, filtered: Counter
              ) -> tuple[int, Iterator[tuple[Line, int, object]]]:
        """How many lines the chunk has, and those left to examine one by one with where
        each begins and, if every filter let it through, its row's item (else None; see
        `_numbered`: keep copies only); the others are added to `filtered`."""
        return self.split(chunk, parser, filtered)[:2]

    def split(self, chunk: Chunk, parser: Parser, filtered: Counter, make: Make | None = None,
              texts_too: bool = True
              ) -> tuple[int, Iterator[tuple[Line, int, object]], Made | None]:
        """`lines`, but the lines that every filter let through are first given to `make`
        (`EventColumns.make` without its last argument), and those it made events of are
        not left: they come back as (line numbers, where each begins, where each ends, their
        texts if `texts_too` (else None: most are not decoded at all), the columns `make`
        gave)."""
        lines: list[Line] | None = None
        data: bytes | None = chunk.data
        if chunk.ascii():
            texts: Sequence[str] = Texts(data)
            skip = texts.blank()  # blank_line, per line
        else:
            lines, data = chunk.lines(), None
            texts = [line.text for line in lines]
            skip = {i for i, line in enumerate(lines) if line.invalid_utf8}  # noted per line
            if "" in texts or any(map(str.isspace, texts)):  # blank_line, per line
                skip.update(i for i, text in enumerate(texts) if not text or text.isspace())
        found = self.sift(texts, parser, skip, data) if texts else None
        if found is None:
            if isinstance(texts, Texts):
                texts.all()  # every line is left: decoded at once (half the cost)
            return len(texts), _numbered(chunk, texts, lines, range(len(texts)), {}), None
        counts, left, passed = found
        filtered.update(counts)
        made = None
        if make is not None and isinstance(passed, Passed) and passed:
            table, where = passed.table, passed.at
            kept, columns = make(table, where)
            if kept:
                rows = table.rows[where[kept]]
                listed = rows.tolist()
                done = set(listed)
                left = [i for i in left if i not in done]
                made = (*_positions(chunk, texts, lines, rows),
                        [texts[i] for i in listed] if texts_too else None, columns)
        return len(texts), _numbered(chunk, texts, lines, left, passed), made

    def sift(self, texts: Sequence[str], parser: Parser, skip: set[int] = frozenset(),
             data: bytes | None = None) -> tuple[Counter, list[int], Passed | dict] | None:
        """(filter reason -> lines decided, indexes of the lines left, the table's items of
        those that every filter lets through, if the steps are all the filters), or None if
        the parser cannot read these lines as a table. `skip`: lines to leave anyway;
        `data`: the lines' bytes, if at hand (Parser.table)."""
        table = parser.table(texts, data, self._fields)
        if table is None:
            return None
        keep = self._convertible(table)
        if skip:
            keep &= ~np.isin(table.rows, np.fromiter(skip, np.intp, len(skip)))
        if not keep.all():
            table = table.select(keep)
        plan, lazy = self.steps, len(self._eager)
        verdicts = np.full(len(table.rows), PASS, np.int64)
        # The eager steps' verdicts, one column per field's sources: steps reading the same
        # ones (a request's method and target) are judged together, the least code winning.
        groups: dict[tuple[int, ...], list] = {}
        for k, step in enumerate(plan[:lazy]):
            derived = table.derive(step.field)
            if derived is None:  # not logged: None on every line
                np.minimum(verdicts, self._code(k, step.judge, _none, ()), out=verdicts)
            elif not _moot(step, table):
                groups.setdefault(derived.sources, []).append((k, step, derived))
        for group in groups.values():
            np.minimum(verdicts, self._codes(group, table, None), out=verdicts)
        self._lazy(plan, lazy, table, verdicts)
        through = verdicts == PASS
        left = through | (verdicts & _UNSURE == _UNSURE)
        # How many rows each (step, reason) decided: counted by a table, not sorted
        codes, reasons = verdicts[~left], len(self._reasons)
        counts = np.bincount((codes >> _SHIFT) * reasons + (codes & _UNSURE))
        decided: Counter = Counter()
        for code in np.flatnonzero(counts).tolist():
            decided[self._reasons[code % reasons]] += int(counts[code])
        passed: Passed | dict = {}
        if self.complete:
            at = np.flatnonzero(through)
            passed = Passed(table, at)
        if len(table.rows) == len(texts):
            return decided, np.flatnonzero(left).tolist(), passed
        remaining = np.ones(len(texts), bool)
        remaining[table.rows[~left]] = False
        return decided, np.flatnonzero(remaining).tolist(), passed

    def _convertible(self, table: Table) -> np.ndarray:
        """Per row: whether every field's conversion succeeds (else the line is malformed:
        said per line). The values known to convert are kept from chunk to chunk."""
        keep = np.ones(len(table.rows), bool)
        for field in table.checks:
            derived = table.derive(field)
            if derived is None:
                continue
            where = None  # the rows whose values are tested here: all but those sure in C
            surely = table.surely(derived)
            if surely is not None:
                where = np.flatnonzero(~surely)
                if not len(where):
                    continue
            indices, keys = table.encoded(derived.sources, where)
            valid = self._cache(self._valid, derived, set)
            missing = [key for key in keys if key not in valid]
            if not missing:
                continue
            if len(valid) + len(missing) > CACHE_LIMIT:
                valid.clear()
            if derived.sure is not None:  # the values it is sure of need no converting
                valid.update(compress(missing, map(derived.sure, missing)))
                missing = [key for key in missing if key not in valid]
            value, bad = derived.value, set()
            for key in missing:
                try:
                    value(*key) if len(derived.sources) > 1 else value(key)
                except ValueError:
                    bad.add(key)
                else:
                    valid.add(key)
            if bad:
                failing = np.fromiter(map(bad.__contains__, keys), bool, len(keys))[indices]
                keep[failing if where is None else where[failing]] = False
        return keep

    def _lazy(self, plan: Sequence[Step], start: int, table: Table,
              verdicts: np.ndarray) -> None:
        """The steps from `start` on, each on the rows the ones before let through."""
        alive = np.flatnonzero(verdicts == PASS)
        for k in range(start, len(plan)):
            if not len(alive):
                return
            step = plan[k]
            derived = table.derive(step.field)
            if derived is None:
                codes = np.full(len(alive), self._code(k, step.judge, _none, ()), np.int64)
            elif _moot(step, table):
                continue
            else:
                codes = self._codes([(k, step, derived)], table, alive)
            verdicts[alive] = codes
            alive = alive[codes == PASS]

    def _codes(self, group: list[tuple[int, Step, Derived]], table: Table,
               where: np.ndarray | None) -> np.ndarray:
        """The verdict of the steps (k, step, its field) on each row (of `where`, else of
        all): the least of their codes. Their fields are made of the same sources."""
        sources = group[0][2].sources
        indices, keys = table.encoded(sources, where)
        cache = self._cache(self._verdicts, tuple((k, found) for k, _, found in group), dict)
        missing = [key for key in keys if key not in cache]
        if missing:
            if len(cache) + len(missing) > CACHE_LIMIT:
                cache.clear()
                missing = keys
            one = len(sources) == 1
            for key in missing:
                texts = (key,) if one else key
                cache[key] = min(self._code(k, step.judge, found.value, texts)
                                 for k, step, found in group)
        codes = np.fromiter(map(cache.__getitem__, keys), np.int64, len(keys))
        return codes[indices]

    @staticmethod
    def _cache(caches: dict, key, make: type) -> dict | set:
        """The cache kept under `key`; a few are kept (a new W3C header derives new fields)."""
        found = caches.get(key)
        if found is None:
            if len(caches) >= _MAX_CACHES:
                caches.clear()
            found = caches[key] = make()
        return found

    def _code(self, k: int, judge, value, texts: tuple) -> int:
        """Step k's verdict on the value of a field made of these texts, as a number."""
        try:
            made = value(*texts)
        except ValueError:  # the line is malformed: said per line
            return k << _SHIFT | _UNSURE
        why = judge(made)
        if why is None:
            return PASS
        if why is UNSURE:
            return k << _SHIFT | _UNSURE
        found = self._ids.get(why)
        if found is None:
            found = self._ids[why] = len(self._reasons)
            self._reasons.append(why)
        return k << _SHIFT | found


def _positions(chunk: Chunk, texts: Sequence[str], lines: list[Line] | None, rows: np.ndarray
               ) -> tuple[list[int], list[int], list[int]]:
    """The line numbers of the lines at these indexes, where each begins and ends, as
    `_numbered` gives them."""
    if lines is not None:
        listed = rows.tolist()
        return ([lines[i].lineno for i in listed],
                [lines[i - 1].end if i else chunk.start for i in listed],
                [lines[i].end for i in listed])
    ends = texts.ends[rows] + (chunk.start + 1)  # an ASCII line's end: after its newline
    ends[rows == len(texts) - 1] = chunk.end  # the last line may have no newline, or be cut
    return ((rows + (chunk.lineno + 1)).tolist(), (texts.begins[rows] + chunk.start).tolist(),
            ends.tolist())


class Passed:
    """The rows of a table (at positions `at`) that every filter let through; `get`: a row's
    item by its line, made when asked for: most of those rows become events column by column
    (`split`'s `make`) and need none."""

    __slots__ = ("table", "at", "_positions")

    def __init__(self, table: Table, at: np.ndarray) -> None:
        self.table, self.at = table, at
        self._positions: dict[int, int] | None = None  # line -> its row's position

    def get(self, line: int) -> object:
        if self._positions is None:
            self._positions = dict(zip(self.table.rows[self.at].tolist(), self.at.tolist(),
                                       strict=True))
        position = self._positions.get(line)
        return None if position is None else self.table.items(np.array([position]))[0]

    def __bool__(self) -> bool:
        return bool(len(self.at))


def _numbered(chunk: Chunk, texts: Sequence[str], lines: list[Line] | None,
              which: Sequence[int], passed: Passed | dict
              ) -> Iterator[tuple[Line, int, object]]:
    """The lines at these indexes, each with where it begins and its item in `passed` (or
    None). Of ASCII texts, as one Line changed in place, as `Chunk.stream` gives them: for a
    reader that keeps only copies."""
    item = passed.get
    if lines is not None:
        for i in which:
            yield lines[i], lines[i - 1].end if i else chunk.start, item(i)
        return
    start, last = chunk.start, len(texts) - 1
    ends = texts.offsets()  # an ASCII line's end: after its newline
    line = Line(0, 0, "")
    for i in which:
        line.lineno, line.text = chunk.lineno + i + 1, texts[i]
        line.end = chunk.end if i == last else start + ends[i] + 1
        yield line, start + ends[i - 1] + 1 if i else start, item(i)
