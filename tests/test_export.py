"""`export` on a small log whose every figure was worked out by hand, and on real command lines.

The log (all times UTC, site time zone UTC):

    visitor  time              request                          referrer
    B        03-01 10:00:00    /?utm_source=newsletter&...      -
    B        03-01 10:00:01    /static/app.css                  (an asset: filtered)
    B        03-01 10:05:00    /blog                            example.com (internal)
    B        03-01 10:35:00    /blog/post                       30:00 later: the same visit
    C        03-01 12:00:00    /pricing                         m.facebook.com
    bot      03-01 12:30:00    /                                (Googlebot: filtered)
    A        03-01 23:50:00    /                                www.google.com
    A        03-02 00:10:00    /pricing                         goes on across midnight
    A        03-02 00:41:00    /docs                            31:00 later: a new visit
    D        03-02 09:00:00    /                                www.google.de/search?q=x
    D        03-02 09:00:30    /files/report.pdf (download)     example.com/
    E        03-02 15:00:00    /missing (404)                   -

A and D share a user agent (Chrome 120, Windows) but not an address; B and E use Firefox 123 on
Linux; C Safari 17.3 on an iPhone. Visits, each counted on the day of its last event:

    B1  03-01  /, /blog, /blog/post  newsletter (utm)   3 pv  2100 s  not a bounce   id B@03-01
    C1  03-01  /pricing              Facebook           1 pv     0 s  bounce         id C@03-01
    A1  03-02  /, /pricing           Google             2 pv  1200 s  not a bounce   id A@03-01
    A2  03-02  /docs                 (direct: internal) 1 pv     0 s  bounce         id A@03-02
    D1  03-02  / + File Download     Google             1 pv    30 s  not a bounce   id D@03-02
    E1  03-02  404 only              (direct)           0 pv     0 s  not a bounce   id E@03-02

A1 keeps the id of the day it started (Plausible finds it under yesterday's salt), A2 gets the new
day's id: on 03-02 person A is two visitors, as in Plausible.
"""
from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import zipfile
from datetime import datetime
from pathlib import Path

import pytest

from importer.cli import main
from importer.csvtables import TABLES
from tests.bench.genlog import generate
from tests.mmdb import write_mmdb

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

CHROME = ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
          "Chrome/120.0.0.0 Safari/537.36")
FIREFOX = "Mozilla/5.0 (X11; Linux x86_64; rv:123.0) Gecko/20100101 Firefox/123.0"
IPHONE = ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_3 like Mac OS X) AppleWebKit/605.1.15 "
          "(KHTML, like Gecko) Version/17.3 Mobile/15E148 Safari/604.1")
GOOGLEBOT = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"
A, B, C, D, E, BOT = "10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.1.4", "10.0.2.5", "10.9.9.9"
UTM = "?utm_source=newsletter&utm_medium=email&utm_campaign=spring"

LOG = [  # ip, day, time, path, status, referrer, user agent
    (B, "01", "10:00:00", "/" + UTM, 200, "-", FIREFOX),
    (B, "01", "10:00:01", "/static/app.css", 200, "https://example.com/" + UTM, FIREFOX),
    (B, "01", "10:05:00", "/blog", 200, "https://example.com/" + UTM, FIREFOX),
    (B, "01", "10:35:00", "/blog/post", 200, "https://example.com/blog", FIREFOX),
    (C, "01", "12:00:00", "/pricing", 200, "https://m.facebook.com/", IPHONE),
    (BOT, "01", "12:30:00", "/", 200, "-", GOOGLEBOT),
    (A, "01", "23:50:00", "/", 200, "https://www.google.com/", CHROME),
    (A, "02", "00:10:00", "/pricing", 200, "https://example.com/", CHROME),
    (A, "02", "00:41:00", "/docs", 200, "https://example.com/pricing", CHROME),
    (D, "02", "09:00:00", "/", 200, "https://www.google.de/search?q=x", CHROME),
    (D, "02", "09:00:30", "/files/report.pdf", 200, "https://example.com/", CHROME),
    (E, "02", "15:00:00", "/missing", 404, "-", FIREFOX),
]

