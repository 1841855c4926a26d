"""The checkpoint as a user meets it: `plausible-import send` (a real process) against the test
receiver, killed with SIGKILL at random points, soaked in injected faults, following files
through rotation, and `status`, `--forget`, `--reset`, `--dry-run`."""
from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from tests.test_state import log_lines

ROOT = Path(__file__).resolve().parent.parent
CONCURRENCY = 4


def importer(*args: str, state: Path, url: str | None = None) -> list[str]:
    command = [sys.executable, "-m", "importer", *args, "--state", str(state)]
    if url is not None:
        command += ["--url", url, "--domain", "example.com", "--concurrency", str(CONCURRENCY),
                    "--max-age", "0", "--no-progress"]
    return command


def run(*args: str, state: Path, url: str | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PLAUSIBLE")}
    return subprocess.run(importer(*args, state=state, url=url), cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)


def start(*args: str, state: Path, url: str) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PLAUSIBLE")}
    return subprocess.Popen(importer(*args, state=state, url=url), cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def pages(receiver) -> Counter[int]:
    return Counter(int(e["url"].rsplit("/", 1)[1]) for e in receiver.events)


def test_rerun_status_forget_reset_and_dry_run(tmp_path, receiver):
    log = tmp_path / "access.log"
    log.write_text(log_lines(0, 100))
    state = tmp_path / "state.sqlite"
    first = run("send", str(log), state=state, url=receiver.url)
    assert first.returncode == 0, first.stderr
    again = run("send", str(log), "--json", state=state, url=receiver.url)
    assert json.loads(again.stdout)["lines_read"] == 0
    assert pages(receiver) == Counter(range(100))

    with log.open("a") as f:
        f.write(log_lines(100, 110))
    dry = run("send", str(log), "--dry-run", "--json", state=state, url=receiver.url)
    assert json.loads(dry.stdout)["dry_run"] == 10  # what a real run would send...
    status = run("status", "--json", state=state)
    [target] = json.loads(status.stdout)
    [file] = target["files"]
    assert (file["path"], file["lines"], file["sent"]) == (str(log), 100, 100)  # ...not advanced
    assert file["state"] == f"{log.stat().st_size - file['position']:,} bytes to read"
    assert "example.com" in target["target"]

    run("send", str(log), state=state, url=receiver.url)
    text = run("status", state=state).stdout
    assert "up to date" in text and str(log) in text and "110" in text
    assert pages(receiver) == Counter(range(110))

    forgot = run("send", str(log), "--forget", str(log), state=state, url=receiver.url)
    assert forgot.returncode == 0 and "forgot" in forgot.stderr
    assert pages(receiver) == Counter({p: 2 for p in range(110)})
    run("status", "--reset", state=state)
    run("send", str(log), state=state, url=receiver.url)
    assert pages(receiver) == Counter({p: 3 for p in range(110)})


def test_another_run_on_the_same_state_is_refused(tmp_path, receiver):
    log = tmp_path / "access.log"
    log.write_text(log_lines(0, 20))
    state = tmp_path / "state.sqlite"
    follower = start("send", str(log), "--follow", state=state, url=receiver.url)
    try:
        assert receiver.wait_for_events(20, timeout=30)
        second = run("send", str(log), state=state, url=receiver.url)
        assert second.returncode == 75 and "another plausible-import run" in second.stderr
    finally:
        follower.send_signal(signal.SIGTERM)
        follower.communicate(timeout=30)


def test_kill_9_at_random_points_loses_nothing(tmp_path, receiver):
    """SIGKILL mid-send, five times; then run to the end. Every event arrives; the extra copies
    are at most the requests in flight at each kill (the concurrency)."""
    log = tmp_path / "access.log"
    log.write_text(log_lines(0, 2000))
    state = tmp_path / "state.sqlite"
    rng = random.Random(6)
    kills = 0
    for _ in range(5):
        goal = len(receiver.events) + rng.randint(20, 300)
        process = start("send", str(log), state=state, url=receiver.url)
        deadline = time.monotonic() + 60
        while process.poll() is None and len(receiver.events) < goal \
                and time.monotonic() < deadline:
            time.sleep(0.002)
        if process.poll() is None:
            process.kill()
            kills += 1
        process.communicate()
    assert kills >= 3, "the runs ended before they could be killed"
    final = run("send", str(log), state=state, url=receiver.url)
    assert final.returncode == 0, final.stdout + final.stderr
    assert "was killed before it finished" in final.stdout
    delivered = pages(receiver)
    assert set(delivered) == set(range(2000))
    extra = sum(delivered.values()) - 2000
    assert extra <= kills * CONCURRENCY, (kills, extra)


def test_fault_soak_delivers_the_exact_set_after_reruns(tmp_path, receiver):
    """5xx, resets, timeouts and slow answers at random, few retries: some events end
    undelivered, and reruns send exactly those."""
    (tmp_path / "a.log").write_text(log_lines(0, 300))
    (tmp_path / "b.log").write_text(log_lines(250, 350))  # overlapping: duplicates
    receiver.faults.random(0.3, ["500", "502", "503", "reset", "slow:0.05"])
    receiver.faults.chance("timeout:5", 0.015)  # hangs unanswered: the client gives up
    state = tmp_path / "state.sqlite"
    # A timeout well above a loaded machine's answer times: a request the receiver took but
    # answered too late would be retried and arrive twice, whatever the checkpoint does.
    args = ("send", str(tmp_path / "a.log"), str(tmp_path / "b.log"), "--timeout", "2",
            "--max-retries", "1")
    codes = []
    for _ in range(10):
        result = run(*args, state=state, url=receiver.url)
        codes.append(result.returncode)
        if result.returncode == 0:
            break
        assert result.returncode == 1, result.stdout + result.stderr  # undelivered, not broken
    assert codes[-1] == 0 and len(codes) > 1, codes  # some events needed a rerun
    assert pages(receiver) == Counter(range(350))


def test_follow_sends_new_lines_through_rotation_and_restarts(tmp_path, receiver):
    logs = tmp_path / "logs"
    logs.mkdir()
    log = logs / "access.log"
    log.write_text(log_lines(0, 50))
    state = tmp_path / "state.sqlite"
    pattern = str(logs / "*")
    follower = start("send", pattern, "--follow", state=state, url=receiver.url)
    try:
        assert receiver.wait_for_events(50, timeout=30)
        with log.open("a") as f:  # appended while it is being followed
            f.write(log_lines(50, 60))
        assert receiver.wait_for_events(60, timeout=10)

        log.rename(logs / "access.log.1")  # rotation by rename; the server writes on a bit
        with (logs / "access.log.1").open("a") as f:
            f.write(log_lines(60, 65))
        log.write_text(log_lines(65, 75))
        assert receiver.wait_for_events(75, timeout=10)

        (logs / "access.log.1").rename(logs / "access.log.2")  # copytruncate
        with log.open("a") as f:
            f.write(log_lines(75, 78))
        shutil.copy(log, logs / "access.log.1")
        with log.open("r+") as f:
            f.truncate(0)
        log.write_text(log_lines(78, 85))
        (logs / "vhost2.log").write_text(log_lines(85, 90))  # a new file matching the glob
        assert receiver.wait_for_events(90, timeout=10)
    finally:
        follower.send_signal(signal.SIGTERM)
        follower.communicate(timeout=30)
    assert follower.returncode == 128 + signal.SIGTERM
    assert pages(receiver) == Counter(range(90))

    follower = start("send", pattern, "--follow", state=state, url=receiver.url)
    try:
        time.sleep(2)  # a restart continues: nothing is sent again
        assert len(receiver.events) == 90
        with log.open("a") as f:
            f.write(log_lines(90, 95))
        assert receiver.wait_for_events(95, timeout=10)
    finally:
        follower.send_signal(signal.SIGTERM)
        follower.communicate(timeout=30)
    assert pages(receiver) == Counter(range(95))


def test_follow_one_path_drains_what_was_written_just_before_rotation(tmp_path, receiver):
    """Following only access.log: the lines the server wrote between the last poll and the
    rotation are in the rotated file (renamed, or copied before the truncation)."""
    log = tmp_path / "access.log"
    log.write_text(log_lines(0, 20))
    state = tmp_path / "state.sqlite"
    follower = start("send", str(log), "--follow", state=state, url=receiver.url)
    try:
        assert receiver.wait_for_events(20, timeout=30)
        with log.open("a") as f:
            f.write(log_lines(20, 25))
        log.rename(tmp_path / "access.log.1")
        log.write_text(log_lines(25, 30))
        assert receiver.wait_for_events(30, timeout=10)
        with log.open("a") as f:
            f.write(log_lines(30, 35))
        shutil.copy(log, tmp_path / "access.log.2")
        with log.open("r+") as f:
            f.truncate(0)
        with log.open("a") as f:
            f.write(log_lines(35, 37))
        assert receiver.wait_for_events(37, timeout=10)
    finally:
        follower.send_signal(signal.SIGTERM)
        follower.communicate(timeout=30)
    assert pages(receiver) == Counter(range(37))
