"""Would-be events made column by column: the rows of a chunk that every filter let through
(importer/bulk.py, when the sieve's steps are all the filters) become the columns of candidate
events that a parse worker sends (importer/parallel.py), as `Pipeline._examine` makes them one
line at a time (record -> EventBuilder.build -> dedupe key), but with each distinct value
worked on once: a timestamp text converted once, a page (target, host, scheme) made once, a
client address resolved once...

A row is left to the per-line path wherever that path would do anything but make an event
quietly: a field's conversion fails, the address is bad, there is no page or its URL is cut,
the event is a download, a prop may be cut. The per-line path then says so, as before. Nothing
here knows a format: a field is what the table's derivation of it gives (parsers/columns.py).
"""
from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Sequence
from itertools import compress, repeat, starmap

import numpy as np

from parsers.base import CACHE_LIMIT
from parsers.columns import Derived, Table
from parsers.records import MANY, MANY_DISTINCT

from .clientip import BadAddress
from .eventkeys import KEY_FIELDS
from .events import Event
from .filters import is_download
from .state import Checkpoint
from .transform import MAX_PROP_VALUE_BYTES, EventBuilder, MalformedRecord
from .urls import path_of

_MAX_CACHES = 64  # fields' value caches kept (a new W3C header derives new fields)
_FAILED = object()  # what a function gave for a value the per-line path must see
_VARIES = object()  # a column's value where it is not the same on every row