EXPECTED = {
    "visitors": [
        # 03-01: B1, C1 end here; pageviews are the day's pageview events: B 3, C 1, A 1.
        ["2026-03-01", "2", "5", "1", "2", "2100"],
        # 03-02: A1 (id A@03-01), A2 (A@03-02), D1, E1: 4 visitors; pageviews A 2 + D 1.
        ["2026-03-02", "4", "3", "1", "4", "1230"],
    ],
    "sources": [
        ["2026-03-01", "Facebook", "m.facebook.com", "", "", "", "", "", "1", "1", "1", "0", "1"],
        ["2026-03-01", "newsletter", "", "newsletter", "email", "spring", "", "", "3", "1", "1",
         "2100", "0"],
        ["2026-03-02", "", "", "", "", "", "", "", "1", "2", "2", "0", "1"],  # A2, E1
        ["2026-03-02", "Google", "google.com", "", "", "", "", "", "2", "1", "1", "1200", "0"],
        ["2026-03-02", "Google", "google.de/search", "", "", "", "", "", "1", "1", "1", "30",
         "0"],
    ],
    "pages": [  # pageview events by day and page: visits = sessions, visitors = ids
        ["2026-03-01", "example.com", "/", "2", "2", "2", "0", "0", "0", "0"],  # A1, B1
        ["2026-03-01", "example.com", "/blog", "1", "1", "1", "0", "0", "0", "0"],
        ["2026-03-01", "example.com", "/blog/post", "1", "1", "1", "0", "0", "0", "0"],
        ["2026-03-01", "example.com", "/pricing", "1", "1", "1", "0", "0", "0", "0"],  # C1
        ["2026-03-02", "example.com", "/", "1", "1", "1", "0", "0", "0", "0"],  # D1
        ["2026-03-02", "example.com", "/docs", "1", "1", "1", "0", "0", "0", "0"],  # A2
        ["2026-03-02", "example.com", "/pricing", "1", "1", "1", "0", "0", "0", "0"],  # A1
    ],
    "entry_pages": [
        ["2026-03-01", "/", "1", "1", "2100", "0", "3"],
        ["2026-03-01", "/pricing", "1", "1", "0", "1", "1"],
        ["2026-03-02", "", "1", "1", "0", "0", "0"],  # E1 saw no page, as Plausible stores it
        ["2026-03-02", "/", "2", "2", "1230", "0", "3"],  # A1, D1
        ["2026-03-02", "/docs", "1", "1", "0", "1", "1"],
    ],
    "exit_pages": [
        ["2026-03-01", "/blog/post", "1", "2100", "1", "0", "3"],
        ["2026-03-01", "/pricing", "1", "0", "1", "1", "1"],
        ["2026-03-02", "", "1", "0", "1", "0", "0"],
        ["2026-03-02", "/", "1", "30", "1", "0", "1"],
        ["2026-03-02", "/docs", "1", "0", "1", "1", "1"],
        ["2026-03-02", "/pricing", "1", "1200", "1", "0", "2"],
    ],
    "custom_events": [
        ["2026-03-02", "404", "", "/missing", "1", "1"],
        ["2026-03-02", "File Download", "https://example.com/files/report.pdf", "", "1", "1"],
    ],
    "devices": [
        ["2026-03-01", "Desktop", "1", "1", "2100", "0", "3"],
        ["2026-03-01", "Mobile", "1", "1", "0", "1", "1"],
        ["2026-03-02", "Desktop", "4", "4", "1230", "1", "4"],
    ],
    "browsers": [
        ["2026-03-01", "Firefox", "123.0", "1", "1", "2100", "0", "3"],
        ["2026-03-01", "Safari", "17.3", "1", "1", "0", "1", "1"],
        ["2026-03-02", "Chrome", "120.0", "3", "3", "1230", "1", "4"],  # A1, A2, D1
        ["2026-03-02", "Firefox", "123.0", "1", "1", "0", "0", "0"],  # E1
    ],
    "operating_systems": [
        ["2026-03-01", "GNU/Linux", "", "1", "1", "2100", "0", "3"],
        ["2026-03-01", "iOS", "17.3", "1", "1", "0", "1", "1"],
        ["2026-03-02", "GNU/Linux", "", "1", "1", "0", "0", "0"],
        ["2026-03-02", "Windows", "10", "3", "3", "1230", "1", "4"],
    ],
}


