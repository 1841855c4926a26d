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
they need, nothing about any log). Without a writable cache directory each process reads them
again.

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
import os
import sys
import tempfile
from collections.abc import Iterator

import device_detector
from ahocorasick_rs import AhoCorasick
from device_detector.lazy_regex import RegexLazy
from device_detector.parser.parser import Parser
from device_detector.yaml_loader import RegexLoader, normalized_regex_list, regex_list
from regex import VERBOSE

from . import uaneeds
from .uaneeds import ALWAYS, Needs, merged, needs, shortest

# The library versions the proof was run on: it relies on how they walk their lists, and
# another version's patterns may use syntax this has not met. Rerun the proof before adding one.
PROVEN = frozenset(("6.5.1",))
NORMALIZE_FIXTURE = "local/device/normalize.yml"  # as DeviceDetector loads it


def needs_of(lazy: RegexLazy) -> Needs:
    """What one of device-detector's regexes needs, read without compiling it."""
    if object.__getattribute__(lazy, "flags") & VERBOSE:  # spaces would not be text
        return ALWAYS
    pattern = object.__getattribute__(lazy, "pattern")
    saved = _table().get(pattern)
    if saved is None:
        return needs(pattern)
    return tuple(tuple(frozenset(clause) for clause in alternative) for alternative in saved)


def table_path() -> str:
    """Named after the library version and the code that reads the patterns: any change to
    either makes a new table."""
    with open(uaneeds.__file__, "rb") as f:
        reader = hashlib.blake2b(f.read(), digest_size=6).hexdigest()
    root = os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")
    return os.path.join(root, "plausible-import",
                        f"uaneeds-{device_detector.__version__}-{reader}.json")


_saved: dict[str, list] | None = None


def _table() -> dict[str, list]:
    """What every regex of device-detector's lists needs, worked out once (~5 s) and kept in
    the user's cache directory: pattern -> [[[needle, ...], ...], ...]."""
    global _saved
    if _saved is None:
        path = table_path()
        try:
            with open(path, encoding="utf-8") as f:
                _saved = json.load(f)
        except (OSError, ValueError):
            _saved = {pattern: [[sorted(clause) for clause in alternative]
                                for alternative in needs(pattern)]
                      for pattern in _patterns()}
            with contextlib.suppress(OSError):  # not saved: worked out again next time
                os.makedirs(os.path.dirname(path), exist_ok=True)
                with tempfile.NamedTemporaryFile("w", dir=os.path.dirname(path),
                                                 delete=False, encoding="utf-8") as f:
                    json.dump(_saved, f)
                os.replace(f.name, path)
        if not isinstance(_saved, dict):
            _saved = {}
    return _saved


def _patterns() -> Iterator[str]:
    """The patterns of the lists device-detector's parsers walk (brands with their models,
    OSes, clients, bots)."""
    done: set[tuple[str, ...]] = set()
    parsers = [Parser]
    while parsers:
        parser = parsers.pop()
        parsers.extend(parser.__subclasses__())
        files = tuple(getattr(parser, "fixture_files", ()) or ())
        if not files or files in done:
            continue
        done.add(files)
        for entry in regex_list(files):
            for lazy in [entry["regex"], *(model["regex"] for model in entry.get("models", ()))]:
                yield object.__getattribute__(lazy, "pattern")


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

    __slots__ = ("lazy", "clauses")

    def __init__(self, lazy: RegexLazy) -> None:
        self.lazy = lazy
        self.clauses: tuple[tuple[str, ...], ...] | None = None

    def search(self, text: str, *args):
        if not args and self._cannot_match(text):
            return None
        return self.lazy.search(text, *args)

    def match(self, text: str, *args):
        """A match at the start is a match: the same check holds."""
        if not args and self._cannot_match(text):
            return None
        return self.lazy.match(text, *args)

    def sub(self, repl: str, text: str, *args):
        """Without a match, `regex.sub` gives `text` back."""
        if not args and self._cannot_match(text):
            return text
        return self.lazy.sub(repl, text, *args)

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


class Index:
    """A list of device-detector entries (dicts with a "regex" and maybe "models"), each
    filed under the strings its regex needs."""

    __slots__ = ("entries", "automaton", "always", "filed", "models")

    def __init__(self, entries: list[dict]) -> None:
        self.entries = entries
        numbers: dict[str, int] = {}  # needle -> its number in the automaton
        self.always: list[int] = []  # entries that need no text we know of
        # needle number -> (entry, the other clauses of an alternative filed under it)
        self.filed: dict[int, list[tuple[int, tuple[frozenset[int], ...]]]] = {}
        for i, entry in enumerate(entries):
            options = needs_of(entry["regex"])
            if not all(options):
                self.always.append(i)
                continue
            for alternative in options:  # none: it cannot match ASCII text
                first, *rest = (frozenset(numbers.setdefault(n, len(numbers)) for n in clause)
                                for clause in alternative)
                for number in first:
                    self.filed.setdefault(number, []).append((i, tuple(rest)))
        self.automaton = AhoCorasick(list(numbers)) if numbers else None
        self.models: dict[int, Index] = {}  # entry -> its models' index, once needed

    def candidates(self, lowered: str) -> Iterator[dict]:
        """The entries whose regex may match the text `lowered` is the lower case of, in
        order; models too are only those that may match."""
        found = set() if self.automaton is None else {
            number for number, _, _ in
            self.automaton.find_matches_as_indexes(lowered, overlapping=True)}
        picked = set(self.always)
        filed = self.filed
        for number in found:
            for i, rest in filed.get(number, ()):
                if i not in picked and all(not found.isdisjoint(clause) for clause in rest):
                    picked.add(i)
        for i in sorted(picked):
            entry = self.entries[i]
            models = entry.get("models")
            if models:
                index = self.models.get(i)
                if index is None:
                    index = self.models[i] = Index(models)
                entry = {**entry, "models": list(index.candidates(lowered))}
            yield entry


_indexes: dict[tuple[str, ...], Index] = {}
_installed = False


def _indexed_regex_list(parser: RegexLoader):
    """`Parser.regex_list`, for this parser's user agent."""
    files = parser.fixture_files
    ua = parser.user_agent
    # With client hints, Device._parse searches the hinted model too, not only the UA.
    if not ua.isascii() or getattr(parser, "client_hints", None) is not None:
        return regex_list(files)
    index = _indexes.get(files)
    if index is None:
        index = _indexes[files] = Index(regex_list(files))
    return index.candidates(ua.lower())


def _wrap_module_regexes() -> int:
    """Put a Prefiltered in place of each regex device-detector's modules hold (the same
    regex imported in several modules gets the same one)."""
    done: dict[int, Prefiltered] = {}
    for name, module in list(sys.modules.items()):
        if name.partition(".")[0] != "device_detector":
            continue
        for attr, value in list(vars(module).items()):
            if isinstance(value, RegexLazy):
                if id(value) not in done:
                    done[id(value)] = Prefiltered(value)
                setattr(module, attr, done[id(value)])
    return len(done)


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
    # The normalizer's ~40 substitutions run before every client parse.
    for entry in normalized_regex_list(NORMALIZE_FIXTURE):
        if isinstance(entry["regex"], RegexLazy):
            entry["regex"] = Prefiltered(entry["regex"])
    _wrap_module_regexes()
    return True
