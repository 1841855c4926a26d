"""Real web servers (Debian's packages) on 127.0.0.1, driven with known requests, for log tests.

Each server class writes a self-contained config into a fresh directory under the test's
`tmp_path`, serves a small static site, and writes its access log to `server.log_path`:

    with NginxServer(tmp_path, log_format="json") as srv:
        sent = drive(srv.url, SAMPLE_REQUESTS)
        lines = srv.wait_for_lines(len(sent))

`start()` returns only once a probe request has gone all the way into the access log (so a
late-attaching logger such as varnishncsa is live), then empties the log: it holds only the
test's own requests. Every wait is bounded; a server that does not come up raises with the
tail of its error output. A missing binary skips the test, or fails it under CI
(`require_binary`).

Client IP: requests carry the visitor's address in X-Forwarded-For, and each server is set up so
that its log shows it (nginx realip, Apache mod_remoteip, HAProxy `set-src`); Caddy 2.6 and
Varnish cannot rewrite the client address, so they log the header itself (see each class).
"""
from __future__ import annotations

import base64
import contextlib
import http.client
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, ClassVar, Self
from urllib.parse import urlsplit

import pytest

START_TIMEOUT = 20.0  # varnishd compiles its VCL with cc on start: slow on a busy CI box
STOP_TIMEOUT = 5.0
REQUEST_TIMEOUT = 5.0
LOG_TIMEOUT = 10.0
DRIVE_TIMEOUT = 30.0
MAX_REQUESTS = 200
SITE_HOST = "www.example.com"

# Debian puts daemons in sbin, which a non-root PATH may lack.
_SEARCH_PATH = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"])


def require_binary(name: str) -> str:
    """Path of `name`; skip the calling test if it is missing, or fail it when CI is set."""
    path = shutil.which(name, path=_SEARCH_PATH)
    if path:
        return path
    reason = f"{name} is not installed (Debian: apt-get install the package that ships it)"
    if os.environ.get("CI", "").lower() not in ("", "0", "false"):
        pytest.fail(f"{reason}; CI must have every server binary")
    pytest.skip(reason)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# --- the static site --------------------------------------------------------------------------

_PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAQAAAC1HAwCAAAAC0lEQVR42mNkYAAAAAYAAjCB0C8AAAAASUVORK5CYII="
)
_PDF = (
    b"%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n"
    b"2 0 obj<</Type/Pages/Kids[3 0 R]/Count 1>>endobj\n"
    b"3 0 obj<</Type/Page/Parent 2 0 R/MediaBox[0 0 200 200]>>endobj\n"
    b"trailer<</Root 1 0 R>>\n%%EOF\n"
)


def _page(title: str) -> bytes:
    return (
        f"<!doctype html><html><head><title>{title}</title>"
        '<link rel="stylesheet" href="/assets/site.css"><script src="/assets/app.js"></script>'
        f'</head><body><h1>{title}</h1><img src="/img/logo.png"></body></html>\n'
    ).encode()


SITE_FILES: dict[str, bytes] = {
    "index.html": _page("Home"),
    "about/index.html": _page("About"),
    "blog/post.html": _page("A post"),
    "assets/site.css": b"body { font-family: sans-serif; }\n",
    "assets/app.js": b"console.log('hello');\n",
    "img/logo.png": _PNG,
    "docs/guide.pdf": _PDF,
}
# URL paths that answer 200; anything else is a 404.
SITE_PATHS = ("/", "/about/", "/blog/post.html", "/assets/site.css", "/assets/app.js",
              "/img/logo.png", "/docs/guide.pdf")
MIME_TYPES = {"html": "text/html", "css": "text/css", "js": "application/javascript",
              "png": "image/png", "pdf": "application/pdf"}


def make_site(root: Path) -> Path:
    for name, body in SITE_FILES.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(body)
    return root


