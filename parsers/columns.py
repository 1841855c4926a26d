"""Many lines read at once, as columns: what a parser offers the parse workers' fast path
(importer/bulk.py), which decides whole columns of lines instead of one record at a time.

A parser's `table(texts)` says which lines it is sure of (they fit the format and would be
read by `parse()` from the same raw values), keeps each one's raw values (a regex match, a
list of columns), and says how each LogRecord field is derived from them. The derivations
are the parser's own builder, compiled for one field: nothing here knows a format.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from operator import itemgetter


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


@dataclass(slots=True)
class Table:
    """`rows`: the indexes (in the texts given) of the lines the parser is sure of; `items`:
    their raw values, one item per row, `item[source]` being a source's text; `derive`: a
    field's `Derived` (None: the format does not log it, the field is None); `checks`: the
    fields whose conversion may fail (a line that fails them is malformed), or their parts
    (`time:date`: a field fails where one of its parts does). `cut`: items
    hold only sources 0 to cut - 1 apart, then the rest of the line, whose sources are
    split apart (on `separator`) when read."""

    rows: Sequence[int]
    items: list
    derive: Callable[[str], Derived | None]
    checks: tuple[str, ...]
    cut: int | None = None
    separator: str | None = None

    def raw(self, source: int, where: Sequence[int] | None = None) -> list[str]:
        """A source's texts, of every row or of the rows at positions `where`."""
        items = self.items if where is None else map(self.items.__getitem__, where)
        if self.cut is not None and source >= self.cut:
            cut, separator = self.cut, self.separator
            return [item[cut].split(separator, source - cut + 1)[source - cut]
                    for item in items]
        return list(map(itemgetter(source), items))

    def raws(self, sources: Sequence[int], where: Sequence[int] | None = None
             ) -> list[list[str]]:
        """`raw` of each of these sources, splitting the rest of each row once for all."""
        cut = self.cut
        if cut is None or sum(source >= cut for source in sources) < 2:
            return [self.raw(source, where) for source in sources]
        items = self.items if where is None else list(map(self.items.__getitem__, where))
        rests = [item[cut].split(self.separator, max(sources) - cut + 1) for item in items]
        return [list(map(itemgetter(source), items)) if source < cut
                else list(map(itemgetter(source - cut), rests)) for source in sources]

    def checked(self, field: str) -> bool:
        """Whether `checks` covers `field`: its conversion, or its parts' (a parser that
        checks a field by parts names them all)."""
        return field in self.checks or any(check.startswith(field + ":")
                                           for check in self.checks)

    def without(self, lines: set[int]) -> Table:
        """The table without these lines (of the texts given)."""
        kept = [i for i, line in enumerate(self.rows) if line not in lines]
        return replace(self, rows=[self.rows[i] for i in kept],
                       items=[self.items[i] for i in kept])
