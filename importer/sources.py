"""Sources: turn the user's inputs (files, directories, globs, `-`) into a stream of lines.

Compression is recognised by magic bytes, not by name. Rotated sets are read oldest first.
Each line comes with its number and the offset after it in the decompressed stream, which is
what checkpoints record.
"""
from __future__ import annotations

import bz2
import glob
import gzip
import lzma
import os
import re
import sys
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

MAGIC = {
    b"\x1f\x8b": "gzip",
    b"BZh": "bzip2",
    b"\xfd7zXZ\x00": "xz",
    b"\x28\xb5\x2f\xfd": "zstd",
}
# An unterminated last line of a plain file modified this recently is taken to be still being
# written: it is left for the next run instead of being parsed half-written.
STILL_WRITING_S = 300
MAX_LINE = 16 * 1024 * 1024  # longer "lines" are cut and reported as malformed downstream


class InputError(Exception):
    """An input that cannot be read at all (missing file, permission, no match for a glob)."""


@dataclass(slots=True)
class Line:
    lineno: int
    end: int  # offset in the decompressed stream just after this line's newline
    text: str
    invalid_utf8: bool = False


@dataclass
class Source:
    name: str  # what the user sees in messages: the path, or "-" for stdin
    path: str | None  # None for stdin
    compression: str = "plain"
    size: int = 0  # on-disk size, for progress
    position: int = 0  # on-disk bytes consumed so far, for progress
    warning: str | None = None  # e.g. a truncated gzip member, set while reading
    held_back: int = 0  # bytes of an unfinished last line left for the next run

    def open_raw(self) -> BinaryIO:
        if self.path is None:
            return sys.stdin.buffer
        return open(self.path, "rb")

    def lines(self, start: int = 0) -> Iterator[Line]:
        """Lines from `start` (a decompressed offset a checkpoint gave). Never raises on a
        damaged compressed stream: it stops, keeps what was read and sets `warning`."""
        raw = self.open_raw()
        try:
            stream = _decompressor(raw, self.compression)
            yield from self._read(raw, stream, start)
        finally:
            if self.path is not None:
                raw.close()

    def _read(self, raw: BinaryIO, stream: BinaryIO, start: int) -> Iterator[Line]:
        plain_file = self.compression == "plain" and self.path is not None
        offset = lineno = 0
        if start and plain_file:
            lineno = _count_lines(stream, start)
            stream.seek(start)
            offset = start
        elif start:
            offset, lineno = _skip(stream, start)
        while True:
            try:
                data = stream.readline(MAX_LINE)
            except (EOFError, OSError, zlib.error, lzma.LZMAError) as exc:
                self.warning = f"{self.compression} stream is damaged after byte {offset} " \
                               f"({exc.__class__.__name__}: {exc}); kept the lines before it"
                return
            if not data:
                return
            unfinished = not data.endswith(b"\n") and len(data) < MAX_LINE
            if unfinished and plain_file and self._still_being_written():
                self.held_back = len(data)
                return
            offset += len(data)
            lineno += 1
            self.position = raw.tell() if self.path is not None else offset
            text, invalid = _decode(data)
            yield Line(lineno, offset, text, invalid)

    def _still_being_written(self) -> bool:
        try:
            return time.time() - os.stat(self.path).st_mtime < STILL_WRITING_S
        except OSError:
            return False


def _decode(data: bytes) -> tuple[str, bool]:
    data = data.rstrip(b"\r\n")
    if b"\x00" in data:
        data = data.replace(b"\x00", b"")
    try:
        return data.decode("utf-8"), False
    except UnicodeDecodeError:
        return data.decode("utf-8", "replace"), True


def _skip(stream: BinaryIO, count: int) -> tuple[int, int]:
    """Read past `count` bytes; returns (bytes skipped, newlines in them)."""
    done = lines = 0
    while done < count:
        chunk = stream.read(min(1 << 20, count - done))
        if not chunk:
            break
        done += len(chunk)
        lines += chunk.count(b"\n")
    return done, lines


def _count_lines(stream: BinaryIO, end: int) -> int:
    return _skip(stream, end)[1]


def _decompressor(raw: BinaryIO, compression: str) -> BinaryIO:
    if compression == "gzip":
        return gzip.GzipFile(fileobj=raw)
    if compression == "bzip2":
        return bz2.BZ2File(raw)
    if compression == "xz":
        return lzma.LZMAFile(raw)
    if compression == "zstd":
        import io

        import zstandard

        reader = zstandard.ZstdDecompressor().stream_reader(raw, read_across_frames=True)
        return io.BufferedReader(reader)
    return raw


def sniff_compression(head: bytes) -> str:
    for magic, name in MAGIC.items():
        if head.startswith(magic):
            return name
    return "plain"


def open_source(name: str) -> Source:
    if name == "-":
        return _stdin_source()
    try:
        with open(name, "rb") as f:
            head = f.read(6)
        size = os.path.getsize(name)
    except FileNotFoundError:
        raise InputError(f"{name}: no such file") from None
    except IsADirectoryError:
        raise InputError(f"{name}: is a directory") from None
    except PermissionError:
        raise InputError(f"{name}: permission denied") from None
    return Source(name, name, sniff_compression(head), size)


def _stdin_source() -> Source:
    buffer = sys.stdin.buffer
    head = buffer.peek(6)[:6] if hasattr(buffer, "peek") else b""
    return Source("-", None, sniff_compression(head))


_ROTATION = re.compile(r"^(?P<base>.*?)(?:[.-](?P<n>\d{1,4}))?(?P<ext>\.(?:gz|bz2|xz|zst))?$")


def rotation_key(path: str) -> tuple[str, int]:
    """Sort key for rotated sets: access.log.3.gz < access.log.2 < access.log.1 < access.log.

    Date-stamped names (access.log-20261125) sort by their stamp, which is already in order."""
    m = _ROTATION.match(os.path.basename(path))
    base = os.path.join(os.path.dirname(path), m.group("base"))
    n = m.group("n")
    if n is None:
        return (base, 0)
    if len(n) >= 8:  # a date stamp, oldest first is ascending
        return (base + "-" + n, 0)
    return (base, -int(n))


def expand_inputs(inputs: list[str]) -> list[str]:
    """Files, directories and globs, each rotated set ordered oldest first, in the order given."""
    paths: list[str] = []
    for item in inputs:
        if item == "-":
            paths.append(item)
            continue
        if os.path.isdir(item):
            found = [os.path.join(item, n) for n in os.listdir(item)
                     if os.path.isfile(os.path.join(item, n))]
        elif glob.has_magic(item):
            found = [p for p in glob.glob(item) if os.path.isfile(p)]
            if not found:
                raise InputError(f"{item}: no file matches this pattern")
        else:
            found = [item]
        paths.extend(sorted(found, key=rotation_key))
    return list(dict.fromkeys(paths))
