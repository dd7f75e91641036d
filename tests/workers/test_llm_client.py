"""The LLM caller against the real HTTP peer on loopback, with the real `openai` client.

Every injected fault ends in a successful retry or a named error; nothing may hang (pytest-timeout).
"""

from __future__ import annotations

import random
import socket
import threading
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from tests.llm_peer import Fault, LLMPeer
from workers.llm.caller import LLMCaller, LLMCallState, TokenUsage, parse_retry_after
from workers.llm.endpoints import LLMEndpoint
from workers.llm.errors import LLMEndpointError
from workers.simulate.prompts import TOP_LOGPROBS, build_text_simulator_messages

pytestmark = pytest.mark.timeout(60)

SECRET = "sk-test-secret-key"
MESSAGES = build_text_simulator_messages('the tokens "red".', ["the", "red", "car"])


def _endpoint(peer_or_url: LLMPeer | str, **overrides: object) -> LLMEndpoint:
    base_url = peer_or_url if isinstance(peer_or_url, str) else peer_or_url.base_url
    fields: dict[str, object] = {
        "name": "test",
        "base_url": base_url,
        "api_key": SECRET,
        "explainer_model": "peer-explainer",
        "simulator_model": "peer-simulator",
        "timeout_s": 5.0,
        "max_retries": 3,
        "backoff_s": 0.01,
        "retry_after_max_s": 30.0,
        "concurrency": 4,
    }
    fields.update(overrides)
    return LLMEndpoint(**fields)  # type: ignore[arg-type]


def _chat(caller: LLMCaller, **kwargs: object) -> object:
    return caller.chat(MESSAGES, model="peer-simulator", json_mode=True, **kwargs)  # type: ignore[arg-type]


def test_chat_returns_text_usage_and_sends_the_key() -> None:
    with LLMPeer() as peer:
        reply = LLMCaller(_endpoint(peer)).chat(MESSAGES, model="peer-simulator", json_mode=True)
        assert reply.texts == ['{"activations": [0, 10, 0]}']
        assert reply.model == "peer-simulator"
        prompt_chars = sum(len(str(m["content"])) for m in MESSAGES)
        assert reply.usage == TokenUsage(
            prompt=prompt_chars // 4, completion=len(reply.texts[0]) // 4, calls=1
        )
        (request,) = peer.requests
        assert request.authorization == f"Bearer {SECRET}"
        assert request.body["response_format"] == {"type": "json_object"}


def test_logprobs_are_returned_per_token() -> None:
    with LLMPeer() as peer:
        reply = LLMCaller(_endpoint(peer)).chat(MESSAGES, model="m", top_logprobs=TOP_LOGPROBS)
        tokens = reply.logprobs[0]
        assert tokens is not None
        assert "".join(token.token for token in tokens) == reply.texts[0]
        assert peer.requests[0].body["top_logprobs"] == TOP_LOGPROBS


def test_rate_limit_honours_retry_after_seconds() -> None:
    with LLMPeer(faults=[Fault("rate_limit", times=1, retry_after="1")]) as peer:
        reply = _chat(LLMCaller(_endpoint(peer)))
        first, second = peer.requests
        assert first.fault == "rate_limit" and second.fault is None
        assert second.arrived_s - first.arrived_s >= 1.0
        assert reply.usage.calls == 2  # type: ignore[attr-defined]


def test_rate_limit_honours_retry_after_http_date() -> None:
    when = format_datetime(datetime.now(UTC) + timedelta(seconds=3), usegmt=True)
    with LLMPeer(faults=[Fault("rate_limit", times=1, retry_after=when)]) as peer:
        _chat(LLMCaller(_endpoint(peer)))
        first, second = peer.requests
        # The date has one-second resolution: at least two of the three seconds remain to be waited.
        assert second.arrived_s - first.arrived_s >= 1.5


def test_retry_after_is_capped() -> None:
    with LLMPeer(faults=[Fault("rate_limit", times=1, retry_after="3600")]) as peer:
        reply = _chat(LLMCaller(_endpoint(peer, retry_after_max_s=0.1)))
        assert reply.usage.calls == 2  # type: ignore[attr-defined]


def test_server_errors_are_retried_then_succeed() -> None:
    with LLMPeer(faults=[Fault("server_error", times=2)]) as peer:
        reply = _chat(LLMCaller(_endpoint(peer)))
        assert [r.fault for r in peer.requests] == ["server_error", "server_error", None]
        assert reply.usage.calls == 3  # type: ignore[attr-defined]


def test_persistent_server_error_names_endpoint_and_answer(caplog: pytest.LogCaptureFixture) -> None:
    with LLMPeer(faults=[Fault("server_error", times=10)]) as peer:
        endpoint = _endpoint(peer, max_retries=2)
        with pytest.raises(LLMEndpointError) as caught:
            _chat(LLMCaller(endpoint))
        message = str(caught.value)
        # The error reaches API clients: the endpoint's name only; its URL goes to the worker's log.
        assert message.startswith("LLM endpoint 'test' failed") and peer.base_url not in message
        assert peer.base_url in caplog.text
        assert "after 3 attempts" in message
        assert "HTTP 500" in message and "The server had an error" in message
        assert SECRET not in message
        assert peer.calls == 3


