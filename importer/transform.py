"""Records to events: the URL, domain, client IP, name and props Plausible should receive.

A record reaching the builder passed the filter chain; the builder decides what it becomes
(`pageview`, `404`, `File Download`) and raises MalformedRecord when it cannot become an event.
"""
from __future__ import annotations

import operator
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, fields

from parsers.base import LogRecord, remember

from .clientip import BadAddress, ClientIpResolver
from .events import Event, Origin
from .filters import is_download
from .sites import SiteRouter
from .urls import (
    MAX_URL_BYTES,
    byte_length,
    clean_target,
    drop_query,
    normalize_host,
    path_of,
    split_target,
)

# Plausible's limits on props: beyond them it rejects the whole event (400).
MAX_PROPS = 30
MAX_PROP_KEY_BYTES = 300
MAX_PROP_VALUE_BYTES = 2000

_RECORD_FIELDS = frozenset(f.name for f in fields(LogRecord)) - {"fields"}

# A logged protocol -> the page URL's scheme. CloudFront logs WebSocket requests as ws/wss;
# anything else unknown falls back to --scheme.
_SCHEMES = {"http": "http", "https": "https", "ws": "http", "wss": "https"}


class MalformedRecord(ValueError):
    """A record that parsed but cannot become an event (no client address, no path...)."""


@dataclass(frozen=True)
class PropSpec:
    """`--prop NAME=FIELD`: a LogRecord field (status, method, host...) or any other field the
    log format names (`upstream_cache_status`, `request_time`...)."""

    name: str
    field: str

    def getter(self) -> Callable[[LogRecord], object]:
        if self.field in _RECORD_FIELDS:
            return operator.attrgetter(self.field)
        return lambda record, key=self.field: record.fields.get(key)


@dataclass
class EventBuilder:
    domain: str | None = None  # the site, when there is no --domain-map
    host: str | None = None  # the host for page URLs; default: the logged host, else the domain
    scheme: str = "https"  # when the log does not say
    sites: SiteRouter | None = None  # default: everything to `domain`
    client_ips: ClientIpResolver = field(default_factory=ClientIpResolver)
    track_downloads: bool = False
    track_404: bool = False
    props: tuple[PropSpec, ...] = ()
    notes: Counter = field(default_factory=Counter)  # url_truncated, prop_truncated

    def __post_init__(self) -> None:
        if self.sites is None:
            self.sites = SiteRouter(self.domain)
        fallback = self.host or (self.sites.default or "").split(",")[0]
        self._fallback_host = normalize_host(fallback) or fallback
        self._props = [(p.name, p.getter()) for p in self.props]
        self._pages: dict[tuple, tuple[str, str, str]] = {}  # see _page

    @property
    def fields_read(self) -> frozenset[str]:
        """The names of `LogRecord.fields` that events are made of (props of other fields)."""
        return frozenset(p.field for p in self.props if p.field not in _RECORD_FIELDS)

    def build(self, record: LogRecord, origin: Origin | None = None) -> Event:
        try:
            ip = self.client_ips.resolve(record)
        except BadAddress as exc:
            raise MalformedRecord(f"client address: {exc}") from None
        if not record.uri:
            raise MalformedRecord("no request path")
        key = (record.uri, record.host, record.scheme)
        page = self._pages.get(key)
        if page is None:
            page = self._page(*key)
        domain, url, target = page
        name, referrer, props = "pageview", record.referrer, {}
        if self.track_404 and record.status == 404:
            name, props = "404", {"path": path_of(target)}
        elif self.track_downloads and is_download(path_of(target)):
            # Plausible's script sends it from the page where the link was clicked (the
            # Referer), with the file's URL, without its query, as the `url` prop.
            name, props = "File Download", {"url": drop_query(url)}
            url, referrer = self.referring_page(record.referrer, url), None
        for key, get in self._props:
            value = self.prop_value(get(record))
            if value is not None:
                props[key] = value
        # Positional: a third cheaper than by keyword, on every event.
        return Event(name, url, domain, ip, record.user_agent or "", record.time, referrer, props,
                     origin)

    def page(self, uri: str | None, host: str | None, scheme: str | None
             ) -> tuple[str, str, str] | None:
        """`build`'s (domain, page URL, target) of a logged target, host and scheme; None
        where `build` raises MalformedRecord or notes a cut URL (then without noting it: a
        build of the line does both)."""
        page = self._pages.get((uri, host, scheme))
        if page is not None or not uri:
            return page
        notes, cut = self.notes, self.notes["url_truncated"]
        try:
            page = self._page(uri, host, scheme)
        except MalformedRecord:  # raised before anything is noted
            return None
        if notes["url_truncated"] != cut:
            notes["url_truncated"] = cut
            if not cut:
                del notes["url_truncated"]
            return None
        return page

    def _page(self, uri: str, logged_host: str | None, scheme: str | None
              ) -> tuple[str, str, str]:
        """(domain, page URL, target) of a logged target, host and scheme. The same pages come
        back on every line: each is remembered, unless its URL had to be cut (noted per event)."""
        target_host, target = split_target(uri)
        host = logged_host or target_host
        domain = self.sites.domain_for(host)
        if domain is None:
            raise MalformedRecord(f"no site for host {host!r} (see --domain-map)")
        target = clean_target(target)
        cut = self.notes["url_truncated"]
        url = self.url(_SCHEMES.get((scheme or "").lower(), self.scheme),
                       self.host or normalize_host(host) or self._fallback_host, target)
        page = (domain, url, target)
        if self.notes["url_truncated"] == cut:
            remember(self._pages, (uri, logged_host, scheme), page)
        return page

    def url(self, scheme: str, host: str, target: str) -> str:
        """The page URL; over Plausible's 2,000-byte limit the query is dropped (noted)."""
        url = f"{scheme}://{host}{target}"
        if byte_length(url) <= MAX_URL_BYTES:
            return url
        url = f"{scheme}://{host}{drop_query(target)}"
        if byte_length(url) > MAX_URL_BYTES:
            raise MalformedRecord(f"URL over {MAX_URL_BYTES} bytes even without its query")
        self.notes["url_truncated"] += 1
        return url

    def referring_page(self, referrer: str | None, fallback: str) -> str:
        host, target = split_target(referrer or "")
        if host is None:
            return fallback
        scheme = referrer.split(":", 1)[0].lower()
        try:
            return self.url(scheme, normalize_host(host) or host, clean_target(target))
        except MalformedRecord:
            return fallback

    def prop_value(self, value: object) -> str | None:
        """A prop value Plausible keeps: text, not blank, at most 2,000 bytes (cut, noted)."""
        if value is None:
            return None
        text = str(value)
        if not text.strip() or text == "-":
            return None
        if len(text) * 4 > MAX_PROP_VALUE_BYTES and byte_length(text) > MAX_PROP_VALUE_BYTES:
            text = text.encode("utf-8")[:MAX_PROP_VALUE_BYTES].decode("utf-8", "ignore")
            self.notes["prop_truncated"] += 1
        return text
