"""Source resolution against what Plausible's server (v3.2) stores for a session's first event."""
from __future__ import annotations

import json

import pytest

from importer import referrers
from importer.referrers import SourceInfo, resolve_source

PAGE = "https://example.com/blog/post"

# (id, page URL, referrer, expected source, expected stored referrer)
REFERRALS = [
    ("google-search", PAGE, "https://www.google.com/search?q=plausible", "Google",
     "google.com/search"),
    ("google-co-uk", PAGE, "https://www.google.co.uk/", "Google", "google.co.uk"),
    ("google-bare-cctld", PAGE, "https://google.de/", "Google", "google.de"),
    ("google-news-longer-match", PAGE, "https://news.google.com/articles/x", "Google News",
     "news.google.com/articles/x"),
    ("gmail", PAGE, "https://mail.google.com/mail/u/0/", "Gmail", "mail.google.com/mail/u/0"),
    ("bing", PAGE, "https://www.bing.com/search?q=x", "Bing", "bing.com/search"),
    ("bing-images-path-entry", PAGE, "https://www.bing.com/images/search?q=x", "Bing Images",
     "bing.com/images/search"),
    ("duckduckgo", PAGE, "https://duckduckgo.com/", "DuckDuckGo", "duckduckgo.com"),
    ("facebook-mobile", PAGE, "https://m.facebook.com/", "Facebook", "m.facebook.com"),
    ("facebook-link-shim", PAGE, "https://l.facebook.com/l.php?u=https%3A%2F%2Fexample.com",
     "Facebook", "l.facebook.com/l.php"),
    ("facebook-subdomain", PAGE, "https://web.facebook.com/", "Facebook", "web.facebook.com"),
    ("t-co", PAGE, "https://t.co/AbC123", "Twitter", "t.co/AbC123"),
    ("instagram", PAGE, "https://www.instagram.com/", "Instagram", "instagram.com"),
    ("instagram-link-shim", PAGE, "https://l.instagram.com/?u=x", "Instagram", "l.instagram.com"),
    ("youtube-plausible-spelling", PAGE, "https://www.youtube.com/watch?v=1", "Youtube",
     "youtube.com/watch"),
    ("hacker-news", PAGE, "https://news.ycombinator.com/item?id=1", "Hacker News",
     "news.ycombinator.com/item"),
    ("reddit", PAGE, "https://old.reddit.com/r/x/comments/y/", "Reddit",
     "old.reddit.com/r/x/comments/y"),
    ("wikipedia-en", PAGE, "https://en.wikipedia.org/wiki/Web_analytics", "Wikipedia",
     "en.wikipedia.org/wiki/Web_analytics"),
    ("wikipedia-de-mobile", PAGE, "https://de.m.wikipedia.org/wiki/X", "Wikipedia",
     "de.m.wikipedia.org/wiki/X"),
    # v3.2 lists Wikipedia hosts one by one; an unlisted edition stays a bare host.
    ("wikipedia-unlisted", PAGE, "https://zu.wikipedia.org/", "zu.wikipedia.org",
     "zu.wikipedia.org"),
    # Hosts the database lacks but Plausible's custom_sources.json names.
    ("custom-host-baidu", PAGE, "https://baidu.com/s?wd=x", "Baidu", "baidu.com/s"),
    ("custom-host-brave", PAGE, "https://search.brave.com/search?q=x", "Brave",
     "search.brave.com/search"),
    ("custom-host-msn-start", PAGE, "https://ntp.msn.com/edge/ntp", "Bing", "ntp.msn.com/edge/ntp"),
    ("custom-android-app", PAGE, "android-app://com.reddit.frontpage/", "Reddit",
     "android-app://com.reddit.frontpage"),
    # Newer snowplow files name these; the snapshot Plausible bundles does not.
    ("snapshot-google-app", PAGE, "android-app://com.google.android.googlequicksearchbox/",
     "android-app://com.google.android.googlequicksearchbox",
     "android-app://com.google.android.googlequicksearchbox"),
    ("snapshot-tiktok", PAGE, "https://www.tiktok.com/", "tiktok.com", "tiktok.com"),
    # Path entries match whole path segments only, as RefInspector does.
    ("path-entry-subpath", PAGE, "https://orange.fr/webmail/inbox", "Orange Webmail",
     "orange.fr/webmail/inbox"),
    ("path-entry-not-a-segment", PAGE, "https://orange.fr/webmailer", "orange.fr",
     "orange.fr/webmailer"),
    # Subdomain matching needs a dot boundary.
    ("suffix-without-dot", PAGE, "https://notgoogle.com/", "notgoogle.com", "notgoogle.com"),
    ("lookalike-host", PAGE, "https://google.com.evil.example/", "google.com.evil.example",
     "google.com.evil.example"),
    ("unknown-site", PAGE, "https://www.some-blog.org/2024/05/post/?utm=x#top", "some-blog.org",
     "some-blog.org/2024/05/post"),
    ("unknown-subdomain-kept", PAGE, "https://blog.some-blog.org/", "blog.some-blog.org",
     "blog.some-blog.org"),
    ("only-one-www-stripped", PAGE, "https://www.www.some-blog.org/", "www.some-blog.org",
     "www.some-blog.org"),
    ("port-dropped", PAGE, "https://some-blog.org:8443/x", "some-blog.org", "some-blog.org/x"),
    ("trailing-slashes-trimmed", PAGE, "https://some-blog.org/a///", "some-blog.org",
     "some-blog.org/a"),
    ("path-kept-encoded", PAGE, "https://some-blog.org/caf%C3%A9/", "some-blog.org",
     "some-blog.org/caf%C3%A9"),
    ("scheme-case-insensitive", PAGE, "HTTPS://some-blog.org/", "some-blog.org", "some-blog.org"),
    ("http", PAGE, "http://some-blog.org/", "some-blog.org", "some-blog.org"),
    ("android-app-unknown", PAGE, "android-app://com.example.reader/", "android-app://com.example.reader",
     "android-app://com.example.reader"),
    # Not a referral: nothing is stored.
    ("same-host", PAGE, "https://example.com/other", "", ""),
    ("same-host-www", PAGE, "https://www.example.com/other", "", ""),
    ("same-host-page-www", "https://www.example.com/", "https://example.com/", "", ""),
    ("localhost", PAGE, "http://localhost:3000/", "", ""),
    ("ftp", PAGE, "ftp://files.some-blog.org/x", "", ""),
    ("no-scheme", PAGE, "some-blog.org/x", "", ""),
    ("empty-host", PAGE, "https:///x", "", ""),
    ("empty", PAGE, "", "", ""),
    ("none", PAGE, None, "", ""),
    # Plausible compares hosts byte for byte: a differently cased own host counts as a referral.
    ("own-host-other-case", "https://Example.com/", "https://example.com/", "example.com",
     "example.com"),
]


