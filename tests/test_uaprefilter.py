"""importer/uaprefilter.py: the strings a regex needs, and searches that skip only sure misses.
(The whole proof, on ~43,000 user agents: tests/bench/prove_uaprefilter.py.)"""
from __future__ import annotations

import pytest
from device_detector.parser.client.browser import Browser
from device_detector.parser.operating_system import OS
from device_detector.settings import BOUNDED_REGEX
from device_detector.yaml_loader import normalized_regex_list, regex_list

from importer import uadetect  # noqa: F401 - installs the pre-check
from importer.uaprefilter import NORMALIZE_FIXTURE, Prefiltered, _needed
from tests.test_useragents import CASES


@pytest.mark.parametrize(("pattern", "needles"), [
    (BOUNDED_REGEX.format(r"SM-G\d+"), {"sm-g"}),  # the bounded prefix needs nothing
    (r"(?:Pixel|Nexus) 5", {"pixel", "nexus"}),  # the longer of what a sequence needs
    (r"Firefox(?:/(\d+))?", {"firefox"}),
    (r"(?:Opera Mini|OPiOS)/(\d+)", {"pera mini", "pios"}),  # `re` factors out the "O"
    (r"(?:ab){2,}cd", {"ab"}),  # a repeat that must happen once
    (r"Silk(?:-Accelerated)?", {"silk"}),
    (r"x(?:foo|)", None),  # a branch that needs nothing; "x" alone is too short
    (r"(?:abc)?", None),
    ("(?:Kindle|\u212aindle)", None),  # not ASCII: case folding reaches across
    (r"(?:Kindle|\u212aindle)", {"kindle", "indle"}),  # the escape is no ASCII letter either
    (r"Kindle{e<=1}", None),  # fuzzy matching in `regex`, literal text to `re`
    (r"[[:alpha:]]+Kindle", None),  # a POSIX class in `regex`
    (r"\p{L}+Kindle", None),  # `re` cannot parse it
])
def test_what_a_pattern_needs(pattern: str, needles: set[str] | None) -> None:
    assert _needed(pattern) == (None if needles is None else frozenset(needles))


SAMPLES = [case[0] for case in CASES if case[0]] + [
    "Mozilla/5.0 (Linux; Android 14; SM-S918B) AppleWebKit/537.36 (KHTML, like Gecko)"
    " Chrome/124.0 Mobile Safari/537.36",
    "Mozilla/5.0 (X11; Ubuntu; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0",
    "Opera/9.80 (J2ME/MIDP; Opera Mini/9.80 (S60; SymbOS; Opera Mobi/23.348; U; en) Presto/2.5",
    "Mozilla/5.0 (\u212aindle; Android 4.4) Silk/3.0",  # not ASCII: searched as before
    "Dalvik/2.1.0 (Linux; U; Android 9; ÄÖÜ Build/PPR1)",
]


@pytest.mark.parametrize("parser", [OS, Browser])
def test_each_wrapped_regex_finds_what_it_found_before(parser: type) -> None:
    entries = regex_list(tuple(parser.fixture_files))
    wrapped = [entry["regex"] for entry in entries if isinstance(entry["regex"], Prefiltered)]
    assert len(wrapped) == len(entries)
    for ua in SAMPLES:
        for fast in wrapped:
            found, before = fast.search(ua), fast.lazy.search(ua)
            assert (found and found.span()) == (before and before.span()), (ua, fast.needles)
    checked = sum(bool(fast.needles) for fast in wrapped)
    assert checked > 0.9 * len(wrapped)  # nearly all of them have a pre-check


def test_each_normalizer_substitution_gives_what_it_gave_before():
    entries = normalized_regex_list(NORMALIZE_FIXTURE)
    wrapped = [(entry["regex"], entry["groups"]) for entry in entries]
    assert all(isinstance(fast, Prefiltered) for fast, _ in wrapped)
    odd = ["NS/22.10.0.85 MID/{00000000-0000-0000-0000-000000000000} SID/Aoh4WwAAAAA SEQ/1",
           "AVGINET16-WV99X1 extra", "Foo - 1.2", "iphone/1.0 CFNetwork/1.2 Darwin"]
    for ua in SAMPLES + odd:
        for fast, groups in wrapped:
            assert fast.sub(groups, ua) == fast.lazy.sub(groups, ua), (ua, fast.needles)
    assert all(any(fast.sub(groups, ua) != ua for fast, groups in wrapped) for ua in odd)
    assert sum(bool(fast.needles) for fast, _ in wrapped) > 0.6 * len(wrapped)