class EventColumns:
    """Makes the candidate events of table rows for one builder (one per parse worker)."""

    def __init__(self, builder: EventBuilder, checkpoint: Checkpoint | None,
                 prepare: Callable[[Event], None] | None) -> None:
        self.builder = builder
        self.checkpoint = checkpoint
        self.prepare = prepare
        self._props = [(spec.name, spec.field) for spec in builder.props]
        self._fields = {"client_ip", "uri", "host", "scheme", "referrer", "user_agent", "time"}
        if builder.client_ips.from_xff:
            self._fields.add("xff")
        if builder.track_404:
            self._fields.add("status")
        self._fields.update(field for _, field in self._props)
        # Read only for the Event's values (a dry run needs the keys and times only).
        self._shown = {"referrer"}.difference(field for _, field in self._props)
        self._values: dict[Derived, dict] = {}  # a field's derivation -> {its texts: value}
        # What addresses and pages were, from chunk to chunk: clients and targets come back.
        self._addresses: dict[str | None, str] = {}
        self._pages: dict[tuple, dict] = {}  # see _each_row

    @property
    def fields(self) -> frozenset[str]:
        """The LogRecord fields `make` may read."""
        return frozenset(self._fields.union(KEY_FIELDS))

    @staticmethod
    def of(builder: EventBuilder, checkpoint: Checkpoint | None,
           prepare: Callable[[Event], None] | None) -> EventColumns | None:
        """None where events read what a table does not derive: props of fields that records
        keep as text (`LogRecord.fields`)."""
        return None if builder.fields_read else EventColumns(builder, checkpoint, prepare)

    def make(self, table: Table, where: Sequence[int] | np.ndarray, keyed: bool,
             values: bool = True) -> tuple[list[int], list[list]]:
        """Of the table's rows at positions `where` (each let through by every filter): the
        indexes in `where` of those made into events here, and their columns: the Event's
        values (name, url, domain, ip, user_agent, time, referrer, props; all but the time
        None on every row unless `values`), its wire (None without `prepare`), its dedupe
        key (b"" unless `keyed`)."""
        refused: set[int] = set()
        where = np.asarray(where, np.intp)  # once, not once per source read
        fields = self._fields.union(KEY_FIELDS) if keyed else self._fields
        if not values:
            fields = fields.difference(self._shown)
        derived = {field: table.derive(field) for field in fields}
        sources = sorted({source for found in derived.values() if found is not None
                          for source in found.sources})
        raw = {source: table.raw(source, where) for source in sources}
        col = {field: self._column(found, raw, len(where), refused)
               for field, found in derived.items()}
        builder = self.builder
        resolver = builder.client_ips
        if resolver.from_xff:
            ips = _each_row(resolver.address, [col["client_ip"], col["xff"]], refused,
                            BadAddress)
        else:
            peers, known = col["client_ip"], self._addresses
            own = resolver.own(_missing(known, peers))  # at once, not one by one
            known.update(zip(own, own, strict=True))
            ips = _each(lambda key: resolver.address(key, None), peers, refused, BadAddress,
                        known=known)
        pages = _each_row(lambda *key: builder.page(*key) or _FAILED,
                          [col["uri"], col["host"], col["scheme"]], refused, MalformedRecord,
                          known=self._pages)
        n = len(where)
        names, props = ["pageview"] * n, [{} for _ in range(n)] if values or self._props \
            or builder.track_404 or builder.track_downloads else None  # (which refuse rows)
        if builder.track_404 or builder.track_downloads:
            self._kinds(pages, col.get("status"), names, props, refused)
        for name, field in self._props:
            for i, value in enumerate(_each(self._prop, col[field], refused)):
                if value is not None:
                    props[i][name] = value
        columns = [names, [page[1] if page is not _FAILED else None for page in pages],
                   [page[0] if page is not _FAILED else None for page in pages], ips,
                   [agent or "" for agent in col["user_agent"]], col["time"], col["referrer"],
                   props] if values else []
        kept = list(range(n))
        if refused:
            keep = [i not in refused for i in kept]
            kept = list(compress(kept, keep))
            columns = [list(compress(column, keep)) for column in columns]
            col = {field: list(compress(col[field], keep)) for field in fields}
        if not values:
            unknown = [None] * len(kept)
            columns = [unknown] * 5 + [col["time"], unknown, unknown]
        wires = [None] * len(kept)
        if self.prepare is not None and values:
            events = list(map(Event, *columns))
            for event in events:
                self.prepare(event)
            wires = [event.wire for event in events]
        keys = self.checkpoint.keys_of([col[field] for field in KEY_FIELDS]) if keyed \
            else [b""] * len(kept)
        return kept, [*columns, wires, keys]

    def _kinds(self, pages: list, statuses: list | None, names: list[str], props: list[dict],
               refused: set[int]) -> None:
        """404s (`build`'s name and props); downloads are left to the per-line path."""
        builder = self.builder
        targets = {page[2] for page in pages if page is not _FAILED}
        paths = {target: path_of(target) for target in targets}
        downloads = {path: is_download(path) for path in set(paths.values())} \
            if builder.track_downloads else {}
        for i, (page, status) in enumerate(zip(pages, statuses or repeat(None), strict=False)):
            if page is _FAILED:
                continue
            path = paths[page[2]]
            if builder.track_404 and status == 404:
                names[i], props[i] = "404", {"path": path}
            elif downloads.get(path):
                refused.add(i)

    def _prop(self, value: object) -> object:
        """`build`'s value of a prop, or _FAILED where it may be cut (noted per line)."""
        if value is not None and len(str(value)) * 4 > MAX_PROP_VALUE_BYTES:
            return _FAILED
        return self.builder.prop_value(value)

    def _column(self, derived: Derived | None, raw: dict[int, list[str]], rows: int,
                refused: set[int]) -> list:
        """A record field's value on each of `rows` rows, from its derivation and the texts of
        its sources, converted once per distinct text (kept from chunk to chunk); rows whose
        conversion fails are added to `refused`."""
        if derived is None:  # not logged
            return [None] * rows
        texts = [raw[source] for source in derived.sources]
        one = len(texts) == 1
        value = derived.value
        # timestamps: records.Cached, w3c._W3cTime; addresses: records.MANY
        many = getattr(value, "many", None) or MANY.get(value)
        if many is not None:
            values = many(*texts)
            if values is not None:
                return values
        keys = texts[0] if one else list(zip(*texts, strict=True))
        cache = self._values.get(derived)
        if cache:  # the usual for texts that repeat: every one converted before
            try:
                return list(map(cache.__getitem__, keys))
            except KeyError:
                pass
        distinct = set(keys)
        if 4 * len(distinct) > 3 * len(keys):  # mostly distinct: not worth keeping
            many = MANY_DISTINCT.get(value) if one else None  # sizes
            values = None if many is None else many(keys)
            if values is not None:
                return values
            listed = list(distinct)
            try:
                answers = dict(zip(listed, map(value, listed) if one else starmap(value, listed),
                                   strict=True))
                return list(map(answers.__getitem__, keys))
            except ValueError:  # which rows fail is found below
                pass
        if cache is None:
            if len(self._values) >= _MAX_CACHES:
                self._values.clear()
            cache = self._values[derived] = {}
        missing = _missing(cache, distinct)
        if not missing:
            return list(map(cache.__getitem__, keys))
        listed = list(missing)
        try:  # the usual: every one converts
            cache.update(zip(listed, map(value, listed) if one else starmap(value, listed),
                             strict=True))
            return list(map(cache.__getitem__, keys))
        except ValueError:  # malformed: said per line
            pass
        failed = set()
        for key in listed:
            try:
                cache[key] = value(key) if one else value(*key)
            except ValueError:
                failed.add(key)
        refused.update(i for i, key in enumerate(keys) if key in failed)
        return [None if key in failed else cache[key] for key in keys]


