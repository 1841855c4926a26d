"""A literal pre-check in front of device-detector's regexes: same answers, fewer searches.

device-detector tries its regexes in order until one matches: ~2,000 device brands, then the
brand's models (Samsung alone has hundreds), ~350 OSes, ~600 browsers, ~850 bots... A new user
agent costs ~1,100 regex searches, ~80% of its ~13 ms. Most of those regexes need some fixed
text to be in the user agent for any match ("sm-", "pixel", "firefox"): where the user agent
holds none of it, the search can only fail, and is skipped. That leaves ~100 searches, ~4 ms.
The same goes for the normalizer's ~40 substitutions, run before every client parse: without a
match a substitution gives back its text, so one that cannot match is skipped.

Why the answers cannot change: for each regex, `_needed` reads its syntax tree (Python's own
regex parser) and finds strings one of which every match must contain, because they sit outside
any optional part. The check compares lower-cased text, which any match satisfies, with or
without IGNORECASE, as long as both the user agent and the strings are ASCII (Unicode case
folding maps a few non-ASCII letters onto ASCII ones: KELVIN SIGN matches "k"); other user agents
and patterns are searched as before. Patterns whose syntax the `regex` module reads differently
from `re` (fuzzy matching, POSIX classes, its own escapes and groups) are left alone, and so is
any pattern `re` cannot parse. tests/bench/prove_uaprefilter.py checks every field of
`detect` and `detect_kind` with and without it on device-detector's fixture user agents (38,368)
and the benchmark log's (4,811): all equal with device-detector 6.5.1 (PROVEN).
"""
from __future__ import annotations

import re
from re import _constants as sre  # noqa: PLC2701 - the parser's node types
from re import _parser as sre_parse  # noqa: PLC2701

import device_detector
from device_detector.lazy_regex import RegexLazy
from device_detector.parser.parser import Parser
from device_detector.yaml_loader import normalized_regex_list, regex_list
from regex import VERBOSE

Needles = frozenset[str]  # any match contains one of these (lower-case, ASCII)

# Syntax `re` parses without error but not as `regex` does: "{e<=1}" (fuzzy matching) is literal
# text to `re`, "[[:alpha:]]" a set then "]". Any brace but a plain repeat count, any "[:".
REGEX_ONLY = re.compile(r"\{(?!\d*,?\d*\})|\[:")
MIN_NEEDLE = 2  # shorter strings are in nearly every user agent: not worth a check
# The library versions the proof was run on: it relies on their regex lists' layout, and another
# version's patterns may use syntax this has not met. Rerun the proof before adding one.
PROVEN = frozenset(("6.5.1",))
NORMALIZE_FIXTURE = "local/device/normalize.yml"  # as DeviceDetector loads it


def _needed(pattern: str) -> Needles | None:
    """Strings one of which every match of `pattern` contains, or None if that is not known."""
    if not pattern.isascii() or REGEX_ONLY.search(pattern):
        return None
    try:
        tree = sre_parse.parse(pattern)
    except (re.error, RecursionError, OverflowError):
        return None
    needles = _in_sequence(tree)
    if not needles or any(len(n) < MIN_NEEDLE for n in needles):
        return None
    return needles


def _in_sequence(items) -> Needles | None:
    """What a sequence needs: the most selective of what its items need (all of them match)."""
    best: Needles | None = None
    run: list[str] = []

    def consider(needles: Needles | None) -> None:
        nonlocal best
        if needles and (best is None or min(map(len, needles)) > min(map(len, best))):
            best = needles

    for op, av in items:
        if op is sre.LITERAL and av < 128:
            run.append(chr(av).lower())
            continue
        consider(frozenset(["".join(run)]) if run else None)
        run = []
        consider(_in_item(op, av))
    consider(frozenset(["".join(run)]) if run else None)
    return best


