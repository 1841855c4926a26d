"""The Common Log Format family: nginx and Apache `combined`, `common` and vhost variants.

Each preset is only a format string; `formatstring.compile` does the work.
"""
from __future__ import annotations

from .registry import register_format_string

COMBINED = '%h %l %u %t "%r" %>s %b "%{Referer}i" "%{User-Agent}i"'

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
    "nginx_vhost_combined", "nginx",
    '$host $remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent '
    '"$http_referer" "$http_user_agent"',
    "nginx combined with `$host` first")
register_format_string(
    "vhost_common", "apache", '%v %h %l %u %t "%r" %>s %b',
    "Apache vhost_common: virtual host first, then common")
