"""Liveness, readiness and the Prometheus endpoint."""

from __future__ import annotations

import httpx
import redis
from prometheus_client.parser import text_string_to_metric_families

from service.http.app import create_app, package_version
from service.settings import Settings
from tests.service.helpers import serve


def test_healthz_and_readyz(http: httpx.Client) -> None:
    assert http.get("/healthz").json() == {"status": "ok"}
    assert http.get("/readyz").json() == {"status": "ready"}


def test_metrics_exposes_the_families(http: httpx.Client, redis_conn: redis.Redis) -> None:
    http.get("/v1/models")
    http.get("/nowhere")
    http.post("/v1/explanations", json={"model": "minilm-l6", "layer": 1, "neurons": [3]})
    # Counters as a worker records them (workers/process/counters.py writes this hash).
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
    assert response.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    families = {f.name: f for f in text_string_to_metric_families(response.text)}
    for name in (
        "neuronlens_http_request_duration_seconds",
        "neuronlens_queue_jobs",
        "neuronlens_jobs",
        "neuronlens_job_duration_seconds",
        "neuronlens_stage_duration_seconds",
        "neuronlens_neurons_explained",
        "neuronlens_redis_up",
        "neuronlens_workers",
        "neuronlens_queue_oldest_job_age_seconds",
        "neuronlens_build_info",
    ):
        assert name in families, name
    assert families["neuronlens_stage_duration_seconds"].type == "histogram"

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
    assert value("neuronlens_workers", queue="scan") == 0
    assert value("neuronlens_queue_oldest_job_age_seconds", queue="explain") == 0  # deferred, not queued
    assert value("neuronlens_queue_oldest_job_age_seconds", queue="scan") > 0
    assert value("neuronlens_build_info", version=package_version()) == 1
    # A job recorded before duration buckets existed still has its +Inf bucket.
    assert value("neuronlens_job_duration_seconds_bucket", queue="explain", le="+Inf") == 2


def test_worker_durations_are_histograms_with_buckets(
    http: httpx.Client, redis_conn: redis.Redis, settings: Settings
) -> None:
    """Durations recorded by the worker's own code (workers/process/counters.py) come out as Prometheus
    histograms."""
    from service.contract import DURATION_BUCKETS_S
    from workers.process.counters import observe

    metrics_key = settings.redis_keys.metrics
    with redis_conn.pipeline() as pipe:
        for seconds in (0.03, 0.2, 4.0, 7200.0):
            observe(pipe, metrics_key, "stage_seconds", {"stage": "simulate"}, seconds)
        pipe.execute()
    assert redis_conn.exists(metrics_key)
    families = {f.name: f for f in text_string_to_metric_families(http.get("/metrics").text)}
    samples = families["neuronlens_stage_duration_seconds"].samples
    buckets = {
        s.labels["le"]: s.value
        for s in samples
        if s.name.endswith("_bucket") and s.labels["stage"] == "simulate"
    }
    assert buckets["0.05"] == 1 and buckets["0.25"] == 2 and buckets["5.0"] == 3
    assert buckets[repr(DURATION_BUCKETS_S[-1])] == 3 and buckets["+Inf"] == 4
    total = next(s.value for s in samples if s.name.endswith("_sum") and s.labels["stage"] == "simulate")
    assert total == 0.03 + 0.2 + 4.0 + 7200.0


def test_worker_count_by_queue(http: httpx.Client, redis_conn: redis.Redis, settings: Settings) -> None:
    from rq import Queue, Worker
    from rq.serializers import JSONSerializer

    queue = Queue("explain", connection=redis_conn, serializer=JSONSerializer)
    worker = Worker([queue], connection=redis_conn, serializer=JSONSerializer)
    worker.register_birth()
    try:
        text = http.get("/metrics").text
    finally:
        worker.register_death()
    assert 'neuronlens_workers{queue="explain"} 1.0' in text
    assert 'neuronlens_workers{queue="scan"} 0.0' in text


def test_each_app_has_its_own_registry(settings: Settings) -> None:
    with serve(create_app(settings)) as first, serve(create_app(settings)) as second:
        httpx.get(f"{first}/healthz")
        text = httpx.get(f"{second}/metrics").text
    assert 'route="/healthz"' not in text
