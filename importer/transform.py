"""Records to events: build the URL, referrer, client IP and UA Plausible should receive."""
from __future__ import annotations

from dataclasses import dataclass

from parsers.base import LogRecord

from .events import Event, Origin


class MalformedRecord(ValueError):
    """A record that parsed but cannot become an event (no client address, no path...)."""


@dataclass
class EventBuilder:
    domain: str
    host: str | None = None  # the host for page URLs; defaults to the domain
    scheme: str = "https"

    def build(self, record: LogRecord, origin: Origin | None = None) -> Event:
        if not record.client_ip:
            raise MalformedRecord("no client address")
        if not record.uri:
            raise MalformedRecord("no request path")
        return Event(
            name="pageview",
            url=self.url_for(record),
            domain=self.domain,
            ip=record.client_ip,
            user_agent=record.user_agent or "",
            time=record.time,
            referrer=record.referrer,
            origin=origin,
        )

    def url_for(self, record: LogRecord) -> str:
        uri = record.uri or "/"
        if "://" in uri.split("?", 1)[0]:  # proxies log absolute targets
            return uri
        if not uri.startswith("/"):
            uri = "/" + uri
        return f"{self.scheme}://{self.host or self.domain}{uri}"
