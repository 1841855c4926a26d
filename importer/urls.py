"""Request targets and hosts as logged, turned into what a browser's address bar would hold.

Shared by the filters (which look at paths and extensions) and the event builder (which
builds page URLs), so both read a logged target the same way.
"""
from __future__ import annotations

import re

MAX_URL_BYTES = 2000  # Plausible rejects a longer `url`, query string included

# Characters allowed unescaped in a URL (RFC 3986 unreserved + reserved, and `%` when it starts
# a valid escape). Anything else is percent-encoded from its UTF-8 bytes.
_NEEDS_ESCAPING = re.compile(r"[^A-Za-z0-9\-._~:/?@!$&'()*+,;=\[\]%]|%(?![0-9A-Fa-f]{2})")
_HOST = re.compile(r"[a-z0-9](?:[a-z0-9\-_.]*[a-z0-9])?|\[[0-9a-f:.]+\]")


def split_target(uri: str) -> tuple[str | None, str]:
    """(host, path?query#fragment) of a logged request target.

    Proxies and some clients log the absolute form `http://host/path`; its host is returned.
    A target without a leading `/` gets one."""
    if uri.startswith("/"):
        return None, uri
    head = uri[:8].lower()
    if head.startswith("http://") or head.startswith("https://"):
        rest = uri[uri.index("//") + 2:]
        end = len(rest)
        for sep in "/?#":
            cut = rest.find(sep)
            if 0 <= cut < end:
                end = cut
        target = rest[end:]
        if not target.startswith("/"):
            target = "/" + target
        return rest[:end].rsplit("@", 1)[-1] or None, target
    return None, "/" + uri


def path_of(uri: str) -> str:
    """The path part of a request target: no host, query or fragment."""
    if not uri.startswith("/"):
        uri = split_target(uri)[1]
    cut = uri.find("?")
    if cut >= 0:
        uri = uri[:cut]
    cut = uri.find("#")
    return uri if cut < 0 else uri[:cut]


def extension_of(path: str) -> str:
    """The last path segment's extension as written (`/a/Report.PDF` -> `PDF`), or ""."""
    dot = path.rfind(".")
    return path[dot + 1:] if dot > path.rfind("/") else ""


def _escape(match: re.Match) -> str:
    text = match.group()
    return "".join(f"%{b:02X}" for b in text.encode("utf-8"))


def clean_target(target: str) -> str:
    """Drop the `#fragment` (browsers never send one) and make the percent-encoding valid."""
    cut = target.find("#")
    if cut >= 0:
        target = target[:cut]
    if _NEEDS_ESCAPING.search(target) is None:  # the usual case: nothing to fix
        return target
    return _NEEDS_ESCAPING.sub(_escape, target)


def drop_query(target: str) -> str:
    cut = target.find("?")
    return target if cut < 0 else target[:cut]


def byte_length(text: str) -> int:
    return len(text) if text.isascii() else len(text.encode("utf-8"))


def normalize_host(host: str | None) -> str | None:
    """A logged Host as a URL host: lowercase, no port, no trailing dot; None if it is not a
    host name or address (empty, `_`, junk from scanners)."""
    if not host:
        return None
    host = host.strip().lower()
    if host.startswith("["):
        end = host.find("]")
        host = host[:end + 1] if end > 0 else host
    elif host.count(":") == 1:
        host = host.split(":", 1)[0]
    host = host.rstrip(".")
    return host if _HOST.fullmatch(host) else None


def site_host(host: str | None) -> str | None:
    """A host as Plausible compares it: normalized, without a leading `www.`."""
    host = normalize_host(host)
    return host.removeprefix("www.") if host else None


def host_of_url(url: str | None) -> str | None:
    """The host of an absolute http(s) URL (a Referer), as `site_host` gives it."""
    if not url:
        return None
    host, _ = split_target(url)
    return site_host(host)
