"""Liveness, readiness and the Prometheus endpoint."""

from __future__ import annotations

import httpx
import redis
from prometheus_client.parser import text_string_to_metric_families

from service.app import create_app
from service.settings import Settings
from tests.service.helpers import serve


def test_healthz_and_readyz(http: httpx.Client) -> None:
    assert http.get("/healthz").json() == {"status": "ok"}
    assert http.get("/readyz").json() == {"status": "ready"}


def test_metrics_exposes_the_families(http: httpx.Client, redis_conn: redis.Redis) -> None:
    http.get("/v1/models")
    http.get("/nowhere")
    http.post("/v1/explanations", json={"model": "minilm-l6", "layer": 1, "neurons": [3]})
    # Counters as a worker records them (workers/tasks.py writes this hash).
    redis_conn.hset(
        "nl:metrics",
        mapping={
            "jobs_total{outcome=finished,queue=explain}": 2,
            "job_seconds_sum{queue=explain}": 3.5,
            "job_seconds_count{queue=explain}": 2,
            "neurons_explained_total": 7,
        },
    )
    response = http.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    families = {f.name: f for f in text_string_to_metric_families(response.text)}
    for name in (
        "neuronlens_http_request_duration_seconds",
        "neuronlens_queue_jobs",
        "neuronlens_jobs",
        "neuronlens_job_duration_seconds",
        "neuronlens_stage_duration_seconds",
        "neuronlens_neurons_explained",
        "neuronlens_redis_up",
    ):
        assert name in families, name

    samples = [sample for family in families.values() for sample in family.samples]

    def value(sample: str, **labels: str) -> float:
        return next(
            s.value
            for s in samples
            if s.name == sample and all(s.labels.get(k) == v for k, v in labels.items())
        )

    latency_count = "neuronlens_http_request_duration_seconds_count"
    assert value(latency_count, method="GET", route="/v1/models", status="200") == 1
    assert value(latency_count, method="GET", route="unmatched", status="404") == 1
    assert value(latency_count, method="POST", route="/v1/explanations", status="202") == 1
    assert value("neuronlens_queue_jobs", queue="scan", state="queued") == 1
    assert value("neuronlens_queue_jobs", queue="explain", state="deferred") == 1
    assert value("neuronlens_jobs_total", queue="explain", outcome="finished") == 2
    assert value("neuronlens_job_duration_seconds_sum", queue="explain") == 3.5
    assert value("neuronlens_job_duration_seconds_count", queue="explain") == 2
    assert value("neuronlens_neurons_explained_total") == 7
    assert value("neuronlens_redis_up") == 1


def test_each_app_has_its_own_registry(settings: Settings) -> None:
    with serve(create_app(settings)) as first, serve(create_app(settings)) as second:
        httpx.get(f"{first}/healthz")
        text = httpx.get(f"{second}/metrics").text
    assert 'route="/healthz"' not in text
