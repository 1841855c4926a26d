"""The test receiver answers as Plausible's server does, over real HTTP on 127.0.0.1."""

from __future__ import annotations

import http.client
import json
import subprocess
import sys
import threading
import time
from email.message import Message
from pathlib import Path

import pytest
import requests

from tests.plausible_rules import BROWSER_UA, PROPS_ERROR, UNPARSABLE
from tests.receiver import Fault, FaultPlan, Receiver

PAGE = {"name": "pageview", "url": "https://example.com/docs?x=1"}
REPO = Path(__file__).resolve().parent.parent


def post(rx: Receiver, body: object = None, **kwargs: object) -> requests.Response:
    kwargs.setdefault("timeout", 5)
    return requests.post(f"{rx.url}/api/event", json=body, **kwargs)


def raw_post(rx: Receiver, body: bytes, headers: dict[str, str]) -> tuple[int, bytes, Message]:
    """POST with exactly these headers (requests adds Content-Type and User-Agent)."""
    conn = http.client.HTTPConnection("127.0.0.1", rx.port, timeout=5)
    try:
        conn.request("POST", "/api/event", body=body, headers=headers)
        answer = conn.getresponse()
        return answer.status, answer.read(), answer.headers
    finally:
        conn.close()


def test_accepted_event_is_recorded(receiver: Receiver) -> None:
    answer = post(receiver, PAGE, headers={"X-Forwarded-For": "203.0.113.9"})

    assert (answer.status_code, answer.text) == (202, "ok")
    assert "x-plausible-dropped" not in answer.headers
    assert receiver.events == [PAGE]
    [seen] = receiver.requests
    assert (seen.method, seen.path, seen.status, seen.dropped) == ("POST", "/api/event", 202, 0)
    assert seen.headers["x-forwarded-for"] == "203.0.113.9"  # any case
    assert json.loads(seen.body) == seen.json == PAGE
    assert seen.client_ip == "203.0.113.9"
    assert seen.accepted == seen.domains == ["example.com"]


def test_short_field_names(receiver: Receiver) -> None:
    body = {"n": "Signup", "u": "https://example.com/", "d": "example.com", "p": {"plan": "pro"}}

    assert post(receiver, body).status_code == 202
    assert receiver.events == [body]
    assert receiver.requests[0].props == {"plan": "pro"}


def test_keep_alive_reuses_one_connection(receiver: Receiver) -> None:
    with requests.Session() as session:
        for _ in range(3):
            session.post(f"{receiver.url}/api/event", json=PAGE, timeout=5).raise_for_status()

    peers = {seen.peer for seen in receiver.requests}
    assert len(peers) == 1
    times = [seen.time for seen in receiver.requests]
    assert times == sorted(times)


@pytest.mark.parametrize(
    ("body", "status"),
    [
        (json.dumps(PAGE).encode(), 202),
        (b"{not json", 400),
        (b"[1, 2]", 400),
        (b"", 400),
        # valid JSON, but beyond the 1,000,000 bytes the server reads of a non-JSON type
        (json.dumps({**PAGE, "pad": "x" * 1_000_000}).encode(), 400),
    ],
    ids=["object", "broken", "array", "empty", "over-1MB"],
)
def test_text_plain_body_is_read_raw(receiver: Receiver, body: bytes, status: int) -> None:
    code, answer, _ = raw_post(receiver, body, {"Content-Type": "text/plain"})

    assert code == status
    if status == 400:
        assert json.loads(answer) == UNPARSABLE
    assert len(receiver.events) == (status == 202)


def test_json_content_type_parsing(receiver: Receiver) -> None:
    assert raw_post(receiver, b"{oops", {"Content-Type": "application/json"})[0] == 400
    # a non-object is wrapped by the parser, so it fails validation instead
    code, answer, _ = raw_post(receiver, b"[1]", {"Content-Type": "application/json"})
    assert code == 400
    assert set(json.loads(answer)["errors"]) == {"url", "event_name", "domain"}
    huge = json.dumps({**PAGE, "pad": "x" * 8_000_000}).encode()
    assert raw_post(receiver, huge, {"Content-Type": "application/json"})[0] == 413
    assert receiver.events == []


