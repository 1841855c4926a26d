"""Which log records are page visits (or opted-in custom events). Each rule names the reason it
rejects a record, so every filtered line is counted under that reason in the summary.

This runs once per line, so rules are built only for the options given and ordered cheapest
first; the user-agent rule runs last because classifying a new user agent is by far the most
expensive step (it is cached per distinct user agent).
"""
from __future__ import annotations

import fnmatch
import re
from collections import Counter
from collections.abc import Callable, Sequence
from typing import NamedTuple

from parsers.base import LogRecord, remember

from .clientip import BadAddress, ClientIpResolver, Network, in_networks
from .sites import SiteRouter
from .urls import extension_of, host_of_url, normalize_host, path_of, site_host, split_target

# What Plausible's script tracks as `File Download` (DEFAULT_FILE_TYPES in its tracker),
# compared as written: the script does not lowercase the extension either.
DOWNLOAD_EXTENSIONS = frozenset((
    "pdf", "xlsx", "docx", "txt", "rtf", "csv", "exe", "key", "pps", "ppt", "pptx", "7z", "pkg",
    "rar", "gz", "zip", "avi", "mov", "mp4", "mpeg", "wmv", "midi", "mp3", "wav", "wma", "dmg"))
ASSET_EXTENSIONS = DOWNLOAD_EXTENSIONS | frozenset((
    "css", "js", "mjs", "map", "json", "xml", "ico", "png", "jpg", "jpeg", "gif", "webp", "avif",
    "svg", "bmp", "tif", "tiff", "woff", "woff2", "ttf", "otf", "eot", "webm", "ogg", "ogv", "m4a",
    "m4v", "flac", "aac", "tgz", "bz2", "xz", "msi", "deb", "rpm", "apk", "iso", "wasm", "doc",
    "xls", "odt", "ods", "odp", "epub", "tar"))
SPECIAL_PATHS = frozenset(("/robots.txt", "/favicon.ico"))
PAGE_CONTENT_TYPES = ("text/html", "application/xhtml+xml")
NON_HUMAN_KINDS = frozenset(("bot", "headless", "library", "monitor"))

_DOWNLOAD = "download"  # PageRule's kind of target that the record decides about

Rule = Callable[[LogRecord], str | None]
# A judge's answer when a field alone does not decide (the rule reads more of the record).
UNSURE = object()


class Step(NamedTuple):
    """A rule's check of one record field, as a function of that field's value alone: the
    reason it objects, None, or UNSURE. A rule whose `steps` (checked in order, the first
    objection winning) say what its __call__ says, field by field, may be applied to many
    lines at once, one judgement per distinct value. `eager`: judging a value no line would
    be judged on costs little and changes nothing (else only the values of lines that the
    rules before let through are judged). `only_none`: the judge objects to a missing value
    only; a value a line's conversion gives is never missing, so where the format logs the
    field and its conversion is checked, the values need not be made (export's time rule:
    ~1.5 us for each of a log's distinct timestamps, most of them in a quiet log)."""

    field: str
    judge: Callable[[object], object]
    eager: bool = True
    only_none: bool = False


Classify = Callable[[str], str]  # user agent -> kind: "bot", "headless", "library", "monitor", ""


def is_download(path: str) -> bool:
    return extension_of(path) in DOWNLOAD_EXTENSIONS


