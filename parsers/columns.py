"""Many lines read at once, as columns: what a parser offers the parse workers' fast path
(importer/bulk.py), which decides whole columns of lines instead of one record at a time.

A parser's `table(texts)` says which lines it is sure of (they fit the format and would be
read by `parse()` from the same raw values), keeps each one's raw values, and says how each
LogRecord field is derived from them. The derivations are the parser's own builder, compiled
for one field: nothing here knows a format. Two kinds of table: `ItemTable` holds a Python
item per row (a regex's groups, a list of columns); parsers/arrowtable.py's holds Arrow
columns read in C. Both give a source's values dictionary-encoded (`encoded`), which is how
the fast path reads them: one judgement per distinct value, numpy for the rows.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from operator import itemgetter

import numpy as np


@dataclass(frozen=True, slots=True)
class Derived:
    """How a LogRecord field is made from a line's raw values: the sources it reads (regex
    groups, columns), and the function of their texts (in that order) giving the value that
    `parse()` gives the field; it raises ValueError where `parse()` would fail on them.
    `sure`: for a field of one source, a quick test (a regex's fullmatch) of texts that
    `value` converts without fail, if there is one."""

    sources: tuple[int, ...]
    value: Callable[..., object]
    sure: Callable[[str], object] | None = None


Encoded = tuple[np.ndarray, list]  # per row, the index of its value; the distinct values


class Table:
    """`rows`: the indexes (in the texts given) of the lines the parser is sure of, in order;
    `derive`: a field's `Derived` (None: the format does not log it, the field is None);
    `checks`: the fields whose conversion may fail (a line that fails them is malformed), or
    their parts (`time:date`: a field fails where one of its parts does)."""

    def __init__(self, rows: np.ndarray, derive: Callable[[str], Derived | None],
                 checks: tuple[str, ...]) -> None:
        self.rows, self.derive, self.checks = rows, derive, checks

    def raw(self, source: int, where: Sequence[int] | np.ndarray | None = None) -> list[str]:
        """A source's texts, of every row or of the rows at positions `where`."""
        raise NotImplementedError

    def encoded(self, sources: tuple[int, ...], where: np.ndarray | None = None) -> Encoded:
        """The sources' texts (a text, or a tuple of texts for several sources) of every row
        or of the rows at positions `where`, dictionary-encoded."""
        columns = [self.raw(source, where) for source in sources]
        keys = columns[0] if len(columns) == 1 else list(zip(*columns, strict=True))
        index: dict = {}
        found = index.setdefault
        codes = np.fromiter((found(key, len(index)) for key in keys), np.intp, len(keys))
        return codes, list(index)

    def items(self, positions: np.ndarray) -> list:
        """The items `Parser.record` makes a record of, of the rows at these positions."""
        raise NotImplementedError

    def surely(self, derived: Derived) -> np.ndarray | None:
        """Per row, `derived.sure` of its value, if the table can test it faster than once
        per distinct value; else None."""
        return None

    def select(self, keep: np.ndarray) -> Table:
        """The table of the rows where `keep` (a bool per row) is true."""
        raise NotImplementedError

    def checked(self, field: str) -> bool:
        """Whether `checks` covers `field`: its conversion, or its parts' (a parser that
        checks a field by parts names them all)."""
        return field in self.checks or any(check.startswith(field + ":")
                                           for check in self.checks)


class ItemTable(Table):
    """A table of a Python item per row: `item[source]` is a source's text; `groups` makes
    the item `Parser.record` takes of one (a regex match's groups, say)."""

    def __init__(self, rows: Sequence[int], items: list, derive: Callable[[str], Derived | None],
                 checks: tuple[str, ...], groups: Callable[[object], object] | None = None
                 ) -> None:
        super().__init__(np.asarray(rows, np.intp), derive, checks)
        self._items, self._groups = items, groups

    def raw(self, source: int, where: Sequence[int] | np.ndarray | None = None) -> list[str]:
        if isinstance(where, np.ndarray):
            where = where.tolist()
        items = self._items if where is None else map(self._items.__getitem__, where)
        return list(map(itemgetter(source), items))

    def items(self, positions: np.ndarray) -> list:
        found = list(map(self._items.__getitem__, positions.tolist()))
        return found if self._groups is None else list(map(self._groups, found))

    def select(self, keep: np.ndarray) -> ItemTable:
        kept = np.flatnonzero(keep).tolist()
        return ItemTable(self.rows[keep], list(map(self._items.__getitem__, kept)),
                         self.derive, self.checks, self._groups)


# The bytes `str.isspace` takes for white space in ASCII (a line of them only is blank).
_SPACES = np.zeros(256, bool)
_SPACES[list(b" \t\n\x0b\x0c\r\x1c\x1d\x1e\x1f")] = True


_BLOCK = 1 << 17  # bytes compared at a time: their mask stays in the CPU's cache


def _masks(buf: np.ndarray, byte: int, compare: np.ufunc = np.equal
           ) -> Iterator[tuple[int, np.ndarray]]:
    """Per block of the bytes: where it begins, and per byte of it `compare(it, byte)` (a
    mask the size of all the bytes, fresh memory of 4 MiB, costs twice the compare in a
    parse worker)."""
    mask = np.empty(min(len(buf), _BLOCK), bool)
    for start in range(0, len(buf), _BLOCK):
        part = buf[start:start + _BLOCK]
        yield start, compare(part, byte, out=mask[:len(part)])


def byte_positions(buf: np.ndarray, byte: int) -> np.ndarray:
    """Where `byte` is in the bytes: np.flatnonzero(buf == byte)."""
    found = [np.flatnonzero(mask) + start for start, mask in _masks(buf, byte)]
    return np.concatenate(found) if found else np.zeros(0, np.intp)


def byte_count(buf: np.ndarray, byte: int, compare: np.ufunc = np.equal) -> int:
    """How many bytes `compare` (np.equal: are `byte`; np.less: are below it) is true of."""
    return sum(np.count_nonzero(mask) for _, mask in _masks(buf, byte, compare))


class Texts(Sequence[str]):
    """The texts of an ASCII chunk's lines (`data`: lines apart by newlines, no CR), each
    decoded when asked for: most lines of a chunk are decided from its columns (read from
    the bytes) and their texts are never needed. `ends`: where each line's newline is (the
    last line's, if it has none: the end of the data)."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.buf = np.frombuffer(data, np.uint8)
        ends = byte_positions(self.buf, 10)
        self.ends = ends if data.endswith(b"\n") else np.append(ends, len(data))
        self.begins = np.concatenate(([0], self.ends[:-1] + 1))
        self._ends: list[int] = []
        self._all: list[str] | None = None

    def __len__(self) -> int:
        return len(self.ends)

    def __getitem__(self, i):
        if self._all is not None or not isinstance(i, int):
            return self.all()[i]
        ends = self._ends or self.offsets()
        if i < 0:
            i += len(ends)
        begin = ends[i - 1] + 1 if i > 0 else 0
        return self.data[begin:ends[i]].decode("ascii")

    def __iter__(self):
        return iter(self.all())

    def __contains__(self, text: object) -> bool:
        return text in self.all()

    def index(self, text: str, start: int = 0, stop: int | None = None) -> int:
        return self.all().index(text, start, len(self) if stop is None else stop)

    def all(self) -> list[str]:
        """Every text, as a list (decoded at once)."""
        if self._all is None:
            texts = self.data.decode("ascii").split("\n")
            if self.data.endswith(b"\n"):
                texts.pop()
            self._all = texts
        return self._all

    def offsets(self) -> list[int]:
        """`ends` as a list."""
        if not self._ends:
            self._ends = self.ends.tolist()
        return self._ends

    def begin_with(self, text: bytes) -> bool:
        """Whether a line begins with this byte."""
        return bool(len(self.buf)) and bool(
            (self.buf.take(self.begins, mode="clip") == text[0]).any())

    def blank(self) -> set[int]:
        """The lines that are empty or white space only."""
        lengths = self.ends - self.begins
        first = self.buf.take(self.begins, mode="clip") if len(self.buf) else lengths
        maybe = np.flatnonzero((lengths == 0) | _SPACES[first])
        return {i for i in maybe.tolist() if not (text := self[i]) or text.isspace()}