def test_missing_or_form_content_type_fails_validation(receiver: Receiver) -> None:
    expected = {
        "url": ["is required"],
        "event_name": ["can't be blank"],
        "domain": ["can't be blank"],
    }
    body = json.dumps(PAGE).encode()
    for headers in ({}, {"Content-Type": "application/x-www-form-urlencoded"}):
        code, answer, _ = raw_post(receiver, body, headers)
        assert (code, json.loads(answer)) == (400, {"errors": expected})
    assert receiver.events == []


def test_chunked_body(receiver: Receiver) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", receiver.port, timeout=5)
    chunks = iter([b'{"name": "pageview", ', b'"url": "https://example.com/"}'])
    conn.request(
        "POST",
        "/api/event",
        body=chunks,
        headers={"Content-Type": "application/json"},
        encode_chunked=True,
    )
    assert conn.getresponse().status == 202
    conn.close()
    assert receiver.events == [{"name": "pageview", "url": "https://example.com/"}]


URL = "https://example.com/"


@pytest.mark.parametrize(
    ("body", "errors"),
    [
        ({"url": URL}, {"event_name": ["can't be blank"]}),
        ({"name": " ", "url": URL}, {"event_name": ["can't be blank"]}),
        ({"name": "x" * 121, "url": URL}, {"event_name": ["should be at most 120 character(s)"]}),
        ({"name": True, "url": URL}, {"event_name": ["is invalid"]}),
        ({"name": "pageview", "domain": "example.com"}, {"url": ["is required"]}),
        (
            {"name": "pageview", "url": "data:text/html,hi", "domain": "example.com"},
            {"url": ["scheme is not allowed"]},
        ),
        (  # 2001 bytes; and with no valid URL, no domain either
            {"name": "pageview", "url": URL + "?q=" + "a" * 1978},
            {"url": ["must be a valid url"], "domain": ["can't be blank"]},
        ),
        (
            {"name": "pageview", "url": 42, "domain": "example.com"},
            {"url": ["must be a valid url"]},
        ),
        ({"name": "pageview", "url": URL, "domain": " "}, {"domain": ["can't be blank"]}),
        ({"name": "pageview", "url": "/no/host"}, {"domain": ["can't be blank"]}),
        ({**PAGE, "props": {"k" * 301: "v"}}, {"props": [PROPS_ERROR]}),
        ({**PAGE, "props": {"k": "é" * 1001}}, {"props": [PROPS_ERROR]}),  # bytes, not chars
    ],
)
def test_validation_errors(receiver: Receiver, body: dict, errors: dict) -> None:
    answer = post(receiver, body)

    assert (answer.status_code, answer.json()) == (400, {"errors": errors})
    assert receiver.requests[0].errors == errors
    assert receiver.events == []


def test_limits_are_inclusive(receiver: Receiver) -> None:
    longest_url = URL + "?q=" + "a" * (2000 - len(URL) - 3)
    bodies = [
        {"name": "n" * 120, "url": longest_url},
        {**PAGE, "props": {"k" * 300: "v" * 2000}},
    ]
    assert [post(receiver, body).status_code for body in bodies] == [202, 202]


def test_props_are_cleaned_like_the_server(receiver: Receiver) -> None:
    good = {f"k{i:02}": f"v{i}" for i in range(30)}
    bad = {"list": [1], "map": {"a": 1}, "null": None, "empty": "", "blank": "  "}
    typed = {"n": 3, "flag": True}
    bodies = [
        {**PAGE, "props": {**good, **bad}},
        {**PAGE, "props": {**good, **typed}},  # 32 pairs: still accepted, 30 kept
        {**PAGE, "props": json.dumps(typed)},  # a JSON string of an object also works
        {"name": 404, "url": "https://example.com/gone%20away/"},  # integer name, path prop
    ]

    assert [post(receiver, body).status_code for body in bodies] == [202] * 4
    kept = [seen.props for seen in receiver.requests]
    assert kept[0] == good
    assert len(kept[1]) == 30
    assert kept[2] == {"n": "3", "flag": "true"}
    assert kept[3] == {"path": "/gone away/"}


