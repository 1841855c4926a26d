"""Command-line options for what counts as a visit and what an event carries, and the one
place that turns them into the FilterChain and EventBuilder (shared by `send` and `export`).

    builder = builder_from_args(args, counters)
    filters = filters_from_args(args, counters, builder)
"""
from __future__ import annotations

import argparse
import ipaddress
from datetime import UTC, date, datetime, timedelta, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from .clientip import ClientIpResolver, Network
from .filters import (
    FilterChain,
    PageRule,
    Rule,
    SameSite,
    UserAgentRule,
    default_classify,
    host_rule,
    ip_rule,
    path_rule,
    time_rule,
)
from .sites import SiteRouter, parse_mapping, read_map_file
from .summary import Counters
from .transform import MAX_PROP_KEY_BYTES, MAX_PROPS, EventBuilder, PropSpec


class OptionError(ValueError):
    """Options that do not fit together; the message says which."""


def _network(text: str) -> Network:
    try:
        return ipaddress.ip_network(text.strip(), strict=False)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an IP address or CIDR range: {text!r}") from None


def _mapping(text: str) -> list[tuple[str, str]]:
    try:
        if not text.startswith("@"):
            return [parse_mapping(text)]
        with open(text[1:], encoding="utf-8") as f:
            return read_map_file(f)
    except OSError as exc:
        raise argparse.ArgumentTypeError(f"cannot read {text[1:]}: {exc.strerror}") from None
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _prop(text: str) -> PropSpec:
    name, sep, source = text.partition("=")
    name, source = name.strip(), source.strip()
    if not sep or not name or not source:
        raise argparse.ArgumentTypeError(f"expected NAME=FIELD, got {text!r}")
    if len(name.encode("utf-8")) > MAX_PROP_KEY_BYTES:
        raise argparse.ArgumentTypeError(f"prop names have at most {MAX_PROP_KEY_BYTES} bytes")
    return PropSpec(name, source)


def _when(text: str) -> datetime | date:
    try:
        return date.fromisoformat(text) if len(text) == 10 else datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a date or date and time like 2026-11-24 or 2026-11-24T18:00, got {text!r}"
        ) from None


def add_filter_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group(
        "what counts as a visit",
        "By default a page visit is a GET answered 2xx or 304, of a page (not an asset by\n"
        "extension, robots.txt, favicon.ico or /.well-known/), served as text/html where the\n"
        "log has a content type, by a client that is not a bot, headless browser, HTTP\n"
        "library or uptime monitor. Every other line is counted under its reason\n"
        "(--explain N shows examples).")
    g.add_argument("--keep-bots", action="store_true",
                   help="keep bots, headless browsers, HTTP libraries and uptime monitors")
    g.add_argument("--exclude-path", action="append", default=[], metavar="GLOB",
                   help="drop paths matching GLOB (query not included; * spans /), "
                        "e.g. '/admin/*'; repeatable")
    g.add_argument("--include-path", action="append", default=[], metavar="GLOB",
                   help="keep only paths matching GLOB; repeatable")
    g.add_argument("--exclude-ip", action="extend", nargs="+", type=_network, default=[],
                   metavar="CIDR", help="drop visitors from these addresses or ranges "
                                        "(office, monitoring), e.g. 10.0.0.0/8 2001:db8::/32")
    g.add_argument("--exclude-ua", action="append", default=[], metavar="TEXT",
                   help="drop user agents containing TEXT (case-insensitive); repeatable")
    g.add_argument("--since", type=_when, metavar="WHEN",
                   help="only requests at or after WHEN (2026-11-24 or 2026-11-24T18:00[+01:00]; "
                        "without an offset, in --timezone)")
    g.add_argument("--until", type=_when, metavar="WHEN",
                   help="only requests before WHEN; a date alone includes that whole day")
    g.add_argument("--explain", type=int, default=0, metavar="N",
                   help="print N sample lines for each filter reason with the summary")

    e = p.add_argument_group("events")
    e.add_argument("--track-downloads", action="store_true",
                   help="send downloads (pdf, zip, dmg, exe, ...) clicked on the site's pages "
                        "as `File Download` events with the file's `url` prop, as Plausible's "
                        "file-downloads tracking does")
    e.add_argument("--track-404", action="store_true",
                   help="send visits to missing pages as `404` events with a `path` prop")
    e.add_argument("--prop", action="append", type=_prop, default=[], metavar="NAME=FIELD",
                   help="attach a log field as a custom prop: status, method, host, scheme, "
                        "protocol, bytes_sent, content_type, or any other field your log format "
                        "names, e.g. cache=upstream_cache_status; repeatable (at most 30 props)")

    s = p.add_argument_group("sites and visitors")
    s.add_argument("--domain-map", action="extend", type=_mapping, default=[],
                   metavar="HOST=DOMAIN|@FILE",
                   help="send requests for the logged HOST to the site DOMAIN (`www.` is "
                        "ignored, as Plausible does; *.example.com for subdomains); repeatable, "
                        "or @FILE with one HOST=DOMAIN a line. Other hosts go to --domain if "
                        "given, else are filtered as unmapped_host")
    s.add_argument("--client-ip-from", choices=("client", "xff"), default="client",
                   help="the visitor's address: the logged client address (default), or the "
                        "logged X-Forwarded-For chain, for a CDN or load balancer in front")
    s.add_argument("--trusted-proxy", action="extend", nargs="+", type=_network, default=[],
                   metavar="CIDR", help="with --client-ip-from xff: your proxies; the rightmost "
                                        "address not in these ranges is the visitor")


