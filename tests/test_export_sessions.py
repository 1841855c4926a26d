"""The sessionizer on its own: Plausible's 30-minute rule, the salt days, bounces, out-of-order
log lines, and that idle sessions are let go (bounded memory)."""
from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from importer.events import Event
from importer.export import DayClock, page_of
from importer.sessions import Sessionizer


def at(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


def event(when: str, name: str = "pageview", ip: str = "10.0.0.1") -> Event:
    return Event(name=name, url="https://example.com/", domain="example.com", ip=ip,
                 user_agent="UA", time=at(when))


def run(steps: list[tuple[str, str | None]], ip: str = "10.0.0.1"):
    """Feed (time, page or None for a custom event) steps; return the closed sessions."""
    closed = []
    sessions = Sessionizer(closed.extend)
    for when, page in steps:
        e = event(when, "pageview" if page else "404", ip)
        sessions.add(e, e.time, page)
    sessions.close_all()
    return closed


def test_thirty_minutes_exactly_continues_a_visit_a_second_more_starts_another():
    closed = run([("2026-03-01T10:00:00", "/a"), ("2026-03-01T10:30:00", "/b"),
                  ("2026-03-01T11:00:01", "/c")])
    assert [(s.entry_page, s.exit_page, s.pageviews, s.duration) for s in closed] == [
        ("/a", "/b", 2, 1800), ("/c", "/c", 1, 0)]
    assert [s.is_bounce for s in closed] == [False, True]


def test_a_visit_goes_on_across_midnight_utc_with_the_id_of_its_first_day():
    closed = run([("2026-03-01T23:50:00", "/a"), ("2026-03-02T00:10:00", "/b")])
    [visit] = closed
    assert (visit.entry_page, visit.exit_page, visit.duration) == ("/a", "/b", 1200)
    # A visit that starts the next day has that day's id: two ids for one person.
    later = run([("2026-03-01T23:50:00", "/a"), ("2026-03-02T00:10:00", "/b"),
                 ("2026-03-02T01:00:00", "/c")])
    assert later[0].user_id == visit.user_id != later[1].user_id


def test_a_visit_cannot_outlive_the_day_after_it_started():
    # Plausible looks a visit up under today's and yesterday's salt only.
    steps = [("2026-03-01T23:40:00", "/")]
    steps += [(f"2026-03-02T{h:02d}:{m:02d}:00", "/") for h in range(24) for m in (0, 20, 40)]
    steps += [("2026-03-03T00:00:00", "/")]
    closed = run(steps)
    assert len(closed) == 2
    assert closed[0].pageviews == 1 + 72 and closed[1].pageviews == 1


def test_bounce_is_fewer_than_two_pageviews_and_no_custom_event():
    assert run([("2026-03-01T10:00:00", "/")])[0].is_bounce
    # A custom event (File Download, 404) counts as engagement, first or later.
    assert not run([("2026-03-01T10:00:00", "/"), ("2026-03-01T10:01:00", None)])[0].is_bounce
    only_custom = run([("2026-03-01T10:00:00", None)])[0]
    assert not only_custom.is_bounce
    assert (only_custom.entry_page, only_custom.pageviews) == ("", 0)


def test_time_never_runs_backwards_in_a_visit():
    # Lines are logged when requests end: a long request can appear after a later one.
    [visit] = run([("2026-03-01T10:00:10", "/a"), ("2026-03-01T10:00:05", "/b")])
    assert visit.duration == 0 and visit.exit_page == "/b"


def test_idle_sessions_are_let_go_as_log_time_advances():
    closed = []
    sessions = Sessionizer(closed.extend)
    for i in range(100):
        e = event("2026-03-01T10:00:00", ip=f"10.0.0.{i}")
        sessions.add(e, e.time, "/")
    sessions.close_idle(at("2026-03-01T10:30:00"))
    assert not closed and len(sessions.live) == 100
    sessions.close_idle(at("2026-03-01T10:30:01"))
    assert len(closed) == 100 and not sessions.live


def test_days_follow_the_site_time_zone():
    clock = DayClock(ZoneInfo("America/New_York"))
    utc = DayClock()
    t = at("2026-03-02T03:00:00")  # 22:00 on March 1 in New York
    assert utc.day(t) - clock.day(t) == 1
    # March 8 starts at 05:00 UTC (EST) and, clocks going forward that night, ends at 04:00 UTC.
    march_8 = clock.day(at("2026-03-08T05:00:00"))
    assert clock.day(at("2026-03-08T04:59:59")) == march_8 - 1
    assert clock.day(at("2026-03-09T03:59:59")) == march_8
    assert clock.day(at("2026-03-09T04:00:00")) == march_8 + 1


def test_pages_are_stored_as_plausible_stores_them():
    assert page_of("https://www.example.com/a%20b/?q=1") == ("example.com", "/a b/")
    assert page_of("https://example.com") == ("example.com", "/")
    assert page_of("http://example.com/caf%C3%A9#top") == ("example.com", "/café")
