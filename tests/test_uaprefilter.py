"""importer/uaneeds.py and importer/uaprefilter.py: the text a regex needs, and lists walked
through only where a match is possible. (The whole proof, on ~43,000 user agents:
tests/bench/prove_uaprefilter.py.)"""
from __future__ import annotations

import os
from collections.abc import Callable

import pytest
from device_detector import DeviceDetector
from device_detector.lazy_regex import RegexLazyIgnore
from device_detector.parser.client.browser import Browser
from device_detector.parser.device.device import Device
from device_detector.parser.operating_system import OS
from device_detector.settings import BOUNDED_REGEX
from device_detector.yaml_loader import normalized_regex_list, regex_list

from importer import uadetect, uaprefilter  # importing uadetect installs the pre-checks
from importer.uaneeds import merged, needs, shortest
from importer.uaprefilter import NORMALIZE_FIXTURE, Index, Prefiltered, normalizers
from tests.test_useragents import CASES


def _as_sets(found) -> set[frozenset[frozenset[str]]]:
    return {frozenset(alternative) for alternative in found}


def _one(*clauses: set[str]) -> frozenset[frozenset[str]]:
    return frozenset(frozenset(clause) for clause in clauses)


ANY = {_one()}  # nothing known: one alternative that needs nothing


@pytest.mark.parametrize(("pattern", "expected"), [
    (BOUNDED_REGEX.format(r"SM-G\d+"), {_one({"sm-g"})}),  # the bounded prefix needs nothing
    (r"(?:Pixel|Nexus) 5", {_one({"pixel 5", "nexus 5"})}),  # a run spelled out
    (r"iPhone[ _]?8", {_one({"iphone8", "iphone 8", "iphone_8"})}),
    (r"Firefox(?:/(\d+))?", {_one({"firefox"})}),
    (r"Android.*V3[67]0|Opera", {_one({"android"}, {"v360", "v370"}), _one({"opera"})}),
    (r"One ?[XE]+\)", {_one({"onex", "one x", "onee", "one e"}, {"x)", "e)"})}),  # x+ ends in x
    (r"(?<!like )iPad", {_one({"ipad"})}),  # a lookbehind matches no text
    (r"x(?:foo|)", ANY),  # a branch that needs nothing; "x" alone is too short
    (r"(?:abc)?", ANY),
    ("\u212aindle|Nook", {_one({"kindle", "nook"})}),  # KELVIN SIGN matches "k"
    ("Stra\u00dfe", {_one({"stra"})}),  # "ß" may match "ss": not spelled
    ("Red Star|\ubd89\uc740\ubcc4", {_one({"red star"})}),  # Hangul matches no ASCII
    ("\ubd89\uc740\ubcc4", set()),  # no match in ASCII text at all
    (r"Kindle{e<=1}", ANY),  # fuzzy matching in `regex`, literal text to `re`
    (r"[[:alpha:]]+Kindle", ANY),  # a POSIX class in `regex`
    (r"\p{L}+Kindle", ANY),  # `re` cannot parse it
])
def test_what_a_pattern_needs(pattern: str, expected: set) -> None:
    assert _as_sets(needs(pattern)) == expected


def test_merged_and_shortest():
    found = needs(r"Android.*V3[67]0|Opera")
    assert _as_sets([merged(found)]) == {_one({"android", "opera"}, {"v360", "v370", "opera"})}
    assert merged(needs(r"x(?:foo|)")) == ()
    assert merged(needs("\ubd89")) == (frozenset(),)  # a clause no text satisfies
    assert shortest(frozenset({"abc", "ab", "xabz", "q1"})) == ("ab", "q1")


IPHONE = ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15"
          " (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1")
KELVIN = "Mozilla/5.0 (\u212aindle; Android 4.4) Silk/3.0"  # not ASCII: searched as before
SAMPLES = [case[0] for case in CASES if case[0]] + [IPHONE, KELVIN,
    "Mozilla/5.0 (Linux; Android 14; SM-S918B) AppleWebKit/537.36 (KHTML, like Gecko)"
    " Chrome/124.0 Mobile Safari/537.36",
    "Mozilla/5.0 (X11; Ubuntu; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0",
    "Opera/9.80 (J2ME/MIDP; Opera Mini/9.80 (S60; SymbOS; Opera Mobi/23.348; U; en) Presto/2.5",
    "Mozilla/5.0 (X11; U; Linux i686; ko-KP; rv: 19.1br) Gecko/20130508 Fedora/1.9.1-2.5.rs3.0"
    " NaenaraBrowser/3.5b4",  # Red Star OS
    "Dalvik/2.1.0 (Linux; U; Android 9; ÄÖÜ Build/PPR1)",
]


