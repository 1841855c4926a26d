"""Watch the server's `x-plausible-dropped` answers for a change mid-run.

Plausible answers 202 even for events it throws away, and only this header tells. A steady
share of drops (bot user agents, shield rules) is normal for a site; a share that jumps during
a run usually means the site hit its ingest rate limit, which only slowing down cures.
"""
from __future__ import annotations

from dataclasses import dataclass

WINDOW = 200  # answers per judgement: small enough to react within seconds, big enough to mean
JUMP_SHARE = 0.2  # a window is a jump when at least this share was dropped...
JUMP_FACTOR = 2.0  # ...and at least twice the share of the calm windows before it (plus margin)
JUMP_MARGIN = 0.05


@dataclass(frozen=True)
class Judgement:
    domain: str
    share: float  # dropped share in the window just judged
    usual: float | None  # share over the calm windows before it (None: this was the first)
    jump: bool


@dataclass
class _Site:
    seen: int = 0  # in the current window
    dropped: int = 0
    calm_seen: int = 0  # over the calm windows so far: the site's usual share
    calm_dropped: int = 0


class DropMonitor:
    def __init__(self, window: int = WINDOW) -> None:
        self.window = window
        self._sites: dict[str, _Site] = {}

    def observe(self, domain: str, dropped: bool) -> Judgement | None:
        """Record one answer; at the end of each window of `domain`, judge that window."""
        site = self._sites.get(domain)
        if site is None:
            site = self._sites[domain] = _Site()
        site.seen += 1
        site.dropped += dropped
        if site.seen < self.window:
            return None
        share = site.dropped / site.seen
        usual = site.calm_dropped / site.calm_seen if site.calm_seen else None
        jump = (usual is not None and share >= JUMP_SHARE
                and share >= JUMP_FACTOR * usual + JUMP_MARGIN)
        if not jump:
            site.calm_seen += site.seen
            site.calm_dropped += site.dropped
        site.seen = site.dropped = 0
        return Judgement(domain, share, usual, jump)
