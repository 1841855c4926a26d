"""device-detector with fewer regex searches: same answers, ~1 ms per new user agent, not ~13.

device-detector tries its regexes in order until one matches: ~2,000 device brands, then the
brand's models (Samsung alone has hundreds), ~350 OSes, ~600 browsers, ~850 bots... A new user
agent costs ~1,100 regex searches, ~13 ms. Nearly all of them need some text to be in the user
agent for any match ("sm-g", "pixel 7", "firefox"; importer/uaneeds.py reads it off each
pattern): where the user agent holds none of it, the search can only fail.

- `Index`: the lists device-detector walks through (`Parser.regex_list`: brands, models, OSes,
  clients, bots) are read for a user agent as only the entries it may match, in their order.
  One Aho-Corasick scan finds which of the strings the list's regexes need are in the user
  agent; only the entries filed under those are visited. First match wins, as before: an entry
  left out could not have matched.
- `Prefiltered`: the other regexes (the normalizer's substitutions, the fragments module-level
  constants hold) check the text for what they need before searching.

Reading ~20,000 patterns takes ~5 s: it is done once per machine and library version, and kept
in $XDG_CACHE_HOME/plausible-import/ (~/.cache/...; ~3 MB of JSON, patterns and the strings
they need, nothing about any log), in two tables: the bot and client lists' (~1 s to make,
all that `send` needs) and the OS and device lists' (~4 s, only for a full classification).
The indexes made of them are kept there too (uaindex-*.marshal: ~15 ms to make for the
clients' lists, ~85 ms for the devices', ~1 ms to read). Without a writable cache directory
each process works them out again.

Only ASCII user agents are filtered (see uaneeds); others, and requests with client hints
(whose model the device list also searches), go through the lists as before. Only for the
device-detector versions in PROVEN: tests/bench/prove_uaprefilter.py compares every field of
`detect` and `detect_kind` with and without this on device-detector's fixture user agents
(38,368) and the benchmark log's (4,811): all equal.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import marshal
import os
import sys
import tempfile
from collections.abc import Iterator

import device_detector
from ahocorasick_rs import AhoCorasick
from device_detector.lazy_regex import RegexLazy
from device_detector.parser.parser import Parser
from device_detector.yaml_loader import (
    RegexLoader,
    _load_from_yaml,  # noqa: PLC2701 - how the library reads its files
    normalized_regex_list,
    regex_list,
)
from regex import VERBOSE, Pattern

from . import uaneeds
from .uaneeds import ALWAYS, Needs, merged, needs, shortest

# The library versions the proof was run on: it relies on how they walk their lists, and
# another version's patterns may use syntax this has not met. Rerun the proof before adding one.
PROVEN = frozenset(("6.5.1",))
NORMALIZE_FIXTURE = "local/device/normalize.yml"  # as DeviceDetector loads it
_CHECK_ALL_REGEXES = Parser.check_all_regexes
# The lists a user agent's kind takes (bots, clients, the normalizer) are indexed apart from
# the OS and device lists: those hold ~4/5 of the patterns (brands and models), and only a
# full classification (`detect`, an export) walks them.
CLIENTS, DEVICES = "clients", "devices"
DEVICE_FILES = ("upstream/device/", "local/device/", "upstream/oss.yml", "local/oss.yml")


def needs_of(lazy: RegexLazy | Pattern, table: str = CLIENTS) -> Needs:
    """What one of device-detector's regexes needs, read without compiling it (looked up in
    the saved `table`: that of the group of the list it is in, see `group`)."""
    if object.__getattribute__(lazy, "flags") & VERBOSE:  # spaces would not be text
        return ALWAYS
    pattern = object.__getattribute__(lazy, "pattern")
    saved = _table(table).get(pattern)
    if saved is None:
        return needs(pattern)
    return tuple(tuple(frozenset(clause) for clause in alternative)
                 for alternative in json.loads(saved))


def table_path(name: str) -> str:
    """Named after the library version and the code that reads the patterns: any change to
    either makes a new table."""
    return _cache_path(f"uaneeds-{device_detector.__version__}-{_code_digest(uaneeds)}-"
                       f"{TABLE_FORMAT}-{name}.json")


def layout_path(name: str) -> str:
    """Where a group's indexes are kept as `_Lists` makes them (see `_saved_layout`): named
    after the library version, the code that makes them and the Python that reads them."""
    return _cache_path(f"uaindex-{device_detector.__version__}-{_code_digest(uaneeds)}-"
                       f"{_code_digest(sys.modules[__name__])}-"
                       f"{sys.implementation.cache_tag}-{name}.marshal")


def _cache_path(file_name: str) -> str:
    root = os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")
    return os.path.join(root, "plausible-import", file_name)


def _code_digest(module) -> str:
    with open(module.__file__, "rb") as f:
        return hashlib.blake2b(f.read(), digest_size=6).hexdigest()


# 2: each pattern's needs as JSON text, parsed when asked for (a parse worker asks for a few
# hundred): as lists of lists of strings they took ~17 MB in every process, and each worker
# wrote to (so copied) the pages of those it read (reference counts).
# 3: one table per group (a run that needs only kinds reads ~1/6 of it), led by its digest.
# 4: the digest in bytes, as every file `_keep` writes.
TABLE_FORMAT = 4
_saved: dict[str, dict[str, str]] = {}


def _table(name: str) -> dict[str, str]:
    """What every regex of a group's lists needs, worked out once (~1 s for the clients', ~4 s
    for the devices') and kept in the user's cache directory: pattern -> '[[[needle, ...],
    ...], ...]'. A file whose digest is wrong (cut short, changed) is made again."""
    saved = _saved.get(name)
    if saved is None:
        path = table_path(name)
        try:
            saved = json.loads(_kept(path))
        except (TypeError, ValueError):  # none kept, or not as written
            saved = {pattern: json.dumps([[sorted(clause) for clause in alternative]
                                          for alternative in needs(pattern)])
                     for pattern in _patterns(name)}
            _keep(path, json.dumps(saved).encode())
        _saved[name] = saved
    return saved


