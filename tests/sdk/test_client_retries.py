"""The SDK's retry policy and API key against a small real HTTP server on loopback that answers a scripted
sequence (503s and 429s with and without Retry-After, then a success), the Retry-After parsing rules, the
backoff (exponential, jittered, Retry-After its floor), and the SDK's surface (AsyncClient has every Client
method; every public name has a docstring)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

import neuronlens
from neuronlens import ApiUnavailable, AsyncClient, Client, RequestRejected
from neuronlens._core import DEFAULT_RETRIES, RetryPolicy, parse_retry_after
from service.commands.embedded_redis import free_port


class Scripted(ThreadingHTTPServer):
    """Answers GET /v1/models with ``answers`` in turn (status, headers); records each request's headers."""

    def __init__(self, answers: list[tuple[int, dict[str, str]]]):
        self.answers = answers
        self.seen: list[dict[str, str]] = []
        super().__init__(("127.0.0.1", 0), Handler)


class Handler(BaseHTTPRequestHandler):
    server: Scripted

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        self.server.seen.append(dict(self.headers))
        status, headers = self.server.answers.pop(0) if self.server.answers else (200, {})
        body = json.dumps([] if status == 200 else {"title": "Redis unavailable", "status": status}).encode()
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture()
def scripted() -> Iterator[Scripted]:
    server = Scripted([])
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def url_of(server: Scripted) -> str:
    return f"http://127.0.0.1:{server.server_address[1]}"


def test_503s_are_retried_and_the_key_is_sent(scripted: Scripted) -> None:
    scripted.answers = [(503, {"Retry-After": "0"}), (503, {}), (502, {"Retry-After": "0"})]
    with Client(url_of(scripted), api_key="k-123", retries=3, backoff_s=0.01) as client:
        assert client.models() == []
    assert len(scripted.seen) == 4
    assert {headers["Authorization"] for headers in scripted.seen} == {"Bearer k-123"}


def test_the_retries_are_bounded(scripted: Scripted) -> None:
    scripted.answers = [(503, {"Retry-After": "0"})] * 3
    with Client(url_of(scripted), retries=2) as client, pytest.raises(ApiUnavailable, match="HTTP 503"):
        client.models()
    assert len(scripted.seen) == 3, "one attempt and two retries"


def test_a_4xx_is_not_retried(scripted: Scripted) -> None:
    scripted.answers = [(401, {})]
    with Client(url_of(scripted), retries=3) as client, pytest.raises(Exception, match="HTTP 401"):
        client.models()
    assert len(scripted.seen) == 1


def test_the_key_comes_from_the_environment(scripted: Scripted, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NEURONLENS_API_KEY", "from-env")
    with Client(url_of(scripted)) as client:
        client.models()
    assert scripted.seen[0]["Authorization"] == "Bearer from-env"


def test_connection_errors_are_retried_then_reported() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    with Client(url, retries=2, backoff_s=0.01) as client, pytest.raises(ApiUnavailable) as raised:
        client.models()
    assert f"cannot reach the NeuronLens API at {url}" in str(raised.value)


def test_retry_after_is_read_and_capped() -> None:
    assert parse_retry_after("2") == 2.0
    assert parse_retry_after(None) is None and parse_retry_after("soon") is None
    in_a_minute = format_datetime(datetime.now(UTC) + timedelta(seconds=60), usegmt=True)
    assert 50 < (parse_retry_after(in_a_minute) or 0) <= 60
    policy = RetryPolicy(retries=3, backoff_s=0.5, max_wait_s=5, rng=lambda: 1.0)
    busy = httpx.Response(503, headers={"Retry-After": "120"})
    assert policy.delay(0, busy, None) == 5, "a long Retry-After is cut to max_wait_s"
    assert policy.delay(2, httpx.Response(503), None) == 2.0, "0.5 s doubling without Retry-After"
    assert policy.delay(3, busy, None) is None, "no retry after the last"
    assert policy.delay(0, httpx.Response(500), None) is None, "a 500 is a bug, not an outage"


def test_backoff_is_exponential_with_jitter_and_never_shorter_than_retry_after() -> None:
    low, high = (RetryPolicy(rng=lambda value=value: value) for value in (0.0, 0.999))
    unavailable = httpx.Response(503)
    for attempt in range(5):
        base = 0.5 * 2**attempt
        assert low.delay(attempt, unavailable, None) == base / 2
        assert base / 2 < (high.delay(attempt, unavailable, None) or 0) < base
    drawn = {RetryPolicy().delay(2, unavailable, None) for _ in range(20)}
    assert len(drawn) > 1 and all(1.0 <= (d or 0) <= 2.0 for d in drawn), "jittered, not lockstep"
    told = httpx.Response(503, headers={"Retry-After": "5"})
    assert low.delay(0, told, None) == 5 and low.delay(4, told, None) == 5, "Retry-After is the floor"
    assert low.delay(5, told, None) == 8, "backoff beyond Retry-After"


def test_the_defaults_ride_out_a_15_s_api_restart() -> None:
    """While the API restarts, connections are refused (no Retry-After): the default policy's shortest
    possible waits (jitter at its low end) add up to more than 15 s before it gives up."""
    refused = httpx.ConnectError("refused")
    policy = RetryPolicy(rng=lambda: 0.0)
    waits = []
    while (wait := policy.delay(len(waits), None, refused)) is not None:
        waits.append(wait)
    assert len(waits) == DEFAULT_RETRIES and sum(waits) > 15, waits
    assert sum(RetryPolicy(rng=lambda: 0.999).delay(n, None, refused) or 0 for n in range(len(waits))) < 35
    with Client("http://127.0.0.1:9") as client:
        assert client.retry.retries == DEFAULT_RETRIES and client.retry.backoff_s == 0.5


def test_429s_are_retried_unless_the_window_resets_too_late(scripted: Scripted) -> None:
    scripted.answers = [(429, {"Retry-After": "0"}), (429, {"Retry-After": "0"})]
    with Client(url_of(scripted), retries=3, backoff_s=0.01) as client:
        assert client.models() == []
    assert len(scripted.seen) == 3
    scripted.seen.clear()
    scripted.answers = [(429, {"Retry-After": "3600"})]
    with Client(url_of(scripted), retries=3) as client, pytest.raises(RequestRejected, match="HTTP 429"):
        client.models()
    assert len(scripted.seen) == 1, "a quota that resets in an hour is not waited for"


def test_async_client_has_every_client_method_and_every_public_name_is_documented() -> None:
    public = {name for name in dir(Client) if not name.startswith("_")} - {"close"}
    assert public <= set(dir(AsyncClient)), public - set(dir(AsyncClient))
    assert {"aclose", "estimate", "page_url", "to_dataframe", "layer_to_dataframe"} <= set(dir(AsyncClient))
    undocumented = [
        f"{cls.__name__}.{name}"
        for cls in (Client, AsyncClient)
        for name, member in vars(cls).items()
        if not name.startswith("_") and callable(member) and not member.__doc__
    ]
    undocumented += [
        name
        for name in neuronlens.__all__
        if callable(getattr(neuronlens, name)) and not getattr(neuronlens, name).__doc__
    ]
    assert undocumented == []