@pytest.mark.parametrize(
    ("page", "referrer", "source", "stored"),
    [case[1:] for case in REFERRALS],
    ids=[case[0] for case in REFERRALS],
)
def test_referral(page, referrer, source, stored):
    info = resolve_source(page, referrer)
    assert (info.source, info.referrer) == (source, stored)
    assert (info.utm_source, info.utm_medium) == ("", "")


GOOGLE = "https://www.google.com/search?q=x"
BING = "https://www.bing.com/search?q=x"

# (id, page URL, referrer, expected SourceInfo)
TAGGED = [
    ("utm-source-known-lowercase", PAGE + "?utm_source=google", None,
     SourceInfo(source="Google", utm_source="google")),
    ("utm-source-known-uppercase", PAGE + "?utm_source=GOOGLE", None,
     SourceInfo(source="Google", utm_source="GOOGLE")),
    ("utm-source-custom-alias", PAGE + "?utm_source=ig", None,
     SourceInfo(source="Instagram", utm_source="ig")),
    ("utm-source-custom-alias-with-space", PAGE + "?utm_source=google+ads", None,
     SourceInfo(source="Google", utm_source="google ads")),
    ("utm-source-wikipedia-name", PAGE + "?utm_source=wikipedia", None,
     SourceInfo(source="Wikipedia", utm_source="wikipedia")),
    ("utm-source-kept-as-is", PAGE + "?utm_source=newsletter", None,
     SourceInfo(source="newsletter", utm_source="newsletter")),
    ("tag-beats-referrer-which-is-still-stored", PAGE + "?utm_source=newsletter", GOOGLE,
     SourceInfo(source="newsletter", referrer="google.com/search", utm_source="newsletter")),
    ("source-param", PAGE + "?source=fb", None, SourceInfo(source="Facebook", utm_source="fb")),
    ("ref-param", PAGE + "?ref=producthunt", None,
     SourceInfo(source="producthunt", utm_source="producthunt")),
    ("utm-source-before-source-before-ref", PAGE + "?ref=a&source=b&utm_source=c", None,
     SourceInfo(source="c", utm_source="c")),
    ("source-before-ref", PAGE + "?ref=a&source=b", None, SourceInfo(source="b", utm_source="b")),
    # An empty tag is still a tag (Elixir's "" is truthy): the session gets no source at all.
    ("empty-utm-source-hides-referrer", PAGE + "?utm_source=", GOOGLE,
     SourceInfo(referrer="google.com/search")),
    ("all-utm-fields-decoded",
     PAGE + "?utm_source=news&utm_medium=email&utm_campaign=spring%20sale&utm_content=hero+banner"
     "&utm_term=red%2Bshoes", None,
     SourceInfo(source="news", utm_source="news", utm_medium="email", utm_campaign="spring sale",
                utm_content="hero banner", utm_term="red+shoes")),
    ("repeated-key-last-wins", PAGE + "?utm_campaign=a&utm_campaign=b", None,
     SourceInfo(utm_campaign="b")),
    ("fragment-is-not-query", PAGE + "#utm_source=x", None, SourceInfo()),
    ("gclid-google-referrer", PAGE + "?gclid=abc", GOOGLE,
     SourceInfo(source="Google", referrer="google.com/search", utm_medium="(gclid)")),
    ("gclid-google-tag", PAGE + "?utm_source=google&gclid=abc", None,
     SourceInfo(source="Google", utm_source="google", utm_medium="(gclid)")),
    ("gclid-explicit-medium-wins", PAGE + "?gclid=abc&utm_medium=cpc", GOOGLE,
     SourceInfo(source="Google", referrer="google.com/search", utm_medium="cpc")),
    ("gclid-empty-medium-wins", PAGE + "?gclid=abc&utm_medium=", GOOGLE,
     SourceInfo(source="Google", referrer="google.com/search")),
    ("gclid-not-google", PAGE + "?gclid=abc", BING,
     SourceInfo(source="Bing", referrer="bing.com/search")),
    ("gclid-direct", PAGE + "?gclid=abc", None, SourceInfo()),
    ("msclkid-bing", PAGE + "?msclkid=abc", BING,
     SourceInfo(source="Bing", referrer="bing.com/search", utm_medium="(msclkid)")),
    ("msclkid-not-bing", PAGE + "?msclkid=abc", GOOGLE,
     SourceInfo(source="Google", referrer="google.com/search")),
    # gclid comes first in Plausible's click-id list, so it shadows msclkid.
    ("gclid-shadows-msclkid", PAGE + "?gclid=a&msclkid=b", BING,
     SourceInfo(source="Bing", referrer="bing.com/search")),
]


