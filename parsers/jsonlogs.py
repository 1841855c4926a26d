"""JSON-lines access logs: nginx JSON (`escape=json`), Caddy, Traefik JSON, Cloudflare Logpush.

One parser reads them all: a layout names, for each LogRecord field, the keys that may hold
it (a dotted path reaches into nested objects; the first key present wins). A line without
the layout's required keys is not that format, which is what detection relies on. Every key
not used for a LogRecord field is kept in `fields`, flattened with dots (`resp_headers.
Cache-Status`), so any of them can become a prop.

A pasted nginx JSON `log_format` goes through the format-string compiler instead
(`--format nginx:'{"time":"$time_iso8601",...}'`): it knows exactly which variable each key
holds. This preset guesses from the usual key names.
"""
from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field

from .base import LogRecord, ParseError, Parser
from .records import build_record
from .registry import Preset, register
from .timefmt import TimeParser


@dataclass(frozen=True)
class JsonLayout:
    name: str
    description: str
    keys: dict[str, tuple[str, ...]]  # LogRecord field (or request/path/query) -> keys
    required: tuple[str, ...]  # fields a line must have to be this format
    finish: Callable[[dict, dict], None] | None = None  # (line object, record fields)
    paths: dict[str, tuple[tuple[str, ...], ...]] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "paths", {
            target: tuple(tuple(k.split(".")) for k in keys) for target, keys in self.keys.items()})


class JsonParser(Parser):
    def __init__(self, layout: JsonLayout, times: TimeParser) -> None:
        self.layout = layout
        self.name = layout.name
        self.description = layout.description
        self.times = times

    def parse(self, line: str) -> LogRecord:
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ParseError(f"not JSON: {exc.msg}", exc.pos) from None
        if not isinstance(obj, dict):
            raise ParseError("not a JSON object", 0)
        out: dict = {}
        used: set[str] = set()
        for target, paths in self.layout.paths.items():
            for path in paths:
                value = _lookup(obj, path)
                if value is not None and value != "" and not isinstance(value, dict):
                    out[target] = value
                    used.add(".".join(path))
                    break
        missing = [t for t in self.layout.required if t not in out]
        if missing:
            wanted = " / ".join(self.layout.keys[missing[0]])
            raise ParseError(f"no {wanted} key for {self.name}", len(line))
        try:
            record_fields = self._convert(out)
        except ValueError as exc:
            raise ParseError(str(exc)) from None
        if self.layout.finish is not None:
            self.layout.finish(obj, record_fields)
        record_fields["fields"] = {k: v for k, v in _flatten(obj) if k not in used}
        return build_record(record_fields)

    def _convert(self, out: dict) -> dict:
        converted = {}
        for target, value in out.items():
            if target == "time":
                converted["time"] = self.times.auto(value)
            elif target in ("status", "bytes_sent"):
                converted[target] = _int(value)
            else:
                converted[target] = _text(value)
        return converted


def _lookup(obj: dict, path: tuple[str, ...]) -> object:
    if len(path) > 1 and ".".join(path) in obj:  # a key with dots in its name
        return obj[".".join(path)]
    for key in path:
        if not isinstance(obj, dict):
            return None
        obj = obj.get(key)
    return obj


def _text(value: object) -> str:
    if isinstance(value, list):  # Caddy logs each header as a list of values
        return ", ".join(str(v) for v in value)
    return str(value)


def _int(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    text = str(value)
    return int(text) if text.isdecimal() else None


def _flatten(obj: dict, prefix: str = ""):
    for key, value in obj.items():
        name = prefix + key
        if isinstance(value, dict):
            yield from _flatten(value, name + ".")
        elif value is not None:
            yield name, _text(value)


def _caddy_scheme(obj: dict, out: dict) -> None:
    request = obj.get("request")
    if isinstance(request, dict):
        out.setdefault("scheme", "https" if request.get("tls") else "http")


LAYOUTS = (
    JsonLayout(
        "nginx_json", "nginx JSON access log (log_format escape=json), keys named after nginx "
                      "variables or the usual short names",
        {
            "time": ("time_iso8601", "time_local", "@timestamp", "timestamp", "time", "msec",
                     "ts"),
            "client_ip": ("remote_addr", "client_ip", "clientip", "remote_ip", "ip"),
            "request": ("request",),
            "method": ("request_method", "method"),
            "uri": ("request_uri", "uri", "url"),
            "path": ("path", "document_uri"),
            "query": ("args", "query_string"),
            "protocol": ("server_protocol", "protocol"),
            "status": ("status", "status_code"),
            "bytes_sent": ("body_bytes_sent", "bytes_sent", "bytes", "size"),
            "referrer": ("http_referer", "http_referrer", "referer", "referrer"),
            "user_agent": ("http_user_agent", "user_agent", "agent", "ua"),
            "host": ("host", "http_host", "server_name", "vhost"),
            "scheme": ("scheme",),
            "xff": ("http_x_forwarded_for", "x_forwarded_for", "xff"),
            "content_type": ("sent_http_content_type", "content_type"),
        },
        required=("client_ip", "status")),
    JsonLayout(
        "caddy", "Caddy JSON access log (`log { format json }`)",
        {
            "time": ("ts",),
            "client_ip": ("request.client_ip", "request.remote_ip", "request.remote_addr"),
            "method": ("request.method",),
            "uri": ("request.uri",),
            "protocol": ("request.proto",),
            "status": ("status",),
            "bytes_sent": ("size",),
            "referrer": ("request.headers.Referer",),
            "user_agent": ("request.headers.User-Agent",),
            "host": ("request.host",),
            "xff": ("request.headers.X-Forwarded-For",),
            "content_type": ("resp_headers.Content-Type",),
        },
        required=("client_ip", "uri"), finish=_caddy_scheme),
    JsonLayout(
        "traefik_json", "Traefik JSON access log (accessLog.format=json); User-Agent and "
                        "Referer only when its header fields are kept",
        {
            "time": ("StartUTC", "time", "StartLocal"),
            "client_ip": ("ClientHost", "ClientAddr"),
            "method": ("RequestMethod",),
            "uri": ("RequestPath",),
            "protocol": ("RequestProtocol",),
            "status": ("DownstreamStatus", "OriginStatus"),
            "bytes_sent": ("DownstreamContentSize",),
            "referrer": ("request_Referer",),
            "user_agent": ("request_User-Agent",),
            "host": ("RequestHost",),
            "scheme": ("RequestScheme",),
            "xff": ("request_X-Forwarded-For",),
            "content_type": ("downstream_Content-Type",),
        },
        required=("client_ip", "uri")),
    JsonLayout(
        "cloudflare", "Cloudflare Logpush HTTP requests (NDJSON; any timestamp format)",
        {
            "time": ("EdgeStartTimestamp", "EdgeEndTimestamp"),
            "client_ip": ("ClientIP",),
            "method": ("ClientRequestMethod",),
            "uri": ("ClientRequestURI",),
            "path": ("ClientRequestPath",),
            "protocol": ("ClientRequestProtocol",),
            "status": ("EdgeResponseStatus",),
            "bytes_sent": ("EdgeResponseBytes",),
            "referrer": ("ClientRequestReferer",),
            "user_agent": ("ClientRequestUserAgent",),
            "host": ("ClientRequestHost",),
            "scheme": ("ClientRequestScheme",),
            "content_type": ("EdgeResponseContentType",),
        },
        required=("client_ip", "status")),
)

for _layout in LAYOUTS:
    register(Preset(_layout.name, _layout.description,
                    lambda times, layout=_layout: JsonParser(layout, times)))