def builder_from_args(args: argparse.Namespace, counters: Counters) -> EventBuilder:
    """The event builder for these options; raises OptionError."""
    if not args.domain and not args.domain_map:
        raise OptionError("--domain or --domain-map is required (or set PLAUSIBLE_DOMAIN)")
    if args.trusted_proxy and args.client_ip_from != "xff":
        raise OptionError("--trusted-proxy only applies with --client-ip-from xff")
    _check_props(args)
    return EventBuilder(
        domain=args.domain, host=getattr(args, "host", None),
        scheme=getattr(args, "scheme", None) or "https",
        sites=SiteRouter(args.domain, args.domain_map),
        client_ips=ClientIpResolver(args.client_ip_from == "xff", args.trusted_proxy),
        track_downloads=args.track_downloads, track_404=args.track_404,
        props=tuple(args.prop), notes=counters.notes)


def _check_props(args: argparse.Namespace) -> None:
    names = [p.name for p in args.prop]
    reserved = {"url"} if args.track_downloads else set()
    if args.track_404:
        reserved.add("path")
    if len(set(names)) != len(names):
        raise OptionError("--prop: each NAME only once")
    if clash := reserved.intersection(names):
        raise OptionError(f"--prop {clash.pop()}=...: that prop is set by the tracked event")
    if len(names) + bool(reserved) > MAX_PROPS:
        raise OptionError(f"--prop: Plausible keeps at most {MAX_PROPS} props per event")


def filters_from_args(args: argparse.Namespace, counters: Counters,
                      builder: EventBuilder) -> FilterChain:
    """The filter chain for these options, cheapest rules first. Unmapped hosts are counted in
    `counters.unmapped_hosts`; `--explain` is set on `counters`."""
    counters.explain = args.explain
    rules: list[Rule] = []
    if args.since or args.until:
        zone = _zone(getattr(args, "timezone", None))
        rules.append(time_rule(_epoch(args.since, zone), _epoch(args.until, zone, end=True)))
    hosts = [getattr(args, "host", None) or "", *(builder.sites.default or "").split(",")]
    rules.append(PageRule(args.track_downloads, args.track_404, SameSite(builder.sites, hosts)))
    if args.exclude_path or args.include_path:
        rules.append(path_rule(args.exclude_path, args.include_path))
    if args.exclude_ip:
        rules.append(ip_rule(args.exclude_ip, builder.client_ips))
    if builder.sites.routing and builder.sites.default is None:
        rules.append(host_rule(builder.sites, counters.unmapped_hosts))
    if args.exclude_ua or not args.keep_bots:
        rules.append(UserAgentRule(None if args.keep_bots else default_classify(),
                                   args.exclude_ua))
    return FilterChain(rules)


def _zone(name: str | None) -> tzinfo:
    try:
        return ZoneInfo(name) if name else UTC
    except (ZoneInfoNotFoundError, ValueError):
        raise OptionError(f"--timezone: unknown time zone {name!r}") from None


def _epoch(when: datetime | date | None, zone: tzinfo, end: bool = False) -> float | None:
    if when is None:
        return None
    if not isinstance(when, datetime):  # a date: from its start, or to its end for --until
        when = datetime.combine(when + timedelta(days=1) if end else when, datetime.min.time())
    if when.tzinfo is None:
        when = when.replace(tzinfo=zone)
    return when.timestamp()
