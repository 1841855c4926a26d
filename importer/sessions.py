"""Visits (sessions) rebuilt from a time-ordered event stream, as Plausible's server builds them.

What the server does (lib/plausible/session/cache_store.ex and ingestion/event.ex, v3.2):
- The visitor id is a keyed hash of (daily salt, User-Agent, IP, domain, ...); salts rotate at
  midnight UTC, and the server keeps the current and the previous one.
- An event joins the visitor's session if the session's last event is at most 30 minutes old
  (the session cache expires entries 30 minutes after their last write). The lookup tries the id
  under today's salt, then under yesterday's, so a visit carries on across midnight UTC; it keeps
  the id it started with and its events are stored under that id too (PR #5065). A visit can
  therefore only go on into the day after the one it started on.
- The first event fixes the source, UTM, device and location; the entry page is the first
  pageview and the exit page the latest; duration = last event - first event.
- Bounce: fewer than two pageviews and no custom event (custom events are interactive unless sent
  with `interactive: false`, which a log never asks for) (PR #5295).
- In the CSV export a session counts on the date of its latest event.

The server's clock never runs backwards; a log's can (by seconds: lines are written when a
request ends), so a session's time only moves forward here.

Memory stays bounded: `close_idle(now)` ends every session idle for more than 30 minutes of log
time, so only the visits of the last half hour are held.
"""
from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Hashable

from .events import Event

TIMEOUT_S = 1800
DAY_S = 86400


class Session:
    """One visit. `first` is its first event (source, UTM, device and location come from it)."""

    __slots__ = ("id", "user_id", "salt_day", "start", "last", "first", "entry_page",
                 "exit_page", "pageviews", "custom_events")

    def __init__(self, sid: int, user_id: int, salt_day: int, first: Event, t: float) -> None:
        self.id = sid
        self.user_id = user_id
        self.salt_day = salt_day
        self.start = self.last = t
        self.first = first
        self.entry_page = self.exit_page = ""
        self.pageviews = self.custom_events = 0  # Sessionizer.add counts the first event too

    @property
    def is_bounce(self) -> bool:
        return self.pageviews < 2 and not self.custom_events

    @property
    def duration(self) -> int:
        return int(self.last - self.start)


def user_id(visitor: Hashable, salt_day: int) -> int:
    """A 64-bit visitor id for one salt day: equal within a run, never stored, never sent."""
    return hash((visitor, salt_day))


class Sessionizer:
    """Assigns each event to its visitor's session; `on_close` gets every session once it can
    take no more events (idle for over 30 minutes of log time, or at `close_all`), in lists
    of those closed together, in the order they went idle."""

    def __init__(self, on_close: Callable[[list[Session]], None],
                 timeout: float = TIMEOUT_S) -> None:
        self.on_close = on_close
        self.timeout = timeout
        # Visitor -> live session, least recently active first: idle ones are found at the front.
        self.live: OrderedDict[Hashable, Session] = OrderedDict()
        self.started = 0

    def add(self, event: Event, t: float, page: str | None) -> Session:
        """Record `event` (logged at `t`; `page` its pathname if it is a pageview, else None)
        and return its session."""
        visitor = event.visitor
        live = self.live
        session = live.get(visitor)
        if session is not None:
            now = t if t > session.last else session.last
            if now - session.last <= self.timeout and int(now // DAY_S) - session.salt_day <= 1:
                session.last = now
                live.move_to_end(visitor)
            else:
                del live[visitor]
                self.on_close([session])
                session = None
        if session is None:
            self.started += 1
            salt_day = int(t // DAY_S)
            session = live[visitor] = Session(self.started, user_id(visitor, salt_day), salt_day,
                                              event, t)
        if page is None:
            session.custom_events += 1
        else:
            if not session.pageviews:
                session.entry_page = page
            session.exit_page = page
            session.pageviews += 1
        return session

    def close_idle(self, now: float) -> None:
        """End the sessions no event at `now` or later can join."""
        live, timeout = self.live, self.timeout
        closed = []
        while live:
            visitor, session = live.popitem(last=False)
            if now - session.last <= timeout:  # and so are all after it: put it back
                live[visitor] = session
                live.move_to_end(visitor, last=False)
                break
            closed.append(session)
        if closed:
            self.on_close(closed)

    def close_all(self) -> None:
        closed = list(self.live.values())
        self.live.clear()
        if closed:
            self.on_close(closed)
