"""Requests through the API, run by the project's NeuronLensWorker (in this process) over real MiniLM.

The probe set is minilm-l6's default (text-probe-v2) cut to its first samples (a temp registry shared by the
API and the worker), so a scan takes seconds; artifacts live in the session store and are reused across tests.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from rq import Queue
from rq.job import Job
from rq.registry import StartedJobRegistry
from rq.serializers import JSONSerializer

from service.contract import (
    BUNDLED_REGISTRY,
    EXPLAIN_TASK,
    SCAN_QUEUE,
    ExplainJobPayload,
    ExplainJobResult,
    JobMeta,
    JobStatus,
    NeuronReport,
    ScanJobPayload,
    ScanJobResult,
)
from service.http.app import create_app
from service.jobs.queues import JobQueues
from service.settings import Settings
from tests.service.helpers import explain_parts, rq_jobs, run_workers, serve, worker_runtime
from workers.process.worker import build_worker

SAMPLES = 600
"""Probe-set samples scanned (the same slice the worker-domain tests scan, so artifacts can be shared)."""
LAYER = 2


def _write_registry(path: Path, samples: int, extra_models: list[dict[str, Any]] | None = None) -> Path:
    registry = json.loads(BUNDLED_REGISTRY.read_text())
    # minilm-l6's default probe set (the first it lists), cut to its first `samples`
    (minilm,) = [model for model in registry["models"] if model["id"] == "minilm-l6"]
    (default,) = [dataset for dataset in registry["datasets"] if dataset["id"] == minilm["datasets"][0]]
    default["n_samples"] = samples
    registry["models"].extend(extra_models or [])
    path.write_text(json.dumps(registry))
    return path


@pytest.fixture()
def stack(
    tmp_path: Path, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[httpx.Client, Settings]]:
    """An API and in-process workers that agree on a registry (small probe set, plus a model without
    weights). Workers read their settings from the environment, as deployed ones do."""
    missing = json.loads(BUNDLED_REGISTRY.read_text())["models"][0]
    missing.update(
        id="bert-missing",
        revision="absent-1",
        source={"kind": "hub-or-path", "path": str(tmp_path / "no-such-checkpoint")},
    )
    registry = _write_registry(tmp_path / "registry.json", SAMPLES, [missing])
    for name, value in {
        "NEURONLENS_REGISTRY_PATH": str(registry),
        "NEURONLENS_ARTIFACT_URL": settings.artifact_url,
        "NEURONLENS_DEVICE": "cpu",
        "HF_HUB_OFFLINE": "1",
    }.items():
        monkeypatch.setenv(name, value)
    with httpx.Client(timeout=60) as http:
        yield http, settings.model_copy(update={"registry_path": registry})


def _status(http: httpx.Client, url: str, job_id: str, **params: int) -> JobStatus:
    response = http.get(f"{url}/v1/jobs/{job_id}", params=params)
    assert response.status_code == 200, response.text
    return JobStatus.model_validate(response.json())


def test_a_request_runs_to_finished_reports(
    stack: tuple[httpx.Client, Settings], redis_conn: redis.Redis
) -> None:
    http, settings = stack
    request = {"model": "minilm-l6", "layer": LAYER, "neurons": [99, 3, 17]}
    with serve(create_app(settings)) as url:
        job_id = http.post(f"{url}/v1/explanations", json=request).json()["job_id"]
        run_workers(redis_conn, settings)

        status = _status(http, url, job_id)
        assert status.status == "finished", status.error
        assert status.progress.done == status.progress.total == 3
        assert status.reports_total == 3 and status.error is None and status.queue_position is None
        assert status.started_at is not None and status.ended_at is not None
        assert status.reports is not None and [r.neuron for r in status.reports] == [3, 17, 99]
        for report in status.reports:
            assert (report.model, report.layer, report.hook) == ("minilm-l6", LAYER, "mlp_act")
            assert report.dataset.n_samples == SAMPLES and report.neuron_type in ("text", "unknown")
            assert report.exemplars and report.explanation.backend == "baseline"
        page = _status(http, url, job_id, offset=2, limit=2)
        assert (
            page.reports is not None and [r.neuron for r in page.reports] == [99] and page.reports_total == 3
        )

        one = http.get(f"{url}/v1/neurons/minilm-l6/{LAYER}/17")
        assert one.status_code == 200
        assert NeuronReport.model_validate_json(one.content) == status.reports[1]

        jobs_before = rq_jobs(redis_conn)
        again = http.post(f"{url}/v1/explanations", json=request)
        assert again.status_code == 200
        assert JobStatus.model_validate(again.json()).reports == status.reports
        assert rq_jobs(redis_conn) == jobs_before
        # A repeat never rewrites the job's history; a part starts after the job was created.
        repeated = _status(http, url, job_id)
        kept = ("created_at", "started_at", "ended_at", "scan", "usage", "progress")
        assert repeated.model_dump(include=set(kept)) == status.model_dump(include=set(kept))
        assert status.created_at <= status.started_at <= status.ended_at

        metrics = http.get(f"{url}/metrics").text
    assert 'neuronlens_jobs_total{outcome="finished",queue="scan"} 1.0' in metrics
    assert 'neuronlens_jobs_total{outcome="finished",queue="explain"} 1.0' in metrics
    assert "neuronlens_neurons_explained_total 3.0" in metrics
    assert 'neuronlens_stage_duration_seconds_count{stage="simulate"} 3.0' in metrics


def test_typed_payloads_and_results_round_trip_through_rq_and_a_worker(
    stack: tuple[httpx.Client, Settings], redis_conn: redis.Redis
) -> None:
    http, settings = stack
    with serve(create_app(settings)) as url:
        request = {"model": "minilm-l6", "layer": LAYER, "neurons": [9, 8]}
        job_id = http.post(f"{url}/v1/explanations", json=request).json()["job_id"]
        (part_id,) = explain_parts(redis_conn, job_id)
        part = Job.fetch(part_id, connection=redis_conn, serializer=JSONSerializer)
        scan_id = JobMeta.from_meta(part.meta).scan_job_id
        assert scan_id is not None
        scan = Job.fetch(scan_id, connection=redis_conn, serializer=JSONSerializer)
        # Each job's one keyword argument is its typed payload's JSON dump.
        assert list(part.kwargs) == list(scan.kwargs) == ["payload"]
        sent = ExplainJobPayload.model_validate(part.kwargs["payload"])
        assert sent.request.neuron_list() == [8, 9] and sent.request.only_layer() == LAYER
        assert sent.group == job_id and sent.budget is None and sent.variant is not None
        scanned = ScanJobPayload.model_validate(scan.kwargs["payload"])
        assert (scanned.model, scanned.layers, scanned.hook) == ("minilm-l6", [LAYER], "mlp_act")

        # A payload that does not validate is refused by the worker, as data.
        queues = JobQueues.connect(redis_conn, settings)
        bad = queues.explain.enqueue_call(func=EXPLAIN_TASK, kwargs={"payload": {"variant": 3}})
        run_workers(redis_conn, settings)
        status = _status(http, url, job_id)
    assert status.status == "finished" and status.reports is not None
    result = ExplainJobResult.model_validate(part.return_value())
    assert result.explained + result.reused == 2 and len(result.report_keys) == 2
    assert result.usage.calls == 0 and not result.budget_exhausted
    assert result.model_revision == status.reports[0].model_revision
    layers = ScanJobResult.model_validate(scan.return_value()).layers
    assert list(layers) == [LAYER] and layers[LAYER].n_samples == SAMPLES
    refused = JobMeta.from_meta(Job.fetch(bad.id, connection=redis_conn, serializer=JSONSerializer).meta)
    assert refused.error is not None and refused.error.type == "InvalidRequest"
    assert refused.error.message == "invalid explain payload: request: Field required"


def test_only_neurons_without_a_stored_report_are_explained(
    stack: tuple[httpx.Client, Settings], redis_conn: redis.Redis
) -> None:
    http, settings = stack
    with serve(create_app(settings)) as url:
        first = http.post(
            f"{url}/v1/explanations", json={"model": "minilm-l6", "layer": LAYER, "neurons": [5, 6]}
        )
        run_workers(redis_conn, settings)
        assert _status(http, url, first.json()["job_id"]).status == "finished"
        more = {"model": "minilm-l6", "layer": LAYER, "neurons": {"start": 4, "stop": 8}}
        job_id = http.post(f"{url}/v1/explanations", json=more).json()["job_id"]
        run_workers(redis_conn, settings)
        status = _status(http, url, job_id)
    assert status.status == "finished" and status.reports is not None
    assert [r.neuron for r in status.reports] == [4, 5, 6, 7]
    (part_id,) = explain_parts(redis_conn, job_id)
    result = Job.fetch(part_id, connection=redis_conn, serializer=JSONSerializer).return_value()
    assert result is not None and (result["explained"], result["reused"]) == (2, 2)


def test_missing_weights_fail_with_a_readable_error(
    stack: tuple[httpx.Client, Settings], redis_conn: redis.Redis
) -> None:
    http, settings = stack
    with serve(create_app(settings)) as url:
        job_id = http.post(
            f"{url}/v1/explanations", json={"model": "bert-missing", "layer": 0, "neurons": [1]}
        ).json()["job_id"]
        run_workers(redis_conn, settings)
        response = http.get(f"{url}/v1/jobs/{job_id}")
    status = JobStatus.model_validate(response.json())
    assert status.status == "failed" and status.error is not None
    assert status.error.type == "ModelWeightsMissing"
    assert "no-such-checkpoint" in status.error.message
    assert "Traceback" not in response.text and 'File "' not in response.text


def test_a_job_past_its_timeout_fails_as_job_timeout(
    stack: tuple[httpx.Client, Settings],
    redis_conn: redis.Redis,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    http, settings = stack
    # Torch is imported up front so the alarm lands in the scan itself, never inside an import.
    import workers.process.scan_job  # noqa: F401

    # A fresh artifact store, the whole probe set and the last layer (the scan runs the whole model, 6 layers
    # over 4096 samples): the scan cannot finish within one second. (Layer 0 stops after one layer and
    # came close to a second once the recorder got faster.)
    fresh = str(tmp_path / "fresh-artifacts")
    monkeypatch.setenv("NEURONLENS_ARTIFACT_URL", fresh)
    full = _write_registry(tmp_path / "full.json", 4096)
    monkeypatch.setenv("NEURONLENS_REGISTRY_PATH", str(full))
    impatient = settings.model_copy(
        update={"registry_path": full, "artifact_url": fresh, "scan_timeout_s": 1, "job_retries": 0}
    )
    with serve(create_app(impatient)) as url:
        job_id = http.post(
            f"{url}/v1/explanations", json={"model": "minilm-l6", "layer": 5, "neurons": [1]}
        ).json()["job_id"]
        run_workers(redis_conn, impatient)
        status = _status(http, url, job_id)
    assert status.status == "failed" and status.error is not None
    assert status.error.type == "JobTimeout", status.error


def test_a_killed_worker_shows_worker_died(
    stack: tuple[httpx.Client, Settings], redis_conn: redis.Redis, tmp_path: Path
) -> None:
    http, settings = stack
    full = _write_registry(tmp_path / "full.json", 4096)
    no_retries = settings.model_copy(update={"registry_path": full, "job_retries": 0})
    env = {
        **os.environ,
        "NEURONLENS_REDIS_URL": settings.redis_url or "",
        "NEURONLENS_REGISTRY_PATH": str(full),
        "NEURONLENS_ARTIFACT_URL": str(tmp_path / "fresh-artifacts"),
        "NEURONLENS_WORKER_HEARTBEAT_S": "1",
    }
    with serve(create_app(no_retries)) as url:
        job_id = http.post(
            f"{url}/v1/explanations", json={"model": "minilm-l6", "layer": 1, "neurons": [1]}
        ).json()["job_id"]
        worker = subprocess.Popen(
            [sys.executable, "-m", "workers.process.worker", "--queues", "scan"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            deadline = time.monotonic() + 120
            while _status(http, url, job_id).status != "scanning":
                assert time.monotonic() < deadline, "the worker never started the scan"
                time.sleep(0.1)
            worker.send_signal(signal.SIGKILL)
        finally:
            worker.kill()
            worker.wait()
        # What any live worker does within a few heartbeats, done here at once.
        StartedJobRegistry("scan", connection=redis_conn, serializer=JSONSerializer).cleanup(time.time() + 60)
        response = http.get(f"{url}/v1/jobs/{job_id}")
    status = JobStatus.model_validate(response.json())
    assert status.status == "failed" and status.error is not None
    assert status.error.type == "WorkerDied"
    assert Queue("scan", connection=redis_conn).count == 0


def test_a_scan_artifact_lost_after_its_job_finished_is_rescanned_on_repeat(
    stack: tuple[httpx.Client, Settings],
    redis_conn: redis.Redis,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    http, settings = stack
    store = tmp_path / "own-artifacts"
    monkeypatch.setenv("NEURONLENS_ARTIFACT_URL", str(store))
    small = _write_registry(tmp_path / "small.json", 200)  # this test scans twice: keep it short
    monkeypatch.setenv("NEURONLENS_REGISTRY_PATH", str(small))
    settings = settings.model_copy(update={"registry_path": small, "artifact_url": str(store)})  # one store
    request = {"model": "minilm-l6", "layer": LAYER, "neurons": [11]}
    with serve(create_app(settings)) as url:
        job_id = http.post(f"{url}/v1/explanations", json=request).json()["job_id"]
        build_worker(settings, [SCAN_QUEUE], connection=redis_conn, runtime=worker_runtime()).work(burst=True)
        shutil.rmtree(store / "scans")  # e.g. an explain node that sees another store than the scan node
        run_workers(redis_conn, settings)
        failed = _status(http, url, job_id)
        assert failed.status == "failed" and failed.error is not None and failed.error.type == "ScanMissing"

        assert http.post(f"{url}/v1/explanations", json=request).json()["job_id"] == job_id
        run_workers(redis_conn, settings)
        status = _status(http, url, job_id)
    assert status.status == "finished" and status.reports is not None and status.reports[0].neuron == 11


def test_a_cancelled_running_part_stops_after_its_current_neuron(
    stack: tuple[httpx.Client, Settings], redis_conn: redis.Redis
) -> None:
    http, settings = stack
    neurons = list(range(200, 456))
    with serve(create_app(settings)) as url:
        job_id = http.post(
            f"{url}/v1/explanations", json={"model": "minilm-l6", "layer": LAYER, "neurons": neurons}
        ).json()["job_id"]
        answers: list[JobStatus] = []

        def cancel_once_explaining() -> None:
            deadline = time.monotonic() + 120
            while _status(http, url, job_id).progress.done == 0 and time.monotonic() < deadline:
                time.sleep(0.005)
            answers.append(JobStatus.model_validate(http.delete(f"{url}/v1/jobs/{job_id}").json()))

        canceller = threading.Thread(target=cancel_once_explaining)
        canceller.start()
        run_workers(redis_conn, settings)  # the part stops; the burst worker returns
        canceller.join()
        status = _status(http, url, job_id)
    assert answers[0].status == status.status == "cancelled"
    assert status.not_done is not None
    left = status.not_done[0].neurons
    assert 0 < status.progress.done < len(neurons) and status.progress.done + len(left) == len(neurons)
    (part_id,) = explain_parts(redis_conn, job_id)
    assert Job.fetch(part_id, connection=redis_conn, serializer=JSONSerializer).get_status() == "finished"
