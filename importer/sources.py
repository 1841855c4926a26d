"""Sources: turn the user's inputs (files, directories, globs, `-`) into a stream of lines.

Compression is recognised by magic bytes, not by name. Rotated sets are read oldest first.
Each line comes with its number and the offset after it in the decompressed stream, which is
what checkpoints record.
"""
from __future__ import annotations

import bz2
import glob
import gzip
import io
import lzma
import os
import re
import sys
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO, NamedTuple

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
# What a damaged compressed stream raises on a read.
DAMAGED = (EOFError, OSError, zlib.error, lzma.LZMAError)
CHUNK_SIZE = 1 << 20  # bytes read at a time: lines are split and decoded a chunk at a time
TAIL = 64  # the last bytes of a `Span`, as read when it was found
WINDOW = 1 << 14  # bytes read back from a block's end at a time to find its last newline


class InputError(Exception):
    """An input that cannot be read at all (missing file, permission, no match for a glob)."""


@dataclass(slots=True)
class Line:
    lineno: int
    end: int  # offset in the decompressed stream just after this line's newline
    text: str
    invalid_utf8: bool = False


@dataclass(slots=True)
class Chunk:
    """Consecutive lines of a stream, undecoded. Each ends with a newline, except the stream's
    last line and a line cut at MAX_LINE, which come alone; `end` is the offset after the last
    line (past what `data` kept of a cut one)."""

    data: bytes
    lineno: int  # lines before this chunk
    start: int  # offset of its first byte in the decompressed stream
    end: int

    def lines(self) -> list[Line]:
        data = self.data
        lineno, end = self.lineno, self.start
        out = []
        texts = self.ascii_texts()
        if texts is not None:
            for text in texts:
                lineno += 1
                end += len(text) + 1
                out.append(Line(lineno, end, text))
        else:
            raws = data.split(b"\n")
            if data.endswith(b"\n"):
                raws.pop()
            for raw in raws:
                lineno += 1
                text, invalid = _decode(raw)
                if end == 0 and text.startswith("\ufeff"):  # a byte order mark (IIS)
                    text = text[1:]
                end += len(raw) + 1
                out.append(Line(lineno, end, text, invalid))
        if out:
            out[-1].end = self.end  # the last line may have no newline, or be cut
        return out

    def stream(self) -> Iterator[Line]:
        """The lines of `lines()` as ONE Line changed in place from line to line: for a
        reader that keeps nothing of a line but copies of its fields (parse workers); an
        object per line costs ~5% of their time."""
        texts = self.ascii_texts()
        if texts is None:
            yield from self.lines()
            return
        if not texts:
            return
        final = texts.pop()
        line = Line(self.lineno, self.start, "")
        for text in texts:
            line.lineno += 1
            line.end += len(text) + 1
            line.text = text
            yield line
        line.lineno += 1
        line.end = self.end  # the last line may have no newline, or be cut
        line.text = final
        yield line

    def ascii(self) -> bool:
        """Whether the chunk is plain ASCII (no CR, no NUL): a line's text is its bytes."""
        data = self.data
        return data.isascii() and b"\r" not in data and b"\x00" not in data

    def ascii_texts(self) -> list[str] | None:
        """The lines' texts, if the chunk is plain ASCII (the common case, decoded at once):
        then each line's end is its length + 1 past the previous one's."""
        if not self.ascii():
            return None
        data = self.data
        texts = data.decode("ascii").split("\n")
        if data.endswith(b"\n"):
            texts.pop()
        return texts


class Span(NamedTuple):
    """Whole lines of a plain file, left unread: where they begin and end, and their last
    bytes as read when the span was found, by which a later reader of the file tells whether
    it still holds them (not rotated, truncated or rewritten since)."""

    start: int
    end: int
    tail: bytes


