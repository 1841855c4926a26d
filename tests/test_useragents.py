"""importer/useragents.py against real User-Agent strings and the real device-detector database."""
from __future__ import annotations

from dataclasses import astuple

import pytest
from device_detector import DeviceDetector

from importer import uadetect, useragents
from importer.useragents import UNKNOWN, UserAgentClassifier, UserAgentInfo, detect, detect_kind

IPHONE_SAFARI = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1_2 like Mac OS X) AppleWebKit/605.1.15"
    " (KHTML, like Gecko) Version/17.1.2 Mobile/15E148 Safari/604.1"
)
ANDROID_CHROME = (
    "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko)"
    " Chrome/120.0.6099.144 Mobile Safari/537.36"
)
IPAD_SAFARI = (
    "Mozilla/5.0 (iPad; CPU OS 16_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko)"
    " Version/16.6 Mobile/15E148 Safari/604.1"
)
WINDOWS_CHROME = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko)"
    " Chrome/120.0.0.0 Safari/537.36"
)
MAC_FIREFOX = (
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10.15; rv:121.0) Gecko/20100101 Firefox/121.0"
)
LINUX_CHROME = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko)"
    " Chrome/120.0.0.0 Safari/537.36"
)
INSTAGRAM_IOS = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15"
    " (KHTML, like Gecko) Mobile/15E148 Instagram 309.0.2.23.106 (iPhone14,5; iOS 17_1; en_US;"
    " en; scale=3.00; 1170x2532; 537288532)"
)
ANDROID_WEBVIEW = (
    "Mozilla/5.0 (Linux; Android 13; SM-S911B Build/TP1A.220624.014; wv) AppleWebKit/537.36"
    " (KHTML, like Gecko) Version/4.0 Chrome/119.0.6045.193 Mobile Safari/537.36"
)
OPERA_MINI_IOS = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15"
    " (KHTML, like Gecko) OPiOS/16.0.14.122053 Mobile/15E148 Safari/9537.53"
)
HEADLESS_CHROME = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko)"
    " HeadlessChrome/120.0.0.0 Safari/537.36"
)

# (ua, kind, device, browser, browser_version, os, os_version)
CASES = [
    ("Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
     "bot", "", "", "", "", ""),
    ("Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko); compatible; GPTBot/1.2;"
     " +https://openai.com/gptbot", "bot", "", "", "", "", ""),
    ("Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; compatible; ClaudeBot/1.0;"
     " +claudebot@anthropic.com)", "bot", "", "", "", "", ""),
    ("Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)",
     "bot", "", "", "", "", ""),
    ("Mozilla/5.0+(compatible; UptimeRobot/2.0; http://www.uptimerobot.com/)",
     "bot", "", "", "", "", ""),
    ("ELB-HealthChecker/2.0", "bot", "", "", "", "", ""),
    ("kube-probe/1.27", "monitor", "", "", "", "", ""),
    ("GoogleHC/1.0", "monitor", "", "", "", "", ""),
    ("curl/8.5.0", "library", "", "curl", "8.5", "", ""),
    ("python-requests/2.31.0", "library", "", "Python Requests", "2.31", "", ""),
    ("Go-http-client/1.1", "library", "", "Go-http-client", "1.1", "", ""),
    ("Wget/1.21.4", "library", "", "Wget", "1.21", "", ""),
    (HEADLESS_CHROME, "headless", "Desktop", "Headless Chrome", "120.0", "GNU/Linux", ""),
    (IPHONE_SAFARI, "", "Mobile", "Safari", "17.1", "iOS", "17.1"),
    (ANDROID_CHROME, "", "Mobile", "Chrome", "120.0", "Android", "10"),
    (IPAD_SAFARI, "", "Tablet", "Safari", "16.6", "iPadOS", "16.6"),
    (WINDOWS_CHROME, "", "Desktop", "Chrome", "120.0", "Windows", "10"),
    (MAC_FIREFOX, "", "Desktop", "Firefox", "121.0", "Mac", "10.15"),
    (LINUX_CHROME, "", "Desktop", "Chrome", "120.0", "GNU/Linux", ""),
    (INSTAGRAM_IOS, "", "Mobile", "Mobile App", "", "iOS", "17.1"),
    (ANDROID_WEBVIEW, "", "Mobile", "Mobile App", "119.0", "Android", "13"),
    (OPERA_MINI_IOS, "", "Mobile", "Opera", "16.0", "iOS", "17.1"),
    ("", "", "", "", "", "", ""),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c[0][:40] or "empty")
