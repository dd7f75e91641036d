"""Helpers for the API tests: serve an app over real HTTP, inspect RQ state, build stored reports."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

import redis
import uvicorn
from litestar import Litestar

from service.contract import (
    QUEUE_NAMES,
    DatasetRef,
    Exemplar,
    Explanation,
    ExplanationRequest,
    NeuronReport,
    Provenance,
    RedisKeys,
    Simulation,
    TypeEvidence,
    load_registry,
)
from service.estimates.validate import resolve_request
from service.jobs.record import read_record
from service.reports.listing import request_report_keys
from service.settings import Settings, load_settings
from workers.process.report_writer import ReportObjects, store_report
from workers.process.rq_worker import NeuronLensWorker
from workers.process.runtime import WorkerRuntime
from workers.process.worker import build_runtime, build_worker

PROBLEM_JSON = "application/problem+json"


@contextmanager
def serve(app: Litestar) -> Iterator[str]:
    """Run ``app`` under uvicorn on a free loopback port in a background thread; yield its base URL."""
    config = uvicorn.Config(
        app, host="127.0.0.1", port=0, log_level="warning", access_log=False, lifespan="on"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="test-api", daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the API server did not start")
        time.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=20)


def explain_parts(conn: redis.Redis, job_id: str, keys: RedisKeys | None = None) -> list[str]:
    """Ids of the explain jobs (one per layer and neuron chunk) of a request, from its job record (of the
    deployment with ``keys``; None: the unprefixed one)."""
    record = read_record(conn, keys or RedisKeys(), job_id)
    assert record is not None, f"no job record for {job_id}"
    return [part.id for part in record.parts if part.enqueued]


def rq_jobs(conn: redis.Redis) -> list[str]:
    """Every RQ job hash and queue list in Redis (empty when nothing was ever enqueued)."""
    return sorted(k.decode() for k in conn.scan_iter("rq:job:*")) + sorted(
        k.decode() for k in conn.scan_iter("rq:queue:*")
    )


def build_report(model: str, revision: str, layer: int, neuron: int, hook: str, dataset: str) -> NeuronReport:
    """A complete, schema-valid report as an explain worker would store it."""
    tokens = ["the", "red", "car"]
    activations = [0.0, 2.5, 0.5]
    return NeuronReport(
        model=model,
        model_revision=revision,
        layer=layer,
        neuron=neuron,
        hook=hook,
        neuron_type="text",
        type_evidence=TypeEvidence(
            p_visual=0.0, p_text=0.9, p_multimodal=0.0, p_unknown=0.1, n_samples=50, high_confidence=True
        ),
        max_activation=2.5,
        exemplars=[
            Exemplar(
                sample_id=7,
                rank=0,
                kind="text",
                tokens=tokens,
                activations=activations,
                activations_norm=[0.0, 10.0, 2.0],
                max_activation=2.5,
            )
        ],
        explanation=Explanation(
            text='the token "red"', backend="baseline", model="baseline-v1", prompt_version="baseline-text-1"
        ),
        simulation=Simulation(
            correlation=0.8,
            method="pooled-pearson",
            backend="baseline",
            model="baseline-v1",
            n_top=10,
            n_random=10,
            n_tokens=200,
            parse_failures=0,
        ),
        dataset=DatasetRef(id=dataset, revision="1", n_samples=4096, n_tokens=50000),
        provenance=Provenance(
            pipeline_version="0.1.0",
            scan_id=f"scan-{model}-{layer}",
            seed=0,
            created_at=datetime(2025, 1, 1, tzinfo=UTC),
            timings_s={"explain": 0.01, "simulate": 0.02},
            llm_tokens={"prompt": 0, "completion": 0},
        ),
    )


def store_reports(
    conn: redis.Redis,
    objects: ReportObjects,
    request: ExplanationRequest,
    revision: str,
    settings: Settings | None = None,
) -> list[NeuronReport]:
    """Store a report for every neuron of a request as an explain worker does (object in the artifact
    store, then the Redis index), under the key the API (with ``settings``: its default backends and LLM
    endpoints; None: the baseline) reads."""
    resolved = resolve_request(load_registry(), request, max_neurons=4096, settings=settings)
    request = resolved.request
    assert request.hook is not None and request.dataset is not None
    assert resolved.model.revision == revision
    keys = request_report_keys(resolved)
    redis_keys = settings.redis_keys if settings is not None else RedisKeys()
    reports = []
    for neuron, key in zip(request.neuron_list(), keys, strict=True):
        report = build_report(request.model, revision, request.layer, neuron, request.hook, request.dataset)
        store_report(conn, redis_keys, objects, key, resolved.variant, report, None)
        reports.append(report)
    return reports


_RUNTIMES: dict[str, WorkerRuntime] = {}


def worker_runtime() -> WorkerRuntime:
    """The WorkerRuntime `neuronlens-worker` would build from the environment now; one per distinct
    configuration for the whole test session, as a long-running worker process keeps its models loaded."""
    settings = load_settings()
    key = settings.model_dump_json()
    if key not in _RUNTIMES:
        _RUNTIMES[key] = build_runtime(settings)
    return _RUNTIMES[key]


def run_workers(conn: redis.Redis, settings: Settings) -> NeuronLensWorker:
    """Work both queues until they are empty, in this process, with the project's own worker class: its
    queues as ``settings`` name them, its WorkerRuntime built from the environment as `neuronlens-worker`
    builds it (so a test can configure the workers unlike the API)."""
    worker = build_worker(settings, QUEUE_NAMES, connection=conn, runtime=worker_runtime())
    worker.work(burst=True)
    return worker