# --- requests ---------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Request:
    """One request to send. `client_ip` goes out as X-Forwarded-For; None fields are not sent
    (no User-Agent at all, say), except `host`: None lets http.client send "127.0.0.1:port"."""

    path: str = "/"  # path with query, sent as-is
    method: str = "GET"
    user_agent: str | None = None
    referrer: str | None = None
    client_ip: str | None = None
    host: str | None = SITE_HOST

    def headers(self) -> list[tuple[str, str]]:
        named = [("Host", self.host), ("User-Agent", self.user_agent),
                 ("Referer", self.referrer), ("X-Forwarded-For", self.client_ip)]
        return [(k, v) for k, v in named if v is not None]


@dataclass(frozen=True, slots=True)
class Sent:
    request: Request
    status: int
    body_bytes: int
    started: float  # time.time() just before sending: log timestamps fall in [started, finished]
    finished: float


FIREFOX = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"
CHROME = ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
          "Chrome/126.0.0.0 Safari/537.36")
IPHONE = ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 "
          "(KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1")
GOOGLEBOT = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"

# A varied set for parser tests: every site page, a 404, a HEAD, query strings, IPv6, a bot, a
# quote in a User-Agent (each server escapes it differently), and a bare request (no UA, no
# referrer, no X-Forwarded-For: the server logs 127.0.0.1).
SAMPLE_REQUESTS: tuple[Request, ...] = (
    Request("/", user_agent=FIREFOX, referrer="https://www.google.com/", client_ip="203.0.113.10"),
    Request("/about/", user_agent=CHROME, referrer="https://www.example.com/",
            client_ip="198.51.100.7"),
    Request("/blog/post.html?utm_source=newsletter&utm_medium=email", user_agent=IPHONE,
            client_ip="2001:db8::42"),
    Request("/assets/site.css", user_agent=FIREFOX, referrer="https://www.example.com/",
            client_ip="203.0.113.10"),
    Request("/assets/app.js", user_agent=FIREFOX, referrer="https://www.example.com/",
            client_ip="203.0.113.10"),
    Request("/img/logo.png", user_agent=CHROME, referrer="https://www.example.com/about/",
            client_ip="198.51.100.7"),
    Request("/docs/guide.pdf", user_agent='Mozilla/5.0 (X11; "quoted" build)',
            referrer="https://news.example.org/item?id=1", client_ip="192.0.2.55"),
    Request("/no-such-page", user_agent=GOOGLEBOT, client_ip="66.249.66.1"),
    Request("/about/", method="HEAD", user_agent=CHROME, client_ip="198.51.100.7"),
    Request("/", host=None),
)


def drive(base_url: str, requests: list[Request] | tuple[Request, ...],
          timeout: float = REQUEST_TIMEOUT) -> list[Sent]:
    """Send `requests` one after another, each on its own connection, and return them with the
    status received, in order (so log line i belongs to request i)."""
    if len(requests) > MAX_REQUESTS:
        raise ValueError(f"{len(requests)} requests, at most {MAX_REQUESTS}")
    url = urlsplit(base_url)
    deadline = time.monotonic() + DRIVE_TIMEOUT
    sent = []
    for req in requests:
        if time.monotonic() > deadline:
            raise TimeoutError(f"drive: {len(sent)} of {len(requests)} sent in {DRIVE_TIMEOUT}s")
        conn = http.client.HTTPConnection(url.hostname, url.port, timeout=timeout)
        try:
            started = time.time()
            conn.putrequest(req.method, req.path, skip_host=req.host is not None,
                            skip_accept_encoding=True)
            for name, value in req.headers():
                conn.putheader(name, value)
            conn.endheaders()
            resp = conn.getresponse()
            body = resp.read()
            sent.append(Sent(req, resp.status, len(body), started, time.time()))
        finally:
            conn.close()
    return sent