def _keep(path: str, data: bytes) -> None:
    """Write a file of the cache directory whole, led by the digest of `data`, or not at all
    (then it is worked out again next time)."""
    with contextlib.suppress(OSError):
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with tempfile.NamedTemporaryFile("wb", dir=os.path.dirname(path), delete=False) as f:
            try:
                f.write(_digest(data) + data)
                f.close()
                os.replace(f.name, path)
            except OSError:  # a full disk: no half-written file left behind
                os.unlink(f.name)
                raise


def _kept(path: str) -> bytes | None:
    """What `_keep` wrote at `path`; None if there is none, or not as written (cut short,
    changed)."""
    try:
        with open(path, "rb") as f:
            digest, data = f.read(16), f.read()
    except OSError:
        return None
    return data if digest == _digest(data) else None


def _digest(data: bytes) -> bytes:
    return hashlib.blake2b(data, digest_size=16).digest()


def _parsers() -> Iterator[type[Parser]]:
    """device-detector's parser classes."""
    parsers = [Parser]
    while parsers:
        parser = parsers.pop()
        parsers.extend(parser.__subclasses__())
        yield parser


def _fixture_lists() -> Iterator[tuple[str, ...]]:
    """The lists device-detector's parsers walk (brands with their models, OSes, clients,
    bots), by their files."""
    done: set[tuple[str, ...]] = set()
    for parser in _parsers():
        files = tuple(getattr(parser, "fixture_files", ()) or ())
        if files and files not in done:
            done.add(files)
            yield files


def _patterns(name: str) -> Iterator[str]:
    """The patterns of the regexes of a group's lists (the clients': and the normalizer's,
    and those device-detector's modules hold)."""
    regexes: list = []
    if name == CLIENTS:
        regexes += [entry["regex"] for entry in normalized_regex_list(NORMALIZE_FIXTURE)]
        regexes += [wrapped.lazy for wrapped in _wrapped]
    for files in _fixture_lists():
        if group(files) == name:
            for entry in regex_list(files):
                regexes += [entry["regex"], *(model["regex"] for model in entry.get("models", ()))]
    for regex in regexes:
        yield object.__getattribute__(regex, "pattern")


_last: tuple[str | None, str | None] = (None, None)  # (text, its lower-case form if ASCII)


def _lowered(text: str) -> str | None:
    global _last
    last, lowered = _last
    if last is not text:  # one text is checked by dozens of regexes in a row
        lowered = text.lower() if text.isascii() else None
        _last = (text, lowered)
    return lowered


