"""GET /v1/jobs/{id} while jobs wait, run and fail — with the project's NeuronLensWorker in this process."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
import redis
from rq import Queue
from rq.job import Job
from rq.serializers import JSONSerializer
from rq.worker import Worker

from service.contract import BUNDLED_REGISTRY, SCAN_QUEUE, JobMeta, JobStatus, load_registry
from service.jobs.part_state import job_error
from service.settings import Settings
from tests.service.helpers import explain_parts, run_workers
from workers.process.rq_worker import PUBSUB_POLL_S

REQUEST = {"model": "minilm-l6", "layer": 1, "neurons": [4, 5]}


@pytest.fixture()
def worker_without_minilm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Workers whose registry lacks minilm-l6 (an API and workers deployed with different registries)."""
    registry = json.loads(BUNDLED_REGISTRY.read_text())
    registry["models"][0]["id"] = "other-model"
    path = tmp_path / "worker-registry.json"
    path.write_text(json.dumps(registry))
    monkeypatch.setenv("NEURONLENS_REGISTRY_PATH", str(path))


def _status(http: httpx.Client, job_id: str) -> JobStatus:
    response = http.get(f"/v1/jobs/{job_id}")
    assert response.status_code == 200, response.text
    return JobStatus.model_validate(response.json())


def test_a_failed_scan_fails_its_explain_job_with_the_scan_error(
    http: httpx.Client, redis_conn: redis.Redis, settings: Settings, worker_without_minilm: None
) -> None:
    job_id = http.post("/v1/explanations", json=REQUEST).json()["job_id"]
    run_workers(redis_conn, settings)

    response = http.get(f"/v1/jobs/{job_id}")
    assert "Traceback" not in response.text
    status = JobStatus.model_validate(response.json())
    assert status.status == "failed"
    assert status.error is not None and status.error.type == "UnknownModel"
    others = ", ".join(["other-model", *(model.id for model in load_registry().models[1:])])
    assert status.error.message == f"model 'minilm-l6' is not in this worker's registry: it has {others}"
    assert status.ended_at is not None and status.queue_position is None
    # RQ leaves the dependent deferred; the API must not show it as waiting forever.
    (part_id,) = explain_parts(redis_conn, job_id)
    assert Job.fetch(part_id, connection=redis_conn, serializer=JSONSerializer).get_status() == "deferred"


def test_a_permanent_error_is_not_retried(
    http: httpx.Client, redis_conn: redis.Redis, settings: Settings, worker_without_minilm: None
) -> None:
    http.post("/v1/explanations", json=REQUEST)
    (scan_id,) = Queue("scan", connection=redis_conn).job_ids
    run_workers(redis_conn, settings)
    scan = Job.fetch(scan_id, connection=redis_conn, serializer=JSONSerializer)
    assert scan.get_status() == "failed" and scan.retries_left == 0
    # One attempt although the job had retries (the task counts every attempt it makes).
    assert redis_conn.hget("nl:metrics", "jobs_total{outcome=failed,queue=scan}") == b"1"


@pytest.mark.timeout(30)
def test_a_burst_worker_returns_at_once_after_failing_a_job(
    http: httpx.Client, redis_conn: redis.Redis, settings: Settings, worker_without_minilm: None
) -> None:
    """RQ's command-channel thread waited 60 s for a message and redis-py 8 joins it at teardown, so every
    burst run that failed a job took a minute to return (and a stopping worker a minute to exit)."""
    http.post("/v1/explanations", json=REQUEST)
    worker = run_workers(redis_conn, settings)
    thread = worker.pubsub_thread
    assert thread is not None and not thread.is_alive()
    assert thread.sleep_time == PUBSUB_POLL_S <= 1.0


def test_repeating_a_failed_request_runs_it_again_under_the_same_id(
    http: httpx.Client, redis_conn: redis.Redis, settings: Settings, worker_without_minilm: None
) -> None:
    job_id = http.post("/v1/explanations", json=REQUEST).json()["job_id"]
    run_workers(redis_conn, settings)
    assert _status(http, job_id).status == "failed"

    again = http.post("/v1/explanations", json=REQUEST)
    assert again.status_code == 202 and again.json()["job_id"] == job_id
    status = _status(http, job_id)
    assert status.status == "queued" and status.queue_position == 0 and status.error is None
    (scan_id,) = Queue("scan", connection=redis_conn).job_ids
    scan = Job.fetch(scan_id, connection=redis_conn, serializer=JSONSerializer)
    assert scan.retries_left == settings.job_retries and "error" not in scan.meta

    # Still failing workers: failed again, with the same readable error.
    run_workers(redis_conn, settings)
    status = _status(http, job_id)
    assert status.status == "failed" and status.error is not None and status.error.type == "UnknownModel"