def wait_for_lines(path: Path, count: int, timeout: float = LOG_TIMEOUT) -> list[str]:
    """The complete lines of `path` once it has at least `count` of them (loggers may write
    asynchronously). A partial last line is not returned."""
    deadline = time.monotonic() + timeout
    while True:
        text = path.read_text(encoding="utf-8", errors="surrogateescape") if path.exists() else ""
        lines = text.split("\n")[:-1]
        if len(lines) >= count:
            return lines
        if time.monotonic() > deadline:
            raise TimeoutError(f"{path}: {len(lines)} of {count} lines after {timeout}s")
        time.sleep(0.02)


# --- servers ----------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Launch:
    """A process to start. When `stdout` is given, its output is appended there through a pipe
    (HAProxy logs to stdout, and clears O_APPEND on a file it gets as stdout)."""

    argv: list[str]
    stdout: Path | None = None
    env: dict[str, str] | None = None


def _relay(src: IO[bytes], dest: Path) -> None:
    with src, open(dest, "ab", buffering=0) as out:
        for line in iter(src.readline, b""):
            out.write(line)


def _preset(presets: dict[str, str], log_format: str) -> tuple[str, str]:
    """(name, format string): a preset's name, or "custom" for a format string given as is."""
    if log_format in presets:
        return log_format, presets[log_format]
    return "custom", log_format


class Server:
    """Start/stop, readiness and log plumbing shared by every server; subclasses only write
    their config (`_configure`)."""

    name: ClassVar[str]
    binaries: ClassVar[tuple[str, ...]]
    # Apache drops root to www-data, which cannot enter pytest's 0700 tmp dirs: its site then
    # lives in a world-readable dir of its own.
    site_needs_world_access: ClassVar[bool] = False
    log_format: str  # the format string the log was written with

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = Path(tmp_path)
        self.port = 0
        self.dir = self.site = self.log_path = Path()
        self._procs: list[subprocess.Popen[bytes]] = []
        self._relays: list[threading.Thread] = []
        self._public_site: Path | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        return bool(self._procs)

    def _configure(self, bins: dict[str, str]) -> list[Launch]:
        """Write the config into self.dir; return the processes to start, in order."""
        raise NotImplementedError

    def start(self) -> Self:
        bins = {name: require_binary(name) for name in self.binaries}
        self.dir = Path(tempfile.mkdtemp(prefix=f"{self.name}-", dir=self.tmp_path))
        (self.dir / "diag").mkdir()
        if self.site_needs_world_access and os.geteuid() == 0:
            self._public_site = Path(tempfile.mkdtemp(prefix="plausible-import-site-"))
            self._public_site.chmod(0o755)
            self.site = make_site(self._public_site)
        else:
            self.site = make_site(self.dir / "site")
        self.port = free_port()
        self.log_path = self.dir / "access.log"
        # Created up front so that every writer opens it in append mode (Caddy's rolling
        # writer truncates a file it creates, without O_APPEND): reset_log() relies on that.
        self.log_path.touch()
        try:
            for launch in self._configure(bins):
                self._spawn(launch)
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def _spawn(self, launch: Launch) -> None:
        prog = Path(launch.argv[0]).name
        env = {**os.environ, **launch.env} if launch.env else None
        diag = self.dir / "diag" / prog
        # The child keeps its own copies of these descriptors.
        with open(f"{diag}.out", "ab") as out, open(f"{diag}.err", "ab") as err:
            proc = subprocess.Popen(launch.argv, stdin=subprocess.DEVNULL, stderr=err, env=env,
                                    stdout=subprocess.PIPE if launch.stdout else out,
                                    start_new_session=True)
        self._procs.append(proc)
        if proc.stdout and launch.stdout:
            self._relays.append(threading.Thread(target=_relay, args=(proc.stdout, launch.stdout)))
            self._relays[-1].start()

    def _wait_ready(self) -> None:
        """Probe until a request shows up in the access log, then empty the log."""
        deadline = time.monotonic() + START_TIMEOUT
        probe = 0
        while time.monotonic() < deadline:
            dead = [p.args[0] for p in self._procs if p.poll() is not None]
            if dead:
                raise RuntimeError(f"{self.name}: {dead} exited\n{self._diagnostics()}")
            probe += 1
            marker = f"/__ready/{probe}"
            try:
                drive(self.url, [Request(marker)], timeout=1.0)
            except (OSError, http.client.HTTPException):
                time.sleep(0.05)
                continue
            try:
                self._wait_for_text(marker, min(1.0, max(0.0, deadline - time.monotonic())))
            except TimeoutError:
                continue
            self.reset_log()
            return
        raise RuntimeError(f"{self.name}: not ready in {START_TIMEOUT}s\n{self._diagnostics()}")

    def _wait_for_text(self, text: str, timeout: float) -> None:
        end = time.monotonic() + timeout
        while text not in self.log_path.read_text(errors="replace"):
            if time.monotonic() > end:
                raise TimeoutError(text)
            time.sleep(0.02)

    def _diagnostics(self) -> str:
        tails = []
        for path in sorted((self.dir / "diag").iterdir()):
            tail = path.read_text(errors="replace")[-2000:].strip()
            if tail:
                tails.append(f"--- {path.name}\n{tail}")
        return "\n".join(tails) or "(no output)"

    def reset_log(self) -> None:
        """Empty the access log (every writer appends, so its next line lands at offset 0)."""
        self.log_path.write_bytes(b"")

    def wait_for_lines(self, count: int, timeout: float = LOG_TIMEOUT) -> list[str]:
        return wait_for_lines(self.log_path, count, timeout)

    def stop(self) -> None:
        """SIGTERM each process (last started first), SIGKILL its group if it lingers."""
        while self._procs:
            proc = self._procs.pop()
            if proc.poll() is None:
                proc.terminate()
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(STOP_TIMEOUT)
            # Workers/children left behind share the group we created for the process.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(STOP_TIMEOUT)
        while self._relays:  # they end at the EOF of their process's stdout
            self._relays.pop().join(STOP_TIMEOUT)
        if self._public_site:
            shutil.rmtree(self._public_site, ignore_errors=True)
            self._public_site = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