def _each_row(function: Callable[..., object], columns: list[list], refused: set[int],
              *errors: type[Exception], known: dict[tuple, dict] | None = None) -> list:
    """`_each` of the rows of `columns` (`function` of a row's values): a column that holds
    the same value on every row (a host, a scheme) is not looked at row by row. `known`:
    what it gave, kept from call to call while those columns' values stay the same."""
    rows = len(columns[0])
    fixed = [column[0] if rows and column.count(column[0]) == rows else _VARIES
             for column in columns]
    varying = [column for column, value in zip(columns, fixed, strict=True) if value is _VARIES]

    def call(key: Hashable) -> object:
        values = iter(key if len(varying) > 1 else (key,))
        return function(*[next(values) if value is _VARIES else value for value in fixed])

    keys = varying[0] if len(varying) == 1 else zip(*varying, strict=True) if varying \
        else repeat(None, rows)
    answers = None
    if known is not None:  # kept for the last fixed values only
        answers = known.get(tuple(fixed))
        if answers is None:
            known.clear()
            answers = known[tuple(fixed)] = {}
    return _each(call, keys, refused, *errors, known=answers)


def _each(function: Callable[[Hashable], object], keys: Iterable[Hashable], refused: set[int],
          *errors: type[Exception], known: dict | None = None) -> list:
    """`function` of each key, called once per distinct key not in `known` (key -> what it
    gives, added to it); the rows where it raises one of `errors` or gives _FAILED are added
    to `refused` (their value: _FAILED; not added to `known`)."""
    keys = list(keys)
    answers = {} if known is None else known
    failed = set()
    for key in _missing(answers, keys):
        try:
            answer = function(key)
        except errors:
            answer = _FAILED
        if answer is _FAILED:
            failed.add(key)
        else:
            answers[key] = answer
    if not failed:
        return list(map(answers.__getitem__, keys))
    values = [_FAILED if key in failed else answers[key] for key in keys]
    refused.update(i for i, value in enumerate(values) if value is _FAILED)
    return values


def _missing(known: dict, keys: Iterable[Hashable]) -> set:
    """The distinct `keys` that `known` (kept from chunk to chunk) lacks; all of them, once
    it is emptied, where adding them would take it past CACHE_LIMIT: it holds at most the
    limit, or one chunk's keys."""
    distinct = set(keys)
    missing = distinct.difference(known)
    if len(known) + len(missing) > CACHE_LIMIT:
        known.clear()
        return distinct
    return missing
