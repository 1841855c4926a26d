"""Plausible's CSV import tables: their columns, one day's figures, and the files they go to.

The columns and their meaning are those of Plausible's own CSV export (lib/plausible/exports.ex),
which its import reads back:
- visitors, sources, entry_pages, exit_pages, locations, devices, browsers, operating_systems are
  grouped from sessions, on the date of each session's latest event: visitors = distinct visitor
  ids, visits (entrances, exits) = sessions, bounces, visit_duration = sum of durations in
  seconds, pageviews = sum of the sessions' pageviews. Only the visitors table takes its
  pageviews from the pageview events of the day instead.
- pages is grouped from pageview events by (date, page): visits = distinct sessions, visitors =
  distinct visitor ids, hostname = one of the events' hostnames. The scroll depth and time on
  page columns need the browser script's engagement events, which a log has not: 0.
- custom_events is grouped from the other events by (date, name, link_url, path).
"""
from __future__ import annotations

import csv
import os
from collections.abc import Callable, Iterable
from datetime import date, timedelta

from .referrers import SourceInfo
from .sessions import Session
from .useragents import UserAgentInfo

TABLES: dict[str, tuple[str, ...]] = {
    "visitors": ("date", "visitors", "pageviews", "bounces", "visits", "visit_duration"),
    "sources": ("date", "source", "referrer", "utm_source", "utm_medium", "utm_campaign",
                "utm_content", "utm_term", "pageviews", "visitors", "visits", "visit_duration",
                "bounces"),
    "pages": ("date", "hostname", "page", "visits", "visitors", "pageviews", "total_scroll_depth",
              "total_scroll_depth_visits", "total_time_on_page", "total_time_on_page_visits"),
    "entry_pages": ("date", "entry_page", "visitors", "entrances", "visit_duration", "bounces",
                    "pageviews"),
    "exit_pages": ("date", "exit_page", "visitors", "visit_duration", "exits", "bounces",
                   "pageviews"),
    "custom_events": ("date", "name", "link_url", "path", "visitors", "events"),
    "locations": ("date", "country", "region", "city", "visitors", "visits", "visit_duration",
                  "bounces", "pageviews"),
    "devices": ("date", "device", "visitors", "visits", "visit_duration", "bounces", "pageviews"),
    "browsers": ("date", "browser", "browser_version", "visitors", "visits", "visit_duration",
                 "bounces", "pageviews"),
    "operating_systems": ("date", "operating_system", "operating_system_version", "visitors",
                          "visits", "visit_duration", "bounces", "pageviews"),
}
# How many key columns follow `date` in each table; the metric columns come after them.
KEY_COLUMNS: dict[str, int] = {
    "visitors": 0, "sources": 7, "pages": 2, "entry_pages": 1, "exit_pages": 1,
    "custom_events": 3, "locations": 3, "devices": 1, "browsers": 2, "operating_systems": 2}
EPOCH = date(1970, 1, 1)


def day_text(day: int) -> str:
    """Days since 1970-01-01 -> YYYY-MM-DD."""
    return (EPOCH + timedelta(days=day)).isoformat()


def file_name(table: str, first_day: int, last_day: int) -> str:
    """`imported_<table>_<YYYYMMDD>_<YYYYMMDD>.csv`, the name Plausible's import reads."""
    def compact(day: int) -> str:
        return day_text(day).replace("-", "")

    return f"imported_{table}_{compact(first_day)}_{compact(last_day)}.csv"


class Page:
    """Pageviews of one page on one day."""

    __slots__ = ("hostname", "pageviews", "sessions", "users")

    def __init__(self, hostname: str) -> None:
        self.hostname = hostname
        self.pageviews = 0
        self.sessions: set[int] = set()
        self.users: set[int] = set()


# What the device, browser and OS tables key a user agent's sessions by.
AGENT_KEYS: dict[str, Callable[[UserAgentInfo], tuple]] = {
    "devices": lambda info: (info.device,),
    "browsers": lambda info: (info.browser, info.browser_version),
    "operating_systems": lambda info: (info.os, info.os_version),
}


# A session that ended on a day, as the day keeps it until it is written: what its first event
# carried (the keys of the session tables' rows) and its figures, in a plain tuple.
SOURCE, ENTRY, EXIT, AGENT, LOCATION, BOUNCE, DURATION, PAGEVIEWS, USER = range(9)