@pytest.mark.parametrize(
    ("page", "referrer", "expected"),
    [case[1:] for case in TAGGED],
    ids=[case[0] for case in TAGGED],
)
def test_tagged(page, referrer, expected):
    assert resolve_source(page, referrer) == expected


def test_referrer_is_cut_to_2000_characters_first():
    info = resolve_source(PAGE, "https://some-blog.org/" + "a" * 3000)
    assert info.referrer == ("some-blog.org/" + "a" * 3000)[: 2000 - len("https://")]


def test_database_names_map_case_insensitively_onto_their_spelling():
    # Both spellings exist in the database; Plausible keeps the shorter entry's one.
    assert resolve_source(PAGE, "https://search.ukr.net/").source == "Ukr.net"
    assert resolve_source(PAGE + "?utm_source=duckduckgo", None).source == "DuckDuckGo"


def test_snapshot_adjustments_refer_to_the_package_file():
    # If the package's file changed under the same name, these lists would silently do nothing.
    data = json.loads(referrers._PLAUSIBLE_DATA.read_text(encoding="utf-8"))
    base = referrers._referers_yaml(data["referers_base"])
    for medium, sources in data["snapshot_removed"].items():
        for name, domains in sources.items():
            assert name in base[medium], (medium, name)
            assert set(domains or ()) <= set(base[medium][name]["domains"]), (medium, name)
    for medium, sources in data["snapshot_added"].items():
        for name in sources:
            # An added entry is new, or replaces domains the removals took away.
            assert name not in base[medium] or name in data["snapshot_removed"][medium], name


def test_missing_package_is_reported(monkeypatch):
    monkeypatch.setattr(referrers, "find_spec", lambda name: None)
    base = {"package": "p", "version": "1", "module": "m", "file": "f", "sha256": ""}
    with pytest.raises(RuntimeError, match="pip install p==1"):
        referrers._referers_yaml(base)


def test_other_package_file_is_refused():
    data = json.loads(referrers._PLAUSIBLE_DATA.read_text(encoding="utf-8"))
    base = dict(data["referers_base"], sha256="0" * 64)
    with pytest.raises(RuntimeError, match="not the file"):
        referrers._referers_yaml(base)
