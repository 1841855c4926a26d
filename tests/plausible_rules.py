"""What Plausible's `POST /api/event` does with a request, as plain functions.

Transcribed from plausible/analytics (early 2026): Plug.Parsers as its endpoint sets it up,
lib/plausible/ingestion/request.ex (validation), lib/plausible_web/remote_ip.ex (client IP) and
the bot step of lib/plausible/ingestion/event.ex. Where the code and /work/shared/
plausible-ingestion.md differ, the code wins (e.g. a missing name is `event_name: can't be blank`).
`tests/receiver.py` serves these rules over HTTP.
"""

from __future__ import annotations

import json
import re
import threading
from dataclasses import dataclass, field
from email.message import Message
from typing import Any
from urllib.parse import parse_qsl, unquote

from device_detector import DeviceDetector

MAX_JSON_BODY = 8_000_000  # Plug.Parsers' default :length for parsed bodies
MAX_RAW_BODY = 1_000_000  # Request.parse_body reads no more of a text/plain body
MAX_URL_BYTES = 2000  # the whole URL, query string included
MAX_NAME_CHARS = 120
MAX_PROPS = 30
MAX_PROP_KEY_BYTES = 300
MAX_PROP_VALUE_BYTES = 2000
PROPS_ERROR = "keys should have at most 300 bytes and values 2000 bytes"
UNPARSABLE = {"errors": {"request": ["Unable to parse request body as json"]}}
# System goals whose `path` prop the server fills from the page when the request lacks one.
PATH_GOALS = frozenset({"404", "WP Form Completions", "Form: Submission"})
BROWSER_UA = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/120.0.0.0 Safari/537.36"
)

_CONTENT_TYPE = re.compile(r"\s*([^/\s;]+)/([^\s;]+)")
# Elixir's URI.parse (RFC 3986 appendix B): it never rejects a string.
_URI = re.compile(r"^(([a-z][a-z0-9+\-.]*):)?(//([^/?#]*))?([^?#]*)(\?([^#]*))?(#(.*))?", re.I)
_AUTHORITY = re.compile(r"(^(.*)@)?(\[[a-zA-Z0-9:.]*\]|[^:]*)(:(\d*))?")
_IP_PORT = re.compile(r"((\.\d+)|(\]))(?P<port>:[0-9]+)$")
_FORWARDED_FOR = re.compile(r"for=(?P<for>[^;,]+).*$")


@dataclass(frozen=True)
class Rejection:
    """A request refused before validation: the status and JSON body the server answers."""

    status: int
    body: dict


def _phoenix_error(status: int, message: str) -> Rejection:
    # Plausible's ErrorView fallback for errors raised by plugs (JSON flavour).
    return Rejection(status, {"status": status, "message": message})


def _decode_json(raw: bytes) -> Any:
    """Jason's strictness: UTF-8 only, no NaN/Infinity."""

    def reject(constant: str) -> None:
        raise ValueError(f"not JSON: {constant}")

    return json.loads(raw.decode("utf-8"), parse_constant=reject)


def read_params(content_type: str | None, raw: bytes) -> dict | Rejection:
    """The request's parameters, as the endpoint's parsers and Request.parse_body get them."""
    if content_type is None:
        return {}  # Plug.Parsers leaves an empty map: every required field then fails
    match = _CONTENT_TYPE.match(content_type)
    if match is None:
        return _phoenix_error(415, "Unsupported Media Type")
    kind, sub = match[1].lower(), match[2].lower()
    if kind == "application" and (sub == "json" or sub.endswith("+json")):
        if len(raw) > MAX_JSON_BODY:
            return _phoenix_error(413, "Request Entity Too Large")
        if not raw:
            return {}
        try:
            value = _decode_json(raw)
        except ValueError:
            return _phoenix_error(400, "Bad Request")
        return value if isinstance(value, dict) else {"_json": value}
    if kind == "application" and sub == "x-www-form-urlencoded":  # what `curl -d` sends
        if len(raw) > MAX_RAW_BODY:
            return _phoenix_error(413, "Request Entity Too Large")
        return dict(parse_qsl(raw.decode("utf-8", "replace"), keep_blank_values=True))
    # Any other type passes the parsers untouched and is read raw, up to MAX_RAW_BODY.
    try:
        value = _decode_json(raw) if len(raw) <= MAX_RAW_BODY else None
    except ValueError:
        value = None
    return value if isinstance(value, dict) else Rejection(400, UNPARSABLE)


@dataclass(frozen=True)
class Uri:
    scheme: str | None
    host: str | None  # "" for "http:///x", None when there is no authority at all
    path: str | None


def parse_uri(url: str) -> Uri:
    """Elixir's URI.parse: lowercases the scheme, strips [] from an IPv6 host."""
    match = _URI.match(url)
    scheme = match[2].lower() if match[2] else None
    authority = match[3] or ""
    host: str | None = None
    if authority == "//":
        host = ""
    elif authority:
        found = _AUTHORITY.match(authority[2:])[3]
        host = found.lstrip("[").rstrip("]") if found else None
    return Uri(scheme, host, match[5] or None)


def sanitize_hostname(hostname: str) -> str:
    return hostname.strip().removeprefix("www.")


