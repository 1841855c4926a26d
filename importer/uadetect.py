"""User-Agent -> UserAgentInfo with Matomo's device-detector database, the way Plausible's
server reads it (see importer/useragents.py). Imported only when a user agent is not already
known: importing the library is cheap, but its first parse loads the database (~0.5 s).
"""
from __future__ import annotations

from device_detector import DeviceDetector
from device_detector.enums import AppType, DeviceType
from device_detector.parser import Bot, Browser, Device
from device_detector.parser.client import adobe_cc
from device_detector.parser.client.adobe_cc import AdobeCC
from device_detector.parser.client.base import BaseClientParser
from device_detector.parser.client.dictua import DictUA
from device_detector.parser.device.bot import GENERIC_BOT_UAS
from device_detector.parser.parser import perform_substitutions
from device_detector.parser.settings import TV_CLIENTS
from device_detector.utils import clean_ua
from device_detector.yaml_loader import app_custom_details

from . import uaprefilter
from .useragents import BOT, UserAgentInfo

# The same answers, fewer searches (see there); False with a library version it was not
# proven on: device-detector is then used as it is.
PREFILTERED = uaprefilter.install()

# Health checkers and uptime monitors that device-detector 6.5 does NOT flag as bots (its
# bots.yml already covers UptimeRobot, Pingdom, StatusCake, Site24x7, Better Uptime, ELB,
# Route 53, Cloudflare, Datadog, Uptime Kuma, Oh Dear, check_http, ...). Lower-case substrings.
MONITOR_MARKERS = (
    "kube-probe/",  # Kubernetes liveness/readiness probes
    "googlehc/",  # Google Cloud load-balancer health checks
    "envoy/hc",  # Envoy proxy active health checks
    "alwayson",  # Azure App Service "Always On" keep-alive pings
    "newrelicpinger",  # New Relic availability pings
    "zabbix",  # Zabbix web scenarios
    "checkly",  # Checkly API checks
    "updown.io daemon",  # updown.io
    "freshping",  # Freshping
    "monitis",  # Monitis
    "healthcheck",  # generic names: Fastly-Healthcheck, in-house probes, ...
    "health-check",
    "health check",  # Consul Health Check
)

# Plausible's `screen_size`: device-detector device type -> size class; other types -> "".
SIZE_CLASSES = {
    "smartphone": "Mobile",
    "feature phone": "Mobile",
    "portable media player": "Mobile",
    "phablet": "Mobile",
    "wearable": "Mobile",
    "camera": "Mobile",
    "tablet": "Tablet",
    "car browser": "Tablet",
    "tv": "Desktop",
    "console": "Desktop",
    "desktop": "Desktop",
}

# Plausible's `browser_name` renames (matched on the client name before its type).
BROWSER_RENAMES = {
    "Mobile Safari": "Safari",
    "Chrome Mobile": "Chrome",
    "Chrome Mobile iOS": "Chrome",
    "Firefox Mobile": "Firefox",
    "Firefox Mobile iOS": "Firefox",
    "Opera Mobile": "Opera",
    "Opera Mini": "Opera",
    "Opera Mini iOS": "Opera",
    "Yandex Browser Lite": "Yandex Browser",
    "Chrome Webview": "Mobile App",
}

# Client types Matomo itself has and Plausible shows by name. The port splits Matomo's
# "mobile app" into finer app types (messaging, game, desktop app, ...): all are "Mobile App" to
# Plausible. Its "generic" type is a guess from any "Name/1.0" token, which Matomo leaves unknown.
NAMED_CLIENT_TYPES = frozenset(("browser", "feed reader", "library", "mediaplayer", "pim"))


def _major_minor(version: str) -> str:
    return ".".join(version.split(".")[:2])


def _kind(dd: DeviceDetector) -> str:
    """Precedence: what Plausible drops first (bot, headless), then monitor, then library."""
    if dd.is_bot():
        return "bot"
    if dd.client_name() == "Headless Chrome":  # exactly the name Plausible drops
        return "headless"
    if _monitor(dd.user_agent_lower):
        return "monitor"
    if dd.client_type() == AppType.Library:
        return "library"
    return ""


def _monitor(ua_lower: str) -> str:
    """The kind of a client that is neither a bot nor headless, were it not a library."""
    return "monitor" if any(marker in ua_lower for marker in MONITOR_MARKERS) else ""


class _RulesOnlyDevice(Device):
    """The port's device-type rules without a device regex match, defaulting to unknown."""

    __slots__ = ()
    DEVICE_TYPE = DeviceType.Unknown


