"""Which log records are page visits. Each rule names the reason it rejects a record, so every
filtered line is counted under that reason in the summary."""
from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field

from parsers.base import LogRecord

ASSET_EXTENSIONS = frozenset((
    "css", "js", "mjs", "map", "json", "xml", "txt", "ico", "png", "jpg", "jpeg", "gif", "webp",
    "avif", "svg", "bmp", "tif", "tiff", "woff", "woff2", "ttf", "otf", "eot", "mp3", "mp4",
    "webm", "ogg", "ogv", "wav", "m4a", "m4v", "mov", "avi", "flac", "pdf", "zip", "gz", "tgz",
    "bz2", "xz", "7z", "rar", "dmg", "exe", "msi", "deb", "rpm", "apk", "iso", "wasm"))

Rule = Callable[[LogRecord], str | None]


def path_of(uri: str) -> str:
    """The path part of a request target (no query, no fragment)."""
    for sep in ("?", "#"):
        cut = uri.find(sep)
        if cut >= 0:
            uri = uri[:cut]
    return uri


def extension_of(path: str) -> str:
    return os.path.splitext(path.rsplit("/", 1)[-1])[1][1:].lower()


def method_rule(record: LogRecord) -> str | None:
    if record.method is None:
        return "bad_request"
    return None if record.method == "GET" else "method"


def status_rule(record: LogRecord) -> str | None:
    status = record.status
    return None if status in (200, 304) else "status"


def asset_rule(record: LogRecord) -> str | None:
    return "asset" if extension_of(path_of(record.uri or "")) in ASSET_EXTENSIONS else None


@dataclass
class FilterChain:
    """Rules run in order; the first one that objects names the reason."""

    rules: list[Rule] = field(default_factory=lambda: [method_rule, status_rule, asset_rule])

    def reason(self, record: LogRecord) -> str | None:
        for rule in self.rules:
            why = rule(record)
            if why is not None:
                return why
        return None