@dataclass
class Checked:
    """The outcome of Request.build: errors (field -> messages), or what the event carries."""

    errors: dict[str, list[str]] = field(default_factory=dict)
    domains: list[str] = field(default_factory=list)
    hostname: str = "(none)"
    pathname: str = "/"
    props: dict[str, str] = field(default_factory=dict)


def _either(params: dict, *keys: str) -> Any:
    """Elixir's `params["n"] || params["name"]`: only null and false fall through."""
    value = None
    for key in keys:
        value = params.get(key)
        if value is not None and value is not False:
            return value
    return value


def _prop_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)


def _props(params: dict, name: str | None, pathname: str) -> dict[str, str]:
    raw = _either(params, "m", "meta", "p", "props")
    if isinstance(raw, str):
        try:
            raw = _decode_json(raw.encode("utf-8", "surrogatepass"))
        except ValueError:
            raw = None
    if not isinstance(raw, dict):
        raw = {}
    # The server walks the decoded map (key order) and prepends what it keeps, then takes 30:
    # which 30 survive an oversized map is an accident of that walk.
    pairs = [
        (str(key), _prop_text(value))
        for key, value in sorted(raw.items(), key=lambda item: str(item[0]), reverse=True)
        if not isinstance(value, (list, dict))
        and _prop_text(key).lstrip() != ""
        and _prop_text(value).lstrip() != ""
    ]
    if name in PATH_GOALS and all(key != "path" for key, _ in pairs):
        pairs.insert(0, ("path", pathname))
    return dict(pairs[:MAX_PROPS])


def _utf8_len(text: str) -> int:
    return len(text.encode("utf-8", "surrogatepass"))


def check_event(params: dict) -> Checked:
    """Request.build's validation of a parsed body."""
    checked = Checked()
    errors = checked.errors
    uri: Uri | None = None
    url = _either(params, "u", "url")
    if url is None:
        errors["url"] = ["is required"]
    elif not isinstance(url, str) or _utf8_len(url) > MAX_URL_BYTES:
        errors["url"] = ["must be a valid url"]
    elif (parsed := parse_uri(url)).scheme == "data":
        errors["url"] = ["scheme is not allowed"]
    else:
        uri = parsed
        if uri.host:
            checked.hostname = sanitize_hostname(uri.host)
        checked.pathname = unquote(uri.path or "/", errors="replace").rstrip()

    name = _either(params, "n", "name")
    if isinstance(name, int) and not isinstance(name, bool):
        name = str(name)  # Plausible.Ecto.EventName takes integers (404 tracking)
    if name is not None and not isinstance(name, str):
        errors["event_name"] = ["is invalid"]
        name = None
    elif name is None or not name.strip():
        errors["event_name"] = ["can't be blank"]
    elif len(name) > MAX_NAME_CHARS:
        errors["event_name"] = [f"should be at most {MAX_NAME_CHARS} character(s)"]

    domain = _either(params, "d", "domain")
    domain = domain.strip() if isinstance(domain, str) else None
    if domain:
        checked.domains = [sanitize_hostname(part) for part in domain.split(",")]
    elif domain is None and uri is not None and uri.host is not None:
        checked.domains = [sanitize_hostname(uri.host)]
    else:
        errors["domain"] = ["can't be blank"]

    checked.props = _props(params, name, checked.pathname)
    if any(
        _utf8_len(key) > MAX_PROP_KEY_BYTES or _utf8_len(value) > MAX_PROP_VALUE_BYTES
        for key, value in checked.props.items()
    ):
        errors["props"] = [PROPS_ERROR]
    return checked


def _clean_ip(ip_and_port: str) -> str:
    match = _IP_PORT.search(ip_and_port)
    ip = ip_and_port[: match.start("port")] if match else ip_and_port
    return ip.lstrip("[").rstrip("]")


def client_ip(headers: Message, peer: str) -> str | None:
    """PlausibleWeb.RemoteIP.get. None when a `Forwarded` header has no `for=`: the server
    crashes on that (500)."""
    for name in ("X-Plausible-IP", "CF-Connecting-IP"):
        if (value := headers.get(name)) is not None:
            return _clean_ip(value)
    for name in ("B-Forwarded-For", "X-Forwarded-For"):
        if (value := headers.get(name)) is not None:
            return _clean_ip(value.split(",")[0].strip())
    if (value := headers.get("Forwarded")) is not None:
        match = _FORWARDED_FOR.search(value)
        return _clean_ip(match["for"].strip('"')) if match else None
    return peer


_bots: dict[str, bool] = {}
_bots_lock = threading.Lock()


def is_bot(user_agent: str) -> bool:
    """Matomo's bot list plus Headless Chrome, cached per UA (a parse costs 20-40 ms, the first
    one seconds). Serialised: the detector loads its database lazily and is not thread-safe."""
    with _bots_lock:
        if user_agent not in _bots:
            parsed = DeviceDetector(user_agent, skip_device_detection=True, check_cache=False)
            parsed.parse()
            _bots[user_agent] = parsed.is_bot() or parsed.client_name() == "Headless Chrome"
        return _bots[user_agent]
