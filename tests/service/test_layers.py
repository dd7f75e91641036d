"""Many layers in one request, through the API with real workers over real MiniLM: one scan job and one
forward pass for every layer, explain work split into parts per (layer, neuron chunk), the whole job's
status with per-layer progress and the scan's passes and samples, and the POST 200 path paging.

Each test scans into its own artifact store with a probe set cut to its own size, so nothing is reused
from another test's scans and the scan artifacts counted are the ones this request wrote.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis
from rq import Queue
from rq.job import Job
from rq.registry import FinishedJobRegistry
from rq.serializers import JSONSerializer

from service.contract import ExplainJobPayload, ExplanationRequest, JobStatus, ScanState, load_registry
from service.http.app import create_app
from service.settings import Settings
from tests.e2e.helpers import probe_registry
from tests.service.helpers import explain_parts, rq_jobs, run_workers, serve, store_reports
from workers.process.report_writer import ReportObjects

MODEL = "minilm-l6"
LAYERS = load_registry().model(MODEL).layers


@pytest.fixture()
def fresh(tmp_path: Path, settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[Settings]:
    """API settings and in-process workers on one registry (a 160-sample probe set) and a fresh store;
    explain parts of 2 neurons."""
    registry = probe_registry(tmp_path / "registry.json", 160)
    store = tmp_path / "artifacts"
    for name, value in {
        "NEURONLENS_REGISTRY_PATH": str(registry),
        "NEURONLENS_ARTIFACT_URL": str(store),
        "NEURONLENS_DEVICE": "cpu",
        "HF_HUB_OFFLINE": "1",
    }.items():
        monkeypatch.setenv(name, value)
    yield settings.model_copy(
        update={"registry_path": registry, "artifact_url": str(store), "explain_chunk_neurons": 2}
    )


def _status(http: httpx.Client, job_id: str, **params: int) -> JobStatus:
    response = http.get(f"/v1/jobs/{job_id}", params=params)
    assert response.status_code == 200, response.text
    return JobStatus.model_validate(response.json())


def test_all_layers_run_one_scan_pass_and_explain_parts_per_chunk(
    fresh: Settings, redis_conn: redis.Redis
) -> None:
    request = {"model": MODEL, "layers": "all", "neurons": {"start": 0, "stop": 4}}
    with serve(create_app(fresh)) as url, httpx.Client(base_url=url, timeout=60) as http:
        accepted = http.post("/v1/explanations", json=request)
        assert accepted.status_code == 202, accepted.text
        job_id = accepted.json()["job_id"]
        (scan_id,) = Queue("scan", connection=redis_conn).job_ids  # one scan job for the six layers
        parts = explain_parts(redis_conn, job_id)
        assert len(parts) == LAYERS * 2 == len(set(parts)), "a part per (layer, chunk of 2 neurons)"
        queued = _status(http, job_id)
        assert queued.status == "queued" and queued.progress.total == LAYERS * 4
        assert queued.layers is not None and [entry.layer for entry in queued.layers] == list(range(LAYERS))

        run_workers(redis_conn, fresh)

        status = _status(http, job_id)
        assert status.status == "finished", status.error
        assert status.scan == ScanState(
            passes_planned=1, passes_done=1, samples_done=0, samples_total=160, shards=1
        )
        assert status.progress.done == status.progress.total == LAYERS * 4
        assert status.layers is not None and len(status.layers) == LAYERS
        assert all((e.status, e.done, e.total) == ("finished", 4, 4) for e in status.layers)
        assert status.reports_total == LAYERS * 4 and status.reports is not None
        expected = [(layer, neuron) for layer in range(LAYERS) for neuron in range(4)]
        assert [(r.layer, r.neuron) for r in status.reports] == expected
        page = _status(http, job_id, offset=5, limit=3)
        assert page.reports is not None and [(r.layer, r.neuron) for r in page.reports] == expected[5:8]

        again = http.post("/v1/explanations", json=request)  # every report stored now: 200, same id
        assert again.status_code == 200 and again.json()["job_id"] == job_id
    # One scan job ran, and it wrote the six layers' scan artifacts in one pass.
    finished = FinishedJobRegistry("scan", connection=redis_conn, serializer=JSONSerializer)
    assert finished.get_job_ids() == [scan_id]
    result = Job.fetch(scan_id, connection=redis_conn, serializer=JSONSerializer).return_value()
    assert result is not None and sorted(result["layers"]) == [str(layer) for layer in range(LAYERS)]
    assert not any(layer["reused"] for layer in result["layers"].values())
    written = sorted(p.name for p in (Path(fresh.artifact_url) / "scans").iterdir())
    assert sorted(layer["scan_id"] for layer in result["layers"].values()) == written
    assert len(written) == LAYERS
    for part in parts:
        assert Job.fetch(part, connection=redis_conn, serializer=JSONSerializer).get_status() == "finished"


def test_a_stored_request_answers_its_first_page_and_its_job_id_pages(
    settings: Settings, redis_conn: redis.Redis, tmp_path: Path, minilm_revision: str
) -> None:
    private = settings.model_copy(update={"artifact_url": str(tmp_path / "store")})
    for layer in range(LAYERS):
        one = ExplanationRequest(model=MODEL, layer=layer, neurons=list(range(20)))
        store_reports(redis_conn, ReportObjects(private.artifact_url), one, minilm_revision)
    with serve(create_app(private)) as url, httpx.Client(base_url=url, timeout=30) as http:
        _first_page_and_paging(http, redis_conn)


def _first_page_and_paging(http: httpx.Client, redis_conn: redis.Redis) -> None:
    request = {"model": MODEL, "layers": "all", "neurons": {"start": 0, "stop": 20}}
    answer = http.post("/v1/explanations", json=request)
    assert answer.status_code == 200, answer.text
    first = JobStatus.model_validate(answer.json())
    assert first.status == "finished" and first.reports_total == LAYERS * 20
    assert first.reports is not None and len(first.reports) == 100, "the first page, not every report"
    assert rq_jobs(redis_conn) == []  # nothing enqueued
    expected = [(layer, neuron) for layer in range(LAYERS) for neuron in range(20)]
    assert [(r.layer, r.neuron) for r in first.reports] == expected[:100]
    rest = _status(http, first.job_id, offset=100)
    assert rest.status == "finished" and rest.reports is not None
    assert [(r.layer, r.neuron) for r in rest.reports] == expected[100:]
    assert rest.layers is not None and all(e.done == e.total == 20 for e in rest.layers)
    assert rest.progress.done == rest.progress.total == LAYERS * 20

    # One layer, as before: the same id whether asked as `layer` or `layers: [n]`.
    single = http.post("/v1/explanations", json={"model": MODEL, "layer": 4, "neurons": [3, 1]})
    listed = http.post("/v1/explanations", json={"model": MODEL, "layers": [4], "neurons": [1, 3]})
    assert single.status_code == listed.status_code == 200
    assert single.json()["job_id"] == listed.json()["job_id"]
    assert [r["neuron"] for r in single.json()["reports"]] == [1, 3]
    assert _status(http, single.json()["job_id"]).reports_total == 2


def test_the_neuron_cap_applies_per_layer(settings: Settings) -> None:
    capped = settings.model_copy(update={"max_neurons_per_request": 4})
    with serve(create_app(capped)) as url, httpx.Client(base_url=url, timeout=30) as http:
        four = {"model": MODEL, "layers": "all", "neurons": {"start": 0, "stop": 4}}
        assert http.post("/v1/explanations", json=four).status_code == 202  # 24 neurons, 4 per layer
        five = {"model": MODEL, "layers": [0, 1], "neurons": {"start": 0, "stop": 5}}
        over = http.post("/v1/explanations", json=five)
        assert over.status_code == 422
        assert over.json()["errors"] == [
            {
                "field": "neurons",
                "message": "5 neurons per layer requested: at most 4 per layer are allowed in one request",
            }
        ]
        every = http.post("/v1/explanations", json={"model": MODEL, "layer": 0, "neurons": "all"})
        assert every.status_code == 422
        assert every.json()["errors"][0]["field"] == "neurons"
        assert "1536 neurons per layer requested (every neuron of a minilm-l6 layer)" in every.text
        bad = http.post("/v1/explanations", json={"model": MODEL, "layers": [0, 1, 9], "neurons": [0]})
        assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "layers.2"


def test_neurons_all_names_every_neuron_of_each_layer(http: httpx.Client, redis_conn: redis.Redis) -> None:
    answer = http.post("/v1/explanations", json={"model": MODEL, "layers": [1, 2], "neurons": "all"})
    assert answer.status_code == 202, answer.text
    status = _status(http, answer.json()["job_id"])
    per_layer = load_registry().model(MODEL).neurons_per_layer
    assert status.progress.total == 2 * per_layer
    assert status.layers is not None and [(e.layer, e.total) for e in status.layers] == [
        (1, per_layer),
        (2, per_layer),
    ]
    parts = explain_parts(redis_conn, answer.json()["job_id"])
    assert len(parts) == 2 * -(-per_layer // Settings().explain_chunk_neurons)
    sent = [
        ExplainJobPayload.model_validate(job.kwargs["payload"]).request
        for job in Job.fetch_many(parts, redis_conn, serializer=JSONSerializer)
        if job is not None
    ]
    covered = sorted((r.only_layer(), n) for r in sent for n in r.neuron_list())
    assert covered == [(layer, n) for layer in (1, 2) for n in range(per_layer)]

    # The viewer's job page and home page show the request with its layers.
    job_id = answer.json()["job_id"]
    page = http.get(f"/view/jobs/{job_id}")
    assert page.status_code == 200 and "layers " in page.text and "neurons per layer" in page.text
    assert f'href="/view/{MODEL}/2' in page.text
    home = http.get("/")
    assert home.status_code == 200 and home.text.count(f"/view/jobs/{job_id}") == 1


def test_the_scan_reports_its_samples_while_it_runs(
    tmp_path: Path, settings: Settings, redis_conn: redis.Redis
) -> None:
    """A worker process scans 64 samples two at a time, writing its progress after every batch; polling
    the job while it scans sees the scan's samples move (done below total, several distinct values), then
    the job finishes."""
    registry = probe_registry(tmp_path / "registry.json", 64)
    api = settings.model_copy(update={"registry_path": registry, "artifact_url": str(tmp_path / "store")})
    env = {
        **os.environ,
        "NEURONLENS_REDIS_URL": settings.redis_url or "",
        "NEURONLENS_REGISTRY_PATH": str(registry),
        "NEURONLENS_ARTIFACT_URL": str(tmp_path / "store"),
        "NEURONLENS_SCAN_BATCH_SIZE": "2",
        "NEURONLENS_PROGRESS_INTERVAL_S": "0",
        "NEURONLENS_DEVICE": "cpu",
        "HF_HUB_OFFLINE": "1",
    }
    seen: list[ScanState] = []
    with serve(create_app(api)) as url, httpx.Client(base_url=url, timeout=60) as http:
        request = {"model": MODEL, "layers": [0, 5], "neurons": [0]}
        job_id = http.post("/v1/explanations", json=request).json()["job_id"]
        worker = subprocess.Popen(
            [sys.executable, "-m", "workers.process.worker", "--burst"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            status = _status(http, job_id)
            while status.status not in ("finished", "failed"):
                if status.status == "scanning" and status.scan is not None:
                    seen.append(status.scan)
                time.sleep(0.02)
                status = _status(http, job_id)
            assert worker.wait(timeout=240) == 0
        finally:
            worker.kill()
            worker.wait()
    assert status.status == "finished", status.error
    moving = [s for s in seen if 0 < s.samples_done < s.samples_total == 64]
    assert len({s.samples_done for s in moving}) >= 2, f"the scan's samples never moved: {seen}"
    assert all(s.passes_planned == 1 for s in seen)
