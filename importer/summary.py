"""Counters for every line and event, and the summary a run ends with.

Every line read lands in exactly one bucket; `check()` proves the buckets add up:
    lines_read == events + sum(filtered) + duplicates + malformed
and every event ends as sent, dead-lettered, undelivered, exported or (dry run) shown only.
"""
from __future__ import annotations

import json
import threading
from collections import Counter
from dataclasses import dataclass, field, fields

MALFORMED_SHOWN = 5
UNMAPPED_SHOWN = 10  # in the text summary; the JSON lists up to 100


@dataclass
class Counters:
    lines_read: int = 0
    events: int = 0
    sent: int = 0
    exported: int = 0
    dry_run: int = 0  # events a dry run processed without sending
    undelivered: int = 0  # still pending after retries: a rerun sends them
    dead_lettered: int = 0
    duplicates: int = 0
    malformed: int = 0
    dropped_by_server: int = 0  # accepted with 202 but reported dropped (a part of `sent`)
    filtered: Counter = field(default_factory=Counter)
    dropped_by_domain: Counter = field(default_factory=Counter)
    dead_letter_reasons: Counter = field(default_factory=Counter)
    notes: Counter = field(default_factory=Counter)  # not buckets: url_truncated, invalid_utf8...
    warnings: list[str] = field(default_factory=list)
    malformed_samples: list[str] = field(default_factory=list)
    unmapped_hosts: Counter = field(default_factory=Counter)  # --domain-map: host -> lines
    explain: int = 0  # --explain N: keep N sample lines per filter reason
    filter_samples: dict[str, list[str]] = field(default_factory=dict)
    elapsed_s: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def filter(self, reason: str, line: str | None = None) -> None:
        self.filtered[reason] += 1
        if self.explain and line is not None:
            samples = self.filter_samples.setdefault(reason, [])
            if len(samples) < self.explain:
                samples.append(line)

    def malformed_line(self, where: str, reason: str) -> None:
        self.malformed += 1
        if len(self.malformed_samples) < MALFORMED_SHOWN:
            self.malformed_samples.append(f"{where}: {reason}")

    def warn(self, message: str) -> None:
        self.warnings.append(message)

    def check(self) -> list[str]:
        """Broken accounting identities, as messages (empty when the buckets add up)."""
        problems = []
        lines = self.events + sum(self.filtered.values()) + self.duplicates + self.malformed
        if lines != self.lines_read:
            problems.append(f"lines_read {self.lines_read} != buckets {lines}")
        outcomes = (self.sent + self.exported + self.dry_run + self.undelivered
                    + self.dead_lettered)
        if outcomes != self.events:
            problems.append(f"events {self.events} != outcomes {outcomes}")
        return problems

    def as_dict(self) -> dict:
        return {
            "lines_read": self.lines_read,
            "events": self.events,
            "sent": self.sent,
            "exported": self.exported,
            "dry_run": self.dry_run,
            "undelivered": self.undelivered,
            "dead_lettered": self.dead_lettered,
            "filtered": dict(sorted(self.filtered.items())),
            "duplicates": self.duplicates,
            "malformed": self.malformed,
            "dropped_by_server": self.dropped_by_server,
            "dropped_by_domain": dict(self.dropped_by_domain),
            "dead_letter_reasons": dict(self.dead_letter_reasons),
            "notes": dict(sorted(self.notes.items())),
            "warnings": list(self.warnings),
            "malformed_samples": list(self.malformed_samples),
            "unmapped_hosts": dict(self.unmapped_hosts.most_common(100)),
            "filter_samples": {k: list(v) for k, v in sorted(self.filter_samples.items())},
            "elapsed_s": round(self.elapsed_s, 3),
        }

    def to_json(self) -> str:
        return json.dumps(self.as_dict(), indent=2)

    def render(self) -> str:
        """The human summary: one bucket a row, filters indented under their total."""
        rows: list[tuple[str, int]] = [("lines read", self.lines_read)]
        rows.append(("  events", self.events))
        for label, value in (("sent", self.sent), ("exported", self.exported),
                             ("dry run (not sent)", self.dry_run),
                             ("undelivered (rerun to retry)", self.undelivered),
                             ("dead-lettered", self.dead_lettered)):
            if value:
                rows.append(("    " + label, value))
        if self.dropped_by_server:
            rows.append(("    dropped by server (of sent)", self.dropped_by_server))
        rows.append(("  filtered", sum(self.filtered.values())))
        rows.extend(("    " + reason, n) for reason, n in self.filtered.most_common())
        rows.append(("  duplicates", self.duplicates))
        rows.append(("  malformed", self.malformed))
        rows.extend(("  (" + note.replace("_", " ") + ")", n)
                    for note, n in sorted(self.notes.items()))
        width = max(len(label) for label, _ in rows)
        lines = [f"{label:<{width}}  {value:>10,}" for label, value in rows]
        lines.append(f"{'elapsed':<{width}}  {self.elapsed_s:>9.1f}s")
        for domain, n in self.dropped_by_domain.most_common():
            lines.append(f"server dropped {n:,} events for {domain} (bot UA, unknown site, "
                         "ingest limit or shield rules)")
        for reason, n in self.dead_letter_reasons.most_common(5):
            lines.append(f"dead-lettered {n:,}: {reason}")
        if self.malformed_samples:
            lines.append("first malformed lines:")
            lines.extend("  " + s for s in self.malformed_samples)
        if self.unmapped_hosts:
            shown = ", ".join(f"{host} ({n:,})" for host, n in
                              self.unmapped_hosts.most_common(UNMAPPED_SHOWN))
            more = len(self.unmapped_hosts) - UNMAPPED_SHOWN
            lines.append(f"unmapped hosts (add --domain-map HOST=DOMAIN): {shown}"
                         + (f" and {more:,} more" if more > 0 else ""))
        for reason, samples in sorted(self.filter_samples.items()):
            lines.append(f"filtered as {reason}, e.g.:")
            lines.extend("  " + s for s in samples)
        lines.extend("warning: " + w for w in self.warnings)
        return "\n".join(lines)


