"""Running unattended: the state lock, --quiet, --log-json, the shipped examples, packaging."""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from importer import __version__
from tests.test_config import ROOT, run_cli, write_log

EXAMPLES = ROOT / "examples"
SUMMARY_LINE = re.compile(r"plausible-import: (job \w+: )?[\d,]+ lines, [\d,]+ events( \(.+\))?, "
                          r"[\d,]+ filtered, [\d,]+ duplicates, [\d,]+ malformed in [\d.]+s")


# -- the lock --

def lock_held(path: Path) -> bool:
    """Whether some process holds a flock on `path` (read from /proc/locks, so the test never
    takes the lock itself and cannot make the holder fail)."""
    if not path.exists():
        return False
    inode = f":{path.stat().st_ino} "
    with open("/proc/locks") as f:
        return any(" FLOCK " in line and inode in line for line in f)


@pytest.mark.skipif(not os.path.exists("/proc/locks"), reason="needs Linux's /proc/locks")
def test_a_second_run_on_the_same_state_exits_75(tmp_path, receiver):
    state = tmp_path / "state" / "s.sqlite"
    cmd = [sys.executable, "-m", "importer", "send", "-", "--domain", "example.com",
           "--url", receiver.url, "--state", str(state), "--keep-bots", "--format",
           "combined"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("PLAUSIBLE")}
    # The first run reads a standard input that stays open: it holds the lock until told.
    first = subprocess.Popen(cmd, cwd=ROOT, env=env, stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 20
        while not lock_held(Path(f"{state}.lock")):
            assert first.poll() is None, first.communicate()
            assert time.monotonic() < deadline, "the first run never took the lock"
            time.sleep(0.05)
        second = subprocess.run(cmd, cwd=ROOT, env=env, input=b"", capture_output=True,
                                timeout=30, check=False)
        assert second.returncode == 75
        assert second.stderr.decode() == (
            f"plausible-import: error: another plausible-import run is using {state}; wait for "
            "it to finish (or give another --state)\n")
        log = write_log(tmp_path / "access.log", "/")
        out, err = first.communicate(log.read_bytes(), timeout=30)
    finally:
        first.kill()
    assert first.returncode == 0, err.decode()
    assert [e["url"] for e in receiver.events] == ["https://example.com/"]
    again = subprocess.run(cmd, cwd=ROOT, env=env, input=b"", capture_output=True, timeout=30,
                           check=False)
    assert again.returncode == 0, again.stderr.decode()  # released at exit


# -- --quiet and --log-json --

def unfinished_log(tmp_path: Path) -> Path:
    """Two visits, the second line cut off: a warning (the file is still being written)."""
    log = write_log(tmp_path / "access.log", "/a", "/b")
    log.write_bytes(log.read_bytes()[:-40])
    return log


def test_quiet_prints_errors_and_one_summary_line(tmp_path):
    log = unfinished_log(tmp_path)
    loud = run_cli("send", str(log), "--domain", "example.com", "--dry-run", "--keep-bots")
    assert "warning: " in loud.stdout + loud.stderr and len(loud.stdout.splitlines()) > 3
    quiet = run_cli("send", str(log), "--domain", "example.com", "--dry-run", "--keep-bots",
                    "--quiet")
    assert quiet.returncode == 0
    assert quiet.stderr == ""
    assert SUMMARY_LINE.fullmatch(quiet.stdout.rstrip("\n")), quiet.stdout
    assert "1 lines, 1 events (1 dry run)" in quiet.stdout
    missing = run_cli("-q", "send", str(log), str(tmp_path / "missing.log"), "--domain",
                      "example.com", "--dry-run", "--keep-bots")
    assert missing.returncode == 2
    assert missing.stderr.startswith("plausible-import: error: ")
    assert "missing.log" in missing.stderr


def json_lines(text: str) -> list[dict]:
    records = [json.loads(line) for line in text.splitlines()]
    for record in records:
        assert {"time", "level", "message"} <= record.keys()
        assert record["level"] in ("error", "warning", "info")
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", record["time"])
    return records


def test_log_json_writes_one_object_per_message_and_the_summary(tmp_path):
    log = unfinished_log(tmp_path)
    result = run_cli("send", str(log), "--domain", "example.com", "--dry-run", "--keep-bots",
                     "--log-json")
    assert result.returncode == 0 and result.stdout == ""
    records = json_lines(result.stderr)
    assert [r["level"] for r in records] == ["warning", "info"]
    assert "last line is unfinished" in records[0]["message"]
    summary = records[-1]["summary"]
    assert (summary["lines_read"], summary["events"], summary["dry_run"]) == (1, 1, 1)
    assert SUMMARY_LINE.fullmatch("plausible-import: " + records[-1]["message"])


def test_log_json_errors_and_jobs(tmp_path):
    bad = run_cli("--log-json", "send", "access.log", "--no-such-option")
    assert bad.returncode == 2
    usage, error = json_lines(bad.stderr)  # argparse's usage block stays one message
    assert usage["level"] == error["level"] == "error"
    assert usage["message"].startswith("usage: plausible-import") and "\n" in usage["message"]
    assert error["message"] == "unrecognized arguments: --no-such-option"
    log = write_log(tmp_path / "x.log", "/")
    config = tmp_path / "c.toml"
    config.write_text(f'dry-run = true\nkeep-bots = true\nlog-json = true\nlogs = ["{log}"]\n'
                      '[jobs.a]\ndomain = "a.test"\n[jobs.b]\ndomain = "b.test"\n')
    jobs = run_cli("--config", str(config))
    assert jobs.returncode == 0, jobs.stderr
    summaries = [r for r in json_lines(jobs.stderr) if "summary" in r]
    assert [(r["job"], r["summary"]["events"]) for r in summaries] == [("a", 1), ("b", 1)]


# -- the shipped examples --

UNITS = sorted(EXAMPLES.glob("*.service")) + sorted(EXAMPLES.glob("*.timer"))


def test_the_example_files_are_there():
    names = {p.name for p in EXAMPLES.iterdir()}
    assert {"plausible-import.service", "plausible-import.timer", "crontab", "logrotate.md",
            "plausible-import-follow.service", "plausible-import.toml"} <= names


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze")
def test_systemd_units_verify(tmp_path):
    # verify wants ExecStart's program to exist: point it at this Python.
    for unit in UNITS:
        text = unit.read_text().replace("/usr/local/bin/plausible-import", sys.executable)
        (tmp_path / unit.name).write_text(text)
    result = subprocess.run(["systemd-analyze", "verify", *(u.name for u in UNITS)],
                            cwd=tmp_path, capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    # Unknown keys and bad values are only warnings to it: there must be none about our files.
    assert not [line for line in result.stderr.splitlines()
                if any(u.name in line for u in UNITS)], result.stderr


SECTION_KEYS = {  # the keys our units use, by section, as systemd.unit(5)/.service/.timer name them
    "Unit": {"Description", "Wants", "After"},
    "Service": {"Type", "ExecStart", "Restart", "RestartSec", "RestartPreventExitStatus",
                "SuccessExitStatus", "TimeoutStopSec", "StateDirectory", "Environment",
                "DynamicUser", "SupplementaryGroups", "ReadOnlyPaths", "NoNewPrivileges",
                "ProtectSystem", "ProtectHome", "PrivateTmp", "Nice", "IOSchedulingClass"},
    "Timer": {"OnCalendar", "RandomizedDelaySec", "Persistent"},
    "Install": {"WantedBy"},
}


@pytest.mark.parametrize("unit", UNITS, ids=lambda p: p.name)
def test_systemd_unit_syntax(unit):
    """Without systemd-analyze: sections and keys systemd knows, one key=value a line."""
    section = None
    seen: dict[str, dict[str, str]] = {}
    for line in unit.read_text().splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        if match := re.fullmatch(r"\[(\w+)\]", line):
            section = match.group(1)
            assert section in SECTION_KEYS, line
            seen[section] = {}
            continue
        key, sep, value = line.partition("=")
        assert section and sep and value.strip(), line
        assert key in SECTION_KEYS[section], f"[{section}] {key}"
        seen[section][key] = value
    kind = unit.suffix.lstrip(".").capitalize()
    assert {"Unit", kind} <= seen.keys()
    if kind == "Service":
        command = seen["Service"]["ExecStart"].split()
        assert command[0] == "/usr/local/bin/plausible-import" and "--config" in command
    if "follow" in unit.name:
        assert "--follow" in seen["Service"]["ExecStart"]
        assert seen["Service"]["Restart"] == "on-failure"
    if kind == "Service" and "follow" not in unit.name:
        assert seen["Service"]["Type"] == "oneshot"


def test_the_example_config_passes_check_config():
    result = run_cli("check-config", str(EXAMPLES / "plausible-import.toml"))
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1].endswith("plausible-import.toml: ok")
    assert "job blog: send" in result.stdout and "job shops: send" in result.stdout


def test_the_crontab_line():
    lines = [line for line in (EXAMPLES / "crontab").read_text().splitlines()
             if line.strip() and not line.startswith("#")]
    assert len(lines) == 1
    fields = lines[0].split()
    times, command = fields[:5], fields[5:]
    for field in times:
        assert re.fullmatch(r"(\*|\d+(-\d+)?)(/\d+)?(,(\*|\d+(-\d+)?)(/\d+)?)*", field), field
    assert command[0].endswith("/plausible-import") and "--quiet" in command


# -- packaging --

def test_version_and_python_m():
    result = run_cli("--version")
    assert result.returncode == 0 and result.stdout == f"plausible-import {__version__}\n"
    assert f"## {__version__}" in (ROOT / "CHANGELOG.md").read_text()


def test_every_command_shows_examples_in_its_help():
    for command in ("send", "export", "status", "formats", "check-config"):
        result = run_cli(command, "--help")
        assert result.returncode == 0
        assert "examples:" in result.stdout, command
