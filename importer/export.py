"""The `export` sink: events -> Plausible's CSV import files, with each visit on its real date.

The pipeline (same parsers, filters and accounting as `send`) hands over events in log order.
Each site's events go through the sessionizer (importer/sessions.py) and into per-day figures
(importer/csvtables.py). Memory is bounded by the traffic of a few days, not by the log:
sessions idle for 30 minutes of log time are closed, and a day is written out and forgotten once
log time is 30 minutes (+ a grace period for lines logged slightly out of order) past its end
and its sessions' user agents are classified (at most LAG_DAYS later).

A session's source, device, browser, OS and location come from its first event. Its user agent
is sent to worker processes for classification as soon as the session starts
(importer/lookups.py), so they do that while this process goes on with the log; the rest is
resolved when the session is closed (its source cached per page URL and referrer), and the
day's tables are added up when the day is written (importer/csvtables.py).
"""
from __future__ import annotations

import math
import os
import zipfile
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo
from functools import lru_cache
from urllib.parse import unquote

from parsers.base import CACHE_LIMIT

from .csvtables import TABLES, Day, TableFiles, day_text
from .events import Event
from .lookups import AgentLookup, GeoIp
from .referrers import resolve_source
from .sessions import TIMEOUT_S, Session, Sessionizer
from .summary import Counters

# Lines are logged when a request ends, so log time can step back by a request's duration; a day
# stays open this long after its last session could have ended.
GRACE_S = 600
# A closed session goes on its day at once if its user agent is known, else in a batch of this
# many; one whose user agent is still being classified waits for a later batch rather than
# stalling the reading, and so does its day, by up to LAG_DAYS.
BATCH = 2000
LAG_DAYS = 2
# System goals whose `url` / `path` prop becomes the link_url / path column
# (Plausible.Goals.SystemGoals).
GOALS_WITH_URL = frozenset(("Outbound Link: Click", "Cloaked Link: Click", "File Download"))
GOALS_WITH_PATH = frozenset(("404", "WP Form Completions", "Form: Submission"))


@lru_cache(maxsize=CACHE_LIMIT)
def page_of(url: str) -> tuple[str, str]:
    """(hostname, pathname) of an event URL as Plausible stores them: host without `www.`,
    path percent-decoded with trailing whitespace removed."""
    start = url.find("://")
    start = 0 if start < 0 else start + 3
    end = len(url)
    for sep in "/?#":
        cut = url.find(sep, start)
        if 0 <= cut < end:
            end = cut
    host = url[start:end].removeprefix("www.")
    path = url[end:]
    for sep in "?#":
        cut = path.find(sep)
        if cut >= 0:
            path = path[:cut]
    if "%" in path:
        path = unquote(path, errors="replace")
    return host, path.rstrip() or "/"


