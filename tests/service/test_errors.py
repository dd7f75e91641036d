"""Every error is RFC 9457 problem details: unknown routes, wrong methods, server faults, Redis outages."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

import httpx
import redis

from service.commands.embedded_redis import free_port
from service.http.error_responses import RETRY_AFTER_S
from service.settings import Settings
from tests.service.helpers import PROBLEM_JSON


def _problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM_JSON)
    body = response.json()
    assert {"type", "title", "status", "detail", "instance"} <= set(body)
    assert body["status"] == status
    assert "Traceback" not in response.text
    return body


def test_unknown_route_is_a_404_problem(http: httpx.Client) -> None:
    body = _problem(http.get("/v2/everything"), 404)
    assert body["detail"] == "no route matches GET /v2/everything"
    assert body["instance"] == "/v2/everything"


def test_wrong_method_is_a_405_problem(http: httpx.Client) -> None:
    body = _problem(http.delete("/v1/models"), 405)
    assert body["detail"] == "DELETE is not allowed on /v1/models"


def test_unknown_job_is_a_404_problem(http: httpx.Client) -> None:
    _problem(http.get("/v1/jobs/exp-000000000000000000000000"), 404)
    _problem(http.get("/v1/jobs/not-a-job"), 404)


def test_bad_paging_names_the_parameter(http: httpx.Client) -> None:
    body = _problem(http.get("/v1/jobs/exp-" + "0" * 24, params={"limit": 5000}), 422)
    assert body["errors"] == [{"field": "limit", "message": "Expected `int` <= 1000"}]
    body = _problem(http.get("/v1/jobs/exp-" + "0" * 24, params={"offset": -1}), 422)
    assert [e["field"] for e in body["errors"]] == ["offset"]


def test_a_server_fault_is_a_500_problem_without_internals(
    http: httpx.Client, redis_conn: redis.Redis
) -> None:
    # A queue key of the wrong type makes RQ's enqueue fail inside Redis (WRONGTYPE).
    redis_conn.set("rq:queue:scan", "not a list")
    response = http.post("/v1/explanations", json={"model": "minilm-l6", "layer": 1, "neurons": [1]})
    body = _problem(response, 500)
    assert "WRONGTYPE" not in response.text and "redis" not in response.text.lower()
    assert "server log" in str(body["detail"])


def test_redis_down_is_a_503_problem(
    settings: Settings, start_api: Callable[[Settings], AbstractContextManager[str]]
) -> None:
    closed = settings.model_copy(update={"redis_url": f"redis://127.0.0.1:{free_port()}/0"})
    with start_api(closed) as url:
        ready = httpx.get(f"{url}/readyz")
        post = httpx.post(f"{url}/v1/explanations", json={"model": "minilm-l6", "layer": 1, "neurons": [1]})
        alive = httpx.get(f"{url}/healthz")
    assert "Redis is unreachable" in str(_problem(ready, 503)["detail"])
    assert _problem(post, 503)["title"] == "Redis unavailable"
    assert ready.headers["retry-after"] == post.headers["retry-after"] == str(RETRY_AFTER_S)
    assert alive.status_code == 200
