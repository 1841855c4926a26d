"""Options three ways (flag > environment > config file > default), jobs, and check-config."""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from importer.checkconfig import check
from importer.cli import build_parser
from importer.config import ConfigError, add_global_options, load, parse_run

ROOT = Path(__file__).resolve().parent.parent
UA = ("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
      "Chrome/131.0.0.0 Safari/537.36")


def write_log(path: Path, *pages: str) -> Path:
    path.write_text("".join(
        f'203.0.113.{i} - - [24/Nov/2026:09:{i:02d}:00 +0000] "GET {page} HTTP/1.1" 200 512 '
        f'"-" "{UA}"\n' for i, page in enumerate(pages, 1)))
    return path


def run_cli(*args: str, env: dict[str, str] | None = None, cwd: Path = ROOT,
            ) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("PLAUSIBLE")}
    return subprocess.run([sys.executable, "-m", "importer", *args], cwd=cwd, text=True,
                          capture_output=True, env={**clean, **(env or {})}, timeout=60,
                          check=False)


def events(result: subprocess.CompletedProcess) -> list[dict]:
    assert result.returncode == 0, result.stderr
    # An export job's summary shares standard output with the events of `--output -`.
    return [json.loads(line)["body"] for line in result.stdout.splitlines()
            if line.startswith("{")]


# -- precedence, through the real command line --

@pytest.mark.parametrize("layers, host", [
    ((), "example.com"),  # default: the logged host, else the domain
    (("file",), "file.test"),
    (("env",), "env.test"),
    (("file", "env"), "env.test"),
    (("file", "flag"), "flag.test"),
    (("file", "env", "flag"), "flag.test"),
])
def test_flag_beats_environment_beats_file_beats_default(tmp_path, layers, host):
    log = write_log(tmp_path / "access.log", "/")
    config = tmp_path / "c.toml"
    config.write_text('host = "file.test"\n' if "file" in layers else "")
    env = {"PLAUSIBLE_IMPORT_HOST": "env.test"} if "env" in layers else {}
    flag = ["--host", "flag.test"] if "flag" in layers else []
    result = run_cli("--config", str(config), "send", str(log), "--domain", "example.com",
                     "--dry-run", "--keep-bots", "--output", "-", *flag, env=env)
    assert [e["url"] for e in events(result)] == [f"https://{host}/"]


def test_every_kind_of_option_from_file_and_environment(tmp_path):
    """Positional logs, a switch, a list, Plausible's own PLAUSIBLE_DOMAIN, a config path
    from the environment: a run with no flags at all."""
    log = write_log(tmp_path / "access.log", "/", "/admin/x", "/b")
    config = tmp_path / "c.toml"
    config.write_text(f'logs = ["{log}"]\ndry-run = true\nkeep-bots = true\noutput = "-"\n'
                      'exclude-path = ["/admin/*"]\n')
    result = run_cli(env={"PLAUSIBLE_IMPORT_CONFIG": str(config),
                          "PLAUSIBLE_DOMAIN": "example.com"})
    assert [(e["domain"], e["url"]) for e in events(result)] == [
        ("example.com", "https://example.com/"), ("example.com", "https://example.com/b")]


def test_a_list_from_a_flag_replaces_the_files_list(tmp_path):
    log = write_log(tmp_path / "access.log", "/a", "/b", "/c")
    config = tmp_path / "c.toml"
    config.write_text('exclude-path = ["/a"]\n')
    base = ("--config", str(config), "send", str(log), "--domain", "example.com", "--dry-run",
            "--keep-bots", "--output", "-")
    assert [e["url"] for e in events(run_cli(*base))] == [
        "https://example.com/b", "https://example.com/c"]
    assert [e["url"] for e in events(run_cli(*base, "--exclude-path", "/b"))] == [
        "https://example.com/a", "https://example.com/c"]
    from_env = run_cli(*base, env={"PLAUSIBLE_IMPORT_EXCLUDE_PATH": "/b '/c'"})
    assert [e["url"] for e in events(from_env)] == ["https://example.com/a"]


def test_logs_on_the_command_line_replace_the_files(tmp_path):
    one, two = write_log(tmp_path / "one.log", "/one"), write_log(tmp_path / "two.log", "/two")
    config = tmp_path / "c.toml"
    config.write_text(f'logs = ["{one}"]\ndomain = "example.com"\ndry-run = true\n'
                      'keep-bots = true\noutput = "-"\n')
    assert [e["url"] for e in events(run_cli("--config", str(config)))] == [
        "https://example.com/one"]
    assert [e["url"] for e in events(run_cli("--config", str(config), "send", str(two)))] == [
        "https://example.com/two"]