NGINX_FORMATS = {
    # Built into nginx; written here only for reference (the config uses the built-in name).
    "combined": '$remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent '
                '"$http_referer" "$http_user_agent"',
    # The "main" format of nginx's sample nginx.conf, found on many servers.
    "main": '$remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent '
            '"$http_referer" "$http_user_agent" "$http_x_forwarded_for"',
    "vhost_iso": '$host $remote_addr [$time_iso8601] "$request_method $scheme://$host$request_uri '
                 '$server_protocol" $status $body_bytes_sent $request_time "$http_referer" '
                 '"$http_user_agent" "$http_x_forwarded_for" "$sent_http_content_type"',
    "json": '{"time":"$time_iso8601","remote_addr":"$remote_addr","host":"$host",'
            '"method":"$request_method","uri":"$request_uri","protocol":"$server_protocol",'
            '"status":$status,"bytes":$body_bytes_sent,"referer":"$http_referer",'
            '"user_agent":"$http_user_agent","x_forwarded_for":"$http_x_forwarded_for",'
            '"request_time":$request_time}',
}


class NginxServer(Server):
    """nginx with realip: `$remote_addr` is the X-Forwarded-For address. `real_ip_recursive on`
    takes the right-most address not from 127.0.0.1, so a proxy's appended hop is skipped.

    log_format: a key of NGINX_FORMATS or any nginx format string. escape: nginx's
    `escape=` ("default", "json", "none"); None means json for "json", nginx's default else."""

    name = "nginx"
    binaries = ("nginx",)

    def __init__(self, tmp_path: Path, log_format: str = "combined",
                 escape: str | None = None) -> None:
        super().__init__(tmp_path)
        self.format_name, self.log_format = _preset(NGINX_FORMATS, log_format)
        self.escape = escape or ("json" if self.format_name == "json" else None)

    def _configure(self, bins: dict[str, str]) -> list[Launch]:
        d = self.dir
        quoted = "'" + self.log_format.replace("\\", "\\\\").replace("'", "\\'") + "'"
        escape = f" escape={self.escape}" if self.escape else ""
        if self.format_name == "combined" and not escape:
            fmt_decl, fmt_name = "", "combined"
        else:
            fmt_decl, fmt_name = f"log_format testfmt{escape} {quoted};", "testfmt"
        types = " ".join(f"{mime} {ext};" for ext, mime in MIME_TYPES.items())
        temps = " ".join(f"{kind}_temp_path {d}/tmp/{kind};"
                         for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
        (d / "nginx.conf").write_text(f"""
{"user root;" if os.geteuid() == 0 else ""}
worker_processes 1;
daemon off;
pid {d}/nginx.pid;
error_log {d}/diag/error.log;
events {{ worker_connections 64; }}
http {{
    types {{ {types} }}
    default_type application/octet-stream;
    {temps}
    set_real_ip_from 127.0.0.1;
    real_ip_header X-Forwarded-For;
    real_ip_recursive on;
    {fmt_decl}
    access_log {self.log_path} {fmt_name};
    server {{
        listen 127.0.0.1:{self.port};
        server_name {SITE_HOST};
        root {self.site};
        index index.html;
    }}
}}
""")
        (d / "tmp").mkdir()
        # -e: nginx opens its compiled-in error log before reading the config otherwise.
        return [Launch([bins["nginx"], "-p", str(d), "-c", str(d / "nginx.conf"),
                        "-e", str(d / "diag" / "error.log")])]


# Debian's apache2.conf definitions (%O, not the upstream docs' %b). `%h` is fine here: with
# HostnameLookups Off, Apache 2.4 logs the mod_remoteip client for %h as for %a (checked on
# 2.4.71); `%{c}a` would be the proxy's own address.
APACHE_FORMATS = {
    "common": '%h %l %u %t "%r" %>s %O',
    "combined": '%h %l %u %t "%r" %>s %O "%{Referer}i" "%{User-Agent}i"',
    "vhost_combined": '%v:%p %h %l %u %t "%r" %>s %O "%{Referer}i" "%{User-Agent}i"',
    "vhost_iso": '%{Host}i %a [%{%Y-%m-%dT%H:%M:%S%z}t] "%m %U%q %H" %>s %B %D "%{Referer}i" '
                 '"%{User-Agent}i" "%{Content-Type}o" "%{X-Forwarded-For}i"',
}
_APACHE_MODULES = ("mpm_event", "authz_core", "mime", "dir", "remoteip")  # log_config is built in


class ApacheServer(Server):
    """Apache with a self-contained config (modules loaded from /usr/lib/apache2/modules, not
    Debian's /etc/apache2). mod_remoteip uses RemoteIPInternalProxy: RemoteIPTrustedProxy would
    refuse private visitor addresses (10/8, 192.168/16...) and log 127.0.0.1 for them.

    log_format: a key of APACHE_FORMATS or any LogFormat string (unquoted: as Apache reads
    it, not as written in a config file)."""

    name = "apache"
    binaries = ("apache2",)
    site_needs_world_access = True
    modules_dir = Path("/usr/lib/apache2/modules")

    def __init__(self, tmp_path: Path, log_format: str = "combined") -> None:
        super().__init__(tmp_path)
        self.format_name, self.log_format = _preset(APACHE_FORMATS, log_format)

    def _configure(self, bins: dict[str, str]) -> list[Launch]:
        d = self.dir
        (d / "run").mkdir()
        modules = "\n".join(f"LoadModule {m}_module {self.modules_dir}/mod_{m}.so"
                            for m in _APACHE_MODULES)
        types = "\n".join(f"AddType {mime} .{ext}" for ext, mime in MIME_TYPES.items())
        # Apache refuses to serve as root: children switch to www-data (the parent, still
        # root, opens the logs).
        user = "User www-data\nGroup www-data" if os.geteuid() == 0 else ""
        fmt = self.log_format.replace('"', '\\"')
        (d / "httpd.conf").write_text(f"""
ServerRoot {d}
{modules}
{user}
ServerName {SITE_HOST}
Listen 127.0.0.1:{self.port}
PidFile {d}/run/httpd.pid
DefaultRuntimeDir {d}/run
ErrorLog {d}/diag/error.log
StartServers 1
ServerLimit 1
ThreadsPerChild 8
MaxRequestWorkers 8
MinSpareThreads 1
MaxSpareThreads 16
TypesConfig /dev/null
{types}
DocumentRoot {self.site}
DirectoryIndex index.html
<Directory {self.site}>
    Require all granted
</Directory>
RemoteIPHeader X-Forwarded-For
RemoteIPInternalProxy 127.0.0.1
BufferedLogs Off
LogFormat "{fmt}" testfmt
CustomLog {self.log_path} testfmt
""")
        return [Launch([bins["apache2"], "-f", str(d / "httpd.conf"), "-DFOREGROUND"])]


class CaddyServer(Server):
    """Caddy's JSON access log. Caddy 2.6 (Debian 12) has no trusted_proxies/client_ip:
    request.remote_ip is always 127.0.0.1 and the visitor is in
    request.headers["X-Forwarded-For"] (a list). Non-2xx responses are logged at level
    "error"; `ts` is float epoch seconds."""

    name = "caddy"
    binaries = ("caddy",)
    log_format = "json"

    def _configure(self, bins: dict[str, str]) -> list[Launch]:
        d = self.dir
        (d / "Caddyfile").write_text(f"""
{{
    admin off
    auto_https off
}}
http://:{self.port} {{
    bind 127.0.0.1
    root * {self.site}
    file_server
    log {{
        output file {self.log_path} {{
            roll_disabled
        }}
        format json
    }}
}}
""")
        # Caddy keeps state under $HOME / XDG dirs: keep it in the tmp dir.
        env = {"HOME": str(d), "XDG_DATA_HOME": str(d / "data"),
               "XDG_CONFIG_HOME": str(d / "config")}
        return [Launch([bins["caddy"], "run", "--config", str(d / "Caddyfile"),
                        "--adapter", "caddyfile"], env=env)]


class _ProxyServer(Server):
    """A server in front of another: starts the backend (an nginx by default) if not running,
    and stops it again if it started it."""

    def __init__(self, tmp_path: Path, backend: Server | None = None) -> None:
        super().__init__(tmp_path)
        self.backend = backend or NginxServer(tmp_path)
        self._owns_backend = False

    def start(self) -> Self:
        if not self.backend.running:
            self.backend.start()
            self._owns_backend = True
        return super().start()

    def stop(self) -> None:
        super().stop()
        if self._owns_backend:
            self.backend.stop()
            self._owns_backend = False

    def reset_log(self) -> None:
        super().reset_log()
        self.backend.reset_log()

    @property
    def backend_addr(self) -> str:
        return f"127.0.0.1:{self.backend.port}"


# What `option httplog` logs (HAProxy 2.6 docs), with the three captures below in %hr.
HAPROXY_HTTPLOG = ("%ci:%cp [%tr] %ft %b/%s %TR/%Tw/%Tc/%Tr/%Ta %ST %B %CC %CS %tsc "
                   "%ac/%fc/%bc/%sc/%rc %sq/%bq %hr %hs %{+Q}r")


class HAProxyServer(_ProxyServer):
    """HAProxy `option httplog`, logging to stdout (`log stdout format <syslog_format>`) in the
    foreground, stdout redirected to the log file: no syslog daemon needed. "raw" writes the
    bare message; "rfc3164"/"rfc5424" add a syslog header (not what rsyslog writes to files).

    `http-request set-src hdr(x-forwarded-for)` makes %ci the visitor (the last address of the
    header; unchanged when it is absent). Quirks: an IPv6 %ci:%cp is printed unbracketed
    ("2001:db8::1:51234"); captures appear as {Host|Referer|User-Agent} with '"', '|', '{', '}',
    '#' and non-ASCII bytes escaped as #XX."""

    name = "haproxy"
    binaries = ("haproxy",)
    captures = ("Host", "Referer", "User-Agent")

    def __init__(self, tmp_path: Path, backend: Server | None = None,
                 log_format: str | None = None, syslog_format: str = "raw") -> None:
        super().__init__(tmp_path, backend)
        self.log_format = log_format or HAPROXY_HTTPLOG
        quoted = (log_format or "").replace("\\", "\\\\").replace('"', '\\"')
        self._log_line = f'log-format "{quoted}"' if log_format else "option httplog"
        self.syslog_format = syslog_format

    def _configure(self, bins: dict[str, str]) -> list[Launch]:
        captures = "\n    ".join(f"capture request header {h} len 1024" for h in self.captures)
        (self.dir / "haproxy.cfg").write_text(f"""
global
    log stdout format {self.syslog_format} local0
defaults
    mode http
    log global
    {self._log_line}
    timeout connect 2s
    timeout client 10s
    timeout server 10s
frontend web
    bind 127.0.0.1:{self.port}
    http-request set-src hdr(x-forwarded-for) if {{ req.hdr(x-forwarded-for) -m found }}
    {captures}
    default_backend app
backend app
    server app1 {self.backend_addr}
""")
        return [Launch([bins["haproxy"], "-db", "-f", str(self.dir / "haproxy.cfg")],
                       stdout=self.log_path)]


VARNISH_FORMATS = {
    # varnishncsa's built-in default (no -F). %h is the TCP peer (127.0.0.1 here) and %r is
    # rebuilt as "GET http://<Host><path> HTTP/1.1": an absolute URL.
    "default": '%h %l %u %t "%r" %s %b "%{Referer}i" "%{User-agent}i"',
    # The usual fix behind a proxy. Varnish appends its client address to X-Forwarded-For
    # before logging, so the field reads "203.0.113.10, 127.0.0.1" (just "127.0.0.1" when the
    # request had none): one field with a comma and a space.
    "xff": '%{X-Forwarded-For}i %l %u %t "%r" %s %b "%{Referer}i" "%{User-agent}i"',
}


class VarnishServer(_ProxyServer):
    """varnishd (-j none: no privilege separation, needed for a workdir under pytest's root-only
    tmp dir) in front of the backend, varnishncsa writing the log. Varnish caches: repeated
    GETs do not reach the backend. log_format: a key of VARNISH_FORMATS or any -F string."""

    name = "varnish"
    binaries = ("varnishd", "varnishncsa")

    def __init__(self, tmp_path: Path, backend: Server | None = None,
                 log_format: str = "xff") -> None:
        super().__init__(tmp_path, backend)
        self.format_name, self.log_format = _preset(VARNISH_FORMATS, log_format)

    def _configure(self, bins: dict[str, str]) -> list[Launch]:
        work = str(self.dir / "work")
        fmt = [] if self.format_name == "default" else ["-F", self.log_format]
        return [
            Launch([bins["varnishd"], "-F", "-j", "none", "-n", work, "-s", "malloc,32m",
                    "-a", f"127.0.0.1:{self.port}", "-b", self.backend_addr]),
            # -a: append, which reset_log() needs; -t: wait for varnishd's shared memory.
            Launch([bins["varnishncsa"], "-n", work, "-a", "-w", str(self.log_path),
                    "-t", str(int(START_TIMEOUT)), *fmt]),
        ]