def test_domains_are_split_normalised_and_checked() -> None:
    with Receiver(domains={"example.com", "example.org"}) as rx:
        body = {**PAGE, "domain": " example.com, www.example.org ,unknown.net"}
        answer = post(rx, body)
        assert (answer.status_code, answer.text) == (202, "ok")
        assert answer.headers["x-plausible-dropped"] == "1"
        seen = rx.requests[0]
        assert seen.domains == ["example.com", "example.org", "unknown.net"]
        assert seen.accepted == ["example.com", "example.org"]

        # no domain: the URL's host, without www.
        assert (
            "x-plausible-dropped"
            not in post(rx, {**PAGE, "url": "https://www.example.org/"}).headers
        )
        assert rx.requests[1].domains == ["example.org"]

        only_unknown = post(rx, {**PAGE, "domain": "unknown.net"})
        assert (only_unknown.status_code, only_unknown.headers["x-plausible-dropped"]) == (202, "1")
        assert rx.events == [body, {**PAGE, "url": "https://www.example.org/"}]

        rx.domains.add("unknown.net")  # a site created later
        assert "x-plausible-dropped" not in post(rx, {**PAGE, "domain": "unknown.net"}).headers


@pytest.mark.parametrize(
    ("user_agent", "dropped"),
    [
        ("Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)", True),
        ("Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; compatible; GPTBot/1.0)", True),
        (BROWSER_UA.replace("Chrome/", "HeadlessChrome/"), True),
        (BROWSER_UA, False),
        ("curl/8.5.0", False),  # a library, not a bot
        (None, False),  # no User-Agent header at all
    ],
)
def test_bots_are_dropped(receiver: Receiver, user_agent: str | None, dropped: bool) -> None:
    headers = {"Content-Type": "application/json"}
    if user_agent is not None:
        headers["User-Agent"] = user_agent
    code, answer, answer_headers = raw_post(receiver, json.dumps(PAGE).encode(), headers)

    assert (code, answer) == (202, b"ok")
    assert answer_headers.get("x-plausible-dropped") == ("1" if dropped else None)
    assert receiver.requests[0].user_agent == user_agent
    assert len(receiver.events) == (not dropped)


def test_ingest_rate_limit_is_a_fixed_window_per_site() -> None:
    with Receiver(
        domains={"example.com", "other.com"}, rate_limits={"example.com": (2, 0.3)}
    ) as rx:
        dropped = [post(rx, PAGE).headers.get("x-plausible-dropped") for _ in range(3)]
        assert dropped == [None, None, "1"]
        assert "x-plausible-dropped" not in post(rx, {**PAGE, "domain": "other.com"}).headers
        time.sleep(0.35)
        assert "x-plausible-dropped" not in post(rx, PAGE).headers
        assert len(rx.events) == 4


@pytest.mark.parametrize(
    ("headers", "ip"),
    [
        ({}, "127.0.0.1"),
        ({"X-Forwarded-For": "203.0.113.5, 10.0.0.1"}, "203.0.113.5"),
        ({"X-Forwarded-For": "203.0.113.5:4711"}, "203.0.113.5"),
        ({"X-Forwarded-For": "[2001:db8::1]:443"}, "2001:db8::1"),
        ({"X-Forwarded-For": "2001:db8::1"}, "2001:db8::1"),
        ({"X-Forwarded-For": "1.1.1.1", "B-Forwarded-For": "2.2.2.2, 3.3.3.3"}, "2.2.2.2"),
        ({"X-Forwarded-For": "1.1.1.1", "CF-Connecting-IP": "4.4.4.4"}, "4.4.4.4"),
        ({"CF-Connecting-IP": "4.4.4.4", "X-Plausible-IP": "5.5.5.5"}, "5.5.5.5"),
        ({"Forwarded": 'by=1.1.1.1;for="[2001:db8::2]",for=9.9.9.9'}, "2001:db8::2"),
    ],
)
def test_client_ip_is_picked_like_the_server(
    receiver: Receiver, headers: dict[str, str], ip: str
) -> None:
    assert post(receiver, PAGE, headers=headers).status_code == 202
    assert receiver.requests[0].client_ip == ip


