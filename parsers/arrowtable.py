"""A chunk's lines as Arrow columns, split in C by pyarrow's CSV reader: the table of formats
whose lines are columns (fields apart by one delimiter, some in double quotes), with no
Python per line.

A `Layout` is derived from a parser's own compiled format (FormatParser's parts, a column
list): which CSV column holds which source (a regex group, a column), the literal text
around it, and how its texts are checked. pyarrow's CSV reader is only a splitter here: a
row is kept only where the line is exactly the layout's (`_exact`: its length, its quotes
and delimiters where the layout puts them, no byte the layout refuses) and each source's
text fits the source's pattern (by RE2 on ASCII lines, else once per distinct text with
`re`). The sieve reads a source dictionary-encoded (`encode`). The layout admits only
fields whose values cannot hold the delimiter unquoted and quoted fields that cannot hold a
quote, so the per-line regex (or split) reads the same values out of such a line; any other
line is left out of the table (the per-line path reads it).
"""
from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pyarrow import csv

from .base import CACHE_LIMIT
from .columns import Derived, Encoded, Table, Texts, byte_count, byte_positions
from .layouts import Layout, Place
from .timefmt import sure_rows

_QUOTE = ord('"')
FEW = 8  # fewer lines are read faster with the regex, a call to pyarrow costs ~1 ms


def read(layout: Layout, texts: Sequence[str], data: bytes,
         derive: Callable[[str], Derived | None], checks: tuple[str, ...],
         item: Callable[[int], object] | None = None, only: set[int] | None = None
         ) -> ArrowTable | None:
    """The table of the lines (`texts`, `data` their bytes apart by newlines) that are
    exactly the layout's (see ArrowTable for `item`); None if pyarrow cannot read them as
    its columns, a row to a line. `only`: the sources to read, if not all (a format without
    quoting: the reader converts only their columns)."""
    # A Texts is of ASCII data (its lines found already): no need to look again
    ascii_only = isinstance(texts, Texts) and texts.data is data or data.isascii()
    places = {source: place for source, place in layout.places.items()
              if only is None or source in only}
    found = _split(layout, texts, data, ascii_only,
                   None if only is None else {p.first for p in places.values()})
    if found is None:
        return None
    buf, ends, rows, columns = found
    if layout.quoted is None:  # an empty line may make a row (of empty columns)
        ok = ends[rows] > np.concatenate(([0], ends[:-1] + 1))[rows]
    else:
        ok = _exact(layout, buf, ends, rows, [columns[i] for i in range(len(columns))])
    for byte in _refused(layout.refuse, buf, ends, data):
        if bytes((byte,)) in data:
            bad = np.zeros(len(texts) + 1, bool)
            bad[np.searchsorted(ends, byte_positions(buf, byte))] = True
            ok &= ~bad[rows]
    for i, literal in layout.literals.items():
        ok &= _equals(columns[i], literal)
    sources = {}
    for source, place in places.items():
        parts = [columns[i] for i in range(place.first, place.first + place.count)]
        array = parts[0] if len(parts) == 1 else pc.binary_join_element_wise(
            *parts, _repeated(layout.delimiter, len(rows)))
        sure = None  # a regex every text of the array is known to match whole
        if place.regex is not None and not (place.free and ascii_only):
            if ascii_only and _surely_fitting(place, array):
                sure = place.sure[0]
            else:
                ok &= _fitting(layout, source, place, array, ascii_only)
        sources[source] = Source(array, len(place.prefix), len(place.suffix), sure)
    at = None if ok.all() else np.flatnonzero(ok)
    return ArrowTable(rows if at is None else rows[at], sources, derive, checks, item, at,
                      ascii_only=ascii_only)


def _refused(refuse: bytes, buf: np.ndarray, ends: np.ndarray, data: bytes) -> bytes:
    """The refused bytes that `data` may hold: not the control bytes if it has none but its
    newlines (one count of the bytes below 32, not a search for each: combined refuses 7)."""
    controls = bytes(byte for byte in refuse if byte < 32 and byte != 10)
    if len(controls) > 1 and byte_count(buf, 32, np.less) == len(ends) - (
            not data.endswith(b"\n")):
        return bytes(byte for byte in refuse if byte not in controls)
    return refuse