class Prefiltered:
    """A regex searched only if the text holds what every match needs (one string of each
    clause). Worked out on first use: most of these regexes never are."""

    __slots__ = ("lazy", "clauses", "compiled")

    def __init__(self, lazy: RegexLazy) -> None:
        self.lazy = lazy
        self.clauses: tuple[tuple[str, ...], ...] | None = None
        self.compiled: Pattern | None = None  # the regex, once compiled (see `compiled`)

    def search(self, text: str, *args):
        if not args and self._cannot_match(text):
            return None
        return (self.compiled or self._compile()).search(text, *args)

    def match(self, text: str, *args):
        """A match at the start is a match: the same check holds."""
        if not args and self._cannot_match(text):
            return None
        return (self.compiled or self._compile()).match(text, *args)

    def sub(self, repl: str, text: str, *args):
        """Without a match, `regex.sub` gives `text` back."""
        if not args and self._cannot_match(text):
            return text
        return (self.compiled or self._compile()).sub(repl, text, *args)

    def may_match(self, text: str) -> bool:
        """False if a search of `text` surely finds nothing."""
        return not self._cannot_match(text)

    def _compile(self) -> Pattern:
        self.compiled = self.lazy.compiled  # RegexLazy compiles when asked for it
        return self.compiled

    def __getattr__(self, name: str):
        return getattr(self.lazy, name)  # anything else, unchecked

    def _cannot_match(self, text: str) -> bool:
        clauses = self.clauses
        if clauses is None:
            clauses = self.clauses = tuple(map(shortest, merged(needs_of(self.lazy))))
        if not clauses:
            return False
        lowered = _lowered(text)
        if lowered is None:
            return False
        for clause in clauses:
            for needle in clause:
                if needle in lowered:
                    break
            else:
                return True
        return False


class Scan:
    """The strings of many lists' patterns, numbered, found in a text by one Aho-Corasick pass
    (the last text's are kept: every list of a user agent's parse asks about the same text)."""

    __slots__ = ("numbers", "automaton", "text", "found")

    def __init__(self) -> None:
        self.numbers: dict[str, int] = {}
        self.automaton: AhoCorasick | None = None
        self.text: str | None = None
        self.found: set[int] = set()

    def number(self, needle: str) -> int:
        return self.numbers.setdefault(needle, len(self.numbers))

    def seal(self) -> None:
        """No more strings: make the automaton."""
        self.automaton = AhoCorasick(list(self.numbers)) if self.numbers else None

    def __call__(self, lowered: str) -> set[int]:
        """The numbers of the strings `lowered` holds."""
        if lowered != self.text:
            automaton = self.automaton
            self.found = set() if automaton is None else {
                number for number, _, _ in
                automaton.find_matches_as_indexes(lowered, overlapping=True)}
            self.text = lowered
        return self.found


class Index:
    """A list of device-detector entries (dicts with a "regex" and maybe "models"), each
    filed under the strings its regex needs (looked up in `table`). `scan` numbers the
    strings and finds them; by default the index's own, sealed here."""

    __slots__ = ("entries", "scan", "always", "filed", "numbers", "models", "table")

    def __init__(self, entries: list[dict], scan: Scan | None = None,
                 table: str = CLIENTS, layout: tuple | None = None) -> None:
        """`layout`: what `layout` gave for these entries and the strings `scan` numbers."""
        self.entries, self.table = entries, table
        own = scan is None
        self.scan = scan = Scan() if scan is None else scan
        self.always: list[int] = []  # entries that need no text we know of
        # needle number -> (entry, the other clauses of an alternative filed under it)
        self.filed: dict[int, list[tuple[int, tuple[frozenset[int], ...]]]] = {}
        if layout is not None:
            self.always, self.filed = layout
        for i, entry in enumerate(() if layout is not None else entries):
            options = needs_of(entry["regex"], table)
            if not all(options):
                self.always.append(i)
                continue
            for alternative in options:  # none: it cannot match ASCII text
                first, *rest = (frozenset(map(scan.number, clause)) for clause in alternative)
                for number in first:
                    self.filed.setdefault(number, []).append((i, tuple(rest)))
        self.numbers = frozenset(self.filed)  # this list's share of what `scan` finds
        if own:
            scan.seal()
        self.models: dict[int, Index] = {}  # entry -> its models' index, once needed

    def layout(self) -> tuple:
        return self.always, self.filed

    def candidates(self, lowered: str) -> Iterator[dict]:
        """The entries whose regex may match the text `lowered` is the lower case of, in
        order; models too are only those that may match."""
        found = self.scan(lowered)
        picked = set(self.always)
        filed = self.filed
        for number in found & self.numbers:
            for i, rest in filed.get(number, ()):
                if i not in picked and all(not found.isdisjoint(clause) for clause in rest):
                    picked.add(i)
        for i in sorted(picked):
            entry = self.entries[i]
            lazy = entry["regex"]
            if type(lazy) is not Pattern:
                _compiled(entry, lazy)
            models = entry.get("models")
            if models:
                index = self.models.get(i)
                if index is None:
                    index = self.models[i] = Index(models, table=self.table)
                entry = {**entry, "models": list(index.candidates(lowered))}
            yield entry