def test_forwarded_without_for_crashes_the_server(receiver: Receiver) -> None:
    assert post(receiver, PAGE, headers={"Forwarded": "proto=https"}).status_code == 500
    assert receiver.events == []


def test_health_and_unknown_paths(receiver: Receiver) -> None:
    health = requests.get(f"{receiver.url}/api/health", timeout=5)
    assert (health.status_code, health.json()) == (
        200,
        {"postgres": "ok", "clickhouse": "ok", "sites_cache": "ok", "sessions": "ok"},
    )
    receiver.healthy = False
    sick = requests.get(f"{receiver.url}/api/health", timeout=5)
    assert sick.status_code == 500
    assert set(sick.json()) == set(health.json())
    assert "ok" not in sick.json().values()

    assert requests.get(f"{receiver.url}/nope", timeout=5).status_code == 404
    assert requests.get(f"{receiver.url}/api/event", timeout=5).status_code == 404
    assert requests.post(f"{receiver.url}/api/health", timeout=5).status_code == 404


def test_status_fault_then_normal(receiver: Receiver) -> None:
    receiver.faults.next(Fault.status(503, retry_after=2))

    first, second = post(receiver, PAGE), post(receiver, PAGE)

    assert (first.status_code, first.headers["Retry-After"]) == (503, "2")
    assert second.status_code == 202
    assert [seen.fault for seen in receiver.requests] == [Fault.parse("503:2"), None]
    assert [seen.status for seen in receiver.requests] == [503, 202]
    assert receiver.events == [PAGE]  # the faulted one was not processed


def test_fault_queue_and_chance(receiver: Receiver) -> None:
    receiver.faults.next(None).next("500", 2).chance("429", 1.0)
    assert receiver.faults.queued == 3

    codes = [post(receiver, PAGE).status_code for _ in range(4)]
    assert codes == [202, 500, 500, 429]
    receiver.faults.clear()
    receiver.faults.chance("429", 0.0)
    assert post(receiver, PAGE).status_code == 202
    assert len(receiver.events) == 2


def test_random_faults_follow_the_seed() -> None:
    def draws(seed: int) -> list[str]:
        plan = FaultPlan(seed).random(0.5, ["500", "reset"])
        return [str(plan.draw()) for _ in range(200)]

    assert draws(7) == draws(7)
    assert draws(7) != draws(8)
    counts = {kind: draws(7).count(kind) for kind in ("None", "500", "reset")}
    assert all(60 < count < 140 for count in (counts["None"], counts["500"] + counts["reset"]))
    assert counts["500"] > 0 and counts["reset"] > 0


def test_reset_fault_aborts_the_connection(receiver: Receiver) -> None:
    receiver.faults.next("reset")

    with requests.Session() as session, pytest.raises(requests.ConnectionError) as failure:
        session.post(f"{receiver.url}/api/event", json=PAGE, timeout=5)
    assert "reset" in str(failure.value).lower()
    assert receiver.requests[0].status is None
    assert receiver.events == []
    assert post(receiver, PAGE).status_code == 202


def test_timeout_fault_hangs_until_the_client_gives_up(receiver: Receiver) -> None:
    receiver.faults.next("timeout")
    started = time.monotonic()

    with pytest.raises(requests.ReadTimeout):
        post(receiver, PAGE, timeout=0.2)

    assert time.monotonic() - started < 2
    assert receiver.requests[0].status is None
    assert post(receiver, PAGE).status_code == 202
    assert receiver.events == [PAGE]


def test_processed_faults_keep_the_event(receiver: Receiver) -> None:
    receiver.faults.next(Fault.reset(processed=True)).next("502!")

    with pytest.raises(requests.ConnectionError):
        post(receiver, PAGE)
    assert post(receiver, PAGE).status_code == 502
    assert receiver.events == [PAGE, PAGE]