def _device_type(dd: DeviceDetector) -> str:
    """The device type as Matomo decides it.

    Matomo applies its rules (desktop OS -> desktop, Android + Chrome + "Mobile" -> smartphone,
    ...) to every UA. The port applies them only after a cheap pre-filter hits the device
    database, and when no device regex then matches it falls back to "smartphone". So plain
    Linux Chrome came out unknown and "Wget/1.21" a smartphone. Against the port's copy of
    Matomo's fixtures (6,060 UAs) this raises agreement on the device type from 97.0% to 99.5%.
    """
    reported = dd.device_type()
    if dd.device is not None and dd.device.matched_regex is not None:
        return reported
    if reported and reported != DeviceType.Smartphone:  # set by a rule (TV, desktop, ...)
        return reported
    if dd.client_name() in TV_CLIENTS:
        return DeviceType.TV
    rules = _RulesOnlyDevice(dd.user_agent, None, os_details=dd.all_details.get("os", {}))
    dtype = rules.dtype()
    if dtype == DeviceType.Desktop and dd.uses_mobile_browser():  # Matomo's isDesktop()
        return DeviceType.Unknown
    return dtype


def _browser(dd: DeviceDetector) -> tuple[str, str]:
    name, ctype = dd.client_name(), dd.client_type()
    if not name or ctype == AppType.Generic:
        return "", ""
    if name in BROWSER_RENAMES:
        return BROWSER_RENAMES[name], _major_minor(dd.client_version())
    if ctype not in NAMED_CLIENT_TYPES:
        return "Mobile App", ""
    return name, _major_minor(dd.client_version())


class _Browser(Browser):
    """The browser parser, without naming the app a browser runs in (its "secondary client":
    Instagram's in-app browser...). That costs ~0.3 ms for each Chrome or Safari user agent
    (its name/version pairs are extracted) and nothing here reads it."""

    __slots__ = ()

    def check_secondary_client_data(self) -> None:
        return


_Browser.__name__ = "Browser"  # device-detector finds a parser's Aho-Corasick words by name


def _checked_only(parser_class: type[BaseClientParser]) -> bool:
    """Whether the parser's `parse` finds nothing where its `check_all_regexes` (the index's
    words) is false and there are no client hints: it walks its list only if it is true, and
    the rest of its parse (version, details) has nothing to work on. Read off which methods
    it has of its own: a parser with its own parsing or check is parsed."""
    return _inherits(parser_class, "__init__", "parse", "_parse", "extract_version",
                     "set_details", "set_data_from_client_hints", "_set_data_from_field",
                     "name", "check_all_regexes")


def _inherits(parser_class: type[BaseClientParser], *methods: str) -> bool:
    """Whether each of these methods of `parser_class` is BaseClientParser's own."""
    return all(getattr(parser_class, method) is getattr(BaseClientParser, method)
               for method in methods)


def _skipped(parser_class: type[BaseClientParser], ua: str, lowered: str) -> bool:
    """Whether a parser of `parser_class` surely finds no client in `ua` (without client
    hints). DictUA reads a JSON object or array, or "key=value; ..." pairs (each of them
    one "=", or none is read); AdobeCC searches one regex."""
    if not _NAMELESS_UNKNOWN:
        return False
    if parser_class is DictUA:
        return ua.lstrip()[:1] not in ("{", "[") and (
            "=" not in ua or any(pair.count("=") != 1 for pair in ua.split(";")))
    if parser_class is AdobeCC:  # finds what this regex matches, if it does
        return not adobe_cc.ADOBE_CC.may_match(ua)
    return parser_class in _CHECKED_ONLY and (
        not parser_class.fixture_files  # an empty list to walk
        or uaprefilter.words_found(parser_class, lowered) is False)