def _split(layout: Layout, texts: Sequence[str], data: bytes, ascii_only: bool,
           wanted: set[int] | None) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict] | None:
    """The bytes, where each line ends, the lines of the layout's number of columns and
    those columns (pyarrow's CSV reader; the `wanted` ones, if not all: column -> array);
    None where its rows are not the lines."""
    count = len(texts)
    if count < FEW:
        return None
    if isinstance(texts, Texts) and texts.data is data:  # found already
        buf, ends = texts.buf, texts.ends
    else:
        if b"\r" in data:  # pyarrow ends a row at a CR too
            return None
        buf = np.frombuffer(data, np.uint8)
        ends = byte_positions(buf, 10)
        if not data.endswith(b"\n"):
            ends = np.append(ends, len(data))
        if len(ends) != count:
            return None
    skipped: list[str] = []  # the rows of another number of columns
    names = [str(i) for i in range(len(layout.quoted or layout.places))]
    try:
        table = csv.read_csv(
            pa.py_buffer(data),  # in one block: columns of one chunk
            csv.ReadOptions(column_names=names, use_threads=False, block_size=len(data) + 1),
            csv.ParseOptions(
                delimiter=layout.delimiter, quote_char=layout.quoted is not None and '"',
                double_quote=False, escape_char=False, newlines_in_values=False,
                ignore_empty_lines=False,
                invalid_row_handler=lambda row: skipped.append(row.text) or "skip"),
            csv.ConvertOptions(column_types=dict.fromkeys(names, pa.string()),
                               check_utf8=not ascii_only, strings_can_be_null=False,
                               quoted_strings_can_be_null=False, include_columns=None
                               if wanted is None else [names[i] for i in sorted(wanted)]))
    except (pa.ArrowInvalid, ValueError):
        return None
    # A row is a line, but for a quote that runs on to the next line and an empty line that
    # makes no row (and nothing else, as no line makes two rows): then the counts differ.
    if table.num_rows + len(skipped) != count:
        return None
    rows = np.arange(count)
    if skipped:  # the line of each is the first of its text after the last one's (pyarrow's
        # row numbers do not count every line): lines of the same text are read the same
        at, lines = -1, []
        try:
            for text in skipped:
                at = texts.index(text, at + 1)
                lines.append(at)
        except ValueError:
            return None
        rows = np.delete(rows, lines)
    return buf, ends, rows, {int(name): _array(table.column(name))
                             for name in table.column_names}


def _array(column: pa.ChunkedArray) -> pa.Array:
    """A column read in one block as one array (combining copies, even one chunk)."""
    return column.chunk(0) if column.num_chunks == 1 else column.combine_chunks()