@pytest.mark.parametrize("env, file, message", [
    ({"PLAUSIBLE_IMPORT_DRY_RUN": "maybe"}, "", "environment PLAUSIBLE_IMPORT_DRY_RUN: expected"),
    ({}, "concurrency = 0\n", "c.toml: concurrency: expected 1 to"),
    ({}, "concurency = 4\n", "c.toml: concurency: unknown key"),
    ({}, "reset = true\n", "c.toml: reset: a one-off action"),
    ({}, "[jobs.a]\nscheme = \"ftp\"\n", "c.toml: [jobs.a] scheme: 'ftp' is not one of"),
    ({}, "x = [", "c.toml: not valid TOML"),
])
def test_unusable_values_say_where_they_came_from(tmp_path, env, file, message):
    log = write_log(tmp_path / "access.log", "/")
    (tmp_path / "c.toml").write_text(file)
    result = run_cli("--config", str(tmp_path / "c.toml"), "send", str(log), "--domain",
                     "example.com", "--dry-run", env=env)
    assert result.returncode == 2
    assert message in result.stderr
    assert result.stdout == ""


# -- jobs --

def jobs_file(tmp_path: Path) -> Path:
    a, b = write_log(tmp_path / "a.log", "/a1", "/a2"), write_log(tmp_path / "b.log", "/b1")
    config = tmp_path / "jobs.toml"
    config.write_text(f"""\
dry-run = true
keep-bots = true
output = "-"

[jobs.alpha]
domain = "alpha.test"
logs = ["{a}"]

[jobs.beta]
domain = "beta.test"
logs = "{b}"

[jobs.history]
command = "export"
domain = "alpha.test"
logs = ["{a}"]
out = "{tmp_path / 'export'}"
""")
    return config


def test_every_job_in_turn_in_file_order(tmp_path):
    config = jobs_file(tmp_path)
    result = run_cli("--config", str(config))
    assert [(e["domain"], e["url"]) for e in events(result)] == [
        ("alpha.test", "https://alpha.test/a1"), ("alpha.test", "https://alpha.test/a2"),
        ("beta.test", "https://beta.test/b1")]
    assert list((tmp_path / "export").glob("imported_pages_*.csv"))  # the export job ran too
    assert "job alpha: send" in result.stderr and "job history: export" in result.stderr


def test_one_job_or_the_jobs_of_one_command(tmp_path):
    config = jobs_file(tmp_path)
    only_beta = run_cli("--config", str(config), "--job", "beta")
    assert [e["url"] for e in events(only_beta)] == ["https://beta.test/b1"]
    sends = run_cli("--config", str(config), "send")
    assert [e["domain"] for e in events(sends)] == ["alpha.test", "alpha.test", "beta.test"]
    assert not (tmp_path / "export").exists()
    # A command no job has runs once, with the top-level keys.
    formats = run_cli("--config", str(config), "formats")
    assert formats.returncode == 0 and formats.stdout.count("Named formats") == 1


def test_an_unknown_job_lists_the_jobs(tmp_path):
    result = run_cli("--config", str(jobs_file(tmp_path)), "--job", "gamma")
    assert result.returncode == 2
    assert "no [jobs.gamma]; its jobs: alpha, beta, history" in result.stderr


# -- the mechanism is generic: an option added later gets all three spellings --

def toy_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="toy")
    commands = parser.add_subparsers(dest="command")
    run = commands.add_parser("run")
    run.add_argument("items", nargs="+")
    run.add_argument("--frob-level", type=int, default=1)
    run.add_argument("--tag", action="append", default=[])
    run.add_argument("--loud", action="store_true")
    add_global_options(parser)
    return parser


def toy(tmp_path: Path, file: str, env: dict[str, str], *argv: str) -> argparse.Namespace:
    (tmp_path / "t.toml").write_text(file)
    return parse_run(toy_parser(), load(str(tmp_path / "t.toml")), (None, "run"),
                     ["run", *argv], env, name_command=False)


