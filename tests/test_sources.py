"""Inputs: files, directories, globs and stdin; compression by magic bytes; rotated sets oldest
first; and bad input that must never stop a run (invalid UTF-8, NUL bytes, huge lines, CRLF,
truncated archives, a file still being written, --rejects)."""
from __future__ import annotations

import bz2
import gzip
import json
import lzma
import os
import re
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
import zstandard

from importer import sources
from importer.cli import main
from importer.sources import InputError, expand_inputs, open_source
from tests.format_samples import SERVERS

LINE = SERVERS[0].lines[0]  # a combined line for /a?b=c
ROOT = Path(__file__).resolve().parent.parent


def lines_of(path: Path) -> list[str]:
    return [line.text for line in open_source(str(path)).lines()]


def dry_run(tmp_path: Path, *args: str, capsys) -> dict:
    assert main(["send", *args, "--domain", "example.com", "--dry-run", "--no-progress",
                 "--json", "--state", str(tmp_path / "state")]) in (0, 2)
    return json.loads(capsys.readouterr().out)


COMPRESSORS = {
    "gzip": gzip.compress,
    "bzip2": bz2.compress,
    "xz": lzma.compress,
    "zstd": lambda data: zstandard.ZstdCompressor().compress(data),
}
TEXT = "".join(f"{LINE.replace('/a?b=c', f'/page{i}')}\n" for i in range(50)).encode()


@pytest.mark.parametrize("kind", COMPRESSORS)
def test_compression_is_told_by_magic_bytes_not_names(tmp_path, kind):
    misleading = tmp_path / "access.log.gz.txt"  # neither what the name says, nor plain
    misleading.write_bytes(COMPRESSORS[kind](TEXT))
    assert open_source(str(misleading)).compression == kind
    assert lines_of(misleading) == TEXT.decode().splitlines()


def test_plain_file_named_gz_is_read_as_text(tmp_path):
    path = tmp_path / "access.log.1.gz"
    path.write_bytes(TEXT)
    assert open_source(str(path)).compression == "plain"
    assert len(lines_of(path)) == 50


def test_zstd_with_several_frames(tmp_path):
    path = tmp_path / "a.zst"
    half = len(TEXT) // 2
    path.write_bytes(COMPRESSORS["zstd"](TEXT[:half]) + COMPRESSORS["zstd"](TEXT[half:]))
    assert "\n".join(lines_of(path)) + "\n" == TEXT.decode()


def test_rotated_sets_oldest_first(tmp_path):
    for name in ("access.log", "access.log.1", "access.log.2.gz", "access.log.10.gz",
                 "error.log", "error.log.1"):
        (tmp_path / name).write_text("")
    names = [Path(p).name for p in expand_inputs([str(tmp_path)])]
    assert names == ["access.log.10.gz", "access.log.2.gz", "access.log.1", "access.log",
                     "error.log.1", "error.log"]


def test_date_stamped_rotation_oldest_first(tmp_path):
    for name in ("access.log", "access.log-20261119.gz", "access.log-20261120"):
        (tmp_path / name).write_text("")
    names = [Path(p).name for p in expand_inputs([str(tmp_path / "access.log*")])]
    assert names == ["access.log-20261119.gz", "access.log-20261120", "access.log"]


def test_files_directories_and_globs_in_the_order_given(tmp_path):
    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "access.log").write_text("")
    (tmp_path / "site" / "access.log.1").write_text("")
    (tmp_path / "other.log").write_text("")
    got = expand_inputs([str(tmp_path / "other.log"), str(tmp_path / "site"),
                         str(tmp_path / "site" / "*.log*")])
    assert got == [str(tmp_path / "other.log"), str(tmp_path / "site" / "access.log.1"),
                   str(tmp_path / "site" / "access.log")]  # each file once


def test_missing_inputs(tmp_path):
    with pytest.raises(InputError, match="no file matches"):
        expand_inputs([str(tmp_path / "*.log")])
    with pytest.raises(InputError, match="no such file"):
        open_source(str(tmp_path / "nope.log"))


