"""`plausible-import send` as a user runs it: health check first, signals, exit codes, files."""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.plausible_rules import BROWSER_UA
from tests.receiver import Receiver
from tests.servers import free_port

ROOT = Path(__file__).resolve().parent.parent


def write_log(path: Path, n: int) -> Path:
    """n page visits in nginx's combined format, by n // 4 visitors, logged just now."""
    stamp = datetime.now(UTC).strftime("%d/%b/%Y:%H:%M:%S +0000")
    with open(path, "w") as f:
        for i in range(n):
            v = i % (n // 4 or 1)
            f.write(f'10.0.{v >> 8}.{v & 255} - - [{stamp}] "GET /page/{i} HTTP/1.1" 200 512 '
                    f'"-" "{BROWSER_UA}"\n')
    return path


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "importer", "send", "--format", "combined",
            "--domain", "example.com", "--no-progress", *args]


def run(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PLAUSIBLE")}
    return subprocess.run(cli(*args), cwd=ROOT, capture_output=True, text=True, env=env,
                          timeout=timeout)


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_signal_stops_the_run_reports_and_exits_128_plus_signal(tmp_path, sig, code):
    # More lines than the sender holds in memory, so the reader is waiting on back-pressure.
    log = write_log(tmp_path / "access.log", 8000)
    with Receiver(latency=0.2) as rx:  # 4 in flight, 0.2 s each: 20 events/s
        proc = subprocess.Popen(cli(str(log), "--url", rx.url, "--concurrency", "4", "--json"),
                                cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True)
        assert rx.wait_for_requests(9, timeout=20), proc.communicate(timeout=5)
        proc.send_signal(sig)
        signalled = time.monotonic()
        out, err = proc.communicate(timeout=20)
        took = time.monotonic() - signalled
        accepted = len(rx.events)
    assert proc.returncode == code, err
    assert took < 5  # in-flight requests finish (0.2 s), the rest stays for a rerun
    summary = json.loads(out)
    assert f"stopped by {sig.name}" in summary["warnings"]
    assert summary["events"] == summary["sent"] + summary["undelivered"]
    assert summary["undelivered"] > 0
    assert summary["sent"] == accepted  # what the server has is exactly what counts as sent
    assert summary["lines_read"] < 8000  # reading stopped too


def test_ctrl_c_during_the_health_check_exits_130_with_one_line(tmp_path):
    log = write_log(tmp_path / "access.log", 4)
    with socket.socket() as server:  # takes the connection, never answers
        server.bind(("127.0.0.1", 0))
        server.listen()
        server.settimeout(20)
        url = f"http://127.0.0.1:{server.getsockname()[1]}"
        proc = subprocess.Popen(cli(str(log), "--url", url, "--timeout", "60"), cwd=ROOT,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                env={**os.environ, "XDG_STATE_HOME": str(tmp_path / "state")})
        conn, _ = server.accept()  # the health check is waiting for its answer now
        with conn:
            time.sleep(0.2)
            proc.send_signal(signal.SIGINT)
            signalled = time.monotonic()
            out, err = proc.communicate(timeout=20)
    assert proc.returncode == 130
    assert time.monotonic() - signalled < 5  # not after the 60 s timeout
    assert err.splitlines() == ["plausible-import: interrupted (Ctrl-C)"]
    assert out == ""


def test_health_is_checked_before_any_log_is_read(tmp_path):
    url = f"http://127.0.0.1:{free_port()}"
    result = run(str(tmp_path / "no-such.log"), "--url", url)
    assert result.returncode == 1
    [line] = result.stderr.splitlines()
    assert line.startswith("plausible-import: error: cannot reach") and url in line
    assert result.stdout == ""


def test_a_server_that_is_not_plausible_gets_one_line(tmp_path):
    log = write_log(tmp_path / "access.log", 4)
    with Receiver() as rx:
        result = run(str(log), "--url", rx.url + "/stats")
        assert not rx.events
    assert result.returncode == 1
    [line] = result.stderr.splitlines()
    assert f"{rx.url}/stats/api/health" in line and "not like a Plausible server" in line


@pytest.mark.parametrize("option", [["--url", "plausible.example.com"], ["--rate", "-1"],
                                    ["--pace", "fast"], ["--concurrency", "0"],
                                    ["--max-age", "soon"]])
def test_bad_delivery_options_are_usage_errors(tmp_path, option):
    result = run(str(tmp_path / "x.log"), "--url", "http://127.0.0.1:9", *option)
    assert result.returncode == 2
    assert option[0] in result.stderr


def test_rejected_events_land_in_a_private_dead_letter_file(tmp_path):
    log = write_log(tmp_path / "access.log", 8)
    dead = tmp_path / "dead.ndjson"
    with Receiver() as rx:
        rx.faults.next("400")
        result = run(str(log), "--url", rx.url, "--dead-letter", str(dead), "--json")
        accepted = len(rx.events)
    assert result.returncode == 1, result.stderr  # something did not arrive: not a clean run
    summary = json.loads(result.stdout)
    assert (summary["sent"], summary["dead_lettered"]) == (7, 1) and accepted == 7
    assert dead.stat().st_mode & 0o777 == 0o600  # it holds IP addresses
    [record] = [json.loads(line) for line in dead.read_text().splitlines()]
    # Visitors go concurrently, so the first request to arrive may be any line's.
    assert record["status"] == 400 and 1 <= int(record["origin"].rsplit(":", 1)[1]) <= 8


def test_a_server_failing_everything_stops_the_run_with_exit_1(tmp_path):
    log = write_log(tmp_path / "access.log", 2000)
    with Receiver() as rx:
        rx.faults.chance("503", 1.0)
        result = run(str(log), "--url", rx.url, "--max-retries", "0", "--concurrency", "8",
                     "--json")
        requests = len(rx.requests)
    assert result.returncode == 1
    summary = json.loads(result.stdout)
    assert summary["sent"] == 0 and summary["undelivered"] == summary["events"]
    assert requests < 200  # stopped early, not 2000 failures
    assert "stopped early" in result.stderr.splitlines()[-1]


def test_a_clean_run_exits_0_and_sends_every_visit(tmp_path):
    log = write_log(tmp_path / "access.log", 60)
    with Receiver() as rx:
        result = run(str(log), "--url", rx.url + "/api/event/", "--json", "--rate", "500")
        urls = sorted(int(e["url"].rsplit("/", 1)[1]) for e in rx.events)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["sent"] == 60 and urls == list(range(60))


def test_rejected_events_go_to_a_dead_letter_file_beside_the_state(tmp_path):
    """Without --dead-letter, 4xx-rejected events are still kept: in a file beside the state."""
    import json
    import subprocess
    import sys

    from tests.receiver import Receiver

    log = tmp_path / "access.log"
    log.write_text('203.0.113.5 - - [26/Nov/2026:10:00:00 +0000] "GET /a HTTP/1.1" 200 5 "-" '
                   '"Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"\n')
    state = tmp_path / "state.sqlite"
    with Receiver(domains={"example.com"}) as rx:
        rx.faults.next("400")
        result = subprocess.run(
            [sys.executable, "-m", "importer", "send", str(log), "--domain", "example.com",
             "--url", rx.url, "--state", str(state), "--max-age", "0", "--json"],
            capture_output=True, text=True, timeout=60)
    assert result.returncode == 1, result.stderr
    assert json.loads(result.stdout)["dead_lettered"] == 1
    letter = tmp_path / "state.sqlite.dead-letter.ndjson"
    assert letter.stat().st_mode & 0o777 == 0o600
    record = json.loads(letter.read_text())
    assert record["status"] == 400 and "/a" in json.dumps(record)
