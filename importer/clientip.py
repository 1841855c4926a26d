"""The visitor's address: exactly one valid IP, from the logged client or a forwarded chain.

Plausible hashes the address into the visitor id and geolocates it, and takes the *first*
entry of any X-Forwarded-For it gets, unvalidated: so we send one clean address or none.
"""
from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Iterable, Sequence
from itertools import compress

from parsers.base import LogRecord, remember

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class BadAddress(ValueError):
    """Not an IP address; the message says what was found and where."""


# An IPv4 address already in canonical form (no leading zeros, octets up to 255): most log
# lines hold one, and it is its own answer, without ipaddress's ~10 µs of parsing.
_CANONICAL_IPV4 = re.compile(r"(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}"
                             r"(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)", re.ASCII)

# Addresses on which the C library's inet_ntop writes IPv6 as ipaddress does (RFC 5952: the
# first longest run of two or more zero groups compressed, lowercase, no leading zeros), and
# some on which a C library might not: if it does not, every IPv6 address goes to ipaddress.
_RFC5952 = ("2001:db8::1", "::1", "::", "1::", "2001:db8:0:1:1:1:1:1", "2001:0:0:1:0:0:0:1",
            "2001:db8:0:0:1:0:0:1", "2001:db8::1:0:0:1", "fe80::abcd:ef:0:12", "1:2:3:4:5:6:7::",
            "::2:3:4:5:6:7:8", "1:0:0:4:5:6:7:8", "0:0:1::", "2001:DB8:00:0::0A")


def _canonical_ipv6(text: str) -> str | None:
    """A bare IPv6 address already in ipaddress's form, else None: the common case answered
    at ~1 µs, without ipaddress's ~20. Dotted forms are left to ipaddress (the C library
    writes some of them dotted, ipaddress never does)."""
    if "." in text:
        return None
    try:
        packed = socket.inet_pton(socket.AF_INET6, text)
    except (OSError, ValueError):  # not one, or a form only ipaddress reads (a zone: %eth0)
        return None
    return text if socket.inet_ntop(socket.AF_INET6, packed) == text else None


def _ntop_agrees() -> bool:
    try:
        return all(socket.inet_ntop(socket.AF_INET6, socket.inet_pton(socket.AF_INET6, text))
                   == str(ipaddress.IPv6Address(text)) for text in _RFC5952)
    except (OSError, ValueError, AttributeError):  # no inet_pton (some platforms)
        return False


_IPV6_SHORTCUT = _ntop_agrees()


def clean_address(text: str) -> str:
    """`[2001:db8::1]:443`, `203.0.113.9:5123`, `::ffff:203.0.113.9` -> the bare address, in
    canonical form (IPv4-mapped IPv6 as IPv4). Raises BadAddress."""
    if _CANONICAL_IPV4.fullmatch(text):
        return text
    raw = text.strip().strip('"')
    if raw.startswith("["):
        raw = raw[1:raw.find("]")] if "]" in raw else raw[1:]
    elif raw.count(":") == 1:  # IPv4 with a port; a bare IPv6 has several colons
        raw = raw.split(":", 1)[0]
    elif _IPV6_SHORTCUT and ":" in raw and _canonical_ipv6(raw) is not None:
        return raw
    try:
        address = ipaddress.ip_address(raw)
    except ValueError:
        shown = text if len(text) <= 60 else text[:57] + "..."
        raise BadAddress(f"not an IP address: {shown!r}") from None
    if address.version == 6 and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return str(address)


def in_networks(address: str, networks: Sequence[Network]) -> bool:
    if not networks:
        return False
    ip = ipaddress.ip_address(address)
    return any(ip in net for net in networks)


class ClientIpResolver:
    """`from_xff=False`: the logged client address. `from_xff=True`: the rightmost address of
    the logged X-Forwarded-For chain that is not a trusted proxy, when the logged client (the
    peer) is itself trusted. With no trusted proxies given, the peer is taken to be the one
    proxy in front, so its rightmost entry wins. Results are cached per distinct
    (client, X-Forwarded-For)."""

    def __init__(self, from_xff: bool = False, trusted: Sequence[Network] = ()) -> None:
        self.from_xff = from_xff
        self.trusted = tuple(trusted)
        self._cache: dict = {}

    def resolve(self, record: LogRecord) -> str:
        """The address to send; raises BadAddress with the reason."""
        return self.address(record.client_ip, record.xff)

    def own(self, clients: Iterable[str | None]) -> list[str]:
        """Those of these logged clients that `address` gives back as they are, whatever the
        X-Forwarded-For: canonical IPv4 addresses, when it is not read."""
        if self.from_xff:
            return []
        texts = [client for client in clients if client]
        return list(compress(texts, map(_CANONICAL_IPV4.fullmatch, texts)))

    def address(self, client_ip: str | None, xff: str | None) -> str:
        """`resolve` of a record with this client and X-Forwarded-For."""
        key = (client_ip, xff) if self.from_xff else client_ip
        found = self._cache.get(key)
        if found is None:
            if not self.from_xff and key and _CANONICAL_IPV4.fullmatch(key):
                return key  # its own answer, cheaper to see than to remember
            try:
                found = (True, self._pick(client_ip, xff))
            except BadAddress as exc:
                found = (False, str(exc))
            remember(self._cache, key, found)
        if not found[0]:
            raise BadAddress(found[1])
        return found[1]

    def _pick(self, peer: str | None, xff: str | None) -> str:
        if not self.from_xff:
            if not peer:
                raise BadAddress("no client address")
            return clean_address(peer)
        chain = [hop for hop in (xff or "").split(",") if hop.strip()]
        if not chain:
            if not peer:
                raise BadAddress("no client address and no X-Forwarded-For")
            return clean_address(peer)
        if peer and self.trusted:
            peer_address = clean_address(peer)
            if not in_networks(peer_address, self.trusted):
                return peer_address  # not one of our proxies: its X-Forwarded-For may be forged
        for hop in reversed(chain):
            address = self._hop(hop)
            if not in_networks(address, self.trusted):
                return address
        return self._hop(chain[0])  # every hop is trusted: the leftmost is the best we know

    @staticmethod
    def _hop(text: str) -> str:
        try:
            return clean_address(text)
        except BadAddress as exc:
            raise BadAddress(f"in X-Forwarded-For: {exc}") from None