def test_slow_answer_and_added_latency() -> None:
    with Receiver(latency=0.1) as rx:
        rx.faults.next(Fault.slow(0.2))
        started = time.monotonic()
        assert post(rx, PAGE).status_code == 202
        assert time.monotonic() - started >= 0.3
        assert rx.events == [PAGE]  # a slow answer is still an accepted event

        started = time.monotonic()
        assert requests.get(f"{rx.url}/api/health", timeout=5).status_code == 200
        assert time.monotonic() - started >= 0.1


@pytest.mark.parametrize(
    "spec", ["503", "429:30", "reset", "reset!", "timeout", "timeout:2.5!", "slow:0.1"]
)
def test_fault_specs_round_trip(spec: str) -> None:
    assert str(Fault.parse(spec)) == spec


@pytest.mark.parametrize("spec", ["", "boom", "slow", "slow:1!", "reset:3"])
def test_bad_fault_specs(spec: str) -> None:
    with pytest.raises(ValueError):
        Fault.parse(spec)


def test_clear_and_wait_for_events(receiver: Receiver) -> None:
    post(receiver, PAGE)
    receiver.clear()
    assert (receiver.requests, receiver.events) == ([], [])

    sender = threading.Thread(target=lambda: [post(receiver, PAGE) for _ in range(3)])
    sender.start()
    assert receiver.wait_for_events(3, timeout=5)
    sender.join()
    assert not receiver.wait_for_events(4, timeout=0.05)


def test_restart_keeps_the_port_and_pooled_clients_reconnect(receiver: Receiver) -> None:
    with requests.Session() as session:
        url = f"{receiver.url}/api/event"
        session.post(url, json=PAGE, timeout=5).raise_for_status()
        receiver.stop()
        with pytest.raises(requests.ConnectionError):
            session.post(url, json=PAGE, timeout=5)
        receiver.start()
        assert session.post(url, json=PAGE, timeout=5).status_code == 202

    assert receiver.url + "/api/event" == url
    assert receiver.events == [PAGE, PAGE]
    assert len({seen.peer for seen in receiver.requests}) == 2


def test_pycurl_reuses_its_connection_and_sends_big_bodies(receiver: Receiver) -> None:
    pycurl = pytest.importorskip("pycurl")
    curl = pycurl.Curl()
    curl.setopt(pycurl.URL, f"{receiver.url}/api/event")
    curl.setopt(pycurl.HTTPHEADER, ["Content-Type: application/json"])
    connects = []
    big = {**PAGE, "pad": "x" * 2_000_000}  # curl asks "Expect: 100-continue" first
    for body in (PAGE, PAGE, big):
        curl.setopt(pycurl.POSTFIELDS, json.dumps(body))
        curl.setopt(pycurl.WRITEFUNCTION, lambda _chunk: None)
        curl.perform()
        assert curl.getinfo(pycurl.RESPONSE_CODE) == 202
        connects.append(curl.getinfo(pycurl.NUM_CONNECTS))
    curl.close()

    assert connects == [1, 0, 0]
    assert receiver.events == [PAGE, PAGE, big]


def test_standalone_records_ndjson(tmp_path: Path) -> None:
    record = tmp_path / "arrived.ndjson"
    command = [sys.executable, "-m", "tests.receiver", "--domain", "example.com"]
    command += ["--record", str(record), "--latency-ms", "1", "--seed", "1"]
    with subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, text=True) as server:
        try:
            url = server.stdout.readline().strip()
            assert url.startswith("http://127.0.0.1:")
            bodies = [PAGE, {**PAGE, "domain": "unknown.net"}, {**PAGE, "name": "Signup"}]
            ua = {"User-Agent": BROWSER_UA, "X-Forwarded-For": "198.51.100.7"}
            for body in bodies:
                requests.post(f"{url}/api/event", json=body, headers=ua, timeout=10)
            lines = [json.loads(line) for line in record.read_text().splitlines()]
        finally:
            server.terminate()
        assert server.wait(timeout=10) == 0

    assert [line["body"] for line in lines] == [bodies[0], bodies[2]]
    assert {(line["client_ip"], line["user_agent"]) for line in lines} == {
        ("198.51.100.7", BROWSER_UA)
    }
    assert all(line["domains"] == ["example.com"] for line in lines)