class _Detector(DeviceDetector):
    """DeviceDetector with fewer substitutions tried (see uaprefilter.normalizers) and without
    the work whose results `detect` never reads (secondary clients)."""

    __slots__ = ()
    CLIENT_PARSERS = tuple(_Browser if parser is Browser else parser
                           for parser in DeviceDetector.CLIENT_PARSERS)

    def __new__(cls, ua: str) -> _Detector:
        return object.__new__(cls)  # DeviceDetector's looks a cache up

    def __init__(self, ua: str) -> None:
        super().__init__(ua, check_cache=False)

    def normalize(self) -> str:
        # It tries its substitutions in order until one changes the (cleaned) UA: only those
        # that may. Picked here, not in __init__: `detect_kind` seldom normalizes.
        if not self.all_details.get("normalized"):
            self._normalized_regex_list = uaprefilter.normalizers(self.user_agent)
        return super().normalize()

    def parse_client(self) -> None:
        """DeviceDetector.parse_client, without the parsers that can find nothing: most of
        the ~10 tried before the one that finds a browser (see `_skipped`)."""
        if self.client:
            return
        os_details = self.all_details.get("os", {})
        hints, ua = self.client_hints, self.user_agent
        lowered = ua.lower()
        for parser_class in self.CLIENT_PARSERS:
            if hints is None and _skipped(parser_class, ua, lowered):
                continue
            parser = parser_class(ua, hints, os_details=os_details).parse()
            if parser.ua_data:
                self.client = parser
                self.all_details["client"] = parser.ua_data
                break
        self.extract_app_id()

    def extract_app_id(self) -> None:
        """An app id found in the UA makes the client only where no parser found one; else it
        only names a secondary client."""
        if not self.all_details.get("client"):
            super().extract_app_id()


def _named_by_its_regex(parser_class: type[BaseClientParser]) -> bool:
    """Whether, without client hints, a client that a parser of `parser_class` finds takes its
    name and type from the regex that matched (and the app details of the name) and from
    nothing its `parse` does after `_parse`: its version and the browser's engine (all that
    Browser.set_details adds) do not change them. Read off which methods it has of its own."""
    return parser_class.set_details in (BaseClientParser.set_details, _Browser.set_details) \
        and _inherits(parser_class, "__init__", "parse", "_parse", "extract_version",
                      "_set_data_from_field", "name", "dtype")


class _KindDetector(_Detector):
    """What `detect_kind` reads: whether a bot is found, and the client's name and type; not
    the rest of the client (version, engine, ...). Each client parser's list is walked through
    its index (uaprefilter) after one scan of the user agent, and a parser that takes its
    client's name from its regex (`_named_by_its_regex`) is not made. Proven equal to
    device-detector's kind by tests/bench/prove_uaprefilter.py."""

    __slots__ = ()

    def __init__(self, ua: str) -> None:
        # DeviceDetector's, for a user agent without headers, setting only what the bot and
        # client parses read (not the OS or device ones): sure for the library version
        # uaprefilter was proven on only, the one this class is used with (PREFILTERED).
        self.user_agent_lower = lowered = ua.lower()
        self.user_agent = clean_ua(ua, lowered)
        self.client = self.bot = self.client_hints = None
        self.skip_bot_detection = False
        self.all_details = {"normalized": ""}
        self.headers = {}

    def parse_bot(self) -> None:
        """No Bot parser where its words rule a bot out (Bot.check_all_regexes is false)."""
        ua = self.user_agent
        if ua.isascii():
            lowered = ua.lower()
            steps = _steps()
            words = steps.bot_words
            if (words is not None and words.isdisjoint(steps.scan(lowered))
                    and lowered not in GENERIC_BOT_UAS):
                return
        super().parse_bot()

    def parse_client(self) -> None:
        ua = self.user_agent
        if not ua.isascii() or not _NAMELESS_UNKNOWN:
            return super().parse_client()
        lowered = ua.lower()
        steps = _steps()
        found = steps.scan(lowered)
        for parser_class, words, index, own_check in steps.clients:
            if index is None:  # not named by its regex (or its list is empty): parsed
                if not _skipped(parser_class, ua, lowered):
                    client = parser_class(ua, None).parse().ua_data
                    if client:
                        self.all_details["client"] = client
                        return None
                continue
            if (words is not None and words.isdisjoint(found) and not (
                    own_check and parser_class(ua, None).check_all_regexes())):
                continue  # its `_parse` walks no list
            client = _named_client(parser_class, index, ua, lowered)
            if client:
                self.all_details["client"] = client
                return None
        self.extract_app_id()
        return None


def _named_client(parser_class: type[BaseClientParser], index: uaprefilter.Index, ua: str,
                  lowered: str) -> dict | None:
    """The name and type of the client a parser of `parser_class` (named by its regex) finds
    in `ua` once its words are found, as its `parse` makes them; None if it finds none."""
    for entry in index.candidates(lowered):  # what Parser._parse walks
        match = entry["regex"].search(ua)
        if match:
            break
    else:
        return None
    name = entry.get("name")
    if not isinstance(name, str):  # not as client lists have it: let `parse` tell
        return parser_class(ua, None).parse().ua_data or None
    if "\\g<" in name:  # Parser._set_data_from_field
        name = perform_substitutions(name, match, ".")
    client = {"name": name, "type": entry.get("type") or parser_class.APP_TYPE}
    custom = app_custom_details().get(name.lower())  # BaseClientParser.set_details
    return client | custom if custom else client


