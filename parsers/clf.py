"""The Common Log Format family: nginx and Apache `combined`, `common` and vhost variants, and
the servers that write a CLF line with extras (varnishncsa, Traefik).

Each preset is only a format string; `formatstring.FormatParser` does the work.
"""
from __future__ import annotations

from .registry import register_format_string

COMBINED = '%h %l %u %t "%r" %>s %b "%{Referer}i" "%{User-Agent}i"'
NGINX_COMBINED = ('$remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent '
                  '"$http_referer" "$http_user_agent"')

register_format_string(
    "combined", "apache", COMBINED,
    "nginx/Apache combined: the default access log of nginx, and Apache's `combined`")
register_format_string(
    "common", "apache", '%h %l %u %t "%r" %>s %b',
    "nginx/Apache common (CLF): no referrer or user agent")
register_format_string(
    "vhost_combined", "apache", "%v:%p " + COMBINED,
    "Apache vhost_combined: `host:port` first, then combined")
register_format_string(
    "nginx_vhost_combined", "nginx", "$host " + NGINX_COMBINED,
    "nginx combined with `$host` first")
register_format_string(
    "vhost_common", "apache", '%v %h %l %u %t "%r" %>s %b',
    "Apache vhost_common: virtual host first, then common")
register_format_string(
    "nginx_main", "nginx", NGINX_COMBINED + ' "$http_x_forwarded_for"',
    "nginx `main` (its sample nginx.conf): combined + X-Forwarded-For")
register_format_string(
    "varnishncsa", "apache", '%h %l %u %t "%r" %s %b "%{Referer}i" "%{User-agent}i"',
    "varnishncsa's default: combined, with the request as an absolute URL")
register_format_string(
    "varnishncsa_xff", "apache",
    '%{X-Forwarded-For}i %l %u %t "%r" %s %b "%{Referer}i" "%{User-agent}i"',
    "varnishncsa -F with X-Forwarded-For first (Varnish behind a proxy); the first address "
    "is the client")
register_format_string(
    "traefik", "nginx",
    NGINX_COMBINED + ' $request_count "$router_name" "$server_url" ${duration_ms}ms',
    "Traefik access log, Common Log Format (its default): combined + request count, router, "
    "server URL, duration")
