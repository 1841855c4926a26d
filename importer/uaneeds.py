"""What text a regex needs: strings, read from its syntax tree, that any match must contain.

`needs(pattern)` gives alternatives, each a tuple of clauses, each clause a set of lower-case
strings: any match satisfies at least one alternative, that is, contains one string of each of
its clauses. device-detector's brand regexes are alternations of hundreds of models
("Android.*V3[67]0(?:[);/ ]|$)|One ?[XELSV+]+..."): kept apart, each alternative needs rare text
("v360" or "v370" AND "android"); merged into one clause, it would be just "android".

Why it holds: the strings come from parts of the pattern outside any optional part (a run of
literals, small sets and short repeats is spelled out in full: "iPhone[ _]?8" needs "iphone8",
"iphone 8" or "iphone_8"); lookarounds and anchors match no text, so what stands on either side
of them is side by side in the text. The strings are lower-case ASCII, for ASCII text only
(callers check): comparing lower-cased text is then right with or without IGNORECASE, and a
non-ASCII letter of the pattern matches what the `regex` module itself says it matches of
ASCII, ignoring case ("k" for KELVIN SIGN, nothing for most: an alternative that needs one can
only match other text). Syntax that `regex` reads differently from `re` (fuzzy matching, POSIX
classes) is not read at all, nor is anything `re` cannot parse.
"""
from __future__ import annotations

import functools
import itertools
import math
import re
from re import _constants as sre  # noqa: PLC2701 - the parser's node types
from re import _parser as sre_parse  # noqa: PLC2701

import regex

Clause = frozenset[str]  # the text holds one of these
Alternative = tuple[Clause, ...]  # the text holds one string of each clause
Needs = tuple[Alternative, ...]  # any match (in ASCII text) satisfies one of these

ALWAYS: Needs = ((),)  # nothing is known: one alternative that needs nothing
# Syntax `re` parses without error but not as `regex` does: "{e<=1}" (fuzzy matching) is literal
# text to `re`, "[[:alpha:]]" a set then "]". Any brace but a plain repeat count, any "[:".
REGEX_ONLY = re.compile(r"\{(?!\d*,?\d*\})|\[:")
MIN_NEEDLE = 2  # shorter strings are in nearly every user agent: not worth a check
# Bounds that keep the analysis quick and the checks short.
MAX_SPELLINGS = 64  # strings a run of small alternatives is spelled out into
MAX_CLASS = 10  # characters of a set such as [0-9] or [ _-] to spell out
MAX_REPEAT_SPELLED = 3  # x{0,3}
MAX_ALTERNATIVES = 512
MAX_COMBINATIONS = 16  # clauses alternatives merge into (see `merged`)
REPEATS = (sre.MAX_REPEAT, sre.MIN_REPEAT, sre.POSSESSIVE_REPEAT)
# Text most user agents hold: a clause it satisfies is a poor first check (see `rarity`).
COMMON_TEXT = (
    "mozilla/5.0 (windows nt 10.0; win64; x64) applewebkit/537.36 (khtml, like gecko) "
    "chrome/124.0.0.0 safari/537.36 edg/124.0.0.0",
    "mozilla/5.0 (iphone; cpu iphone os 17_4 like mac os x) applewebkit/605.1.15 "
    "(khtml, like gecko) version/17.4 mobile/15e148 safari/604.1",
    "mozilla/5.0 (linux; android 14; k) applewebkit/537.36 (khtml, like gecko) "
    "chrome/124.0.0.0 mobile safari/537.36",
    "mozilla/5.0 (macintosh; intel mac os x 10.15; rv:125.0) gecko/20100101 firefox/125.0",
    "mozilla/5.0 (x11; linux x86_64) applewebkit/537.36 (khtml, like gecko) "
    "chrome/124.0.0.0 safari/537.36",
)


def needs(pattern: str) -> Needs:
    """What any match of `pattern` contains (see the module's docstring)."""
    if REGEX_ONLY.search(pattern):
        return ALWAYS
    try:
        tree = sre_parse.parse(pattern)
    except (re.error, RecursionError, OverflowError):
        return ALWAYS
    return _normal(_in_sequence(tree))


def merged(options: Needs) -> Alternative:
    """One alternative that each of `options` implies (a weaker check, but a single one)."""
    if not options:
        return (frozenset(),)  # a clause no text satisfies
    if not all(options):
        return ()
    if math.prod(map(len, options)) > MAX_COMBINATIONS:
        options = tuple((max(alt, key=rarity),) for alt in options)
    found = (_clause(itertools.chain(*combo)) for combo in itertools.product(*options))
    return tuple(dict.fromkeys(clause for clause in found if clause))


def rarity(clause: Clause) -> tuple[int, int]:
    """How seldom user agents satisfy `clause` (higher: rarer), roughly."""
    common = sum(any(needle in text for needle in clause) for text in COMMON_TEXT)
    return -common, min(map(len, clause))


def _normal(options: list[Alternative]) -> Needs:
    """ALWAYS if one alternative needs nothing; else each with its rarest clause first."""
    if not all(options):
        return ALWAYS
    return tuple(dict.fromkeys(tuple(sorted(alt, key=rarity, reverse=True))
                               for alt in options))