def _lazy(regex):
    return regex.lazy if isinstance(regex, Prefiltered) else regex


def _brands(*names: str) -> list[dict]:
    return [e for e in regex_list(tuple(Device.fixture_files)) if str(e.get("brand")) in names]


@pytest.mark.parametrize("entries", [
    regex_list(tuple(OS.fixture_files)),
    regex_list(tuple(Browser.fixture_files)),
    _brands("Apple", "Samsung", "Xiaomi", "HTC", "Acer"),  # all 2,000 brands: seconds to compile
], ids=["OS", "Browser", "brands"])
def test_an_index_leaves_out_only_entries_that_cannot_match(entries: list[dict]) -> None:
    index = Index(entries)
    assert len(index.always) < 0.01 * len(entries)  # nearly all of them are filed
    for ua in SAMPLES:
        if not ua.isascii():
            continue
        picked = list(index.candidates(ua.lower()))
        # the same dicts (but for the models), in the same order
        assert [e["regex"] for e in picked] == [e["regex"] for e in entries
                                                if any(p["regex"] is e["regex"] for p in picked)]
        kept = {id(e["regex"]) for e in picked}
        for entry in entries:
            if _lazy(entry["regex"]).search(ua) is not None:
                assert id(entry["regex"]) in kept, (ua, entry)
        for entry in picked:
            models = {id(m["regex"]) for m in entry.get("models", [])}
            for model in next(e for e in entries if e["regex"] is entry["regex"]).get(
                    "models", []):
                if model["regex"].search(ua) is not None:
                    assert id(model["regex"]) in models, (ua, model)
    assert len(list(index.candidates(IPHONE.lower()))) < 0.5 * len(entries)


def test_lists_are_walked_through_the_index_for_ascii_user_agents_only():
    entries = regex_list(tuple(OS.fixture_files))
    assert len(list(OS(IPHONE, None).regex_list)) < len(entries)
    assert OS(KELVIN, None).regex_list is entries


ODD = ["NS/22.10.0.85 MID/{00000000-0000-0000-0000-000000000000} SID/Aoh4WwAAAAA SEQ/1",
       "AVGINET16-WV99X1 extra", "Foo - 1.2", "iphone/1.0 CFNetwork/1.2 Darwin"]


def test_the_normalizer_tries_only_the_substitutions_that_may_change_a_user_agent():
    entries = normalized_regex_list(NORMALIZE_FIXTURE)
    for ua in SAMPLES + ODD:
        tried = normalizers(ua)
        assert all(any(t is e for e in entries) for t in tried)  # the same dicts, in order
        assert [e for e in entries if any(t is e for t in tried)] == tried
        changing = [e for e in entries if e["regex"].sub(e["groups"], ua) != ua]
        assert all(any(c is t for t in tried) for c in changing), ua
    assert all(normalizers(ua) for ua in ODD)
    assert len(normalizers(IPHONE)) < 0.5 * len(entries)
    assert normalizers(KELVIN) is entries  # not ASCII: all of them, as before


def test_prefiltered_searches_and_substitutions_answer_as_before():
    entries = normalized_regex_list(NORMALIZE_FIXTURE)
    # (Their regexes may be compiled by now: wrapped here as the library made them.)
    wrapped = [(Prefiltered(RegexLazyIgnore(object.__getattribute__(entry["regex"], "pattern"))),
                entry["groups"]) for entry in entries]
    odd = ODD
    for ua in SAMPLES + odd:
        for fast, groups in wrapped:
            assert fast.sub(groups, ua) == fast.lazy.sub(groups, ua), (ua, fast.clauses)
    assert all(any(fast.sub(groups, ua) != ua for fast, groups in wrapped) for ua in odd)
    assert sum(bool(fast.clauses) for fast, _ in wrapped) > 0.6 * len(wrapped)
    fragment = Prefiltered(RegexLazyIgnore(r"Android( [.0-9]+)?; Tablet;"))
    for ua in SAMPLES + ["Mozilla/5.0 (Linux; Android 4.4; Tablet; rv:41.0) Gecko/41.0"]:
        for method in ("search", "match"):
            found = getattr(fragment, method)(ua)
            before = getattr(fragment.lazy, method)(ua)
            assert (found and found.span()) == (before and before.span())
    assert fragment.findall("Android; Tablet;") == [""]  # other methods: the regex's own