def test_detect_matches_plausible(case: tuple[str, ...]) -> None:
    ua, *expected = case
    assert detect(ua) == UserAgentInfo(*expected)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c[0][:40] or "empty")
def test_detect_kind_agrees_with_detect(case: tuple[str, ...]) -> None:
    ua, kind, *_ = case
    assert detect_kind(ua) == kind


# device-detector finds a library or Headless Chrome in these, but calls them worthless
# (mostly one character: "gibberish") and parses no client: the kind is a normal client's.
WORTHLESS = [("curl/7.1" + "a" * 60, ""), ("HeadlessChrome/1" + "e" * 80, "")]


@pytest.mark.parametrize(("ua", "kind"), WORTHLESS, ids=lambda v: v[:12])
def test_a_worthless_user_agent_has_no_client_kind(ua: str, kind: str) -> None:
    assert DeviceDetector(ua, check_cache=False).is_worthless()
    assert detect_kind(ua) == detect(ua).kind == kind
    # what the client parse alone finds: the kind it would make without the check
    dd = uadetect._detector(ua)
    dd.parse_client()
    assert uadetect._kind(dd) in ("library", "headless")


def test_plausible_drops_bots_and_headless_only() -> None:
    drops = {kind: UserAgentInfo(kind=kind).plausible_drops for kind in useragents.KINDS}
    assert drops == {"bot": True, "headless": True, "library": False, "monitor": False, "": False}


calls: list[str] = []


def counting_detect(ua: str) -> UserAgentInfo:
    """Top level so worker processes can unpickle it; counts only calls in this process."""
    calls.append(ua)
    return detect(ua)


@pytest.fixture
def counted() -> list[str]:
    calls.clear()
    return calls


def test_cache_detects_each_ua_once(counted: list[str]) -> None:
    clf = UserAgentClassifier(detect_fn=counting_detect)
    first = clf.classify(IPHONE_SAFARI)
    assert clf.classify(IPHONE_SAFARI) is first
    assert clf.kind(IPHONE_SAFARI) == ""
    assert counted == [IPHONE_SAFARI]


def test_kind_alone_skips_the_full_detector(counted: list[str]) -> None:
    clf = UserAgentClassifier(detect_fn=counting_detect)
    assert [clf.kind(ua) for ua in ("curl/8.5.0", HEADLESS_CHROME)] == ["library", "headless"]
    assert counted == []  # the full detector was never needed


def test_what_another_process_found_meanwhile_is_taken_before_classifying(
        counted: list[str]) -> None:
    clf = UserAgentClassifier(detect_fn=counting_detect)
    clf.full_kinds = True
    told = [(useragents.ua_key(IPHONE_SAFARI), UserAgentInfo(kind="bot"))]  # as a parse
    clf.on_miss = lambda: clf.learn(told)  # worker is told by another
    assert clf.kind(IPHONE_SAFARI) == "bot" and clf.known(IPHONE_SAFARI).kind == "bot"
    assert clf.kind("curl/8.5.0") == "library"  # nobody knew: classified here
    assert counted == ["curl/8.5.0"]