class DayClock:
    """Epoch seconds -> day number (days since 1970-01-01) in the site's time zone."""

    BUCKET_S = 900  # UTC offsets change on quarter hours at the finest

    def __init__(self, zone: tzinfo | None = None) -> None:
        self.zone = zone
        self._offsets: dict[int, float] = {}  # quarter hour -> UTC offset in seconds

    def day(self, t: float) -> int:
        if self.zone is None:
            return int(t // 86400)
        bucket = int(t // self.BUCKET_S)
        offset = self._offsets.get(bucket)
        if offset is None:
            if len(self._offsets) > 10_000:
                self._offsets.clear()
            moment = datetime.fromtimestamp(bucket * self.BUCKET_S, UTC).astimezone(self.zone)
            offset = self._offsets[bucket] = moment.utcoffset().total_seconds()
        return int((t + offset) // 86400)


@dataclass
class SiteSummary:
    domain: str
    directory: str
    first_day: int | None
    last_day: int | None
    rows: dict[str, int]
    totals: dict[str, dict[str, int]]
    paths: list[str] = field(default_factory=list)
    late_events: int = 0

    def as_dict(self) -> dict:
        return {
            "domain": self.domain,
            "first_date": day_text(self.first_day) if self.first_day is not None else None,
            "last_date": day_text(self.last_day) if self.last_day is not None else None,
            "files": self.paths,
            "rows": self.rows,
            "totals": self.totals,
            "late_events": self.late_events,
        }


class SiteExport:
    """One site: sessions, the open days' figures, and its CSV files."""

    def __init__(self, domain: str, directory: str, clock: DayClock, agents: AgentLookup,
                 geoip: GeoIp | None = None) -> None:
        self.domain = domain
        self.clock = clock
        self.agents = agents
        self.geoip = geoip
        tables = [t for t in TABLES if geoip is not None or t != "locations"]
        self.files = TableFiles(directory, tables)
        self.sessions = Sessionizer(self._closed)
        self.days: defaultdict[int, Day] = defaultdict(Day)  # open days, made when first met
        self.written: set[int] = set()
        self.late_events = 0
        self._closed_sessions: list[Session] = []  # not yet on their day
        # User agent being classified -> [first day, its closed sessions...]
        self._waiting: dict[str, list] = {}

    def add(self, event: Event, t: float) -> None:
        number = self.clock.day(t)
        day = self.days[number]
        if number in self.written:
            self.late_events += 1
        if event.name == "pageview":
            hostname, page = page_of(event.url)
            session = self.sessions.add(event, t, page)
            day.pageview(hostname, page, session)
        else:
            name, props = event.name, event.props
            key = (name, props.get("url", "") if name in GOALS_WITH_URL else "",
                   props.get("path", "") if name in GOALS_WITH_PATH else "")
            session = self.sessions.add(event, t, None)
            day.custom_event(key, session)
        if session.first is event:
            self.agents.want(event.user_agent)

    def _closed(self, sessions: list[Session]) -> None:
        """Sessions that ended: on their day at once if their user agent is known (a next
        run: nearly all), else in a later batch."""
        found, pending = self.agents.found, self._closed_sessions
        ready = []
        for session in sessions:
            (pending if found(session.first.user_agent) is None else ready).append(session)
        self._place(ready)
        if len(pending) >= BATCH:
            self._place_closed(before_day=-math.inf)

    def _place_closed(self, before_day: float = math.inf) -> None:
        """Put the closed sessions on the day of their last event. Those whose user agent is
        still being classified wait, by user agent, unless one of them ended before
        `before_day` (its day is due): then the answer is waited for."""
        closed, self._closed_sessions = self._closed_sessions, []
        waiting = self._waiting
        ready = []
        for session in closed:
            ua = session.first.user_agent
            if ua not in waiting and self.agents.ready(ua):
                ready.append(session)
                continue
            day = self.clock.day(session.last)
            entry = waiting.get(ua)
            if entry is None:
                waiting[ua] = [day, session]
            else:
                entry[0] = min(entry[0], day)
                entry.append(session)
        for ua, entry in list(waiting.items()):
            if entry[0] < before_day or self.agents.ready(ua):
                self.agents.get(ua)  # waits for it if need be
                del waiting[ua]
                ready.extend(entry[1:])
        self._place(ready)

    def _place(self, sessions: list[Session]) -> None:
        """Put closed sessions on the day of their last event."""
        days, day_of, geoip = self.days, self.clock.day, self.geoip
        location = None
        for session in sessions:
            first = session.first
            if geoip is not None:
                location = geoip.lookup(first.ip)
            source = resolve_source(first.url, first.referrer)
            days[day_of(session.last)].session(session, source, location)

    def advance(self, now: float) -> None:
        """Log time reached `now`: close idle sessions, write the days nothing can change."""
        self.sessions.close_idle(now)
        done = self.clock.day(now - TIMEOUT_S - GRACE_S)
        if not any(day < done for day in self.days):
            return
        # A day with sessions whose user agent is still being classified stays open, so that
        # reading goes on meanwhile; up to LAG_DAYS, then this waits (memory stays bounded).
        self._place_closed(before_day=done - LAG_DAYS)
        waiting = min((entry[0] for entry in self._waiting.values()), default=done)
        for day in sorted(d for d in self.days if d < min(done, waiting)):
            self._write(day)

    def _write(self, day: int) -> None:
        self.files.write_day(day, self.days.pop(day), self.agents.get)
        self.written.add(day)

    def finish(self) -> SiteSummary:
        self.sessions.close_all()
        self._place_closed()
        for day in sorted(self.days):
            self._write(day)
        paths = self.files.finish()
        return SiteSummary(self.domain, self.files.directory, self.files.first_day,
                           self.files.last_day, self.files.row_counts, self.files.totals, paths,
                           self.late_events)


class ExportSink:
    """The pipeline's sink for `export`: every event submitted ends as `exported`.

    `per_site_dirs`: each site's files go to DIR/<domain>/ (with --domain-map), else to DIR."""

    ADVANCE_S = 60  # check for idle sessions and finished days once a minute of log time

    def __init__(self, out_dir: str, counters: Counters, zone: tzinfo | None = None,
                 geoip_path: str | None = None, per_site_dirs: bool = False,
                 make_zip: bool = False, workers: int = 2) -> None:
        self.out_dir = out_dir
        self.counters = counters
        self.clock = DayClock(zone)
        self.geoip = GeoIp(geoip_path) if geoip_path else None
        self.per_site_dirs = per_site_dirs
        self.make_zip = make_zip
        self.agents = AgentLookup(workers)
        self.sites: dict[str, SiteExport] = {}
        self._routes: dict[str, tuple[SiteExport, ...]] = {}  # an event's domain -> its sites
        self.watermark = float("-inf")
        self._next_advance = float("-inf")
        self.summaries: list[SiteSummary] = []
        self.zips: list[str] = []

    def submit(self, event: Event) -> None:
        t = event.time
        if t is None:  # the export command filters these out (no_time) before they get here
            raise ValueError("export needs each event's time")
        sites = self._routes.get(event.domain)
        if sites is None:
            sites = self._routes[event.domain] = tuple(
                self._site(domain) for domain in event.domain.split(","))
        for site in sites:
            site.add(event, t)
        self.counters.exported += 1
        if t > self.watermark:
            self.watermark = t
            if t >= self._next_advance:
                self._next_advance = t + self.ADVANCE_S
                for site in self.sites.values():
                    site.advance(t)

    def _site(self, domain: str) -> SiteExport:
        site = self.sites.get(domain)
        if site is None:
            directory = os.path.join(self.out_dir, domain) if self.per_site_dirs else self.out_dir
            site = self.sites[domain] = SiteExport(domain, directory, self.clock, self.agents,
                                                   self.geoip)
        return site

    def stop(self) -> None:
        """Ctrl-C: nothing is in flight; what was read is still written by `close`."""

    def close(self) -> None:
        for site in self.sites.values():
            summary = site.finish()
            self.summaries.append(summary)
            if summary.late_events:
                self.counters.warn(
                    f"{summary.domain}: {summary.late_events:,} events came after their day "
                    "had been written (input not in time order?); they are in extra rows for "
                    "that day, where Plausible adds them up")
            if self.make_zip and summary.paths:
                self.zips.append(_zip(summary))
        if not self.summaries:
            self.counters.warn("no events to export: no files written")
        self.agents.close()
        if self.geoip is not None:
            self.geoip.close()

    def as_dict(self) -> dict:
        return {"sites": [s.as_dict() for s in self.summaries], "zips": self.zips}

    def render(self) -> str:
        """The export part of the summary: date range and totals per table, per site."""
        lines = []
        for s in self.summaries:
            if s.first_day is None:
                continue
            days = s.last_day - s.first_day + 1
            lines.append(f"exported {s.domain}: {day_text(s.first_day)} .. "
                         f"{day_text(s.last_day)} ({days} day{'s' * (days != 1)}) "
                         f"-> {s.directory}")
            width = max(map(len, s.rows))
            for table, rows in s.rows.items():
                figures = "  ".join(f"{name} {value:,}" for name, value in s.totals[table].items()
                                    if not name.startswith("total_"))
                lines.append(f"  {table:<{width}}  {rows:>8,} rows  {figures}")
            if days < 3:  # Plausible.Imported.clamp_dates: Date.diff(end, start) >= 2
                lines.append("  note: Plausible's import refuses a range of fewer than 3 days")
        lines.extend(f"zip: {path}" for path in self.zips)
        return "\n".join(lines)


def _zip(summary: SiteSummary) -> str:
    """All the site's files in one archive, as Plausible's own export ships them."""
    name = (f"{summary.domain.replace('.', '_')}_{day_text(summary.first_day)}_"
            f"{day_text(summary.last_day)}.zip").replace("-", "")
    path = os.path.join(summary.directory, name)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for csv_path in summary.paths:
            archive.write(csv_path, os.path.basename(csv_path))
    return path
