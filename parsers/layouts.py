"""How a format's lines fall into columns: what parsers/arrowtable.py reads in C.

A `Layout` is derived from a parser's own compiled format (FormatParser's parts, a column
list): which CSV column holds which source (a regex group, a column), the literal text
around it, and how its texts are checked. Kept apart from the reading so that a process
that never reads a table (a small file, read in-process) does not load pyarrow.
"""
from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

QUOTED = r'[^"\\]*(?:\\.[^"\\]*)*'  # a quoted value's pattern (escapes allowed)
PLAIN_QUOTED = '[^"]*'  # a quoted value's pattern on a line without a backslash (no escapes)
# The patterns a column's text fits without a look at it, in a chunk without other white
# space than the delimiter: any text between quotes that holds none, any unquoted one.
_FREE = {True: PLAIN_QUOTED, False: r"\S*"}


def plain(pattern: str) -> str:
    """`pattern` for a line without a backslash, where a quoted value cannot hold an escape:
    `[^"]*` is a single-character scan in `re`, about twice as fast on a whole line."""
    return pattern.replace(QUOTED, PLAIN_QUOTED)


@dataclass(frozen=True, slots=True)
class Place:
    """Where a source's text is: `count` columns from `first` (joined by the delimiter),
    less `prefix` and `suffix`. `regex`: what its text with them fits (None: any text);
    `free`: every text that such columns hold fits (see _FREE); `decimal`: the pattern is
    `-|\\d+`."""

    first: int
    count: int = 1
    prefix: str = ""
    suffix: str = ""
    regex: re.Pattern | None = None
    free: bool = True
    decimal: bool = False
    # (regex, width): texts of that width it matches whole (timefmt.sure_rows) fit `regex`
    sure: tuple[re.Pattern, int] | None = None


@dataclass
class Layout:
    """`quoted`: per column, whether it is written in double quotes (None: the format has no
    quoting, and a column may be empty); `literals`: the columns that are literal text;
    `places`: source -> Place; `refuse`: bytes that leave a line to the per-line path."""

    delimiter: str
    quoted: tuple[bool, ...] | None
    literals: dict[int, str]
    places: dict[int, Place]
    refuse: bytes = b""
    # Texts known to fit, per source, from chunk to chunk.
    fitting: dict[int, set] = field(default_factory=dict)


_MORE = object()  # in a column: the rest of the value of the field before it
# What leaves a line of a text format to the per-line path: an escape (the regex that reads
# it may split it otherwise), white space that is not a space (the regex's `\s+`, `\S*`).
_TEXT_REFUSE = b"\\\t\x0b\x0c\x1c\x1d\x1e\x1f"


def text_layout(parts: Sequence) -> Layout | None:
    """The layout of a format string's parts (literal text, and fields with a `pattern` and
    `spaces`: how many single spaces an unquoted value holds, None if that varies), sources
    numbered from 1, each read with the pattern the per-line regex uses on a line without a
    backslash (`plain`). None if the lines of this format are not columns apart by single spaces,
    each holding one field (or the part of one), in quotes or with literal text around."""
    columns: list[list] = [[]]
    for part in parts:
        if isinstance(part, str):
            first, *rest = part.split(" ")
            columns[-1].append(first)
            columns.extend([piece] for piece in rest)
        else:
            columns[-1].append(part)
            columns.extend([_MORE] for _ in range(part.spaces or 0))
    quoted: list[bool] = []
    literals: dict[int, str] = {}
    found: dict[int, list] = {}  # source -> [first column, count, prefix, suffix, field]
    for i, column in enumerate(map(_merged, columns)):
        values = [cell for cell in column if not isinstance(cell, str)]
        quoted.append(len(column) == 3 and column[0] == column[2] == '"' and bool(values))
        if not values:
            if not column or '"' in column[0]:
                return None
            literals[i] = column[0]
            continue
        if len(values) > 1:
            return None
        at = column.index(values[0])
        prefix, suffix = "".join(column[:at]), "".join(column[at + 1:])
        if not quoted[-1] and '"' in prefix + suffix:
            return None
        if quoted[-1]:
            prefix = suffix = ""
        value = values[0]
        if value is _MORE:  # the field is the column's first cell, its last if more follow
            last = found[len(found)]
            more = i + 1 < len(columns) and columns[i + 1][:1] == [_MORE]
            if prefix or more and suffix:
                return None
            last[1], last[3] = last[1] + 1, suffix
        elif not quoted[-1] and value.spaces is None or value.spaces and suffix:
            return None
        else:
            found[len(found) + 1] = [i, 1, prefix, suffix, value]
    if not found:
        return None
    places = {}
    for source, (first, count, prefix, suffix, value) in found.items():
        pattern, quotes = plain(value.pattern), quoted[first]
        places[source] = Place(
            first, count, prefix, suffix,
            re.compile(re.escape(prefix) + f"(?:{pattern})" + re.escape(suffix)),
            pattern == _FREE[quotes] and not prefix and not suffix and count == 1,
            pattern == r"-|\d+" and not quotes,
            None if quotes or prefix or suffix or pattern != value.pattern
            else value.sure)
    return Layout(" ", tuple(quoted), literals, places, _TEXT_REFUSE)


def _merged(column: list) -> list:
    """A column's cells, with adjacent literal texts as one and empty ones gone."""
    out: list = []
    for cell in column:
        if isinstance(cell, str) and out and isinstance(out[-1], str):
            out[-1] += cell
        elif cell != "":
            out.append(cell)
    return out


def column_layout(count: int, delimiter: str) -> Layout:
    """The layout of lines of `count` columns split on `delimiter` (no quoting): source i is
    column i, whatever its text."""
    return Layout(delimiter, None, {}, {i: Place(i) for i in range(count)})


def joined(texts: Sequence[str], data: bytes | None) -> bytes:
    """The lines as one buffer: `data` if given (their bytes as read), else their texts (a
    line that is not UTF-8 is left to the per-line path anyway)."""
    return data if data is not None else "\n".join(texts).encode("utf-8", "replace")
