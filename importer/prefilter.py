"""The chunk pre-filter: the lines the default page rule rejects, found a chunk at a time.

Most lines of a real log are assets, robots.txt, redirects and POSTs: ~70% of them end as
`filtered` without ever becoming a record anyone looks at. For a format-string parser with
the default filter chain (PageRule first), a chunk of lines is looked at as one Arrow array:
one RE2 match extracts the fields PageRule reads (request, method, uri, status, content type)
and the timestamp, and the SAME Python functions then decide once per distinct value:
`parser.parse` on one line of each distinct set of fields, `PageRule.verdict` on its record,
the timestamp's own conversion on each distinct timestamp.

Exact by construction: a line gets a reason here only where the per-line path would give it
the same one, and every line it is not sure of is left to the per-line path (None):
- only printable ASCII lines without a backslash, two spaces in a row or a blank text: there,
  RE2 and Python's `re` agree on the parser's own pattern (`\\s` is a space, `\\w`/`\\d` are
  ASCII, no escapes to undo), and a `\\s+` can only be one space, so the pattern is matched
  with ` ` for `\\s+` (RE2 runs it ~2x faster);
- the line matches, and every conversion that may fail (timestamps) succeeds on its value:
  malformed comes before filtered;
- PageRule gives a reason without needing the whole record (not a tracked download); lines it
  lets through (page visits) go on to the other rules and the event builder, line by line.
"""
from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from parsers.base import ParseError, Parser, remember
from parsers.formatstring import FormatParser
from parsers.records import OPAQUE, int_or_none

from .filters import NEEDS_RECORD, FilterChain, PageRule

# The record fields PageRule reads, and the format targets that fill them.
KEY_TARGETS = frozenset(("request", "method", "uri", "path", "query", "status", "content_type"))
_UNSURE = object()  # a set of fields whose lines stay on the per-line path
# The seconds of a CLF timestamp where TimeParser.clf reads them apart from the minute: there
# it converts the minute (with "00" seconds) and adds the seconds, so the timestamp converts
# if and only if its minute does. One conversion per minute, not per second.
_CLF_SECONDS = r"^(\[?\d\d/\w{3}/\d{4}:\d\d:\d\d:)\d\d( |\]$|$)"
_GROUP = re.compile(r"\\s[+*]|\\.|\[(?:\\.|[^\]\\])*\]|\(\?|\(", re.S)


def re2_pattern(pattern: str, named: Sequence[int]) -> str | None:
    """`pattern` (Python `re`, anchored by `match`) for RE2 on lines without two spaces in a
    row: groups in `named` become `(?P<gN>`, the others non-capturing, `\\s+`/`\\s*` outside
    character classes become ` `/` ?`. None if the pattern holds something not handled."""
    out, pos, group = ["^"], 0, 0
    for m in _GROUP.finditer(pattern):
        out.append(pattern[pos:m.start()])
        token = m.group()
        if token == "(":
            group += 1
            token = f"(?P<g{group}>" if group in named else "(?:"
        elif token == r"\s+":
            token = " "
        elif token == r"\s*":
            token = " ?"
        elif token == "(?" and pattern[m.end():m.end() + 1] not in (":", "P"):
            return None  # lookarounds, inline flags: not for RE2
        out.append(token)
        pos = m.end()
    out.append(pattern[pos:])
    return "".join(out)