def _in_item(op, av) -> Needles | None:
    if op is sre.SUBPATTERN:
        return _in_sequence(av[3])
    if op is sre.ATOMIC_GROUP:
        return _in_sequence(av)
    if op in (sre.MAX_REPEAT, sre.MIN_REPEAT, sre.POSSESSIVE_REPEAT):
        low, _, body = av
        return _in_sequence(body) if low >= 1 else None
    if op is sre.BRANCH:
        union: set[str] = set()
        for branch in av[1]:
            needles = _in_sequence(branch)
            if not needles:
                return None  # this branch needs nothing
            union |= needles
        return frozenset(union)
    # Anything else (a set, any character, an anchor, a lookaround, ...) needs no fixed text.
    return None


_last: tuple[str | None, str | None] = (None, None)  # (text, its lower-case form if ASCII)


def _lowered(text: str) -> str | None:
    global _last
    last, lowered = _last
    if last is not text:  # one user agent is checked by hundreds of regexes in a row
        lowered = text.lower() if text.isascii() else None
        _last = (text, lowered)
    return lowered


class Prefiltered:
    """One of device-detector's lazily compiled regexes, searched only if the text holds one
    of the strings every match needs. Those are worked out on the first search (parsing all
    ~20,000 patterns up front would take ~3 s; most are never searched)."""

    __slots__ = ("lazy", "needles", "run")

    def __init__(self, lazy: RegexLazy) -> None:
        self.lazy = lazy
        self.needles: tuple[str, ...] | None = None  # () once known: no pre-check possible
        self.run = None  # the compiled regex's search, past RegexLazy's indirection

    def search(self, text: str, *args):
        if not args and self._cannot_match(text):
            return None
        run = self.run
        if run is None:
            run = self.run = self.lazy.search  # compiles it, as the library would now
        return run(text, *args)

    def sub(self, repl: str, text: str):
        """`regex.sub`, as the normalizer calls it: without a match, `text` comes back."""
        if self._cannot_match(text):
            return text
        return self.lazy.sub(repl, text)

    def _cannot_match(self, text: str) -> bool:
        needles = self.needles
        if needles is None:
            found = _needed(object.__getattribute__(self.lazy, "pattern"))  # not compiling it
            needles = self.needles = () if found is None else tuple(sorted(found, key=len))
        if not needles:
            return False
        lowered = _lowered(text)
        if lowered is None:
            return False
        for needle in needles:
            if needle in lowered:
                break
        else:
            return True
        return False


def _wrap(entries: list[dict]) -> int:
    wrapped = 0
    for entry in entries:
        lazy = entry.get("regex")
        # Not yet wrapped, and not VERBOSE (spaces in the pattern would then not be text).
        if isinstance(lazy, RegexLazy) and not object.__getattribute__(lazy, "flags") & VERBOSE:
            entry["regex"] = Prefiltered(lazy)
            wrapped += 1
    return wrapped


def _parsers(cls: type) -> list[type]:
    found = []
    for sub in cls.__subclasses__():
        found.append(sub)
        found.extend(_parsers(sub))
    return found


def install() -> int:
    """Put the pre-check in front of every regex of the lists loaded through `regex_list` (the
    brands with their models, OSes, clients, bots) and of the normalizer's; returns how many
    were wrapped now. Not with a library version the proof was not run on."""
    if device_detector.__version__ not in PROVEN:
        return 0
    wrapped, done = 0, set()
    for parser in _parsers(Parser):
        files = getattr(parser, "fixture_files", None)
        if not files or tuple(files) in done:
            continue
        done.add(tuple(files))
        entries = regex_list(tuple(files))
        wrapped += _wrap(entries)
        for entry in entries:
            wrapped += _wrap(entry.get("models") or [])
    # The normalizer's list (`is_worthless`, before every client parse): ~40 substitutions
    # per user agent, ~135 us, most of them on text only a few odd user agents hold.
    return wrapped + _wrap(normalized_regex_list(NORMALIZE_FIXTURE))