def _clause(needles) -> Clause | None:
    """`needles` as a clause: None if one is too short to be worth a check."""
    needles = frozenset(needles)
    if not needles or min(map(len, needles)) < MIN_NEEDLE:
        return None
    return needles


def shortest(clause: Clause) -> tuple[str, ...]:
    """`clause` without the strings that hold another of its strings (the text then holds
    that one too): fewer to check one by one."""
    found: list[str] = []
    for needle in sorted(clause, key=lambda n: (len(n), n)):
        if not any(other in needle for other in found):
            found.append(needle)
    return tuple(found)


def _in_sequence(items) -> list[Alternative]:
    """What a sequence needs: what each of its items needs, and the text of each run of
    items whose every spelling is known."""
    options: list[Alternative] = [()]
    run: set[str] = {""}

    def require(clauses: Alternative) -> None:
        nonlocal options
        options = [alt + clauses for alt in options]

    def close_run() -> None:
        clause = _clause(run)
        if clause:
            require((clause,))

    for op, av in items:
        spellings = _spellings(op, av)
        if spellings == set():
            return []  # this item cannot match ASCII text
        joined = _product([run, spellings])
        if joined is not None:
            run = joined
            continue
        if spellings is None and op in REPEATS and av[0] >= 1:
            # "x+" starts and ends with "x": it joins the run before it and starts the next.
            first = _sequence_spellings(av[2])
            if first == set():
                return []
            joined = _product([run, first])
            if joined is not None:
                run = joined
                close_run()
                run = first
                continue
        close_run()
        if spellings is not None:
            run = spellings
            continue
        run = {""}
        found = _in_item(op, av)
        if not all(found):
            continue  # one of its alternatives needs nothing
        if len(options) * len(found) <= MAX_ALTERNATIVES:
            options = [alt + more for alt in options for more in found]  # none: no match
        else:
            require(merged(tuple(found)))
    close_run()
    return options


def _in_item(op, av) -> list[Alternative]:
    if op is sre.SUBPATTERN:
        return _in_sequence(av[3])
    if op is sre.ATOMIC_GROUP:
        return _in_sequence(av)
    if op in REPEATS:
        return _in_sequence(av[2]) if av[0] >= 1 else [()]
    if op is sre.BRANCH:
        options = [alt for branch in av[1] for alt in _in_sequence(branch)]
        if len(options) > MAX_ALTERNATIVES:
            return [merged(tuple(options))]
        return options
    # Anything else (any character, a large set, a lookaround, ...) needs no fixed text.
    return [()]


def _spellings(op, av) -> set[str] | None:
    """Every lower-case ASCII text the item can match in ASCII text, if they are few (None if
    not; an empty set if it cannot match ASCII text)."""
    if op is sre.LITERAL:
        if av < 128:
            return {chr(av).lower()}
        forms = _ascii_forms(av)
        return None if forms is None else set(forms)
    if op is sre.IN:
        chars: set[str] = set()
        for kind, value in av:
            if kind is sre.LITERAL and value < 128:
                chars.add(chr(value).lower())
            elif kind is sre.RANGE and value[1] < 128 and value[1] - value[0] < MAX_CLASS:
                chars.update(chr(c).lower() for c in range(value[0], value[1] + 1))
            else:  # a negation, a category (\d, \w), non-ASCII
                return None
        return chars if 0 < len(chars) <= MAX_CLASS else None
    if op in (sre.AT, sre.ASSERT, sre.ASSERT_NOT):
        return {""}  # zero-width: what comes before and after it are side by side
    if op is sre.SUBPATTERN:
        return _sequence_spellings(av[3])
    if op is sre.ATOMIC_GROUP:
        return _sequence_spellings(av)
    if op in REPEATS:
        low, high, body = av
        once = _sequence_spellings(body) if high <= MAX_REPEAT_SPELLED else None
        if once is None:
            return None
        found: set[str] = set()
        for times in range(low, high + 1):
            more = _product([once] * times)
            if more is None:
                return None
            found |= more
        return found if len(found) <= MAX_SPELLINGS else None
    if op is sre.BRANCH:
        found = set()
        for branch in av[1]:
            spellings = _sequence_spellings(branch)
            if spellings is None:
                return None
            found |= spellings
        return found if len(found) <= MAX_SPELLINGS else None
    return None


@functools.cache
def _ascii_forms(code: int) -> frozenset[str] | None:
    """The ASCII letters a non-ASCII one matches, ignoring case, lower-cased: "k" for KELVIN
    SIGN, none for most. None where case folding turns it into more than one ("ß": "ss")."""
    char = chr(code)
    if any(len(form) > 1 for form in (char.lower(), char.upper(), char.casefold())):
        return None
    alone = regex.compile(regex.escape(char), regex.IGNORECASE)
    found = {chr(c).lower() for c in range(128) if alone.fullmatch(chr(c))}
    found.update(form.lower() for form in (char.lower(), char.upper(), char.casefold())
                 if form.isascii())
    return frozenset(found)


def _sequence_spellings(items) -> set[str] | None:
    return _product([_spellings(op, av) for op, av in items])


def _product(parts: list[set[str] | None]) -> set[str] | None:
    found = {""}
    for part in parts:
        if part is None or len(found) * len(part) > MAX_SPELLINGS:
            return None
        found = {a + b for a in found for b in part}
    return found