def test_the_os_and_device_lists_are_indexed_only_when_a_full_classification_needs_them(
        monkeypatch):
    monkeypatch.setattr(uaprefilter, "_shared", {})  # as in a new process
    assert uadetect.detect_kind(IPHONE) == ""
    assert set(uaprefilter._shared) == {uaprefilter.CLIENTS}
    assert uadetect.detect(IPHONE).os == "iOS"
    assert set(uaprefilter._shared) == {uaprefilter.CLIENTS, uaprefilter.DEVICES}
    devices = uaprefilter._shared[uaprefilter.DEVICES].indexes
    assert tuple(Device.fixture_files) in devices and tuple(OS.fixture_files) in devices


# Each found by one of the parsers tried before browsers (DictUA: a JSON object or array,
# "key=value" pairs; AdobeCC: an app of Creative Cloud).
CLIENTS = ['{"ac":"CCDesktop_app","av":"4.8.1.435"}', ' [["app", "Foo"], ["ver", "1.2"]]',
           "target=LetGo; appVersion=1.58.0; bundle=com.letgo.ios; build=524",
           "Feedly/1.0 (+http://www.feedly.com/fetcher.html; like FeedFetcher-Google)",
           "VLC/3.0.18 LibVLC/3.0.18", "Thunderbird/115.3.1", "curl/8.5.0", "Wget/1.21.4",
           # "=" but not only "key=value" pairs: not for DictUA
           "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15"
           " Instagram 326.0.0 (iPhone14,1; iOS 17_1; en_US; en; scale=3.00; 1170x2532)",
           "app=Foo; build", "app=Foo; v=1=2",
           "Photoshop/22.0 com.adobe.photoshop/22.0 (Macintosh)"]


def test_client_parsers_left_out_would_find_nothing():
    from device_detector.parser.client.adobe_cc import AdobeCC
    from device_detector.parser.client.dictua import DictUA

    skipped = found = 0
    for ua in SAMPLES + ODD + CLIENTS:
        dd = uadetect._detector(ua)
        for parser_class in dd.CLIENT_PARSERS:
            result = parser_class(dd.user_agent, None).parse().ua_data
            if uadetect._skipped(parser_class, dd.user_agent, dd.user_agent.lower()):
                skipped += 1
                assert result == {}, (parser_class, ua)
            else:
                found += bool(result)
        plain = DeviceDetector(ua, check_cache=False)  # as device-detector parses it
        plain.parse_bot()
        if not plain.is_bot() and not plain.is_worthless():
            plain.parse_client()
        assert uadetect.detect_kind(ua) == uadetect._kind(plain), ua
    assert skipped > 5 * len(SAMPLES)
    assert found >= len(CLIENTS)
    assert all(DictUA(ua, None).parse().ua_data for ua in CLIENTS[:3])
    assert AdobeCC(CLIENTS[-1], None).parse().ua_data["name"] == "Adobe Photoshop"


# Kinds and clients made otherwise than by a browser's regex: a bogus name that is a bot, a
# library named by the generic extractors, a client named by its app id, iOS and Darwin
# fragments, Headless Chrome, not ASCII, monitors.
KINDS = [("firefox", "bot"), ("EmarsysPredictSDK|osversion:15.3|platform:ios", "library"),
         ("Akamai NetSession C-API (win;AdDLMgr;capi_1.9.2;Vista)", "library"),
         ("com.batch.ios/1.11.0 com.gemsoftware.textme/3.12.8 (iPad6.12;iOS 12.1.4)", ""),
         ("iPhone12mini", ""), ("Chrome/120.0.1 CFNetwork/1.0", ""),
         ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko)"
          " HeadlessChrome/120.0.0.0 Safari/537.36", "headless"),
         ("python-requests/2.31.0", "library"), ("Go-http-client/2.0", "library"),
         ("\u0623\u0646\u063a\u0627\u0645\u064a/601041 CFNetwork/1335.0.3 Darwin/21.6.0", ""),
         ("kube-probe/1.29", "monitor"), ("curl/8.5.0 healthcheck", "monitor")]
# Named by the regex's group ("\\g<1>"), then renamed by the app details (a messenger).
TELEGRAM = "TelegramLite/1.1 (iPhone; iOS 18.5; Scale/3.00)"


def test_the_kind_alone_is_device_detectors():
    """detect_kind reads a client's name and type only: as device-detector's whole parse."""
    for ua, kind in KINDS:
        plain = DeviceDetector(ua, check_cache=False).parse()
        assert uadetect.detect_kind(ua) == uadetect._kind(plain) == kind, ua
    named = 0  # user agents whose client is found: the comparison is not of nothing
    for ua in [TELEGRAM, *SAMPLES, *ODD, *CLIENTS]:
        plain = DeviceDetector(ua, check_cache=False).parse()
        assert uadetect.detect_kind(ua) == uadetect._kind(plain), ua
        dd = uadetect._KindDetector(ua)
        dd.parse_bot()
        if not plain.is_bot():
            dd.parse_client()
            assert (dd.client_name(), dd.client_type()) == (plain.client_name(),
                                                            plain.client_type()), ua
            named += bool(dd.client_name())
    assert named > len(CLIENTS)
    telegram = uadetect._KindDetector(TELEGRAM)
    telegram.parse_client()
    assert (telegram.client_name(), telegram.client_type()) == ("Telegram Messenger",
                                                                "messaging")