def combined(ip: str, day: str, time: str, path: str, status: int, referrer: str,
             ua: str) -> str:
    return (f'{ip} - - [{day}/Mar/2026:{time} +0000] "GET {path} HTTP/1.1" {status} 512 '
            f'"{referrer}" "{ua}"')


def read_tables(directory: str) -> dict[str, list[list[str]]]:
    """{table: rows} of the CSV files in `directory`; checks each header exactly."""
    tables = {}
    for name in sorted(os.listdir(directory)):
        if not name.endswith(".csv"):
            continue
        table = name.removeprefix("imported_").rsplit("_", 2)[0]
        with open(os.path.join(directory, name), newline="", encoding="utf-8") as f:
            header, *rows = csv.reader(f)
        assert tuple(header) == TABLES[table], name
        tables[table] = rows
    return tables


@pytest.fixture
def log_file(tmp_path):
    path = tmp_path / "access.log"
    path.write_text("".join(combined(*row) + "\n" for row in LOG))
    return str(path)


def export(capsys, *args: str) -> dict:
    """Run `export` in this process: with --workers 1, device-detector stays warm across tests
    (the command-line test below runs it as a user would, with worker processes)."""
    assert main(["export", *args, "--json", "--no-progress", "--workers", "1"]) == 0
    return json.loads(capsys.readouterr().out)


@pytest.fixture
def geo_file(tmp_path):
    path = str(tmp_path / "geo.mmdb")
    write_mmdb(path, {
        "10.0.0.0/24": {"country": {"iso_code": "DE"}, "subdivisions": [{"iso_code": "BE"}],
                        "city": {"geoname_id": 2950159}},  # A, B, C: Berlin
        "10.0.1.0/24": {"country": {"iso_code": "US"}},  # D: no region or city
        "10.0.2.0/24": {"country": {"iso_code": "ZZ"}},  # E: unknown: no row
    })
    return path


def test_every_table_matches_the_figures_worked_out_by_hand(log_file, geo_file, tmp_path,
                                                            capsys):
    out = str(tmp_path / "out")
    summary = export(capsys, log_file, "--domain", "example.com", "--out", out,
                     "--track-downloads", "--track-404", "--geoip", geo_file)
    assert (summary["lines_read"], summary["exported"]) == (12, 10)
    assert summary["filtered"] == {"asset": 1, "bot": 1}
    tables = read_tables(out)
    for table, rows in EXPECTED.items():
        assert tables[table] == rows, table
    assert tables["locations"] == [
        # B1 and C1 from Berlin; on 03-02 A's two visits (two ids) and D1 from the US; E's
        # country is unknown (ZZ), so E1 has no row, as in Plausible's export.
        ["2026-03-01", "DE", "DE-BE", "2950159", "2", "2", "2100", "1", "4"],
        ["2026-03-02", "DE", "DE-BE", "2950159", "2", "2", "1200", "1", "3"],
        ["2026-03-02", "US", "", "0", "1", "1", "30", "0", "1"],
    ]
    [site] = summary["export"]["sites"]
    assert (site["first_date"], site["last_date"]) == ("2026-03-01", "2026-03-02")
    assert sorted(os.path.basename(p) for p in site["files"]) == sorted(
        f"imported_{t}_20260301_20260302.csv" for t in TABLES)
    assert site["totals"]["visitors"]["visits"] == 6