class Day:
    """Everything one day contributes to the ten tables. Memory: sets of 64-bit ids per page
    and goal, and one small tuple per session; never a per-event record.

    Sessions are grouped into the tables' rows only when the day is written: most are
    single-page visits, and a tuple each costs a fraction of updating five groups each. One
    user agent stands for a session's device, browser and OS rows."""

    __slots__ = ("pageviews", "pages", "custom", "sessions")

    def __init__(self) -> None:
        self.pageviews = 0  # pageview events, for the visitors table
        self.pages: dict[str, Page] = {}
        self.custom: dict[tuple[str, str, str], list] = {}  # key -> [events, visitor ids]
        self.sessions: list[tuple] = []  # indexed by SOURCE, ENTRY, ... USER

    def pageview(self, hostname: str, page: str, session: Session) -> None:
        self.pageviews += 1
        entry = self.pages.get(page)
        if entry is None:
            entry = self.pages[page] = Page(hostname)
        entry.pageviews += 1
        entry.sessions.add(session.id)
        entry.users.add(session.user_id)

    def custom_event(self, key: tuple[str, str, str], session: Session) -> None:
        entry = self.custom.get(key)
        if entry is None:
            entry = self.custom[key] = [0, set()]
        entry[0] += 1
        entry[1].add(session.user_id)

    def session(self, session: Session, source: SourceInfo,
                location: tuple[str, str, int] | None) -> None:
        """A session that ended on this day (`location` None: no locations row for it)."""
        self.sessions.append((source, session.entry_page, session.exit_page,
                              session.first.user_agent, location, session.is_bounce,
                              session.duration, session.pageviews, session.user_id))

    def rows(self, day: int, tables: Iterable[str],
             describe: Callable[[str], UserAgentInfo]) -> dict[str, list[list]]:
        """The CSV rows of this day, keys sorted, for the given tables; `describe` classifies
        a user agent."""
        when = day_text(day)
        out: dict[str, list[list]] = {}
        by_agent = None
        for table in tables:
            if table == "pages":
                out[table] = [[when, p.hostname, page, len(p.sessions), len(p.users), p.pageviews,
                               0, 0, 0, 0] for page, p in sorted(self.pages.items())]
            elif table == "custom_events":
                out[table] = [[when, *key, len(users), events]
                              for key, (events, users) in sorted(self.custom.items())]
            elif table == "visitors":
                if self.sessions or self.pageviews:
                    metrics = _metrics(self.sessions)
                    metrics["pageviews"] = self.pageviews  # this table's come from the events
                    out[table] = [[when, *(metrics[c] for c in metric_columns(table))]]
                else:
                    out[table] = []
            elif table in AGENT_KEYS:
                if by_agent is None:
                    by_agent = self._grouped(AGENT)
                key_of = AGENT_KEYS[table]
                rolled: dict[tuple, list[tuple]] = {}
                for ua, sessions in by_agent.items():
                    rolled.setdefault(key_of(describe(ua)), []).extend(sessions)
                out[table] = _group_rows(when, table, rolled)
            else:
                out[table] = _group_rows(when, table, self._grouped(_GROUPED_BY[table]))
        return out

    def _grouped(self, field: int) -> dict:
        """This day's sessions by one of their fields; for a table's rows, keyed by its key
        columns (a session without a location has no locations row)."""
        groups: dict = {}
        for session in self.sessions:
            key = session[field]
            group = groups.get(key)
            if group is None:
                groups[key] = [session]
            else:
                group.append(session)
        if field == LOCATION:
            groups.pop(None, None)
        elif field in (ENTRY, EXIT):  # a page: the one key column
            groups = {(key,): group for key, group in groups.items()}
        return groups


# Which field of a session keys each other session table's rows (a SourceInfo and a location
# are tuples of the key columns already).
_GROUPED_BY = {"sources": SOURCE, "entry_pages": ENTRY, "exit_pages": EXIT,
               "locations": LOCATION}


def _metrics(sessions: list[tuple]) -> dict[str, int]:
    """The figures of a group of sessions, by metric column."""
    if len(sessions) == 1:  # most groups: skip the transposition
        one = sessions[0]
        visitors, visits = 1, 1
        bounces, duration, pageviews = int(one[BOUNCE]), one[DURATION], one[PAGEVIEWS]
    elif sessions:
        columns = tuple(zip(*sessions, strict=True))
        visitors, visits = len(set(columns[USER])), len(sessions)
        bounces, duration = sum(columns[BOUNCE]), sum(columns[DURATION])
        pageviews = sum(columns[PAGEVIEWS])
    else:
        visitors = visits = bounces = duration = pageviews = 0
    return {"visitors": visitors, "visits": visits, "entrances": visits, "exits": visits,
            "bounces": bounces, "visit_duration": duration, "pageviews": pageviews}


def _group_rows(when: str, table: str, groups: dict[tuple, list[tuple]]) -> list[list]:
    columns = metric_columns(table)
    rows = []
    for key, sessions in sorted(groups.items()):
        metrics = _metrics(sessions)
        rows.append([when, *key, *(metrics[c] for c in columns)])
    return rows


class TableFiles:
    """The CSV files of one site, written a day at a time and named with their date range once
    it is known (until then they are hidden `.part` files)."""

    def __init__(self, directory: str, tables: Iterable[str]) -> None:
        os.makedirs(directory, exist_ok=True)
        self.directory = directory
        self.tables = tuple(tables)
        self.first_day: int | None = None
        self.last_day: int | None = None
        self.row_counts = dict.fromkeys(self.tables, 0)
        self.totals = {t: dict.fromkeys(metric_columns(t), 0) for t in self.tables}
        self._files = {}
        self._writers = {}
        for table in self.tables:
            f = open(self._part(table), "w", newline="", encoding="utf-8")  # noqa: SIM115
            self._files[table] = f
            self._writers[table] = csv.writer(f, lineterminator="\n")
            self._writers[table].writerow(TABLES[table])

    def _part(self, table: str) -> str:
        return os.path.join(self.directory, f".imported_{table}.csv.part")

    def write_day(self, day: int, figures: Day, describe: Callable[[str], UserAgentInfo]
                  ) -> None:
        self.first_day = day if self.first_day is None else min(self.first_day, day)
        self.last_day = day if self.last_day is None else max(self.last_day, day)
        for table, rows in figures.rows(day, self.tables, describe).items():
            self._writers[table].writerows(rows)
            self.row_counts[table] += len(rows)
            totals = self.totals[table]
            columns = TABLES[table]
            for row in rows:
                for i, column in enumerate(columns):
                    if column in totals:
                        totals[column] += row[i]

    def finish(self) -> list[str]:
        """Close the files and give them their final names; returns the paths (none if no day
        was written)."""
        for f in self._files.values():
            f.close()
        paths = []
        for table in self.tables:
            if self.first_day is None:
                os.unlink(self._part(table))
                continue
            path = os.path.join(self.directory, file_name(table, self.first_day, self.last_day))
            os.replace(self._part(table), path)
            paths.append(path)
        return paths


def metric_columns(table: str) -> tuple[str, ...]:
    return TABLES[table][1 + KEY_COLUMNS[table]:]