class _Shrank(Exception):
    """A plain file got shorter while its spans were being found."""


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

    def lines(self, start: int = 0, lineno: int | None = None) -> Iterator[Line]:
        """Lines from `start` (a decompressed offset a checkpoint gave; `lineno`: the lines
        before it, if known). Never raises on a damaged compressed stream: it stops, keeps what
        was read and sets `warning`."""
        chunks = self.chunks(start, lineno)
        try:
            for chunk in chunks:
                yield from chunk.lines()
        finally:
            chunks.close()

    def chunks(self, start: int = 0, lineno: int | None = None,
               size: int = CHUNK_SIZE, numbered: bool = True) -> Iterator[Chunk]:
        """The same lines as `lines`, as `Chunk`s of about `size` bytes (parallel.py hands them
        to worker processes undecoded). `numbered=False`: every chunk's `lineno` is 0, its
        lines numbered from 1 (counting the lines of each chunk is left to its reader)."""
        raw = self.open_raw()
        try:
            stream = _decompressor(raw, self.compression)
            yield from self._read(raw, stream, start, lineno if numbered else 0, size, numbered)
        finally:
            if self.path is not None:
                raw.close()

    def head(self, size: int) -> bytes:
        """The first `size` decompressed bytes of a file (what checkpoints know it by); b""
        when they cannot be read."""
        with open(self.path, "rb") as raw:
            try:
                return _decompressor(raw, self.compression).read(size)
            except DAMAGED:
                return b""

    def _read(self, raw: BinaryIO, stream: BinaryIO, start: int, known_lineno: int | None,
              size: int, numbered: bool = True) -> Iterator[Chunk]:
        plain_file = self.compression == "plain" and self.path is not None
        offset = lineno = 0
        if start and plain_file:
            # Seeking is instant; counting the lines before `start` reads them all.
            lineno = _count_lines(stream, start) if known_lineno is None else known_lineno
            stream.seek(start)
            offset = start
        elif start:
            offset, lineno = _skip(stream, start)
            lineno *= numbered
        size = min(size, MAX_LINE)  # so only a block's first line can outgrow MAX_LINE
        pending: list[bytes] = []  # the start of a line whose newline is not read yet
        waiting = 0  # its length, at most MAX_LINE
        dropped = 0  # the bytes of a line past MAX_LINE: read, counted and dropped
        blocks = _blocks(stream, size)
        while True:
            try:
                block = next(blocks, b"")
            except DAMAGED as exc:
                self.warning = f"{self.compression} stream is damaged after byte {offset} " \
                               f"({exc.__class__.__name__}: {exc}); kept the lines before it"
                return
            if not block:
                break
            self.position = raw.tell() if self.path is not None else offset
            newline = block.find(b"\n")
            if newline < 0:
                if waiting + len(block) > MAX_LINE:
                    dropped += waiting + len(block) - MAX_LINE
                    block = block[:MAX_LINE - waiting]
                pending.append(block)
                waiting += len(block)
                continue
            if waiting + newline + 1 > MAX_LINE:
                # Past MAX_LINE the rest of the line is dropped: one (malformed) line, not many.
                kept = (b"".join(pending) + block[:newline])[:MAX_LINE]
                length = waiting + dropped + newline + 1
                yield Chunk(kept, lineno, offset, offset + length)
                offset += length
                lineno += numbered
                pending, waiting, dropped = [], 0, 0
                block = block[newline + 1:]
            last = block.rfind(b"\n") + 1
            if last:
                data = b"".join(pending) + block[:last] if pending else block[:last]
                yield Chunk(data, lineno, offset, offset + len(data))
                offset += len(data)
                if numbered:  # else left to the workers: ~10% of the main process's CPU
                    lineno += data.count(b"\n")
                pending, waiting = [], 0
            if last < len(block):
                pending.append(block[last:])
                waiting += len(block) - last
        if not pending:
            return
        if waiting < MAX_LINE and plain_file and self._still_being_written():
            self.held_back = waiting
            return
        yield Chunk(b"".join(pending), lineno, offset, offset + waiting + dropped)

    def spans(self, raw: BinaryIO, start: int = 0, size: int = CHUNK_SIZE
              ) -> Iterator[Span | Chunk]:
        """A plain file from `start` cut as `chunks(start, size=size, numbered=False)` cuts it
        (after the last newline of each `size` block), found without reading it all: only
        back from each block's end to its last newline. Every chunk comes as a `Span`, but a
        line cut at MAX_LINE, which comes as its `Chunk`; an unfinished last line is held
        back as `chunks` holds it. A file that shrinks meanwhile ends where it was found to."""
        fd = raw.fileno()
        size = min(size, MAX_LINE)
        offset = block = start  # where the next chunk begins; where the next block does
        try:
            while True:
                end = min(block + size, os.fstat(fd).st_size)
                if end <= block:
                    break
                last, tail = _last_newline(fd, block, end, offset)
                self.position = end
                if last and offset < block:  # its first line began in an earlier block
                    first = _first_newline(fd, block, end)
                    if first - offset > MAX_LINE:
                        yield Chunk(_pread(fd, MAX_LINE, offset), 0, offset, first)
                        offset = first
                block = end
                if last > offset:
                    yield Span(offset, last, tail)
                    offset = last
            rest = block - offset  # an unterminated last line
            if not rest:
                return
            if rest < MAX_LINE and self._still_being_written():
                self.held_back = rest
            elif rest <= MAX_LINE:
                yield Span(offset, block, _pread(fd, min(rest, TAIL), block - min(rest, TAIL)))
            else:
                yield Chunk(_pread(fd, MAX_LINE, offset), 0, offset, block)
        except _Shrank:
            return

    def _still_being_written(self) -> bool:
        try:
            return time.time() - os.stat(self.path).st_mtime < STILL_WRITING_S
        except OSError:
            return False