def _compiled(entry: dict, lazy) -> None:
    """Once compiled, an entry's regex as it is: a RegexLazy hooks every attribute read."""
    if isinstance(lazy, RegexLazy):
        compiled = object.__getattribute__(lazy, "compiled")
        if compiled is not None:
            entry["regex"] = compiled


class _Lists:
    """Every list's index and every parser's Aho-Corasick words (`Parser.check_all_regexes`:
    none in the text, no regex of its list can match) of one group (see `group`), sharing one
    Scan: one pass over a user agent serves the group's lists and checks its parse goes
    through."""

    def __init__(self, name: str) -> None:
        self.scan = scan = Scan()
        lists = {files: regex_list(files) for files in _fixture_lists() if group(files) == name}
        if name == CLIENTS:
            lists[NORMALIZE_LIST] = normalized_regex_list(NORMALIZE_FIXTURE)
        parsers = [parser for parser in _parsers() if group(tuple(parser.fixture_files)) == name]
        saved = _saved_layout(name, lists, parsers)
        if saved is not None:
            scan.numbers = {needle: number for number, needle in enumerate(saved["needles"])}
            self.indexes = {files: Index(entries, scan, name, saved["lists"][files][1:])
                            for files, entries in lists.items()}
            words = saved["words"]
        else:
            self.indexes = {files: Index(entries, scan, name) for files, entries in lists.items()}
            words = {}
            for parser in parsers:
                key = (parser.__name__, tuple(parser.fixture_files))
                found = _corasick_words(*key)
                words[key] = frozenset(map(scan.number, found)) if found else None
            _keep(layout_path(name), marshal.dumps({
                "needles": list(scan.numbers), "words": words,
                "lists": {files: (len(lists[files]), *index.layout())
                          for files, index in self.indexes.items()}}))
        # (a parser class's name, its files) -> the numbers of its words (None: it has none, it
        # searches its list): by name, as device-detector finds a parser's words, so a class
        # made after these (uadetect's _Browser, "Browser") has them too
        self.words: dict[tuple[str, tuple[str, ...]], frozenset[int] | None] = words
        scan.seal()
        self.attached: dict = {}  # see `attached`


def _saved_layout(name: str, lists: dict[tuple[str, ...], list],
                  parsers: list[type[Parser]]) -> dict | None:
    """The group's indexes as `_Lists` kept them (~1 ms to read, ~15 ms to make for the
    clients' lists, ~85 ms for the devices'), if they were kept for these lists and parsers."""
    data = _kept(layout_path(name))
    if data is None:
        return None
    try:
        saved = marshal.loads(data)
        kept = saved["lists"]
        if kept.keys() != lists.keys() or any(kept[files][0] != len(entries)
                                              for files, entries in lists.items()):
            return None
        if not all((parser.__name__, tuple(parser.fixture_files)) in saved["words"]
                   for parser in parsers):
            return None
    except (ValueError, EOFError, TypeError, KeyError):
        return None
    return saved


def _corasick_words(name: str, files: tuple[str, ...]) -> set[str]:
    """The words device-detector's `load_ahocorasick_patterns` makes its automaton of."""
    manual = _load_from_yaml(f"regexes/ahocorasick/classes/{name}.yml") or {}
    words = set(manual.get("Words", ()) or ())
    for fixture in files:
        words.update(_load_from_yaml(f"regexes/ahocorasick/{fixture}") or ())
    return words