class PageRule:
    """The defaults: a GET answered 2xx or 304, of a page (not an asset, not robots.txt,
    favicon.ico or /.well-known/), served as HTML where the log has a content type.

    `track_404` lets 404 pages through (they become `404` events); `track_downloads` lets
    downloads through (`File Download` events) when they were clicked on one of the site's own
    pages: the script only sees clicks there, so the Referer must be a page of the same site."""

    def __init__(self, track_downloads: bool = False, track_404: bool = False,
                 same_site: Callable[[LogRecord], bool] | None = None) -> None:
        self.track_downloads = track_downloads
        self.track_404 = track_404
        self.same_site = same_site or SameSite()
        # What a request target is (page, asset, ...): the same few targets come back on
        # every line, so each is looked at once.
        self._targets: dict[str, str] = {}
        # The same checks one field at a time, for deciding many lines at once
        # (importer/bulk.py); a download depends on more than its target.
        self.steps = (Step("method", self.judge_method), Step("status", self.judge_status),
                      Step("uri", self.judge_target),
                      # Read of pages only: CloudFront's content type is its 30th column.
                      Step("content_type", self.judge_type, eager=False))

    def __call__(self, record: LogRecord) -> str | None:
        why = self.judge_method(record.method) or self.judge_status(record.status)
        if why is not None:
            return why
        kind = self.kind(record.uri)
        if kind:
            return self._download(record) if kind == _DOWNLOAD else kind
        return self.judge_type(record.content_type)

    @staticmethod
    def judge_method(method: str | None) -> str | None:
        if method == "GET":
            return None
        return "bad_request" if method is None else "method"

    def judge_status(self, status: int | None) -> str | None:
        if status is not None and not (200 <= status < 300 or status == 304) and not (
                status == 404 and self.track_404):
            return "status"
        return None

    def kind(self, uri: str | None) -> str:
        """What a target is: see `_kind`."""
        uri = uri or "/"
        kind = self._targets.get(uri)
        if kind is None:
            kind = remember(self._targets, uri, self._kind(uri))
        return kind

    def judge_target(self, uri: str | None) -> object:
        kind = self.kind(uri)
        return UNSURE if kind == _DOWNLOAD else kind or None

    @staticmethod
    def judge_type(content_type: str | None) -> str | None:
        if content_type is not None and not content_type.lower().startswith(PAGE_CONTENT_TYPES):
            return "content_type"
        return None

    def _kind(self, uri: str) -> str:
        """The reason a target is not a page, _DOWNLOAD for a tracked download, "" for a page."""
        path = path_of(uri)
        if path in SPECIAL_PATHS or path.startswith("/.well-known/"):
            return "special_path"
        extension = extension_of(path)
        if extension:
            if self.track_downloads and extension in DOWNLOAD_EXTENSIONS:
                return _DOWNLOAD
            if extension.lower() in ASSET_EXTENSIONS:
                return "asset"
        return ""

    def _download(self, record: LogRecord) -> str | None:
        if record.status == 206:  # a range of a file already counted (players, resumes)
            return "partial_download"
        if record.status == 404:
            return "status"
        return None if self.same_site(record) else "download_not_from_site"


class SameSite:
    """Is a request's Referer a page of the same site? Yes when the referrer's host (ignoring
    `www.`) is the logged host, one of `hosts` (`--host`, the domain), or a host that
    `--domain-map` sends to the same site."""

    def __init__(self, sites: SiteRouter | None = None, hosts: Sequence[str] = ()) -> None:
        self.sites = sites or SiteRouter()
        self.hosts = frozenset(h for h in map(site_host, hosts) if h)

    def __call__(self, record: LogRecord) -> bool:
        referrer = host_of_url(record.referrer)
        if referrer is None:
            return False
        if referrer in self.hosts:
            return True
        host = site_host(record.host or split_target(record.uri or "/")[0])
        if referrer == host:
            return True
        mapped = self.sites.mapped(referrer)
        return mapped is not None and mapped == self.sites.mapped(host)


def time_rule(since: float | None, until: float | None) -> Rule:
    """`--since` (inclusive) / `--until` (exclusive), in UTC epoch seconds."""
    low = float("-inf") if since is None else since
    high = float("inf") if until is None else until

    def judge(t: float | None) -> str | None:
        if t is None:
            return "no_time"
        if t < low:
            return "before_since"
        return "after_until" if t >= high else None

    def rule(record: LogRecord) -> str | None:
        return judge(record.time)

    rule.steps = (Step("time", judge, only_none=since is None and until is None),)
    return rule


def _globs(patterns: Sequence[str]) -> re.Pattern | None:
    if not patterns:
        return None
    return re.compile("|".join(f"(?:{fnmatch.translate(p)})" for p in patterns))