def _pread(fd: int, length: int, at: int) -> bytes:
    data = os.pread(fd, length, at)
    if len(data) < length:
        raise _Shrank
    return data


def _last_newline(fd: int, low: int, high: int, begin: int) -> tuple[int, bytes]:
    """The offset after the last newline in [low, high) (0 if none) and the TAIL bytes before
    it, from `begin` on."""
    while high > low:
        at = max(low, high - WINDOW)
        data = _pread(fd, high - at, at)
        found = data.rfind(b"\n") + 1
        if found:
            end = at + found
            first = max(begin, end - TAIL)
            tail = data[first - at:found] if first >= at else _pread(fd, end - first, first)
            return end, tail
        high = at
    return 0, b""


def _first_newline(fd: int, low: int, high: int) -> int:
    """The offset after the first newline in [low, high), which holds one."""
    while True:
        data = _pread(fd, min(WINDOW, high - low), low)
        found = data.find(b"\n") + 1
        if found:
            return low + found
        low += len(data)


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


def _blocks(stream: BinaryIO, size: int) -> Iterator[bytes]:
    """The stream's bytes in blocks of `size` (the last one shorter), each gathered from as
    many reads of the underlying stream as it takes: a gzip or xz stream gives ~64 KiB a read,
    and chunks that small would cost their bulk reading (importer/parallel.py) more than the
    per-line path. Each read is one read of the underlying stream (read1), so a damaged
    stream raises only once every byte decompressed before the damage was given."""
    while True:
        parts, got, damage = [], 0, None
        while got < size:
            try:
                block = stream.read1(size - got)
            except DAMAGED as exc:
                damage = exc
                break
            if not block:
                break
            parts.append(block)
            got += len(block)
        if parts:
            yield b"".join(parts)
        if damage is not None:
            raise damage
        if got < size:
            return


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
        return io.BufferedReader(_ZstdFrames(raw), buffer_size=1 << 16)
    return raw


class _ZstdFrames(io.RawIOBase):
    """Decompressed zstd frames, one after another. Unlike zstandard's stream reader, it
    raises EOFError when the input ends inside a frame (a truncated file), as gzip does."""

    def __init__(self, raw: BinaryIO) -> None:
        import zstandard

        self._raw = raw
        self._new_frame = zstandard.ZstdDecompressor().decompressobj
        self._error = zstandard.ZstdError
        self._frame = self._new_frame()
        self._in_frame = False  # input went into the current frame and its end is not seen yet
        self._out = b""
        self._pos = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        while self._pos >= len(self._out):
            chunk = self._raw.read(1 << 16)
            if not chunk:
                if self._in_frame:
                    raise EOFError("zstd stream ended inside a frame")
                return 0
            try:
                self._out, self._pos = self._decompress(chunk), 0
            except self._error as exc:
                raise OSError(f"zstd: {exc}") from None
        n = min(len(buffer), len(self._out) - self._pos)
        buffer[:n] = self._out[self._pos:self._pos + n]
        self._pos += n
        return n

    def _decompress(self, chunk: bytes) -> bytes:
        out = []
        while chunk:
            if self._frame.eof:
                self._frame = self._new_frame()
            out.append(self._frame.decompress(chunk))
            self._in_frame = not self._frame.eof
            chunk = self._frame.unused_data if self._frame.eof else b""
        return b"".join(out)


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


_ROTATION = re.compile(r"^(?P<base>.*?)(?:[.-](?P<n>\d+))?(?P<ext>\.(?:gz|bz2|xz|zst))?$")


def rotation_key(path: str) -> tuple[str, int, int]:
    """Sort key for rotated sets, oldest first: access.log.3.gz, access.log.2, access.log.1,
    access.log. Date-stamped names (logrotate's dateext: access.log-20261125) come before the
    live file too, in date order."""
    m = _ROTATION.match(os.path.basename(path))
    base = os.path.join(os.path.dirname(path), m.group("base"))
    n = m.group("n")
    if n is None:
        return (base, 2, 0)
    if len(n) >= 8:  # a date stamp: ascending is oldest first
        return (base, 0, int(n))
    return (base, 1, -int(n))


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
