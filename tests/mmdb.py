"""A minimal MaxMind DB (.mmdb) writer for tests: IPv4 networks -> records, in the format the
`maxminddb` reader (and GeoLite2 / DB-IP City files) use. Spec:
https://maxmind.github.io/MaxMind-DB/ (search tree of 24-bit records, data section, metadata)."""
from __future__ import annotations

import ipaddress
import time

RECORD_BITS = 24


class _U16(int):
    pass


class _U64(int):
    pass


def _control(type_id: int, size: int) -> bytes:
    assert size < 29, "small values only"
    if type_id <= 7:
        return bytes([(type_id << 5) | size])
    return bytes([size, type_id - 7])  # extended type


def _encode(value) -> bytes:
    if isinstance(value, str):
        raw = value.encode("utf-8")
        return _control(2, len(raw)) + raw
    if isinstance(value, dict):
        return _control(7, len(value)) + b"".join(_encode(k) + _encode(v)
                                                  for k, v in value.items())
    if isinstance(value, list):
        return _control(11, len(value)) + b"".join(map(_encode, value))
    if isinstance(value, int):
        raw = value.to_bytes((value.bit_length() + 7) // 8, "big")
        type_id = 5 if isinstance(value, _U16) else 9 if isinstance(value, _U64) else 6
        return _control(type_id, len(raw)) + raw
    raise TypeError(f"cannot encode {value!r}")


def write_mmdb(path: str, networks: dict[str, dict]) -> None:
    """Write `networks` ({"10.0.0.0/24": {"country": {"iso_code": "DE"}}, ...}) to `path`."""
    nodes: list[list] = [[None, None]]  # each record: ("node", i) | ("data", offset) | None
    data = b""
    for cidr, record in networks.items():
        net = ipaddress.ip_network(cidr)
        offset, data = len(data), data + _encode(record)
        bits = int(net.network_address)
        node = 0
        for depth in range(net.prefixlen):
            bit = (bits >> (31 - depth)) & 1
            if depth == net.prefixlen - 1:
                nodes[node][bit] = ("data", offset)
            else:
                if nodes[node][bit] is None:
                    nodes.append([None, None])
                    nodes[node][bit] = ("node", len(nodes) - 1)
                node = nodes[node][bit][1]
    count = len(nodes)

    def record_value(record) -> int:
        if record is None:
            return count
        kind, value = record
        return value if kind == "node" else count + 16 + value

    tree = b"".join(record_value(left).to_bytes(3, "big") + record_value(right).to_bytes(3, "big")
                    for left, right in nodes)
    metadata = {
        "node_count": count, "record_size": _U16(RECORD_BITS), "ip_version": _U16(4),
        "database_type": "Test-City", "languages": ["en"],
        "binary_format_major_version": _U16(2), "binary_format_minor_version": _U16(0),
        "build_epoch": _U64(int(time.time())), "description": {"en": "test database"},
    }
    with open(path, "wb") as f:
        f.write(tree + bytes(16) + data + b"\xab\xcd\xefMaxMind.com" + _encode(metadata))