def test_a_deferred_job_whose_scan_vanished_is_failed_and_recoverable(
    http: httpx.Client, redis_conn: redis.Redis
) -> None:
    job_id = http.post("/v1/explanations", json=REQUEST).json()["job_id"]
    (scan_id,) = Queue("scan", connection=redis_conn).job_ids
    Job.fetch(scan_id, connection=redis_conn, serializer=JSONSerializer).delete()
    status = _status(http, job_id)
    assert status.status == "failed" and status.error is not None and status.error.type == "ScanLost"
    assert http.post("/v1/explanations", json=REQUEST).json()["job_id"] == job_id
    assert _status(http, job_id).status == "queued"
    assert Queue("scan", connection=redis_conn).job_ids == [scan_id]


def test_queue_position_counts_jobs_ahead(http: httpx.Client, redis_conn: redis.Redis) -> None:
    ids = [
        http.post("/v1/explanations", json={"model": "minilm-l6", "layer": layer, "neurons": [0]}).json()[
            "job_id"
        ]
        for layer in (5, 4, 3)
    ]
    assert [_status(http, job_id).queue_position for job_id in ids] == [0, 1, 2]
    Queue("scan", connection=redis_conn, serializer=JSONSerializer).remove(
        Queue("scan", connection=redis_conn).job_ids[0]
    )
    assert [_status(http, job_id).queue_position for job_id in ids[1:]] == [0, 1]


def test_a_deferred_job_its_scan_no_longer_lists_is_failed_and_recoverable(
    http: httpx.Client, redis_conn: redis.Redis
) -> None:
    job_id = http.post("/v1/explanations", json=REQUEST).json()["job_id"]
    (scan_id,) = Queue("scan", connection=redis_conn).job_ids
    scan = Job.fetch(scan_id, connection=redis_conn, serializer=JSONSerializer)
    # An operator deleted and re-created the scan job: the explain job is no longer its dependent.
    redis_conn.delete(scan.dependents_key)
    status = _status(http, job_id)
    assert status.status == "failed" and status.error is not None and status.error.type == "ScanLost"
    assert http.post("/v1/explanations", json=REQUEST).json()["job_id"] == job_id
    assert _status(http, job_id).status == "queued"
    assert redis_conn.sismember(scan.dependents_key, explain_parts(redis_conn, job_id)[0])


def test_a_queued_job_counts_the_workers_listening_on_its_queue(
    http: httpx.Client, redis_conn: redis.Redis
) -> None:
    """`workers` lets a client warn that nothing will run the job (the CLI does); it counts only workers
    registered for the queue the job waits in (the scan queue, while the scan is queued)."""
    job_id = http.post("/v1/explanations", json=REQUEST).json()["job_id"]
    assert _status(http, job_id).workers == 0

    explain_only = Worker(["explain"], connection=redis_conn, name="explain-only")
    explain_only.register_birth()
    assert _status(http, job_id).workers == 0, "a worker on another queue does not run the scan"
    scanner = Worker(["scan"], connection=redis_conn, name="scanner")
    scanner.register_birth()
    try:
        status = _status(http, job_id)
        assert status.status == "queued" and status.workers == 1
    finally:
        scanner.register_death()
        explain_only.register_death()
    assert _status(http, job_id).workers == 0


def test_a_failure_outside_the_task_body_is_recorded_by_exception_class(
    redis_conn: redis.Redis, settings: Settings
) -> None:
    # A task path that does not import never enters the task's own error handling: the worker class
    # records the failure from the exception RQ hands its handler, so the API reads data, not a traceback.
    job = Queue(SCAN_QUEUE, connection=redis_conn, serializer=JSONSerializer).enqueue_call(
        func="workers.process.tasks.no_such_task", kwargs={}, job_id="scan-unimportable"
    )
    run_workers(redis_conn, settings)
    job = Job.fetch(job.id, connection=redis_conn, serializer=JSONSerializer)
    assert job.get_status() == "failed"
    recorded = JobMeta.from_meta(job.meta).error
    assert recorded is not None and recorded.type == "ValueError" and "no_such_task" in recorded.message
    assert job_error(job) == recorded