@pytest.mark.parametrize("compress", [False, True], ids=["plain", "gzip"])
def test_stdin(tmp_path, compress):
    data = b"".join(TEXT.splitlines(keepends=True)[:10])
    proc = subprocess.run(
        [sys.executable, "-m", "importer", "send", "-", "--domain", "example.com", "--dry-run",
         "--no-progress", "--json", "--state", str(tmp_path / "state")],
        input=gzip.compress(data) if compress else data, cwd=ROOT, capture_output=True,
        timeout=60, check=True)
    summary = json.loads(proc.stdout)
    assert summary["lines_read"] == summary["events"] == data.count(b"\n")


def test_invalid_utf8_is_kept_with_replacement_characters(tmp_path, capsys):
    path = tmp_path / "access.log"
    bad = LINE.replace("Firefox/128.0", "Firefox/\xff\xfe").encode("latin-1")
    path.write_bytes(bad + b"\n" + LINE.encode() + b"\n")
    (first, second) = open_source(str(path)).lines()
    assert first.invalid_utf8 and not second.invalid_utf8
    assert first.text == LINE.replace("Firefox/128.0", "Firefox/\ufffd\ufffd")
    summary = dry_run(tmp_path, str(path), capsys=capsys)
    assert summary["events"] == 2 and summary["notes"]["invalid_utf8"] == 1


def test_nul_bytes_are_dropped(tmp_path, capsys):
    path = tmp_path / "access.log"
    # A crash can leave a run of NULs where a line was being written.
    other = LINE.replace("/a?b=c", "/other")
    path.write_bytes(b"\x00" * 4096 + b"\n" + b"\x00\x00" + LINE.encode() + b"\n"
                     + other.replace("GET", "G\x00ET").encode() + b"\n")
    texts = lines_of(path)
    assert texts == ["", LINE, other]
    summary = dry_run(tmp_path, str(path), capsys=capsys)
    assert summary["events"] == 2 and summary["filtered"] == {"blank_line": 1}


@pytest.mark.parametrize("stamp", ["31/Dec/9999:23:59:59 -2359", "01/Jan/0001:00:00:00 +1400"])
def test_a_stamp_past_what_a_date_holds_is_malformed_in_every_output(tmp_path, capsys, stamp):
    """Its time in UTC is in year 10000 or 0: no JSON line or CSV date could hold it."""
    path = tmp_path / "access.log"
    odd = re.sub(r"\[[^]]*\]", f"[{stamp}]", LINE)
    path.write_text(TEXT.decode() + odd + "\n")
    out = tmp_path / "events.ndjson"
    summary = dry_run(tmp_path, str(path), "--output", str(out), capsys=capsys)
    assert summary["events"] == 50 and summary["malformed"] == 1
    assert len(out.read_text().splitlines()) == 50
    assert main(["export", str(path), "--domain", "example.com", "--no-progress", "--json",
                 "--out", str(tmp_path / "csv")]) == 0
    assert json.loads(capsys.readouterr().out)["malformed"] == 1


def test_a_1mb_line_is_read_whole_between_its_neighbours(tmp_path):
    path = tmp_path / "access.log"
    huge = LINE.replace("/a?b=c", "/a?q=" + "x" * 1_000_000)
    path.write_text(f"{LINE}\n{huge}\n{LINE}\n")
    got = list(open_source(str(path)).lines())
    assert [ln.text for ln in got] == [LINE, huge, LINE]
    assert [ln.lineno for ln in got] == [1, 2, 3]
    assert got[-1].end == path.stat().st_size


def test_a_line_over_the_limit_is_cut_and_counted_once(tmp_path, monkeypatch):
    monkeypatch.setattr(sources, "MAX_LINE", 64)
    path = tmp_path / "access.log"
    path.write_text("short\n" + "y" * 1000 + "\nafter\n")
    got = list(open_source(str(path)).lines())
    assert [ln.text for ln in got] == ["short", "y" * 64, "after"]
    assert [ln.end for ln in got] == [6, 1007, 1013]


def test_crlf_line_ends(tmp_path, capsys):
    path = tmp_path / "access.log"
    lines = TEXT.decode().splitlines()[:3]
    path.write_bytes("".join(ln + "\r\n" for ln in lines).encode())
    got = list(open_source(str(path)).lines())
    assert [ln.text for ln in got] == lines
    assert got[-1].end == path.stat().st_size
    assert dry_run(tmp_path, str(path), capsys=capsys)["events"] == 3