def path_rule(exclude: Sequence[str] = (), include: Sequence[str] = ()) -> Rule:
    """`--exclude-path` / `--include-path` globs on the path (no query); `*` spans `/`."""
    excluded, included = _globs(exclude), _globs(include)

    def judge(uri: str | None) -> str | None:
        path = path_of(uri or "/")
        if excluded is not None and excluded.match(path):
            return "excluded_path"
        if included is not None and not included.match(path):
            return "not_included_path"
        return None

    def rule(record: LogRecord) -> str | None:
        return judge(record.uri)

    rule.steps = (Step("uri", judge),)
    return rule


def ip_rule(networks: Sequence[Network], client_ips: ClientIpResolver) -> Rule:
    """`--exclude-ip`: on the visitor's address as it would be sent (after X-Forwarded-For)."""
    verdicts: dict[str, bool] = {}

    def rule(record: LogRecord) -> str | None:
        try:
            address = client_ips.resolve(record)
        except BadAddress:
            return None  # the event builder reports it as malformed
        excluded = verdicts.get(address)
        if excluded is None:
            excluded = remember(verdicts, address, in_networks(address, networks))
        return "excluded_ip" if excluded else None

    return rule


def host_rule(sites: SiteRouter, unmapped: Counter) -> Rule:
    """`--domain-map`: a host without a site is filtered, and counted per host in `unmapped`."""

    def rule(record: LogRecord) -> str | None:
        host = record.host or split_target(record.uri or "/")[0]
        if sites.domain_for(host) is not None:
            return None
        unmapped[normalize_host(host) or host or "(no host logged)"] += 1
        return "unmapped_host"

    return rule


class UserAgentRule:
    """`--exclude-ua` substrings (case-insensitive), then non-human clients (unless
    `--keep-bots`): one verdict per distinct user agent, cached."""

    def __init__(self, classify: Classify | None, exclude: Sequence[str] = ()) -> None:
        self.classify = classify
        self.exclude = tuple(s.lower() for s in exclude)
        self.verdicts: dict[str, str | None] = {}
        # Classifying a user agent no line asks about would cost device-detector time.
        self.steps = (Step("user_agent", self.verdict, eager=False),)

    def __call__(self, record: LogRecord) -> str | None:
        return self.verdict(record.user_agent)

    def verdict(self, ua: str | None) -> str | None:
        ua = ua or ""
        try:
            return self.verdicts[ua]
        except KeyError:  # bounded: a flood of random UAs must not eat memory
            return remember(self.verdicts, ua, self._judge(ua))

    def _judge(self, ua: str) -> str | None:
        lowered = ua.lower()
        if any(s in lowered for s in self.exclude):
            return "excluded_ua"
        if self.classify is None or not ua:  # Plausible does not treat a missing UA as a bot
            return None
        kind = self.classify(ua)
        return kind if kind in NON_HUMAN_KINDS else None


def default_classify() -> Classify:
    """The process-wide classifier (Matomo's device-detector database, cached per UA), imported
    only when needed: loading it takes seconds."""
    from .useragents import classifier

    return classifier.kind


class FilterChain:
    """Rules run in order; the first one that objects names the reason."""

    def __init__(self, rules: Sequence[Rule] | None = None) -> None:
        if rules is None:
            rules = [PageRule(), UserAgentRule(default_classify())]
        self.rules = list(rules)

    @property
    def classifies_user_agents(self) -> bool:
        """Whether a rule asks device-detector about user agents (the bot filter is on)."""
        return any(isinstance(rule, UserAgentRule) and rule.classify is not None
                   for rule in self.rules)

    def steps(self) -> list[Step]:
        """The steps of the rules up to the first without any (it reads more than one field
        at a time, or counts what it sees): what deciding many lines at once may apply."""
        steps: list[Step] = []
        for rule in self.rules:
            more = getattr(rule, "steps", None)
            if more is None:
                break
            steps.extend(more)
        return steps

    @property
    def stepped(self) -> bool:
        """Whether `steps` are all the rules."""
        return all(getattr(rule, "steps", None) is not None for rule in self.rules)

    def reason(self, record: LogRecord) -> str | None:
        for rule in self.rules:
            why = rule(record)
            if why is not None:
                return why
        return None