def test_a_new_option_gets_an_environment_variable_and_a_key(tmp_path):
    file = 'items = ["x"]\nfrob-level = 2\ntag = ["a", "b"]\nloud = true\n'
    args = toy(tmp_path, file, {})
    assert (args.items, args.frob_level, args.tag, args.loud) == (["x"], 2, ["a", "b"], True)
    env = {"PLAUSIBLE_IMPORT_FROB_LEVEL": "3", "PLAUSIBLE_IMPORT_TAG": "c 'd e'",
           "PLAUSIBLE_IMPORT_LOUD": "off", "PLAUSIBLE_IMPORT_ITEMS": "y z"}
    args = toy(tmp_path, file, env)
    assert (args.items, args.frob_level, args.tag, args.loud) == (["y", "z"], 3, ["c", "d e"],
                                                                  False)
    args = toy(tmp_path, file, env, "w", "--frob-level", "4", "--tag", "f", "--loud")
    assert (args.items, args.frob_level, args.tag, args.loud) == (["w"], 4, ["f"], True)
    args = toy(tmp_path, "", {}, "v")
    assert (args.items, args.frob_level, args.tag, args.loud) == (["v"], 1, [], False)


def test_a_new_options_bad_value_names_its_key(tmp_path):
    with pytest.raises(ConfigError, match=r"t\.toml: frob-level: invalid int value 'many'"):
        toy(tmp_path, 'frob-level = "many"\n', {}, "x")


# -- check-config --

def test_check_config_accepts_a_good_file(tmp_path):
    result = run_cli("check-config", str(jobs_file(tmp_path)))
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1].endswith("jobs.toml: ok")
    assert "job alpha: send 1 log path for alpha.test" in result.stdout
    assert "job history: export 1 log path for alpha.test to" in result.stdout
    assert result.stderr == ""


def test_check_config_lists_every_problem_and_sends_nothing(tmp_path):
    config = tmp_path / "bad.toml"
    config.write_text('concurency = 3\n[jobs.a]\nlogs = ["/nowhere/*.log"]\n'
                      'format = "nosuchformat"\n[jobs.b]\ndomain = "b.test"\nlogs = "-"\n')
    result = run_cli("check-config", str(config))
    assert result.returncode == 2
    errors = [line for line in result.stderr.splitlines() if ": error: " in line]
    assert len(errors) == 5, result.stderr
    assert result.stdout.splitlines()[-1] == f"{config}: 5 problems"
    assert "warning: " in result.stderr and "/nowhere/*.log matches no file yet" in result.stderr


@pytest.mark.parametrize("file, problem", [
    ("concurency = 3\n", "bad.toml: concurency: unknown key"),
    ("domain = 'x.test'\ndry-run = true\nconcurrency = 'lots'\n", "concurrency: expected 1 to"),
    ("domain = 'x.test'\ndry-run = 'yes'\n", "dry-run: expected true or false, got 'yes'"),
    ("domain = 'x.test'\ndry-run = true\nexclude-path = {a = 1}\n", None),  # a table is a list
    ("dry-run = true\n", "bad.toml: domain: --domain or --domain-map is required"),
    ("domain = 'x.test'\n", "bad.toml: url: missing"),
    ("domain = 'x.test'\ndry-run = true\nformat = 'nosuchformat'\n", "bad.toml: format: "),
    ("domain = 'x.test'\ndry-run = true\ntimezone = 'Mars/Olympus'\n", "unknown time zone"),
    ("[jobs.a]\ncommand = 'export'\ndomain = 'x.test'\n", "[jobs.a]: the following arguments "
                                                           "are required: --out"),
    ("[jobs.a]\ncommand = 7\n", "bad.toml: [jobs.a] command: expected a command name"),
    ("jobs = 3\n", "bad.toml: jobs: expected tables"),
    ("[jobs.a]\nforget = ['x']\n", "[jobs.a] forget: a one-off action"),
    ("[jobs.a]\njob = 'b'\n", "[jobs.a] job: give --job on the command line"),
    ("url = 'https://x.test'\ndomain = 'x.test'\n", None),
])
def test_check_config_finds(tmp_path, file, problem):
    (tmp_path / "bad.toml").write_text(file + "logs = ['-']\n")  # in the last table
    errors, _, _ = check(build_parser, str(tmp_path / "bad.toml"), {})
    if problem is None:
        assert errors == []
    else:
        assert [e for e in errors if problem in e], errors


def test_check_config_reads_the_environment_as_a_run_would(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text("logs = ['-']\ndomain = 'x.test'\n")
    assert check(build_parser, str(path), {})[0]  # url missing
    url = {"PLAUSIBLE_URL": "http://x.test"}
    assert check(build_parser, str(path), url)[0] == []
    _, warnings, _ = check(build_parser, str(path), {**url, "PLAUSIBLE_IMPORT_CONCURENCY": "3"})
    assert warnings == ["environment PLAUSIBLE_IMPORT_CONCURENCY: no such option; ignored"]