NORMALIZE_LIST = (NORMALIZE_FIXTURE,)
_UNKNOWN = object()  # a parser name `_Lists` has not met
_wrapped: list[Prefiltered] = []  # see _wrap_module_regexes
_shared: dict[str, _Lists] = {}
_groups: dict[tuple[str, ...], str] = {}
_installed = False


def group(files: tuple[str, ...]) -> str:
    """The group of the list made of `files`, indexed together (the normalizer's: CLIENTS)."""
    name = _groups.get(files)
    if name is None:
        devices = files != NORMALIZE_LIST and any(f.startswith(DEVICE_FILES) for f in files)
        name = _groups[files] = DEVICES if devices else CLIENTS
    return name


def _lists(name: str) -> _Lists:
    lists = _shared.get(name)
    if lists is None:
        lists = _shared[name] = _Lists(name)
    return lists


def _check_all_regexes(parser: Parser) -> bool:
    """`Parser.check_all_regexes` (callers only ask whether it is true)."""
    found = words_found(type(parser), parser.user_agent_lower)
    return bool(_CHECK_ALL_REGEXES(parser)) if found is None else found


def words_found(parser_class: type[Parser], lowered: str) -> bool | None:
    """`Parser.check_all_regexes` of a parser of `parser_class` for the user agent `lowered`
    is the lower case of; None for a parser whose name the index does not know."""
    scan, words = _words(parser_class)
    if words is _UNKNOWN:
        return None
    return words is None or not words.isdisjoint(scan(lowered))


def words_of(parser_class: type[Parser]) -> tuple[Scan, frozenset[int] | None]:
    """The Scan of the group of `parser_class`'s list and the numbers of the class's words
    in it: where the scan of a user agent finds none, its `check_all_regexes` is false (None:
    it has none, or the index does not know its name: it is true)."""
    scan, words = _words(parser_class)
    return scan, None if words is _UNKNOWN else words


def _words(parser_class: type[Parser]) -> tuple[Scan, frozenset[int] | None | object]:
    files = tuple(parser_class.fixture_files)
    lists = _lists(group(files))
    return lists.scan, lists.words.get((parser_class.__name__, files), _UNKNOWN)


def attached(name: str) -> dict:
    """A dict that lasts as long as the group's indexes, for what is worked out from them."""
    return _lists(name).attached


def index_of(parser_class: type[Parser]) -> Index | None:
    """The index of `parser_class`'s list (None: it has none) for ASCII user agents."""
    return _index(tuple(parser_class.fixture_files))


def _index(files: tuple[str, ...]) -> Index | None:
    return _lists(group(files)).indexes.get(files)


def _indexed_regex_list(parser: RegexLoader):
    """`Parser.regex_list`, for this parser's user agent."""
    files = parser.fixture_files
    ua = parser.user_agent
    # With client hints, Device._parse searches the hinted model too, not only the UA.
    index = _index(files)
    if index is None or not ua.isascii() or getattr(parser, "client_hints", None) is not None:
        return regex_list(files)
    return index.candidates(ua.lower())


def normalizers(ua: str) -> list[dict]:
    """The normalizer's substitutions (DeviceDetector.normalize tries them in order until one
    changes `ua`) that may match `ua`: the others would give it back unchanged."""
    entries = normalized_regex_list(NORMALIZE_FIXTURE)
    if not _installed or not ua.isascii():
        return entries
    return list(_lists(CLIENTS).indexes[NORMALIZE_LIST].candidates(ua.lower()))


def _wrap_module_regexes() -> None:
    """Put a Prefiltered in place of each regex device-detector's modules hold (the same
    regex imported in several modules gets the same one)."""
    done: dict[int, Prefiltered] = {}
    global _wrapped
    for name, module in list(sys.modules.items()):
        if name.partition(".")[0] != "device_detector":
            continue
        for attr, value in list(vars(module).items()):
            if isinstance(value, RegexLazy):
                if id(value) not in done:
                    done[id(value)] = Prefiltered(value)
                setattr(module, attr, done[id(value)])
    _wrapped = list(done.values())


def install() -> bool:
    """Make device-detector (already imported) search less; whether it was done (not with a
    library version the proof was not run on)."""
    global _installed
    if device_detector.__version__ not in PROVEN:
        return False
    if _installed:
        return True
    _installed = True
    RegexLoader.regex_list = property(_indexed_regex_list)
    Parser.check_all_regexes = _check_all_regexes
    _wrap_module_regexes()
    return True