class _Steps:
    """How `_KindDetector` tries each client parser, worked out once the index is loaded:
    (parser class, the numbers of its words or None, the index of its list if it is named by
    its regex, whether it has a check_all_regexes of its own); and Bot's words."""

    def __init__(self) -> None:
        self.scan, self.bot_words = uaprefilter.words_of(Bot)
        self.clients = []
        for parser_class in _Detector.CLIENT_PARSERS:
            _, words = uaprefilter.words_of(parser_class)
            named = parser_class in _NAMED_BY_REGEX
            self.clients.append((
                parser_class, words,
                uaprefilter.index_of(parser_class) if named else None,
                parser_class.check_all_regexes is not BaseClientParser.check_all_regexes))


def _steps() -> _Steps:
    attached = uaprefilter.attached(uaprefilter.CLIENTS)
    steps = attached.get(_Steps)
    if steps is None:
        steps = attached[_Steps] = _Steps()
    return steps


_CHECKED_ONLY = frozenset(filter(_checked_only, _Detector.CLIENT_PARSERS))
_NAMED_BY_REGEX = frozenset(filter(_named_by_its_regex, _Detector.CLIENT_PARSERS))
# A parse that finds nothing ends with the app details of the name "": none, or it finds those.
_NAMELESS_UNKNOWN = "" not in app_custom_details()


def _detector(ua: str) -> DeviceDetector:
    # A proven library version only: tests/bench/prove_uaprefilter.py compares every answer
    # with the library's own, as it is.
    return _Detector(ua) if PREFILTERED else DeviceDetector(ua, check_cache=False)


def detect(ua: str) -> UserAgentInfo:
    """Classify one non-empty User-Agent (uncached: ~1 ms)."""
    dd = _detector(ua)
    dd.parse_bot()
    if dd.is_bot():
        return BOT
    dd.parse()
    browser, browser_version = _browser(dd)
    return UserAgentInfo(
        kind=_kind(dd),
        device=SIZE_CLASSES.get(_device_type(dd), ""),
        browser=browser,
        browser_version=browser_version,
        os=dd.os_name(),
        os_version=_major_minor(dd.os_version()),
    )


def detect_kind(ua: str) -> str:
    """`detect(ua).kind` for a small share of the cost (~30 us against ~0.3-1 ms): skips the
    OS and device databases, nearly always the normalizer, and all of the client but its name
    and type (`_KindDetector`).

    device-detector parses no client of a worthless user agent (gibberish, a UUID, ...: see
    `DeviceDetector.is_worthless`), and finding that out costs as much as the client parse.
    The client parse neither reads nor changes what it depends on, so it is done first: only a
    client that makes the kind (headless, library) needs the check. If the parse of one that
    device-detector would not have parsed fails, it is left out as device-detector does."""
    dd = _KindDetector(ua) if PREFILTERED else _detector(ua)
    dd.parse_bot()
    if dd.is_bot():
        return "bot"
    try:
        dd.parse_client()
    except Exception:  # noqa: BLE001 - raised again below unless it is worthless
        return _unparsed_kind(ua)
    kind = _kind(dd)
    if kind in ("headless", "library") and dd.is_worthless():
        return _monitor(dd.user_agent_lower)
    return kind


def _unparsed_kind(ua: str) -> str:
    """The kind in device-detector's order: no client parse where it is worthless."""
    dd = _detector(ua)
    dd.parse_bot()  # not a bot: as before
    if not dd.is_worthless():
        dd.parse_client()
    return _kind(dd)


# What most visits come with (desktop and phone browsers, a crawler): parsing them loads every
# list and compiles the regexes nearly every user agent meets.
COMMON = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko)"
    " Chrome/124.0.0.0 Safari/537.36 Edg/124.0.0.0",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15"
    " (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Linux; Android 14; SM-S918B) AppleWebKit/537.36 (KHTML, like Gecko)"
    " Chrome/124.0.0.0 Mobile Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10.15; rv:125.0) Gecko/20100101 Firefox/125.0",
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko)"
    " Chrome/124.0.0.0 Safari/537.36",
    "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
)


def warm_up(full: bool = True) -> None:
    """Load and compile what classifying common user agents takes (see useragents.preload):
    their kinds, and with `full` all of `detect` (the OS and device databases too)."""
    for ua in COMMON:
        if full:
            detect(ua)
        detect_kind(ua)
