"""API keys, per-key rates and quotas (NEURONLENS_AUTH=keys), over real HTTP against two API replicas
that share one real Redis."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, ExitStack
from typing import Any

import httpx
import pytest
import redis

from service.access.api_keys import KeyStore
from service.contract import ExplanationRequest, load_registry
from service.estimates.estimate import estimate_calls
from service.estimates.validate import resolve_request
from service.settings import LLMEndpointConfig, Settings
from tests.service.helpers import PROBLEM_JSON, rq_jobs

UNREACHABLE = "http://127.0.0.1:9/v1"
"""Nothing is called: a refused submission never reaches a worker, let alone the LLM."""
SUBMISSION = {"model": "minilm-l6", "layer": 3, "neurons": [0, 1, 2, 3, 4]}

StartApi = Callable[[Settings], AbstractContextManager[str]]


@pytest.fixture()
def keys_settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"auth": "keys"})


@pytest.fixture()
def replicas(keys_settings: Settings, start_api: StartApi) -> Iterator[tuple[httpx.Client, httpx.Client]]:
    """Two API processes' worth of apps (two create_app, two servers) on the same Redis."""
    with ExitStack() as stack:
        clients = []
        for _ in range(2):
            url = stack.enter_context(start_api(keys_settings))
            clients.append(stack.enter_context(httpx.Client(base_url=url, timeout=30)))
        yield clients[0], clients[1]


