"""HAProxy: its `log-format` variables as a third format-string family, and the `option
httplog` preset.

HAProxy logs through syslog, so a line may start with a syslog header; it escapes quotes and
non-ASCII bytes in captured headers as `#XX`; and it logs captured request headers as
`{v1|v2|...}` without their names (the order is the `capture request header` lines of the
config). Which captured value is the Host, the Referer or the User-Agent is told from the
values themselves: a URL is the referrer, a host name the host, anything else the user agent.
"""
from __future__ import annotations

import re
from collections.abc import Sequence

from . import layouts
from .base import LogRecord
from .formatstring import (
    CLF,
    EPOCH,
    FAMILIES,
    INT,
    REQUEST,
    WORD,
    Field,
    FormatParser,
    Kind,
)
from .registry import register_family, register_format_string

# What `option httplog` logs (HAProxy 1.5 to 3.x; 1.x wrote %t and %Tq/%Tt, the same shapes).
HTTPLOG = ("%ci:%cp [%tr] %ft %b/%s %TR/%Tw/%Tc/%Tr/%Ta %ST %B %CC %CS %tsc "
           "%ac/%fc/%bc/%sc/%rc %sq/%bq %hr %hs %{+Q}r")

REQUEST_CAPTURES = "captured_request_headers"
RESPONSE_CAPTURES = "captured_response_headers"
STATUS = Kind(r"-?\d+|-")

VARIABLES: dict[str, tuple[str, Kind]] = {
    "ci": ("client_ip", WORD),
    "t": ("time:clf", CLF),  # local time, no offset: --timezone applies
    "tr": ("time:clf", CLF),
    "T": ("time:clf", CLF),  # GMT, with its +0000
    "Tl": ("time:clf", CLF),
    "trg": ("time:clf", CLF),
    "trl": ("time:clf", CLF),
    "Ts": ("time:epoch", EPOCH),
    "r": ("request", REQUEST),
    "HM": ("method", WORD),
    "HU": ("uri", WORD),
    "HP": ("path", WORD),
    "HPO": ("path", WORD),
    "HQ": ("query", WORD),
    "HV": ("protocol", WORD),
    "ST": ("status", STATUS),
    "B": ("bytes_sent", INT),
}
# Captures are absent when the config captures nothing, and HAProxy then writes no separator
# either: the space after them is part of their pattern.
_CAPTURES = {"hr": REQUEST_CAPTURES, "hs": RESPONSE_CAPTURES}

# %var, %{flags}var, %[sample fetch]; a space right after %hr / %hs is taken with them.
_TOKEN = re.compile(r"%(?:\{([^}]*)\})?(\[[^\]]*\]|[a-zA-Z]+)((?<=hr|hs) )?")


def _field(m: re.Match, quoted: bool) -> str | Field | list[str | Field]:
    flags, name, space = m.group(1) or "", m.group(2), m.group(3)
    if name == "o":  # "apply these flags to every later variable": nothing to match
        return ""
    if name in _CAPTURES:
        return Field(_CAPTURES[name], "fields", r"(?:\{[^}]*\}" + (r"\s+)?" if space else ")?"))
    quote = "+Q" in flags
    target, kind = VARIABLES.get(name, ("fields", WORD))
    field = Field(name, target, layouts.QUOTED if quote or quoted else kind.pattern)
    return ['"', field, '"'] if quote else field


FAMILIES["haproxy"] = (_TOKEN, _field)

# rsyslog's traditional header ("Nov 26 13:06:00 lb1 haproxy[812]: ") or RFC 5424's.
_SYSLOG_HEADER = re.compile(
    r"(?:<\d+>)?(?:[A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d \S+ [\w./-]+(?:\[\d+\])?: "
    r"|1 \S+ \S+ \S+ \S+ \S+ (?:-|\[.*?\]) )")
_HEX_ESCAPE = re.compile(r"#([0-9A-Fa-f]{2})")
_HOST_NAME = re.compile(r"(?:[A-Za-z0-9-]+\.)*[A-Za-z0-9-]+(?::\d+)?|\[[0-9A-Fa-f:.]+\](?::\d+)?")


def unescape(value: str) -> str:
    """HAProxy's `#XX` escapes (quotes, `|{}#`, control and non-ASCII bytes) back to text."""
    if "#" not in value:
        return value
    raw = _HEX_ESCAPE.sub(lambda m: chr(int(m.group(1), 16)), value)
    return raw.encode("latin-1", "replace").decode("utf-8", "replace")


class HAProxyParser(FormatParser):
    """A FormatParser for the haproxy family: strips a syslog header first, then decodes the
    escapes and sorts the captured request headers into host, referrer and user agent."""

    def __init__(self, family: str, fmt: str, **kwargs) -> None:
        # A log-format line in haproxy.cfg escapes its spaces ("%ci:%cp\ [%tr]").
        super().__init__(family, fmt.replace("\\ ", " "), **kwargs)

    def keep_fields(self, names: frozenset[str]) -> None:
        super().keep_fields(names | {REQUEST_CAPTURES})  # parse() reads them

    def table(self, texts: Sequence[str], data: bytes | None = None,
              fields: Sequence[str] = ()) -> None:
        """None: `parse` reads more than the format's columns (a syslog header, escapes, the
        captured headers), so columns would not say what it makes of a line."""
        return None

    def parse(self, line: str) -> LogRecord:
        header = _SYSLOG_HEADER.match(line)
        if header:
            line = line[header.end():]
        if "\\" in line:  # a backslash is not an escape in HAProxy's logs: keep it as one
            line = line.replace("\\", "\\\\")
        record = super().parse(line)
        captures = record.fields.pop(REQUEST_CAPTURES, "").strip()
        if captures:
            record.fields[REQUEST_CAPTURES] = captures
            _sort_captures(record, captures[1:-1].split("|"))
        if record.uri:
            record.uri = unescape(record.uri)
        return record


def _sort_captures(record: LogRecord, values: list[str]) -> None:
    for raw in values:
        value = unescape(raw)
        if not value:
            continue
        if value.startswith(("http://", "https://")):
            record.referrer = record.referrer or value
        elif ("." in value or ":" in value) and _HOST_NAME.fullmatch(value):
            record.host = record.host or value
        else:
            record.user_agent = record.user_agent or value


register_family("haproxy", HAProxyParser)
register_format_string(
    "haproxy", "haproxy", HTTPLOG,
    "HAProxy `option httplog` (bare or behind a syslog header); captured Host, Referer and "
    "User-Agent headers are recognised by their values")
