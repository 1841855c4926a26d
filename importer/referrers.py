"""Where a session came from, resolved the way Plausible's server does it.

Plausible fixes a session's source, stored referrer and UTM values from the session's first event
(lib/plausible/ingestion/source.ex and event.ex, v3.2). This module reimplements that, for the
CSV export's sources table and for session attribution:

1. A tagged source wins: `utm_source`, else `source`, else `ref` from the page URL's query, even
   an empty one (Elixir treats "" as present).
2. Otherwise a valid referral (scheme http, https or android-app; a non-empty host that is not the
   page's own host, ignoring a leading "www."; not "localhost") is named from the referer database
   the way RefInspector does it; a referrer it does not know becomes its host without "www.".
3. Either name is then mapped case-insensitively onto the known names (the database's names plus
   Plausible's custom_sources.json): "google" -> "Google", "ig" -> "Instagram".

The database is the snowplow referer-parser file bundled by a PyPI package, reduced to the older
snapshot Plausible bundles; data/plausible_sources.json records where each part comes from.
URLs are split with the RFC 3986 regex Elixir's URI.parse uses rather than urllib, so odd input
(a host with a trailing space, a scheme in capitals) falls the way it falls on the server.
"""
from __future__ import annotations

import hashlib
import json
import re
from functools import cache, lru_cache
from importlib.util import find_spec
from pathlib import Path
from typing import NamedTuple
from urllib.parse import unquote_plus

import yaml

from parsers.base import CACHE_LIMIT

_PLAUSIBLE_DATA = Path(__file__).with_name("data") / "plausible_sources.json"

# Plausible cuts a referrer to this many characters before anything else looks at it.
_MAX_REFERRER = 2000
_REFERRAL_SCHEMES = ("http", "https", "android-app")
# Checked in this order; the first one present names the click (event.ex @click_id_params).
_CLICK_ID_PARAMS = ("gclid", "gbraid", "wbraid", "msclkid", "fbclid", "twclid")
# What Elixir's String.trim removes: the Unicode White_Space property (str.strip() takes more).
_WHITESPACE = (
    "\t\n\v\f\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a"
    "\u2028\u2029\u202f\u205f\u3000"
)

# Elixir's URI.parse: RFC 3986 appendix B, then its own authority split.
_URI = re.compile(r"^(([a-z][a-z0-9+\-.]*):)?(//([^/?#]*))?([^?#]*)(\?([^#]*))?(#(.*))?", re.I)
_AUTHORITY = re.compile(r"(^(.*)@)?(\[[a-zA-Z0-9:.]*\]|[^:]*)(:([0-9]*))?")


class SourceInfo(NamedTuple):  # a tuple: hashed and compared in C, a sources row's key
    """A session's acquisition fields as Plausible stores them ("" where it stores nothing)."""

    source: str = ""
    referrer: str = ""  # host (without "www.") + path, no query, no trailing "/"
    utm_source: str = ""
    utm_medium: str = ""
    utm_campaign: str = ""
    utm_content: str = ""
    utm_term: str = ""


class _Uri(NamedTuple):
    scheme: str | None
    host: str | None
    path: str | None
    query: str | None


def _parse_uri(text: str) -> _Uri:
    """The fields of Elixir's URI.parse/1 that source resolution reads."""
    m = _URI.match(text)
    scheme = m.group(2).lower() if m.group(2) else None
    authority = m.group(3) or ""
    if not authority:
        host = None
    elif authority == "//":
        host = ""
    else:
        host = _AUTHORITY.match(authority[2:]).group(3)
        host = host.lstrip("[").rstrip("]") if host else None
    return _Uri(scheme, host, m.group(5) or None, m.group(7) if m.group(6) is not None else None)


def _decode_query(query: str) -> dict[str, str]:
    """URI.decode_query/1: "+" is a space, a repeated key keeps its last value."""
    params = {}
    for pair in query.split("&"):
        key, _, value = pair.partition("=")
        params[unquote_plus(key, errors="replace")] = unquote_plus(value, errors="replace")
    return params


def _sanitize_host(host: str | None) -> str | None:
    return host.strip(_WHITESPACE).removeprefix("www.") if host is not None else None


def _referrer_host(uri: _Uri) -> str:
    prefix = "android-app://" if uri.scheme == "android-app" else ""
    return prefix + uri.host.removeprefix("www.")


class _Entry(NamedTuple):
    """One domain of the referer database, as RefInspector prepares it."""

    specificity: int  # byte length of ".host" + "path/": RefInspector tries longer entries first
    path: str
    subpaths: str  # path with exactly one trailing "/": a longer referrer path must start with it
    name: str


class _Database(NamedTuple):
    entries: dict[str, tuple[_Entry, ...]]  # by host
    names: dict[str, str]  # lowercased known name or custom key -> the name Plausible stores


def _referers_yaml(base: dict) -> dict:
    """The snowplow database file inside the PyPI package named in plausible_sources.json."""
    spec = find_spec(base["module"])  # locates the package without importing its code
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(
            f"the referer database comes from the PyPI package {base['package']}=={base['version']}"
            f"; install it (pip install {base['package']}=={base['version']})"
        )
    raw = (Path(spec.submodule_search_locations[0]) / base["file"]).read_bytes()
    if hashlib.sha256(raw).hexdigest() != base["sha256"]:
        raise RuntimeError(
            f"{base['package']}'s {base['file']} is not the file plausible_sources.json was made "
            f"against; install {base['package']}=={base['version']}"
        )
    return yaml.load(raw, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))