def make_key(conn: redis.Redis, name: str, scopes: Any, **limits: int) -> str:
    key, _ = KeyStore().create(conn, name, scopes, **limits)
    return key


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def assert_problem(response: httpx.Response, status: int, slug: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM_JSON
    body: dict[str, Any] = response.json()
    assert body["type"] == f"urn:neuronlens:problem:{slug}"
    assert body["request_id"] == response.headers["x-request-id"]
    return body


def test_without_a_key_every_v1_route_is_401_but_operations_stay_open(
    replicas: tuple[httpx.Client, httpx.Client],
) -> None:
    a, _ = replicas
    for method, path in [
        ("GET", "/v1/models"),
        ("GET", "/v1/jobs/exp-0"),
        ("GET", "/v1/neurons/minilm-l6/3/42"),
        ("POST", "/v1/explanations"),
    ]:
        response = a.request(method, path, json=SUBMISSION if method == "POST" else None)
        body = assert_problem(response, 401, "unauthorized")
        assert "Authorization: Bearer" in body["detail"]
        assert response.headers["www-authenticate"].startswith("Bearer")
    assert_problem(a.get("/v1/models", headers=bearer("nl_not-a-key")), 401, "unauthorized")
    for path in ("/healthz", "/readyz", "/metrics", "/schema/openapi.json"):
        assert a.get(path).status_code == 200, path


def test_scopes_and_revocation_hold_on_both_replicas(
    replicas: tuple[httpx.Client, httpx.Client], redis_conn: redis.Redis
) -> None:
    a, b = replicas
    reader = make_key(redis_conn, "reader", ["read"])
    submitter = make_key(redis_conn, "submitter", ["submit"])
    assert a.get("/v1/models", headers=bearer(reader)).status_code == 200
    assert b.get("/v1/models", headers={"X-API-Key": reader}).status_code == 200
    body = assert_problem(
        b.post("/v1/explanations", json=SUBMISSION, headers=bearer(reader)), 403, "forbidden"
    )
    assert "needs `submit`" in body["detail"]
    assert_problem(a.get("/v1/models", headers=bearer(submitter)), 403, "forbidden")
    assert a.post("/v1/explanations", json=SUBMISSION, headers=bearer(submitter)).status_code == 202

    assert [r.name for r in KeyStore().revoke(redis_conn, "reader")] == ["reader"]
    for client in (a, b):
        body = assert_problem(client.get("/v1/models", headers=bearer(reader)), 401, "unauthorized")
        assert "revoked" in body["detail"]


def test_keys_are_stored_hashed(redis_conn: redis.Redis) -> None:
    key = make_key(redis_conn, "team-a", ["read"])
    dump = b"".join(
        k + b"".join(f + v for f, v in redis_conn.hgetall(k).items())  # type: ignore[union-attr]
        for k in redis_conn.scan_iter("nl:apikey:*")
    )
    assert key.encode() not in dump and key.removeprefix("nl_").encode() not in dump
    assert KeyStore().all(redis_conn)[0].name == "team-a"


def test_the_rate_is_shared_by_the_replicas_and_the_next_request_is_429(
    replicas: tuple[httpx.Client, httpx.Client], redis_conn: redis.Redis
) -> None:
    a, b = replicas
    key = make_key(redis_conn, "five-a-minute", ["read"], rate_per_minute=5)
    other = make_key(redis_conn, "other", ["read"], rate_per_minute=5)
    for index in range(5):
        client = a if index % 2 else b
        assert client.get("/v1/models", headers=bearer(key)).status_code == 200
    refused = a.get("/v1/models", headers=bearer(key))
    body = assert_problem(refused, 429, "rate-limited")
    assert 1 <= int(refused.headers["retry-after"]) <= 60
    assert "5 requests in the last minute" in body["detail"]
    assert_problem(b.get("/v1/models", headers=bearer(key)), 429, "rate-limited")
    assert a.get("/v1/models", headers=bearer(other)).status_code == 200


def llm_keys_settings(keys_settings: Settings) -> Settings:
    return keys_settings.model_copy(
        update={"llm_endpoints": {"peer": LLMEndpointConfig(base_url=UNREACHABLE, explainer_model="m")}}
    )


def test_a_submission_over_the_llm_quota_is_refused_up_front_naming_the_estimate(
    keys_settings: Settings, start_api: StartApi, redis_conn: redis.Redis
) -> None:
    settings = llm_keys_settings(keys_settings)
    expected = estimate_calls(
        resolve_request(load_registry(), ExplanationRequest.model_validate(SUBMISSION), 4096, settings)
    )
    # 1 explanation + 10 top and 10 random held-out records, simulated again for each of the chance null's
    # 5 donor explanations, and the 6 donors of layer 3 (none among neurons 0-4) explained once.
    assert expected.llm_calls == 5 * (1 + 2 * 10 * 6) + 6
    small = make_key(redis_conn, "small", ["submit"], llm_calls_per_day=expected.llm_calls - 1)
    fits_once = make_key(redis_conn, "fits-once", ["submit"], llm_calls_per_day=expected.llm_calls + 10)
    with start_api(settings) as url, httpx.Client(base_url=url, timeout=30) as client:
        body = assert_problem(
            client.post("/v1/explanations", json=SUBMISSION, headers=bearer(small)), 403, "forbidden"
        )
        assert body["estimate"] == expected.model_dump()
        assert f"estimated at {expected.llm_calls} llm calls" in body["detail"]
        assert rq_jobs(redis_conn) == []

        assert client.post("/v1/explanations", json=SUBMISSION, headers=bearer(fits_once)).status_code == 202
        enqueued = rq_jobs(redis_conn)
        # Joining the job in flight costs nothing more; a new job is refused until the day's window resets.
        assert client.post("/v1/explanations", json=SUBMISSION, headers=bearer(fits_once)).status_code == 202
        other_neurons = {**SUBMISSION, "neurons": [5, 6, 7, 8, 9]}
        refused = client.post("/v1/explanations", json=other_neurons, headers=bearer(fits_once))
        body = assert_problem(refused, 429, "rate-limited")
        assert body["estimate"]["llm_calls"] == expected.llm_calls
        assert f"has 10 of its {expected.llm_calls + 10} per day left" in body["detail"]
        assert 1 <= int(refused.headers["retry-after"]) <= 24 * 3600
        assert rq_jobs(redis_conn) == enqueued


def test_the_baseline_costs_no_llm_calls(
    keys_settings: Settings, replicas: Any, redis_conn: redis.Redis
) -> None:
    a, _ = replicas
    key = make_key(redis_conn, "no-llm", ["submit"], llm_calls_per_day=1)
    assert a.post("/v1/explanations", json=SUBMISSION, headers=bearer(key)).status_code == 202
