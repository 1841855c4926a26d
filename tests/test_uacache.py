"""importer/uacache.py: user-agent classifications kept between runs, by keyed hash only."""
from __future__ import annotations

import json
import multiprocessing
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from importer import uacache, useragents
from importer.cli import main
from importer.uacache import UserAgentStore, persisted
from importer.useragents import UserAgentClassifier, UserAgentInfo, detect

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SAMPLE = os.path.join(ROOT, "sample_logs", "nginx_combined.log")
CHROME = ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko)"
          " Chrome/120.0.0.0 Safari/537.36")
CHROME_ROW = ("", "Desktop", "Chrome", "120.0", "Windows", "10")


def test_rows_round_trip_keyed_never_raw(tmp_path) -> None:
    path = str(tmp_path / "ua.db")
    store = UserAgentStore(path)
    key = store.key(CHROME)
    assert len(key) == 16 and key == store.key(CHROME) != store.key(CHROME + " ")
    store.save({key: CHROME_ROW, store.key("curl/8.5.0"): ("library",)})
    store.close()

    again = UserAgentStore(path)
    assert again.key(CHROME) == key  # the secret is kept
    assert sorted(again.load()) == sorted([(key, CHROME_ROW),
                                           (again.key("curl/8.5.0"), ("library",))])
    again.close()
    assert oct(os.stat(path).st_mode & 0o777) == "0o600"
    raw = b"".join(Path(p).read_bytes() for p in (path, path + "-wal") if os.path.exists(p))
    assert b"Chrome/120" not in raw and b"curl/8" not in raw
    assert UserAgentStore(str(tmp_path / "other.db")).key(CHROME) != key  # a secret each


def test_a_kind_alone_does_not_replace_a_full_row(tmp_path) -> None:
    store = UserAgentStore(str(tmp_path / "ua.db"))
    key = store.key(CHROME)
    store.save({key: CHROME_ROW})
    store.save({key: ("",)})
    assert list(store.load()) == [(key, CHROME_ROW)]


def test_another_version_is_discarded(tmp_path, monkeypatch) -> None:
    path = str(tmp_path / "ua.db")
    store = UserAgentStore(path)
    store.save({store.key(CHROME): CHROME_ROW})
    store.close()
    monkeypatch.setattr(uacache, "CACHE_VERSION", "2/device-detector-9.9")
    assert list(UserAgentStore(path).load()) == []


def test_least_recently_used_rows_go_past_the_limit(tmp_path, monkeypatch) -> None:
    store = UserAgentStore(str(tmp_path / "ua.db"), limit=3)
    clock = iter(range(1000, 2000))
    monkeypatch.setattr(uacache.time, "time", lambda: next(clock))
    keys = [store.key(f"agent/{n}") for n in range(5)]
    store.save({k: ("library",) for k in keys[:3]})
    store.save({keys[0]: ("library",)})  # used again: now the most recent
    store.save({k: ("library",) for k in keys[3:]})
    assert sorted(k for k, _ in store.load()) == sorted([keys[0], keys[3], keys[4]])


def _save_batches(path: str, n: int) -> None:
    store = UserAgentStore(path)
    for batch in range(20):
        store.save({store.key(f"agent/{n}/{batch}/{i}"): ("library",) for i in range(50)})


def test_two_runs_saving_at_once(tmp_path) -> None:
    path = str(tmp_path / "ua.db")
    UserAgentStore(path).close()
    context = multiprocessing.get_context("fork")
    runs = [context.Process(target=_save_batches, args=(path, n)) for n in range(2)]
    for run in runs:
        run.start()
    for run in runs:
        run.join()
    assert [run.exitcode for run in runs] == [0, 0]
    assert len(list(UserAgentStore(path).load())) == 2 * 20 * 50
    assert sqlite3.connect(path).execute("PRAGMA integrity_check").fetchone() == ("ok",)


def test_persisted_feeds_the_classifier_and_saves_what_it_learned(tmp_path) -> None:
    path = str(tmp_path / "ua.db")
    first = UserAgentClassifier()
    with persisted(first, pytest.fail, path):
        first.classify(CHROME)
        first.kind("curl/8.5.0")

    def no_detection(ua: str) -> UserAgentInfo:
        raise AssertionError(f"detected again: {ua}")

    second = UserAgentClassifier(detect_fn=no_detection)
    with persisted(second, pytest.fail, path):
        assert second.classify(CHROME) == detect(CHROME)
        assert second.kind("curl/8.5.0") == "library"
        assert second.known("curl/8.5.0") is None  # only its kind was ever needed


def test_an_unusable_store_is_reported_and_skipped(tmp_path) -> None:
    warnings: list[str] = []
    clf = UserAgentClassifier()
    with persisted(clf, warnings.append, str(tmp_path)):  # a directory, not a database
        assert clf.kind("curl/8.5.0") == "library"
    assert len(warnings) == 1 and "not used" in warnings[0]


WARM_RUN = """
import json, sys
from importer.cli import main
code = main(sys.argv[1:])
print(json.dumps({"code": code, "device_detector": "device_detector" in sys.modules}))
"""


def _run_in_new_process(*args: str) -> dict:
    done = subprocess.run([sys.executable, "-c", WARM_RUN, *args], capture_output=True,
                          text=True, cwd=ROOT, env={**os.environ, "PYTHONPATH": ROOT},
                          check=True)
    return json.loads(done.stdout.splitlines()[-1])


def _read_dir(path) -> dict[str, str]:
    return {p.name: p.read_text() for p in sorted(Path(path).iterdir())}


def test_a_second_export_neither_loads_device_detector_nor_changes_a_file(tmp_path) -> None:
    args = ["export", SAMPLE, "--domain", "example.com", "--no-progress", "--workers", "1"]
    assert main([*args, "--out", str(tmp_path / "first")]) == 0
    assert os.path.exists(uacache.default_path())
    warm = _run_in_new_process(*args, "--out", str(tmp_path / "second"))
    assert warm == {"code": 0, "device_detector": False}
    assert _read_dir(tmp_path / "second") == _read_dir(tmp_path / "first")
    cold = _run_in_new_process(*args, "--out", str(tmp_path / "third"), "--no-ua-cache")
    assert cold == {"code": 0, "device_detector": True}


def test_a_second_dry_run_send_does_not_load_device_detector(tmp_path) -> None:
    args = ["send", SAMPLE, "--domain", "example.com", "--dry-run", "--no-progress",
            "--workers", "1"]
    assert main([*args, "--output", str(tmp_path / "first.ndjson")]) == 0
    warm = _run_in_new_process(*args, "--output", str(tmp_path / "second.ndjson"))
    assert warm == {"code": 0, "device_detector": False}
    first, second = ((tmp_path / f"{n}.ndjson").read_text() for n in ("first", "second"))
    assert first == second and first


def test_cache_version_names_the_installed_library() -> None:
    import device_detector

    assert useragents.CACHE_VERSION.endswith(f"device-detector-{device_detector.__version__}")
