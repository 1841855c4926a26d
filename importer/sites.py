"""Which Plausible site a request belongs to: one `--domain`, or `--domain-map` by logged host.

Plausible drops a leading `www.` from both the site domain and the page's hostname, so
`www.example.com` and `example.com` are one site here too.
"""
from __future__ import annotations

from collections.abc import Iterable

from parsers.base import remember

from .urls import site_host


def site_domain(domain: str) -> str:
    """A domain as Plausible stores it: trimmed, lower case (Plausible lowercases a site's domain
    when it is added, and matches an event's domain exactly), no leading `www.`; a comma list
    (one event for several sites) keeps its parts."""
    return ",".join(part.strip().lower().removeprefix("www.")
                    for part in domain.split(",") if part.strip())


def parse_mapping(text: str) -> tuple[str, str]:
    """`HOST=DOMAIN` (or `HOST DOMAIN`, as in a map file) -> (host, domain). HOST may be
    `*.example.com` for every subdomain. Raises ValueError."""
    host, sep, domain = text.strip().partition("=")
    if not sep:
        host, _, domain = text.strip().partition(" ")
    host, domain = host.strip().lower(), site_domain(domain)
    wildcard = host.startswith("*.")
    if not domain or not (site_host(host[2:] if wildcard else host)):
        raise ValueError(f"expected HOST=DOMAIN, got {text.strip()!r}")
    return host, domain


def read_map_file(lines: Iterable[str]) -> list[tuple[str, str]]:
    """A map file: one HOST=DOMAIN a line; blank lines and `#` comments are ignored."""
    pairs = []
    for n, line in enumerate(lines, 1):
        line = line.split("#", 1)[0].strip()
        if line:
            try:
                pairs.append(parse_mapping(line))
            except ValueError as exc:
                raise ValueError(f"line {n}: {exc}") from None
    return pairs


class SiteRouter:
    """Host -> site domain. Without a map every request goes to `default`; with one, a host
    not in it goes to `default` if given, else nowhere (None: filtered as `unmapped_host`)."""

    def __init__(self, default: str | None = None,
                 mapping: Iterable[tuple[str, str]] = ()) -> None:
        self.default = site_domain(default) if default else None
        self.exact: dict[str, str] = {}
        self.suffixes: list[tuple[str, str]] = []
        for host, domain in mapping:
            if host.startswith("*."):
                self.suffixes.append(("." + site_host(host[2:]), domain))
            else:
                self.exact[site_host(host)] = domain
        # Longest suffix first, so `*.shop.example.com` beats `*.example.com`.
        self.suffixes.sort(key=lambda pair: len(pair[0]), reverse=True)
        self.routing = bool(self.exact or self.suffixes)
        self._cache: dict[str | None, str | None] = {}

    def domain_for(self, host: str | None) -> str | None:
        if not self.routing:
            return self.default
        try:
            return self._cache[host]
        except KeyError:
            return remember(self._cache, host, self._lookup(host))

    def _lookup(self, host: str | None) -> str | None:
        mapped = self.mapped(host)
        return self.default if mapped is None else mapped

    def mapped(self, host: str | None) -> str | None:
        """The domain `--domain-map` gives a host, ignoring the default; None if none."""
        name = site_host(host)
        if name is None:
            return None
        if name in self.exact:
            return self.exact[name]
        for suffix, domain in self.suffixes:
            if name.endswith(suffix):
                return domain
        return None