def test_rows_are_dated_in_the_site_time_zone(log_file, tmp_path, capsys):
    out = str(tmp_path / "out")
    export(capsys, log_file, "--domain", "example.com", "--out", out,
           "--site-timezone", "Asia/Tokyo")
    visitors = read_tables(out)["visitors"]
    # +09:00: from 03-01 15:00 UTC on it is March 2 in Tokyo. March 1: B's 3 pageviews and C's
    # (19:00-21:00 JST). March 2: A's 3 (08:50-09:41 JST) and D's (18:00 JST).
    assert [row[0] for row in visitors] == ["2026-03-01", "2026-03-02"]
    assert [row[2] for row in visitors] == ["4", "4"]
    # A date for --until is a day of the site too: up to the end of March 1 in Tokyo.
    summary = export(capsys, log_file, "--domain", "example.com", "--out", str(tmp_path / "o2"),
                     "--site-timezone", "Asia/Tokyo", "--until", "2026-03-01")
    assert read_tables(str(tmp_path / "o2"))["visitors"] == [
        ["2026-03-01", "2", "4", "1", "2", "2100"]]
    assert summary["filtered"]["after_until"] == 6


def test_locations_only_with_geoip_and_since_until_cut_the_days(log_file, tmp_path, capsys):
    out = str(tmp_path / "out")
    summary = export(capsys, log_file, "--domain", "example.com", "--out", out,
                     "--since", "2026-03-02")
    tables = read_tables(out)
    assert "locations" not in tables
    # Only 03-02's pageviews (no --track-* options: the download and the 404 are filtered):
    # A at 00:10 now starts a visit, A at 00:41 another (both with A's 03-02 id), D one.
    assert tables["visitors"] == [["2026-03-02", "2", "3", "3", "3", "0"]]
    assert summary["filtered"]["before_since"] == 7


def test_round_trip_totals_agree_with_the_event_stream(tmp_path, capsys):
    """The same log through `send --dry-run --output` (the events) and `export` (the tables):
    every table's totals must follow from the events, with visits rebuilt independently."""
    log = tmp_path / "gen.log"
    log.write_text("".join(line + "\n" for line in generate(20_000, "combined", seed=7,
                                                              days=3.0)))
    options = ["--domain", "example.com", "--track-downloads", "--track-404", "--no-progress"]
    events_file = tmp_path / "events.ndjson"
    assert main(["send", str(log), "--dry-run", "--output", str(events_file), "--workers", "1",
                 *options]) == 0
    capsys.readouterr()
    events = [json.loads(line) for line in events_file.read_text().splitlines()]
    out = str(tmp_path / "out")
    summary = export(capsys, str(log), "--out", out, *options)
    tables = read_tables(out)

    def total(table: str, column: str) -> int:
        index = TABLES[table].index(column)
        return sum(int(row[index]) for row in tables[table])

    pageviews = sum(e["body"]["name"] == "pageview" for e in events)
    assert summary["exported"] == len(events) > 1000
    assert total("pages", "pageviews") == total("visitors", "pageviews") == pageviews
    assert total("custom_events", "events") == len(events) - pageviews > 0
    visits = independent_visits(events)
    assert len(visits) > 100
    for table, column in [("visitors", "visits"), ("sources", "visits"),
                          ("entry_pages", "entrances"), ("exit_pages", "exits"),
                          ("devices", "visits"), ("browsers", "visits"),
                          ("operating_systems", "visits")]:
        assert total(table, column) == len(visits), table
        assert total(table, "bounces") == sum(v["bounce"] for v in visits), table
        assert total(table, "visit_duration") == sum(v["duration"] for v in visits), table
        if table != "visitors":
            assert total(table, "pageviews") == pageviews, table
    # Every pageview's page is in the pages table, with the visits that saw it.
    assert total("pages", "visits") >= len({v["id"] for v in visits if v["pageviews"]})


def independent_visits(events: list[dict]) -> list[dict]:
    """Visits rebuilt from the event stream with Plausible's rules, written out plainly."""
    visits, live = [], {}
    for e in events:
        t = datetime.fromisoformat(e["time"]).timestamp()
        visitor = (e["headers"]["X-Forwarded-For"], e["headers"]["User-Agent"],
                   e["body"]["domain"])
        visit = live.get(visitor)
        if visit is None or t - visit["last"] > 1800 or t // 86400 - visit["day"] > 1:
            visit = live[visitor] = {"id": len(visits), "start": t, "last": t, "day": t // 86400,
                                     "pageviews": 0, "custom": 0}
            visits.append(visit)
        visit["last"] = max(visit["last"], t)
        if e["body"]["name"] == "pageview":
            visit["pageviews"] += 1
        else:
            visit["custom"] += 1
    for visit in visits:
        visit["bounce"] = visit["pageviews"] < 2 and not visit["custom"]
        visit["duration"] = int(visit["last"] - visit["start"])
    return visits