class Prefilter:
    """For one file's parser and the run's filter chain: `reasons(texts)` gives, per line,
    the reason PageRule filters it with, or None where the per-line path must look."""

    def __init__(self, parser: FormatParser, rule: PageRule) -> None:
        self.parser, self.rule = parser, rule
        self.keys = [i for i, (target, _) in enumerate(parser.setters, 1)
                     if target in KEY_TARGETS]
        self.checks = [(i, convert) for i, (_, convert) in enumerate(parser.setters, 1)
                       if convert not in (None, OPAQUE, int_or_none)]
        named = self.keys + [i for i, _ in self.checks]
        self.pattern = re2_pattern(parser._plain.pattern, named)
        self._verdicts: dict[tuple, object] = {}  # fields -> reason, None or _UNSURE

    @classmethod
    def make(cls, parser: Parser, filters: FilterChain) -> Prefilter | None:
        """A pre-filter, if this parser and filter chain have one (else None)."""
        rules = filters.rules
        if type(parser) is not FormatParser or not rules or type(rules[0]) is not PageRule:
            return None
        made = cls(parser, rules[0])
        if made.pattern is None:
            return None
        try:
            pc.extract_regex(pa.array(["x"], pa.large_string()), made.pattern)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            return None  # a construct RE2 does not have
        return made

    def reasons(self, texts: list[str]) -> list[str | None]:
        """Per line of `texts`: PageRule's reason, or None (the per-line path decides)."""
        return self._decide(pa.array(texts, pa.large_string()), texts.__getitem__)

    def chunk_reasons(self, data: bytes) -> tuple[list[str | None], list[int]]:
        """`reasons` for the lines of a chunk's bytes, ASCII without CR or NUL (the common
        case of `Chunk.lines`), without making a str of each line; and the offset in `data`
        after each line."""
        newlines = np.flatnonzero(np.frombuffer(data, dtype=np.uint8) == 10)
        ends = newlines + 1
        if not data.endswith(b"\n"):  # the stream's last line
            ends = np.append(ends, len(data))
        n = len(ends)
        starts = np.zeros(n, dtype=np.int64)
        starts[1:] = ends[:-1]
        stripped = data.replace(b"\n", b"")  # line i starts at starts[i] - i in it
        offsets = np.empty(n + 1, dtype=np.int64)
        offsets[:n] = starts - np.arange(n)
        offsets[n] = len(stripped)
        arr = pa.LargeStringArray.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(stripped))
        return self._decide(arr, lambda i: arr[i].as_py()), ends.tolist()

    def _decide(self, arr: pa.Array, text_of) -> list[str | None]:
        n = len(arr)
        matched = pc.extract_regex(arr, self.pattern)
        sure = _clean(arr) & matched.is_valid().to_numpy(zero_copy_only=False)
        if not sure.any():
            return [None] * n
        for index, convert in self.checks:
            column = matched.field(f"g{index}")
            if convert == self.parser.times.clf:
                column = pc.replace_substring_regex(column, _CLF_SECONDS, r"\100\2")
            sure &= ~_fails(column, convert)
        codes = np.zeros(n, dtype=np.int64)
        columns = []  # (distinct values, index of each line's value) per key field
        for index in self.keys:  # one code per distinct combination of the key fields
            encoded = pc.dictionary_encode(matched.field(f"g{index}"))
            indices = encoded.indices.fill_null(0).to_numpy()
            columns.append((encoded.dictionary.to_pylist(), indices))
            codes = codes * len(encoded.dictionary) + indices
            if len(columns) > 1:  # keep the codes small: at most one per line
                codes = np.unique(codes, return_inverse=True)[1].reshape(-1)
        combos, first, inverse = np.unique(np.where(sure, codes, -1), return_index=True,
                                           return_inverse=True)
        verdicts = np.empty(len(combos), dtype=object)
        for k, (code, line) in enumerate(zip(combos.tolist(), first.tolist(), strict=True)):
            if code >= 0:
                key = tuple(distinct[indices[line]] for distinct, indices in columns)
                verdicts[k] = self._verdict(text_of(line), key)
        return verdicts[inverse.reshape(-1)].tolist()

    def _verdict(self, text: str, key: tuple) -> str | None:
        found = self._verdicts.get(key)
        if found is None:
            try:  # the record of one line with these fields: theirs alone decide PageRule
                record = self.parser.parse(text)
            except ParseError:
                return None  # the timestamp was checked: not expected, and left to the line
            found = self.rule.verdict(record.method, record.status, record.uri,
                                      record.content_type)
            if found is None or found == NEEDS_RECORD:
                found = _UNSURE
            remember(self._verdicts, key, found)
        return None if found is _UNSURE else found


def _clean(arr: pa.Array) -> np.ndarray:
    """Lines of printable ASCII, without a backslash or two spaces in a row, of 2+ characters
    (so not blank): where RE2 on the rewritten pattern is Python's `re` on the parser's."""
    offsets = np.frombuffer(arr.buffers()[1], dtype=np.int64)[:len(arr) + 1]
    data = np.frombuffer(arr.buffers()[2], dtype=np.uint8) if offsets[-1] else np.zeros(0,
                                                                                       np.uint8)
    ok = pc.ascii_is_printable(arr).to_numpy(zero_copy_only=False) & (np.diff(offsets) >= 2)
    if data.size:
        space = data == 32
        bad = np.flatnonzero(data == 92)
        pairs = np.flatnonzero(space[:-1] & space[1:])
        for where in (bad, pairs):
            if where.size:  # a pair across two lines only makes the first one unsure
                ok[np.searchsorted(offsets, where, side="right") - 1] = False
    return ok


def _fails(column: pa.Array, convert) -> np.ndarray:
    """Per line: its value of this field does not convert (a bad timestamp)."""
    encoded = pc.dictionary_encode(column)
    bad = np.zeros(len(encoded.dictionary) + 1, dtype=bool)
    for k, value in enumerate(encoded.dictionary.to_pylist()):
        try:
            convert(value)
        except ValueError:
            bad[k] = True
    return bad[encoded.indices.fill_null(len(encoded.dictionary)).to_numpy()]