def test_a_byte_order_mark_is_dropped(tmp_path):
    path = tmp_path / "u.log"
    path.write_bytes(b"\xef\xbb\xbf" + LINE.encode() + b"\n")
    assert lines_of(path) == [LINE]


@pytest.mark.parametrize("kind", ["gzip", "xz", "zstd"])
def test_truncated_archive_keeps_what_was_read_and_goes_on(tmp_path, capsys, kind):
    big = "".join(f"{LINE.replace('/a?b=c', f'/p{i}?' + 'z' * 64)}\n" for i in range(4000))
    packed = COMPRESSORS[kind](big.encode())
    cut = tmp_path / "access.log.2"
    cut.write_bytes(packed[:len(packed) // 2])
    whole = tmp_path / "access.log.1"
    whole.write_text(LINE + "\n")
    source = open_source(str(cut))
    got = [ln.text for ln in source.lines()]
    assert 0 < len(got) < 4000 and got == big.splitlines()[:len(got)]
    assert "damaged" in source.warning
    summary = dry_run(tmp_path, str(tmp_path), capsys=capsys)
    assert summary["lines_read"] == len(got) + 1  # and the next file was read
    assert any(f"{cut}: {kind} stream is damaged" in w for w in summary["warnings"])


@pytest.mark.parametrize("kind", sorted(COMPRESSORS))
def test_compressed_chunks_are_as_big_as_asked(tmp_path, kind):
    """A decompressor gives ~64 KiB a read (gzip, xz): a chunk gathers reads up to its size,
    or the bulk reading of big files would pay its fixed costs every 64 KiB."""
    text = "".join(f"{LINE.replace('/a?b=c', f'/page{i}')}\n" for i in range(20_000)).encode()
    path = tmp_path / "access.log.1"
    path.write_bytes(COMPRESSORS[kind](text))
    chunks = list(open_source(str(path)).chunks(size=1 << 20))
    assert b"".join(chunk.data for chunk in chunks) == text
    assert all(len(chunk.data) > (1 << 20) - len(LINE) - 20 for chunk in chunks[:-1])


def test_unfinished_last_line_of_a_file_being_written_is_left(tmp_path, capsys):
    path = tmp_path / "access.log"
    path.write_text(LINE + "\n" + LINE[:40])
    source = open_source(str(path))
    assert [ln.text for ln in source.lines()] == [LINE]
    assert source.held_back == 40
    summary = dry_run(tmp_path, str(path), capsys=capsys)
    assert summary["lines_read"] == 1 and summary["notes"]["unfinished_last_line"] == 1
    # The same file untouched for long: a last line without a newline is complete.
    old = time.time() - 2 * sources.STILL_WRITING_S
    os.utime(path, (old, old))
    source = open_source(str(path))
    assert [ln.text for ln in source.lines()] == [LINE, LINE[:40]] and not source.held_back


def test_a_file_with_nothing_to_import_yet_is_not_an_error(tmp_path, capsys):
    """An empty file (a log just rotated), one of blank lines, one whose first line is still
    being written: no format to detect, nothing wrong; the other files are read."""
    good = tmp_path / "access.log.1"
    good.write_text(LINE + "\n")
    (tmp_path / "access.log").write_text("")
    (tmp_path / "blank.log").write_text("\n  \n")
    (tmp_path / "writing.log").write_text(LINE[:40])
    code = main(["send", str(tmp_path), "--domain", "example.com", "--dry-run", "--no-progress",
                 "--json", "--state", str(tmp_path / "state")])
    captured = capsys.readouterr()
    summary = json.loads(captured.out)
    assert code == 0 and "error" not in captured.err
    assert summary["lines_read"] == 3 and summary["filtered"] == {"blank_line": 2}
    assert summary["notes"]["unfinished_last_line"] == 1
    # The file being written, once its line is complete, is detected and read.
    (tmp_path / "writing.log").write_text(LINE + "\n")
    summary = dry_run(tmp_path, str(tmp_path / "writing.log"), capsys=capsys)
    assert summary["lines_read"] == 1 and summary["malformed"] == 0


def test_rejects_file_is_private_and_holds_every_malformed_line(tmp_path, capsys):
    path = tmp_path / "access.log"
    broken = [f"broken line {i}" for i in range(8)]
    path.write_text("\n".join([LINE] * 10 + broken) + "\n")
    rejects = tmp_path / "rejects.tsv"
    summary = dry_run(tmp_path, str(path), "--rejects", str(rejects), capsys=capsys)
    assert summary["malformed"] == 8 and len(summary["malformed_samples"]) == 5
    assert stat.S_IMODE(rejects.stat().st_mode) == 0o600
    rows = [row.split("\t") for row in rejects.read_text().splitlines()]
    assert [(r[0], r[2]) for r in rows] == [(f"{path}:{11 + i}", broken[i]) for i in range(8)]
    assert all(r[1].startswith("does not match combined") for r in rows)


@pytest.mark.parametrize("data", [
    b"a\nbb\n\nccc\n", b"a\nbb\nno newline", b"one", b"", b"\n\n",
    b"caf\xc3\xa9\nbad \xff\nx\r\ny\n", b"nul\x00\nz"])
@pytest.mark.parametrize("size", [1 << 20, 4])
def test_a_chunk_streamed_in_one_line_object_reads_as_its_lines(tmp_path, data, size):
    path = tmp_path / "access.log"
    path.write_bytes(data + b"tail\n")
    for chunk in open_source(str(path)).chunks(size=size, numbered=False):
        expected = [(ln.lineno, ln.end, ln.text, ln.invalid_utf8) for ln in chunk.lines()]
        streamed = [(ln.lineno, ln.end, ln.text, ln.invalid_utf8) for ln in chunk.stream()]
        assert streamed == expected


def _cuts(source, found) -> list[tuple]:
    """What a run's reader cuts: each chunk's bounds, and the bytes of a line cut short."""
    cuts = []
    for chunk in found:
        data = Path(source.path).read_bytes()[chunk.start:chunk.end]
        if isinstance(chunk, sources.Span):
            assert chunk.tail == data[-sources.TAIL:]
            cuts.append((chunk.start, chunk.end, None))
        else:  # whole lines come as a Span from `spans`
            cuts.append((chunk.start, chunk.end, None if chunk.data == data else chunk.data))
    return cuts


@pytest.mark.parametrize("size", [7, 64, 300, 4096])
@pytest.mark.parametrize("start", [0, 50])
@pytest.mark.parametrize("shape", ["long lines", "no final newline", "still being written",
                                   "a header mid-file", "over the limit", "over at the end"])
def test_spans_cut_a_plain_file_where_reading_it_does(tmp_path, monkeypatch, shape, start,
                                                      size):
    """The chunks found without reading a file (`Source.spans`, parse workers read them) end
    where those read whole end, and hold the same lines: long ones, cut ones, the last."""
    monkeypatch.setattr(sources, "MAX_LINE", 1000)
    monkeypatch.setattr(sources, "WINDOW", 16)  # the last newline is often windows back
    lines = [LINE.encode() * (1 + n % 3) + b"\n" for n in range(40)]
    lines[5] = b"x" * 2500 + b"\n"
    if shape == "a header mid-file":
        lines[20] = b"#Fields: date time c-ip\n"
    if shape == "over the limit":
        lines[30] = b"y" * 3500 + b"\n"
    data = b"".join(lines)
    if shape != "long lines":
        data += b"z" * (3000 if shape == "over at the end" else 120)
    path = tmp_path / "access.log"
    path.write_bytes(data)
    if shape != "still being written":
        os.utime(path, (time.time() - 3600, time.time() - 3600))
    read, found = open_source(str(path)), open_source(str(path))
    with open(path, "rb") as raw:
        spans = _cuts(found, found.spans(raw, start, size))
    assert spans == _cuts(read, read.chunks(start, 0, size, numbered=False))
    assert (found.held_back, found.position) == (read.held_back, read.position)
    assert (found.held_back > 0) == (shape == "still being written")


def test_spans_of_a_file_that_shrinks_end_where_it_did(tmp_path):
    path = tmp_path / "access.log"
    path.write_bytes((LINE + "\n").encode() * 100)
    source = open_source(str(path))
    with open(path, "rb") as raw:
        spans = source.spans(raw, 0, 1000)
        first = next(spans)
        os.truncate(path, first.end + 10)
        assert [span.end for span in spans] == []
    assert first.end < 1000 and source.warning is None
