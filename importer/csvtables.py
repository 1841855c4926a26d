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
from collections import defaultdict
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


# The keys a session is counted under, one table (or three: the user agent's) each.
SOURCE, ENTRY, EXIT, AGENT, LOCATION = range(5)


class Day:
    """Everything one day contributes to the ten tables. Memory: sets of 64-bit ids per page
    and goal, a few list entries per session; never a per-event record.

    A session is listed under each of its keys (its source, entry page, exit page, user agent
    and location) and added up only when the day is written: appending to five lists costs a
    fraction of updating five sets of counters. Most sessions are single-page visits: a bounce
    of 0 seconds and 1 pageview, whose visitor id says all there is; the others also list their
    (bounce, duration, pageviews). One user agent stands for a session's device, browser and OS
    rows."""

    __slots__ = ("pageviews", "pages", "custom", "ids", "figures", "by_agent")

    def __init__(self) -> None:
        self.pageviews = 0  # pageview events, for the visitors table
        self.pages: dict[str, Page] = {}
        self.custom: dict[tuple[str, str, str], list] = {}  # key -> [events, visitor ids]
        # By SOURCE, ENTRY...: key -> the visitor ids of its sessions (one per session) ...
        self.ids = tuple(defaultdict(list) for _ in range(5))
        # ... and the (bounce, duration, pageviews) of those that are not single-page visits.
        self.figures = tuple(defaultdict(list) for _ in range(5))
        self.by_agent: dict[str, Figures] | None = None  # once the day is written

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
        keys = (source, session.entry_page, session.exit_page, session.first.user_agent)
        if location is not None:
            keys += (location,)
        user = session.user_id
        # Without a location, zip leaves the last group (locations) out.
        for group, key in zip(self.ids, keys, strict=False):
            group[key].append(user)
        if session.pageviews != 1 or session.custom_events:  # not a single-page visit
            figures = (session.is_bounce, session.duration, session.pageviews)
            for group, key in zip(self.figures, keys, strict=False):
                group[key].append(figures)

    def rows(self, day: int, tables: Iterable[str],
             describe: Callable[[str], UserAgentInfo]) -> dict[str, list[list]]:
        """The CSV rows of this day, keys sorted, for the given tables; `describe` classifies
        a user agent."""
        when = day_text(day)
        out: dict[str, list[list]] = {}
        for table in tables:
            if table == "pages":
                out[table] = [[when, p.hostname, page, len(p.sessions), len(p.users), p.pageviews,
                               0, 0, 0, 0] for page, p in sorted(self.pages.items())]
            elif table == "custom_events":
                out[table] = [[when, *key, len(users), events]
                              for key, (events, users) in sorted(self.custom.items())]
            elif table == "visitors":
                if self.ids[AGENT] or self.pageviews:
                    total = Figures()
                    for figures in self._by_agent().values():
                        total.merge(figures)
                    metrics = total.metrics()
                    metrics["pageviews"] = self.pageviews  # this table's come from the events
                    out[table] = [[when, *(metrics[c] for c in metric_columns(table))]]
                else:
                    out[table] = []
            else:
                out[table] = _group_rows(when, table, self._groups(table, describe))
        return out

    def _groups(self, table: str, describe: Callable[[str], UserAgentInfo]
                ) -> dict[tuple, Figures]:
        """The figures of this day's sessions by the key columns of `table`'s rows."""
        if table in AGENT_KEYS:
            key_of = AGENT_KEYS[table]
            rolled: dict[tuple, Figures] = {}
            for ua, figures in self._by_agent().items():
                key = key_of(describe(ua))
                total = rolled.get(key)
                if total is None:
                    total = rolled[key] = Figures()
                total.merge(figures)
            return rolled
        by = _BY[table]
        groups = self._figures_by(by)
        if by in (ENTRY, EXIT):  # a page: the one key column (a SourceInfo and a location are
            return {(page,): figures for page, figures in groups.items()}  # tuples of them)
        return groups

    def _by_agent(self) -> dict[str, Figures]:
        """Added up per user agent once, for the device, browser, OS and visitors tables."""
        if self.by_agent is None:
            self.by_agent = self._figures_by(AGENT)
        return self.by_agent

    def _figures_by(self, by: int) -> dict:
        """Key -> the figures of its sessions, for one of SOURCE, ENTRY... ."""
        more = self.figures[by]
        return {key: Figures(ids, more.get(key, ())) for key, ids in self.ids[by].items()}


_BY = {"sources": SOURCE, "entry_pages": ENTRY, "exit_pages": EXIT, "locations": LOCATION}


class Figures:
    """The metrics of a group of sessions."""

    __slots__ = ("visits", "bounces", "duration", "pageviews", "users")

    def __init__(self, ids: list[int] = (), figures: list[tuple] = ()) -> None:
        """`ids`: the visitor id of each session; `figures`: (bounce, duration, pageviews) of
        each that is not a single-page visit."""
        single = len(ids) - len(figures)
        self.visits, self.users = len(ids), set(ids)
        if not figures:
            self.bounces, self.duration, self.pageviews = single, 0, single
            return
        if len(figures) == 1:
            bounce, self.duration, pageviews = figures[0]
            self.bounces, self.pageviews = single + bounce, single + pageviews
            return
        bounces, durations, pageviews = zip(*figures, strict=True)
        self.bounces, self.pageviews = single + sum(bounces), single + sum(pageviews)
        self.duration = sum(durations)

    def merge(self, other: Figures) -> None:
        self.visits += other.visits
        self.bounces += other.bounces
        self.duration += other.duration
        self.pageviews += other.pageviews
        self.users |= other.users

    def metrics(self) -> dict[str, int]:
        return {"visitors": len(self.users), "visits": self.visits, "entrances": self.visits,
                "exits": self.visits, "bounces": self.bounces, "visit_duration": self.duration,
                "pageviews": self.pageviews}


def _group_rows(when: str, table: str, groups: dict[tuple, Figures]) -> list[list]:
    columns = metric_columns(table)
    rows = []
    for key, figures in sorted(groups.items()):
        metrics = figures.metrics()
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