def test_hang_past_timeout_is_retried() -> None:
    with LLMPeer(faults=[Fault("hang", times=1)]) as peer:
        # the second answer is quick: 2 s is far above its time on a loaded machine
        reply = _chat(LLMCaller(_endpoint(peer, timeout_s=2, max_retries=1)))
        assert reply.usage.calls == 2  # type: ignore[attr-defined]


def test_persistent_hang_ends_in_a_timeout_error() -> None:
    with LLMPeer(faults=[Fault("hang", times=5)]) as peer:
        with pytest.raises(LLMEndpointError, match=r"after 2 attempts: timed out after 0.3s"):
            _chat(LLMCaller(_endpoint(peer, timeout_s=0.3, max_retries=1)))


def test_connection_refused_ends_in_a_connection_error() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}/v1"
    with pytest.raises(LLMEndpointError, match=r"after 3 attempts: connection error"):
        _chat(LLMCaller(_endpoint(url, max_retries=2)))


def test_unauthorized_is_not_retried() -> None:
    with LLMPeer(api_key="the-right-key") as peer:
        with pytest.raises(LLMEndpointError, match=r"after 1 attempt: HTTP 401: .*Incorrect API key"):
            _chat(LLMCaller(_endpoint(peer)))
        assert peer.calls == 1


def test_body_that_is_not_json_is_retried() -> None:
    with LLMPeer(faults=[Fault("bad_body", times=1)]) as peer:
        reply = _chat(LLMCaller(_endpoint(peer)))
        assert reply.texts == ['{"activations": [0, 10, 0]}']  # type: ignore[attr-defined]
        assert peer.calls == 2


def test_rejected_optional_params_degrade_once_and_are_remembered() -> None:
    with LLMPeer(unsupported_params=["logprobs"]) as peer:
        caller = LLMCaller(_endpoint(peer))
        first = _chat(caller, top_logprobs=TOP_LOGPROBS)
        assert first.logprobs == [None]  # type: ignore[attr-defined]
        assert ["logprobs" in r.body for r in peer.requests] == [True, False]
        assert "top_logprobs" not in peer.requests[1].body
        assert "response_format" in peer.requests[1].body  # only what the endpoint named is dropped
        _chat(caller, top_logprobs=TOP_LOGPROBS)
        assert peer.calls == 3  # the second call went straight without the rejected parameters


def test_models_refusing_temperature_and_max_tokens_still_answer() -> None:
    # Newer OpenAI models answer 400 to a temperature other than 1 and to `max_tokens`, one at a time.
    with LLMPeer(unsupported_params=["temperature", "max_tokens"]) as peer:
        reply = _chat(LLMCaller(_endpoint(peer, max_retries=0)), temperature=0.0, max_tokens=40)
        assert reply.texts == ['{"activations": [0, 10, 0]}']  # type: ignore[attr-defined]
        assert [r.status for r in peer.requests] == [400, 400, 200]
        last = peer.requests[-1].body
        assert "temperature" not in last and "max_tokens" not in last
        assert last["max_completion_tokens"] == 40


def test_concurrency_bound_per_endpoint() -> None:
    with LLMPeer(latency_ms=50) as peer:
        endpoint = _endpoint(peer, concurrency=3)
        state = LLMCallState()  # what a worker process's callers share
        callers = [
            LLMCaller(endpoint, state=state) for _ in range(2)
        ]  # two callers share the endpoint's bound
        threads = [threading.Thread(target=_chat, args=(callers[i % 2],)) for i in range(12)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert peer.calls == 12
        assert 1 < peer.max_in_flight <= 3


def test_backoff_doubles_with_jitter_and_is_capped() -> None:
    waits: list[float] = []
    with LLMPeer(faults=[Fault("server_error", times=4)]) as peer:
        endpoint = _endpoint(peer, backoff_s=1.0, retry_after_max_s=3.0, max_retries=4)
        caller = LLMCaller(endpoint, sleep=waits.append, rng=random.Random(0))
        _chat(caller)
    assert len(waits) == 4
    for retry, wait in enumerate(waits):
        ceiling = min(3.0, 2.0**retry)
        assert ceiling * 0.5 <= wait <= ceiling


def test_parse_retry_after() -> None:
    now = datetime(2025, 1, 1, 12, 0, 0, tzinfo=UTC)
    assert parse_retry_after({"retry-after": "2"}) == 2.0
    assert parse_retry_after({"retry-after-ms": "250", "retry-after": "9"}) == 0.25
    assert parse_retry_after({"retry-after": "Wed, 01 Jan 2025 12:00:07 GMT"}, now=now) == 7.0
    assert parse_retry_after({"retry-after": "Wed, 01 Jan 2025 11:00:00 GMT"}, now=now) == 0.0
    assert parse_retry_after({"retry-after": "soon"}) is None
    assert parse_retry_after({}) is None