def _exact(layout: Layout, buf: np.ndarray, ends: np.ndarray, rows: np.ndarray,
           columns: list[pa.Array]) -> np.ndarray:
    """Per row of a format with quoting: whether its line is its columns as the layout
    writes them: the length adds up, the quotes are where the layout puts them and no other
    quote is in the line; and no unquoted column is empty (the regex's `\\s+` would take
    two delimiters as one). Then the delimiters are where the layout puts them too: the
    reader read each column from where the layout begins it (by induction), an unquoted one
    to the delimiter after its text, a quoted one from its opening quote to the next quote
    (its closing one), after which only a delimiter or the line's end keeps its text as
    long as read. Where no column is quoted, a line with a quote (text to the regex, quoting
    at a column's start to the reader) has its delimiters checked instead. (Without
    quoting, the reader splits on every delimiter: a row of the right number of columns is
    the line's split, but for an empty line.)"""
    lengths = np.diff(np.stack([_offsets(column) for column in columns]), axis=1)
    # Where each column begins in its line as written (numpy's cumsum over columns is slow):
    # the widths before it, each with its delimiter; a quoted one's quotes are its first
    # and last bytes.
    begins, quotes = np.zeros(len(rows), np.int32), []
    bare = not any(layout.quoted)  # then a quote at a column's start only is not its text
    delimiters = []  # where the delimiter before each column but the first is, if bare
    for length, quoted in zip(lengths, layout.quoted, strict=True):
        if quoted:
            quotes += (begins.copy(), begins + length + 1)
            begins += 2
        elif bare and len(delimiters) < len(lengths) - 1:
            delimiters.append(begins + length)
        begins += length + 1
    starts = np.concatenate(([0], ends[:-1] + 1))[rows]
    ok = ends[rows] - starts + 1 == begins  # where a column after the last would begin
    unquoted = [not quoted for quoted in layout.quoted]
    if any(unquoted):
        ok &= lengths[unquoted].min(axis=0) > 0
    if quotes:
        ok &= _at(buf, quotes, starts, _QUOTE)
    # Each row left has these quotes at least: if the chunk has no more, none has others.
    each = len(quotes)
    if byte_count(buf, _QUOTE) != each * np.count_nonzero(ok):
        per_line = np.bincount(np.searchsorted(ends, byte_positions(buf, _QUOTE)),
                               minlength=len(ends) + 1)[rows]
        if bare and delimiters:  # a line with quotes whose delimiters are where they were
            ok &= (per_line == 0) | _at(buf, delimiters, starts, ord(layout.delimiter))
        else:
            ok &= per_line == each
    return ok


def _at(buf: np.ndarray, places: list[np.ndarray], starts: np.ndarray, byte: int
        ) -> np.ndarray:
    """Per row: whether the byte is at each of these places of its line (from `starts`)."""
    return (buf.take(np.stack(places) + starts, mode="clip") == byte).all(axis=0)


def _re2_fullmatch(array: pa.Array, regex: re.Pattern) -> np.ndarray | None:
    """Per text: whether `regex` matches it whole, by RE2; None where RE2 cannot compile it."""
    try:
        return _bools(pc.match_substring_regex(array, f"^(?:{regex.pattern})$"))
    except pa.ArrowInvalid:
        return None


def _fixed_width(array: pa.Array, regex: re.Pattern, width: int | None = None
                 ) -> np.ndarray | None:
    """timefmt.sure_rows of a string array whose texts are all of one width (`width`, if
    given; its data then is a row of bytes each), or None."""
    offsets = _offsets(array)
    if not len(array) or not (np.diff(offsets) == offsets[1] - offsets[0]).all() or (
            width is not None and offsets[1] - offsets[0] != width):
        return None
    data = np.frombuffer(array.buffers()[2], np.uint8)[offsets[0]:offsets[-1]]
    return sure_rows(regex, data.reshape(len(array), -1)) if len(data) else None


def _surely_fitting(place: Place, array: pa.Array) -> bool:
    """Whether the ASCII texts of a place with a `sure` are all of its width and matched by
    its regex (then they fit the place's pattern: a column of timestamps, by numpy)."""
    if place.sure is None:
        return False
    found = _fixed_width(array, *place.sure)
    return found is not None and bool(found.all())


def _fitting(layout: Layout, source: int, place: Place, array: pa.Array,
             ascii_only: bool) -> np.ndarray:
    """Per row: whether the source's text (with its prefix and suffix) fits its pattern.
    On ASCII lines (with none of the bytes refused) RE2 and Python's re agree on what a
    pattern matches whole, where RE2 can compile it."""
    if ascii_only and place.decimal:  # sizes: many distinct texts
        return _bools(pc.ascii_is_decimal(array)) | _equals(array, "-")
    if ascii_only:
        found = _re2_fullmatch(array, place.regex)
        if found is not None:
            return found
    indices, texts = encode(array)
    known = layout.fitting.setdefault(source, set())
    if len(known) + len(texts) > CACHE_LIMIT:
        known.clear()
    fits, add = place.regex.fullmatch, known.add
    verdict = np.fromiter((text in known or (fits(text) is not None and not add(text))
                           for text in texts), bool, len(texts))
    return verdict[indices]