def test_what_is_learned_is_known_and_used_a_kind_not_replacing_a_full_answer() -> None:
    clf = UserAgentClassifier()
    full, kind_only, imported = (useragents.ua_key(ua) for ua in ("a/1", "b/1", "c/1"))
    clf.import_cache([(imported, ("library",))])  # from an earlier run, not used yet
    clf.remember("a/1", UserAgentInfo(browser="Safari"))
    clf.learn([(full, "bot"), (kind_only, "bot"), (kind_only, "library"), (imported, "")])
    assert clf.known("a/1") == UserAgentInfo(browser="Safari")  # the full answer stays
    assert clf.kind("b/1") == "library"  # the last one told
    assert dict(clf.export_cache()) == {full: astuple(UserAgentInfo(browser="Safari")),
                                        kind_only: ("library",), imported: ("",)}


def test_an_open_agent_lookup_has_kinds_classified_fully(counted: list[str]) -> None:
    """While an export's AgentLookup is open, the bot filter's `kind` makes the full
    classification (in the parse workers, which share `kinds` with the main process), so the
    lookup finds each user agent known instead of classifying it again in its own workers."""
    from importer.lookups import AgentLookup

    clf = UserAgentClassifier(detect_fn=counting_detect)
    clf.found = []  # a parse worker's: what it finds out goes to the main process
    agents = AgentLookup(workers=2, cache=clf)
    assert clf.kind("curl/8.5.0") == "library" and clf.kind(IPHONE_SAFARI) == ""
    assert counted == ["curl/8.5.0", IPHONE_SAFARI]
    learned = UserAgentClassifier(detect_fn=counting_detect)  # the main process
    learned.learn(clf.found)  # as importer/parallel.py passes them on
    main = AgentLookup(workers=2, cache=learned)
    main.want(IPHONE_SAFARI)
    assert main.ready(IPHONE_SAFARI) and main._pool is None  # known: no worker started
    assert main.get(IPHONE_SAFARI) == detect(IPHONE_SAFARI)
    assert dict(learned.export_cache())[useragents.ua_key("curl/8.5.0")] == astuple(
        detect("curl/8.5.0"))
    main.close()
    agents.close()
    assert clf.kind(ANDROID_CHROME) == ""
    assert counted == ["curl/8.5.0", IPHONE_SAFARI]  # closed: the kind alone again