def _snapshot(plausible: dict) -> list[tuple[str, list[str]]]:
    """(name, domains) of the database Plausible bundles, in file order."""
    removed, added = plausible["snapshot_removed"], plausible["snapshot_added"]
    rows = []
    for medium, sources in _referers_yaml(plausible["referers_base"]).items():
        for name, details in sources.items():
            drop = removed.get(medium, {}).get(name, [])
            if drop is not None:
                domains = [d for d in details.get("domains") or [] if d not in drop]
                rows.append((name, domains))
        rows.extend(added.get(medium, {}).items())
    return rows


@cache
def _database() -> _Database:
    plausible = json.loads(_PLAUSIBLE_DATA.read_text(encoding="utf-8"))
    entries: dict[str, list[_Entry]] = {}
    for name, domains in _snapshot(plausible):
        for domain in domains:
            uri = _parse_uri("http://" + domain)
            path = uri.path or "/"
            subpaths = path.rstrip("/") + "/"
            specificity = len(("." + uri.host.lstrip(".") + subpaths).encode())
            entries.setdefault(uri.host, []).append(_Entry(specificity, path, subpaths, name))

    # Plausible maps lowercased names to names in the order RefInspector keeps its entries: per
    # last host label, longest first, so a later (shorter) entry's spelling wins ("qip" vs "QIP").
    by_label: dict[str, list[_Entry]] = {}
    for host, host_entries in entries.items():
        by_label.setdefault(host.rsplit(".", 1)[-1], []).extend(host_entries)
    names = {}
    for label in sorted(by_label):
        for entry in sorted(by_label[label], key=lambda e: -e.specificity):
            names[entry.name.lower()] = entry.name
    for key, name in plausible["custom_sources"].items():
        names[key] = name
        names[name.lower()] = name
    return _Database({host: tuple(e) for host, e in entries.items()}, names)


@lru_cache(maxsize=CACHE_LIMIT)
def _host_entries(host: str) -> tuple[_Entry, ...]:
    """Database entries for `host` or a domain it is a subdomain of, most specific first.

    Equally specific entries that could both match exist only for paths nobody is referred from
    (accounts.google.com/products/...); the sort keeps the longer host's entry first.
    """
    entries = _database().entries
    found = list(entries.get(host, ()))
    for i, char in enumerate(host):
        if char == ".":
            found.extend(entries.get(host[i + 1 :], ()))
    return tuple(sorted(found, key=lambda e: -e.specificity))


def _known_name(host: str, path: str) -> str | None:
    """RefInspector's source name for a referrer, or None when it does not know it."""
    for entry in _host_entries(host):
        if path == entry.path or path.startswith(entry.subpaths):
            return entry.name
    return None


def _canonical(source: str) -> str:
    return _database().names.get(source.lower(), source)


class _PageTags(NamedTuple):
    """What a page URL says about its session's source."""

    host: str | None  # as referral checks compare it: trimmed, without "www."
    tagged: str | None  # utm_source, else source, else ref: the raw value
    source: str  # `tagged` mapped onto the known names ("" if none)
    medium: str | None  # utm_medium
    click_id: str | None
    campaign: str
    content: str
    term: str


@lru_cache(maxsize=CACHE_LIMIT)
def _page_tags(page_url: str) -> _PageTags:
    page = _parse_uri(page_url)
    params = _decode_query(page.query) if page.query is not None else {}
    tagged = next((params[k] for k in ("utm_source", "source", "ref") if k in params), None)
    return _PageTags(
        host=_sanitize_host(page.host),
        tagged=tagged,
        source=_canonical(tagged) if tagged is not None else "",
        medium=params.get("utm_medium"),
        click_id=next((p for p in _CLICK_ID_PARAMS if p in params), None),
        campaign=params.get("utm_campaign", ""),
        content=params.get("utm_content", ""),
        term=params.get("utm_term", ""),
    )


@lru_cache(maxsize=CACHE_LIMIT)
def _referral(referrer: str, page_host: str | None) -> tuple[str, str] | None:
    """(source name, stored referrer) of a valid referral from `referrer` to a page on
    `page_host` (as _PageTags has it); None when it is not one."""
    referrer = referrer[:_MAX_REFERRER]
    ref = _parse_uri(referrer)
    if not (ref.scheme in _REFERRAL_SCHEMES and ref.host
            and _sanitize_host(ref.host) != page_host and ref.host != "localhost"):
        return None
    name = _known_name(ref.host, ref.path or "/")
    if name is None:
        name = _referrer_host(_parse_uri(referrer.strip(_WHITESPACE)))
    return _canonical(name), _referrer_host(ref) + (ref.path or "").rstrip("/")


# Sessions repeat (page URL, referrer) pairs; their parts, cached apart, repeat far more
# (tests/bench/genlog.py's log: 39k pairs of 2.6k page URLs and 2.2k referrers). Bounded as
# every per-line cache is (65,536 pairs held ~17 MB): a pair missed costs little, its parts hit.
@lru_cache(maxsize=CACHE_LIMIT)
def resolve_source(page_url: str, referrer: str | None) -> SourceInfo:
    """The source fields Plausible would store for a session whose first event is this one.

    `page_url` is the event's full URL; `referrer` the referring URL as the log has it (None
    when it has none).
    """
    page = _page_tags(page_url)
    referral = _referral(referrer, page.host) if referrer is not None else None
    if page.tagged is not None:
        source = page.source
    elif referral is not None:
        source = referral[0]
    else:
        source = ""

    medium = page.medium
    if medium is None:
        if source == "Google" and page.click_id == "gclid":
            medium = "(gclid)"
        elif source == "Bing" and page.click_id == "msclkid":
            medium = "(msclkid)"

    return SourceInfo(
        source=source,
        referrer=referral[1] if referral is not None else "",
        utm_source=page.tagged or "",
        utm_medium=medium or "",
        utm_campaign=page.campaign,
        utm_content=page.content,
        utm_term=page.term,
    )