def encode(array: pa.Array) -> Encoded:
    """An array's texts dictionary-encoded: per row, the index of its text; the texts."""
    found = array.dictionary_encode()
    indices = found.indices
    return (np.frombuffer(indices.buffers()[1], np.int32)[indices.offset:][:len(indices)],
            found.dictionary.to_pylist())


# Arrow arrays to and from numpy through their buffers: pyarrow's own conversions (to_numpy,
# Python scalars, numpy arguments) import pandas, ~0.3 s in each parse worker.
def _offsets(array: pa.Array) -> np.ndarray:
    """A string array's offsets: row i is bytes offsets[i]:offsets[i + 1] of its data."""
    return np.frombuffer(array.buffers()[1], np.int32)[array.offset:][:len(array) + 1]


def _bools(array: pa.Array) -> np.ndarray:
    """A boolean array (without nulls) as numpy's."""
    bits = np.unpackbits(np.frombuffer(array.buffers()[1], np.uint8), bitorder="little")
    return bits[array.offset:][:len(array)].view(bool)


def _equals(array: pa.Array, text: str) -> np.ndarray:
    """Per row of a string array: whether it is `text`."""
    offsets, wanted = _offsets(array), text.encode()
    found = np.diff(offsets) == len(wanted)
    data = array.buffers()[2]
    if wanted and found.any():  # then the data holds bytes
        data = np.frombuffer(data, np.uint8)
        for i, byte in enumerate(wanted):
            found &= data[np.minimum(offsets[:-1] + i, len(data) - 1)] == byte
    return found


def _repeated(text: str, count: int) -> pa.Array:
    """A string array of `count` times `text`."""
    size = len(text.encode())
    offsets = np.arange(0, (count + 1) * size, size, dtype=np.int32)
    return pa.StringArray.from_buffers(count, pa.py_buffer(offsets),
                                       pa.py_buffer(text.encode() * count))


def _numbers(positions: np.ndarray) -> pa.Array:
    """Numpy's integers as an Arrow array (to `take` rows)."""
    positions = np.ascontiguousarray(positions, np.int64)
    return pa.Array.from_buffers(pa.int64(), len(positions), [None, pa.py_buffer(positions)])