def test_agent_lookup_answers_a_user_agent_whose_chunk_filled_its_recent_answers(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """`get` answers a user agent whose chunk, as it was stored, filled and emptied the
    bounded dict of recent answers: from the classifier, which keeps every answer."""
    from importer.lookups import AgentLookup

    monkeypatch.setattr("parsers.base.CACHE_LIMIT", 2)
    agents = AgentLookup(workers=0, cache=UserAgentClassifier())
    for ua in (IPHONE_SAFARI, ANDROID_CHROME, WINDOWS_CHROME):
        agents.want(ua)
    assert agents.get(IPHONE_SAFARI) == detect(IPHONE_SAFARI)
    assert agents.get(WINDOWS_CHROME) == detect(WINDOWS_CHROME)
    agents.close()


def test_classify_many_in_workers_equals_sequential(counted: list[str]) -> None:
    uas = [case[0] for case in CASES]
    with UserAgentClassifier(detect_fn=counting_detect, workers=2, min_parallel=5) as clf:
        clf.classify(WINDOWS_CHROME)  # already cached: must not be sent to a worker
        many = clf.classify_many(uas + uas[:3])
    assert list(many) == uas
    assert many == {ua: detect(ua) for ua in uas}
    # Besides the cached UA, the parent detected one UA (loading the database before the fork);
    # the workers did the rest.
    assert len(counted) == 2


def test_classify_many_below_threshold_stays_in_process(counted: list[str]) -> None:
    clf = UserAgentClassifier(detect_fn=counting_detect, min_parallel=50)
    many = clf.classify_many([IPHONE_SAFARI, ANDROID_CHROME, IPHONE_SAFARI])
    assert many == {IPHONE_SAFARI: detect(IPHONE_SAFARI), ANDROID_CHROME: detect(ANDROID_CHROME)}
    assert counted == [IPHONE_SAFARI, ANDROID_CHROME]


def test_export_import_round_trip(counted: list[str]) -> None:
    source = UserAgentClassifier()
    source.classify_many([IPHONE_SAFARI, "curl/8.5.0"])
    saved = dict(source.export_cache())
    assert set(saved) == {useragents.ua_key(IPHONE_SAFARI), useragents.ua_key("curl/8.5.0")}
    assert all(len(key) == 16 for key in saved)

    restored = UserAgentClassifier(detect_fn=counting_detect)
    restored.import_cache(saved)
    assert dict(restored.export_cache()) == {}  # imported, not used: the store keeps them
    assert restored.classify(IPHONE_SAFARI) == source.classify(IPHONE_SAFARI)
    assert restored.kind("curl/8.5.0") == "library"
    assert counted == []
    assert dict(restored.export_cache()) == saved


def test_kind_only_rows_answer_kind_not_classify(counted: list[str]) -> None:
    source = UserAgentClassifier(detect_fn=counting_detect)
    assert source.kind("curl/8.5.0") == "library"
    saved = dict(source.export_cache())
    assert saved == {useragents.ua_key("curl/8.5.0"): ("library",)}

    restored = UserAgentClassifier(detect_fn=counting_detect)
    restored.import_cache(saved)
    assert restored.kind("curl/8.5.0") == "library"
    assert counted == []  # the kind came from the import
    assert restored.known("curl/8.5.0") is None  # the rest was never found out
    assert restored.classify("curl/8.5.0") == detect("curl/8.5.0")
    assert counted == ["curl/8.5.0"]
    assert dict(restored.export_cache()) == {useragents.ua_key("curl/8.5.0"):
                                             ("library", "", "curl", "8.5", "", "")}


def test_caller_chosen_key() -> None:
    def key(ua: str) -> bytes:
        return useragents.ua_key(ua.lower())

    clf = UserAgentClassifier(key=key)
    clf.import_cache([(key("curl/8.5.0"), ("library", "", "curl", "8.5", "", ""))])
    assert clf.classify("CURL/8.5.0").browser == "curl"  # found through key(ua), not detected
    assert dict(clf.export_cache()) == {key("curl/8.5.0"): ("library", "", "curl", "8.5", "", "")}


@pytest.mark.parametrize(
    "row", [("robot", "", "", "", "", ""), ("", "", "", "", ""), ("", 1, "", "", "", "")]
)
def test_import_rejects_malformed_rows(row: tuple) -> None:
    with pytest.raises(ValueError):
        UserAgentClassifier().import_cache({"k": row})


def test_empty_ua_is_unknown_not_a_bot() -> None:
    info = UserAgentClassifier().classify("")
    assert info == UNKNOWN
    assert not info.plausible_drops


def test_the_cache_keeps_no_user_agent_text(monkeypatch) -> None:
    """A log's distinct user agents grow with it, and each process caches them: each costs a
    digest and a number (~40 bytes), not its text (hundreds of bytes, ~400 with a dict)."""
    import tracemalloc

    monkeypatch.setattr(useragents, "detect_kind", lambda ua: "")
    clf = UserAgentClassifier()
    agents = 20_000

    def agent(n: int) -> str:  # as parsed from a log line: gone with it unless kept
        return f"Mozilla/5.0 (agent {n}) " + "x" * 200

    tracemalloc.start()
    try:
        for n in range(agents):
            clf.kind(agent(n))
        used = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert used < 60 * agents
    assert not any(map(clf.is_new, map(agent, range(agents))))


@pytest.mark.parametrize("full", [False, True])
def test_preload_warms_up_what_the_run_classifies(monkeypatch, full: bool) -> None:
    done: list[str] = []
    monkeypatch.setattr(uadetect, "detect", lambda ua: done.append("detect"))
    monkeypatch.setattr(uadetect, "detect_kind", lambda ua: done.append("kind"))
    monkeypatch.setattr(useragents.classifier, "full_kinds", full)  # an export's
    useragents.preload()
    assert set(done) == ({"detect", "kind"} if full else {"kind"})