def test_a_parser_class_made_after_the_index_has_its_words_by_its_name(monkeypatch):
    """device-detector finds a parser's words by its name: a class made once the index is
    (as uadetect's _Browser may be) has those of its name, or none known (its list walked)."""
    monkeypatch.setattr(uaprefilter, "_shared", {})
    uaprefilter._lists(uaprefilter.CLIENTS)
    later = type("Browser", (Browser,), {"__slots__": ()})
    unknown = type("Unknown", (Browser,), {"__slots__": ()})
    assert uaprefilter.words_of(later) == uaprefilter.words_of(Browser)
    assert uaprefilter.words_of(Browser)[1] and uaprefilter.words_of(unknown)[1] is None
    assert uaprefilter.words_found(unknown, "curl/8.5.0") is None
    assert uaprefilter.words_found(later, "curl/8.5.0") is False


def test_a_file_that_cannot_be_kept_leaves_nothing_behind(monkeypatch, tmp_path):
    def full(*args):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(uaprefilter.os, "replace", full)
    uaprefilter._keep(str(tmp_path / "cache" / "kept.marshal"), b"data")
    assert os.listdir(tmp_path / "cache") == []


def test_the_saved_table_is_read_back_and_a_damaged_one_made_again(monkeypatch, tmp_path):
    before = kinds()
    devices = uaprefilter._table(uaprefilter.DEVICES)  # not made again here: not looked at
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    clients = uaprefilter.CLIENTS
    path = uaprefilter.table_path(clients)

    def fresh(worked_out: bool) -> dict:
        """The clients' table as a new process reads it (and its indexes, made from it)."""
        monkeypatch.setattr(uaprefilter, "_saved", {uaprefilter.DEVICES: devices})
        monkeypatch.setattr(uaprefilter, "_shared", {})
        calls = []
        monkeypatch.setattr(uaprefilter, "needs", lambda p: calls.append(p) or needs(p))
        table = uaprefilter._table(clients)
        assert bool(calls) == worked_out
        return table

    made = assert_kept(path, fresh, before, lambda data: [
        data.replace(b"firefox", b"firefux", 1), data[: len(data) // 2], b"{}"])
    assert len(made) > 2000


def test_kept_indexes_are_read_back_and_damaged_ones_made_again(monkeypatch, tmp_path):
    before = kinds()
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    clients = uaprefilter.CLIENTS
    path = uaprefilter.layout_path(clients)

    def fresh(made_again: bool) -> tuple:
        """The clients' indexes as a new process has them."""
        monkeypatch.setattr(uaprefilter, "_shared", {})
        calls = []
        words = uaprefilter._corasick_words
        monkeypatch.setattr(uaprefilter, "_corasick_words",
                            lambda *key: calls.append(key) or words(*key))
        lists = uaprefilter._lists(clients)
        assert bool(calls) == made_again
        return (lists.scan.numbers, lists.words,
                {files: index.layout() for files, index in lists.indexes.items()})

    made = assert_kept(path, fresh, before, lambda data: [
        data[:16] + data[16:].replace(b"firefox", b"firefux", 1), data[: len(data) // 2], b"",
        bytes(17)])
    assert len(made[0]) > 5000



def kinds() -> list[tuple]:
    return [(uadetect.detect_kind(ua), uadetect.detect(ua)) for ua in SAMPLES + ODD]


def assert_kept(path: str, fresh: Callable[[bool], object], before: list[tuple],
                damage: Callable) -> object:
    """What a new process makes (`fresh(True)`: made, `fresh(False)`: read back) and keeps at
    `path` is read back the same, classifies the same (`before`: `kinds()` before), and each
    damaged version of the file (`damage` of its content) is made again and kept again as
    it was. Returns what was made."""
    made = fresh(True)  # none kept yet
    assert os.path.exists(path)
    assert fresh(False) == made
    assert kinds() == before
    with open(path, "rb") as f:
        kept = f.read()
    for bad in damage(kept):
        assert bad != kept
        with open(path, "wb") as f:
            f.write(bad)
        assert fresh(True) == made
        with open(path, "rb") as f:
            assert f.read() == kept
    return made
