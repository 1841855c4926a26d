"""The README's main job, run as a user would: the real CLI on sample_logs/."""
from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "sample_logs"

CHROME = ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
          "Chrome/131.0.0.0 Safari/537.36")
IPHONE = ("Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 "
          "(KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1")
FIREFOX_MAC = "Mozilla/5.0 (Macintosh; Intel Mac OS X 14.6; rv:132.0) Gecko/20100101 Firefox/132.0"
LINUX_CHROME = ("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
                "Chrome/130.0.0.0 Safari/537.36")
FIREFOX_WIN = ("Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:133.0) Gecko/20100101 "
               "Firefox/133.0")
PIXEL = ("Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
         "Chrome/131.0.0.0 Mobile Safari/537.36")

# The page visits in sample_logs/nginx_combined.log, worked out by reading it: assets, the
# favicon, robots.txt, a bot, a health probe, curl, a POST, a 404, a TLS handshake on the plain
# port and a cut-off line are not page visits.
NGINX_EXPECTED = [
    # line, ip, user agent, url, referrer
    (1, "203.0.113.10", CHROME, "https://example.com/", "https://www.google.com/"),
    (5, "203.0.113.10", CHROME, "https://example.com/pricing", "https://example.com/"),
    (7, "198.51.100.23", IPHONE, "https://example.com/blog/hello-world?utm_source=newsletter"
        "&utm_medium=email&utm_campaign=nov", None),
    (9, "198.51.100.23", IPHONE, "https://example.com/about",
        "https://example.com/blog/hello-world"),
    (11, "192.0.2.44", FIREFOX_MAC, "https://example.com/contact/thanks",
         "https://example.com/contact"),
    (13, "2001:db8:85a3::8a2e:370:7334", LINUX_CHROME, "https://example.com/docs/",
         "https://news.ycombinator.com/item?id=4242"),
    (14, "2001:db8:85a3::8a2e:370:7334", LINUX_CHROME, "https://example.com/docs/install",
         "https://example.com/docs/"),
    (19, "203.0.113.77", FIREFOX_WIN, "https://example.com/blog/", "https://duckduckgo.com/"),
    (20, "203.0.113.77", FIREFOX_WIN, "https://example.com/blog/second-post",
         "https://example.com/blog/"),
    (24, "192.0.2.201", PIXEL, "https://example.com/pricing?ref=producthunt", None),
]


def run_cli(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PLAUSIBLE")}
    return subprocess.run([sys.executable, "-m", "importer", *args], cwd=ROOT, input=stdin,
                          capture_output=True, env=env, timeout=120)


def test_dry_run_json_buckets_add_up_on_all_samples():
    result = run_cli("send", "sample_logs", "--domain", "example.com", "--dry-run", "--json")
    assert result.returncode == 0, result.stderr.decode()
    summary = json.loads(result.stdout)
    for key in ("lines_read", "events", "sent", "filtered", "duplicates", "malformed",
                "dead_lettered", "dropped_by_server", "elapsed_s"):
        assert key in summary
    total_lines = sum(
        len(p.read_bytes().splitlines()) for p in SAMPLES.glob("*.log"))
    total_lines += sum(len(gzip.decompress(p.read_bytes()).splitlines())
                       for p in SAMPLES.glob("*.gz"))
    assert summary["lines_read"] == total_lines
    assert summary["lines_read"] == (summary["events"] + sum(summary["filtered"].values())
                                     + summary["duplicates"] + summary["malformed"])
    assert summary["sent"] == 0 and summary["events"] > 0


def test_dry_run_output_has_exactly_the_page_visits(tmp_path):
    out = tmp_path / "events.ndjson"
    result = run_cli("send", "sample_logs/nginx_combined.log", "--domain", "example.com",
                     "--dry-run", "--output", str(out))
    assert result.returncode == 0, result.stderr.decode()
    assert out.stat().st_mode & 0o777 == 0o600  # it holds IP addresses
    events = [json.loads(line) for line in out.read_text().splitlines()]
    got = [(int(e["origin"].rsplit(":", 1)[1]), e["headers"]["X-Forwarded-For"],
            e["headers"]["User-Agent"], e["body"]["url"], e["body"].get("referrer"))
           for e in events]
    assert got == NGINX_EXPECTED
    for e in events:
        assert e["body"]["name"] == "pageview" and e["body"]["domain"] == "example.com"
        assert e["headers"]["Content-Type"] == "application/json"
        assert "referrer" not in e["body"] or e["body"]["referrer"] != "-"


def test_malformed_line_is_named_with_file_and_line():
    result = run_cli("send", "sample_logs/nginx_combined.log", "--domain", "example.com",
                     "--dry-run", "--json")
    summary = json.loads(result.stdout)
    assert summary["malformed"] == 1
    assert summary["malformed_samples"][0].startswith("sample_logs/nginx_combined.log:22:")


def test_stdin_and_gzip_are_read(tmp_path):
    plain = (SAMPLES / "apache_common.log").read_bytes()
    from_stdin = run_cli("send", "-", "--domain", "example.com", "--dry-run", "--json",
                         stdin=plain)
    from_file = run_cli("send", "sample_logs/apache_common.log", "--domain", "example.com",
                        "--dry-run", "--json")
    a, b = json.loads(from_stdin.stdout), json.loads(from_file.stdout)
    assert a["events"] == b["events"] > 0 and a["lines_read"] == b["lines_read"] == 10
    gz = run_cli("send", "sample_logs/apache_vhost_combined.log.2.gz", "--domain", "example.com",
                 "--dry-run", "--json")
    assert json.loads(gz.stdout)["lines_read"] == 8


def test_usage_errors_exit_2_and_name_the_problem(tmp_path):
    missing = run_cli("send", "nope.log", "--domain", "example.com", "--dry-run")
    assert missing.returncode == 2 and b"nope.log" in missing.stderr
    no_url = run_cli("send", "sample_logs", "--domain", "example.com")
    assert no_url.returncode == 2 and b"--url" in no_url.stderr
    garbage = tmp_path / "garbage.log"
    garbage.write_text("hello world\nthis is not a log\n")
    unknown = run_cli("send", str(garbage), "--domain", "example.com", "--dry-run")
    assert unknown.returncode == 2 and str(garbage).encode() in unknown.stderr
    assert b"first line" in unknown.stderr
