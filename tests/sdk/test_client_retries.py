"""The SDK's retry policy and API key against a small real HTTP server on loopback that answers a scripted
sequence (503s with and without Retry-After, then a success), and the Retry-After parsing rules."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from neuronlens import ApiUnavailable, Client
from neuronlens._core import RetryPolicy, parse_retry_after
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
    policy = RetryPolicy(retries=3, backoff_s=0.5, max_wait_s=5)
    busy = httpx.Response(503, headers={"Retry-After": "120"})
    assert policy.delay(0, busy, None) == 5, "a long Retry-After is cut to max_wait_s"
    assert policy.delay(2, httpx.Response(503), None) == 2.0, "0.5 s doubling without Retry-After"
    assert policy.delay(3, busy, None) is None, "no retry after the last"
    assert policy.delay(0, httpx.Response(500), None) is None, "a 500 is a bug, not an outage"