# -- what a parse worker counted, as a difference, added in the main process (parallel.py) --

def show_progress(bar, position: int, shown: int, lines_read: int) -> int:
    """The progress bar moved on from `shown` to `position` (bytes read, which is returned),
    with the lines read a second so far."""
    bar.update(position - shown)
    elapsed = bar.format_dict["elapsed"] or 1e-9
    bar.set_postfix_str(f"{lines_read / elapsed:,.0f} lines/s", refresh=False)
    return position


def snapshot(counters: Counters) -> dict:
    state = {}
    for f in fields(counters):
        value = getattr(counters, f.name)
        if isinstance(value, Counter):
            state[f.name] = value.copy()
        elif isinstance(value, bool):
            continue
        elif isinstance(value, int | float):
            state[f.name] = value
        elif isinstance(value, list):
            state[f.name] = len(value)
        elif isinstance(value, dict):  # {key: list of samples}
            state[f.name] = {k: len(v) for k, v in value.items()}
    return state


def difference(before: dict, counters: Counters) -> dict:
    delta = {}
    for name, old in before.items():
        value = getattr(counters, name)
        if isinstance(value, Counter):
            changed = value - old
        elif isinstance(value, list):
            changed = value[old:]
        elif isinstance(value, dict):
            changed = {k: v[old.get(k, 0):] for k, v in value.items() if len(v) > old.get(k, 0)}
        else:
            changed = value - old
        if changed:
            delta[name] = changed
    return delta


def merge(counters: Counters, delta: dict) -> None:
    """Add a worker's counts as if counted here, after what was counted so far: samples per
    filter reason keep their first `explain` entries, as `Counters.filter` keeps them."""
    for name, change in delta.items():
        value = getattr(counters, name)
        if isinstance(value, Counter):
            value.update(change)
        elif isinstance(value, list):
            value.extend(change)
        elif isinstance(value, dict):
            for key, items in change.items():
                samples = value.setdefault(key, [])
                samples.extend(items[:max(counters.explain - len(samples), 0)])
        else:
            setattr(counters, name, value + change)