def test_the_command_as_a_user_runs_it(tmp_path):
    out = tmp_path / "import"
    done = subprocess.run(
        [sys.executable, "-m", "importer", "export", "sample_logs/nginx_combined.log",
         "--domain", "example.com", "--out", str(out), "--zip"],
        capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    assert "exported example.com: 2026-11-24 .. 2026-11-24 (1 day)" in done.stdout
    assert "Plausible's import refuses a range of fewer than 3 days" in done.stdout
    names = sorted(p.name for p in out.glob("*.csv"))
    assert names == sorted(f"imported_{t}_20261124_20261124.csv" for t in TABLES
                           if t != "locations")
    [archive] = out.glob("*.zip")
    assert sorted(zipfile.ZipFile(archive).namelist()) == names
    tables = read_tables(str(out))
    assert int(tables["visitors"][0][2]) == sum(int(row[5]) for row in tables["pages"])
    assert not list(out.glob(".*.part"))


def test_usage_errors(tmp_path, capsys):
    log = tmp_path / "a.log"
    log.write_text("")
    base = ["export", str(log), "--domain", "example.com", "--out", str(tmp_path / "o")]
    assert main([*base, "--site-timezone", "Mars/Olympus"]) == 2
    assert "unknown time zone" in capsys.readouterr().err
    assert main([*base, "--geoip", str(tmp_path / "missing.mmdb")]) == 2
    assert "--geoip" in capsys.readouterr().err
    assert main(["export", str(log), "--domain", "example.com", "--out", str(log)]) == 2
    assert "--out" in capsys.readouterr().err


def test_each_site_of_a_domain_map_gets_its_own_folder(tmp_path, capsys):
    log = tmp_path / "vhosts.log"
    log.write_text("".join(
        f"{host}:443 " + combined(ip, "01", time, "/", 200, "-", FIREFOX) + "\n"
        for host, ip, time in [("www.shop.test", A, "10:00:00"), ("blog.test", A, "10:01:00"),
                               ("shop.test", B, "10:02:00"), ("other.test", C, "10:03:00")]))
    out = tmp_path / "out"
    summary = export(capsys, str(log), "--format", "vhost_combined", "--out", str(out),
                     "--domain-map", "shop.test=shop.test", "--domain-map", "blog.test=blog.test")
    assert summary["filtered"] == {"unmapped_host": 1}
    # www. is dropped as Plausible does: A and B both visit shop.test; A's visit to blog.test is
    # another site's.
    assert read_tables(str(out / "shop.test"))["visitors"] == [
        ["2026-03-01", "2", "2", "2", "2", "0"]]
    assert read_tables(str(out / "blog.test"))["visitors"] == [
        ["2026-03-01", "1", "1", "1", "1", "0"]]
    # One event for two sites (--domain a,b, as the Events API takes it): both get it.
    out = tmp_path / "both"
    export(capsys, str(log), "--format", "vhost_combined", "--out", str(out),
           "--domain", "shop.test,blog.test")
    for site in ("shop.test", "blog.test"):
        assert read_tables(str(out / site))["visitors"] == [
            ["2026-03-01", "3", "4", "2", "3", "60"]], site


def test_a_log_given_twice_counts_once(log_file, tmp_path, capsys):
    copy = tmp_path / "access.log.1"
    copy.write_bytes(Path(log_file).read_bytes())
    out = str(tmp_path / "out")
    summary = export(capsys, log_file, str(copy), "--domain", "example.com", "--out", out,
                     "--track-downloads", "--track-404")
    # The copy is recognised by its content (importer/state.py) and not read again.
    assert (summary["lines_read"], summary["exported"]) == (12, 10)
    assert summary["notes"]["already_imported_lines"] == 12
    tables = read_tables(out)
    assert tables["visitors"] == EXPECTED["visitors"]
    assert tables["pages"] == EXPECTED["pages"]