def compact(codes: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """`np.unique(codes, return_inverse=True)` of codes in range(size), without its sort:
    the codes used, in order; each code's index among them."""
    if size > 4 * len(codes) + 65_536:  # a table of the codes would cost more than the sort
        return np.unique(codes, return_inverse=True)
    seen = np.zeros(size, bool)
    seen[codes] = True
    used = np.flatnonzero(seen)
    renumbered = np.empty(size, np.intp)
    renumbered[used] = np.arange(len(used))
    return used, renumbered[codes]


def combine(encodings: Sequence[Encoded]) -> Encoded:
    """The encoding of the tuples of several encodings' texts, row by row."""
    if len(encodings) == 1:
        return encodings[0]
    sizes = [len(texts) for _, texts in encodings]
    used, indices = compact(np.ravel_multi_index([i for i, _ in encodings], sizes),
                            int(np.prod(sizes)))
    parts = np.unravel_index(used, sizes)
    columns = [list(map(texts.__getitem__, part.tolist()))
               for (_, texts), part in zip(encodings, parts, strict=True)]
    return indices, list(zip(*columns, strict=True))


@dataclass(frozen=True, slots=True)
class Source:
    """A source's texts in a chunk: its column (its columns joined), less the first `prefix`
    and the last `suffix` characters; `sure`: a regex each of them matches whole."""

    array: pa.Array
    prefix: int
    suffix: int
    sure: re.Pattern | None = None  # a regex every text of the array matches whole

    def encode(self, positions: np.ndarray | None = None) -> Encoded:
        """The texts of every row, or of the rows at these positions, dictionary-encoded."""
        indices, texts = encode(self.array if positions is None
                                else self.array.take(_numbers(positions)))
        if self.prefix or self.suffix:
            start, end = self.prefix, -self.suffix or None
            texts = [text[start:end] for text in texts]
        return indices, texts


class ArrowTable(Table):
    """The rows `read` kept (or a selection of them: `at`, their positions in the columns);
    a row's item is the tuple of its sources' texts, or what `item(line index)` makes."""

    def __init__(self, rows: np.ndarray, sources: dict[int, Source],
                 derive: Callable[[str], Derived | None], checks: tuple[str, ...],
                 item: Callable[[int], object] | None = None, at: np.ndarray | None = None,
                 encodings: dict | None = None, ascii_only: bool = False) -> None:
        """`ascii_only`: the lines are ASCII (a test that is a regex may then run in C)."""
        super().__init__(rows, derive, checks)
        self.sources, self.item, self.at, self.ascii_only = sources, item, at, ascii_only
        self._encodings = {} if encodings is None else encodings  # of all the columns' rows

    def _positions(self, where: Sequence[int] | np.ndarray | None) -> np.ndarray | None:
        if where is None:
            return self.at
        where = np.asarray(where, np.intp)
        return where if self.at is None else self.at[where]

    def _encoding(self, sources: tuple[int, ...]) -> Encoded:
        found = self._encodings.get(sources)
        if found is None:
            found = self._encodings[sources] = combine(
                [self._encoding((source,)) for source in sources]) if len(sources) > 1 \
                else self.sources[sources[0]].encode()
        return found

    def raw(self, source: int, where: Sequence[int] | np.ndarray | None = None) -> list[str]:
        if source not in self.sources:  # a column not read: from the rows' items
            rows = self.rows if where is None else self.rows[np.asarray(where, np.intp)]
            return [self.item(row)[source] for row in rows.tolist()]
        positions = self._positions(where)
        found = self._encodings.get((source,))
        column = self.sources[source]
        if found is None and not (column.prefix or column.suffix):
            array = column.array
            return (array if positions is None else array.take(_numbers(positions))).to_pylist()
        indices, texts = found or self._encoding((source,))
        if positions is not None:
            indices = indices[positions]
        return list(map(texts.__getitem__, indices.tolist()))

    def surely(self, derived: Derived) -> np.ndarray | None:
        """A `sure` that is a regex's fullmatch, on a source read as it is, on ASCII lines:
        by numpy where its texts are all of one width that timefmt.sure_rows tells (a
        timestamp's), else by RE2, which matches what `re` matches there."""
        regex = getattr(derived.sure, "__self__", None)
        if not (self.ascii_only and isinstance(regex, re.Pattern) and len(derived.sources) == 1
                and not regex.flags & ~(re.ASCII | re.UNICODE)):
            return None
        source = self.sources[derived.sources[0]]
        if source.prefix or source.suffix:
            return None
        if source.sure is regex:  # found when it was read
            return np.ones(len(self.rows), bool)
        found = _fixed_width(source.array, regex)
        if found is None:
            found = _re2_fullmatch(source.array, regex)
        if found is None:
            return None
        return found if self.at is None else found[self.at]

    def encoded(self, sources: tuple[int, ...], where: np.ndarray | None = None) -> Encoded:
        positions = self._positions(where)
        if where is not None and sources not in self._encodings \
                and 2 * len(positions) < len(self.sources[sources[0]].array):
            # A few rows (a later step's): theirs only, not kept (what reads every row's
            # encodes them all, once)
            return combine([self.sources[source].encode(positions) for source in sources])
        indices, values = self._encoding(sources)
        if positions is None:
            return indices, values
        indices = indices[positions]
        if where is None:
            return indices, values
        used, indices = compact(indices, len(values))  # judge only these rows'
        return indices, list(map(values.__getitem__, used.tolist()))

    def items(self, positions: np.ndarray) -> list:
        if self.item is not None:
            return list(map(self.item, self.rows[positions].tolist()))
        return list(zip(*(self.raw(source, positions) for source in sorted(self.sources)),
                        strict=True))

    def select(self, keep: np.ndarray) -> ArrowTable:
        at = np.flatnonzero(keep) if self.at is None else self.at[keep]
        return ArrowTable(self.rows[keep], self.sources, self.derive, self.checks, self.item,
                          at, self._encodings, self.ascii_only)
