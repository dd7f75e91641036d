"""Reports outlive Redis: explained through the API by the project's worker (in this process, real MiniLM on
a slice of the probe set), each stored in the artifact store as soon as its neuron is done; after
`FLUSHALL` every read (one report, the layer listing, a repeated request) is answered from the store."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis
from rq.job import Job
from rq.serializers import JSONSerializer

from service.contract import (
    BUNDLED_REGISTRY,
    ExplainJobPayload,
    JobStatus,
    report_folder_key,
    report_object_neuron,
)
from service.http.app import create_app
from service.settings import Settings, load_settings
from tests.llm_peer import LLMPeer
from tests.service.helpers import explain_parts, rq_jobs, run_workers, serve

SAMPLES = 600
"""Samples of minilm-l6's default probe set scanned (as test_pipeline_jobs does, so the scan is shared)."""
LAYER = 2


@pytest.fixture()
def stack(tmp_path: Path, settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[Settings]:
    """Settings for an API and in-process workers that agree on a registry with the small probe set;
    workers read theirs from the environment, as deployed ones do."""
    registry = json.loads(BUNDLED_REGISTRY.read_text())
    (minilm,) = [model for model in registry["models"] if model["id"] == "minilm-l6"]
    (default,) = [dataset for dataset in registry["datasets"] if dataset["id"] == minilm["datasets"][0]]
    default["n_samples"] = SAMPLES  # minilm-l6's default probe set, cut to its first samples
    path = tmp_path / "registry.json"
    path.write_text(json.dumps(registry))
    for name, value in {
        "NEURONLENS_REGISTRY_PATH": str(path),
        "NEURONLENS_ARTIFACT_URL": settings.artifact_url,
        "NEURONLENS_DEVICE": "cpu",
        "HF_HUB_OFFLINE": "1",
    }.items():
        monkeypatch.setenv(name, value)
    yield settings.model_copy(update={"registry_path": path})


def _reads(http: httpx.Client, neurons: list[int]) -> dict[str, bytes]:
    """The bytes of every read a client makes of a layer's reports: each report, the listing."""
    found = {f"/v1/neurons/minilm-l6/{LAYER}/{n}": b"" for n in neurons}
    found[f"/v1/neurons/minilm-l6/{LAYER}"] = b""
    for path in found:
        response = http.get(path)
        assert response.status_code == 200, (path, response.text)
        found[path] = response.content
    return found


def test_every_report_is_served_after_redis_loses_everything(
    stack: Settings, redis_conn: redis.Redis
) -> None:
    neurons = [3, 17, 99]
    request = {"model": "minilm-l6", "layer": LAYER, "neurons": neurons}
    with serve(create_app(stack)) as url, httpx.Client(base_url=url, timeout=60) as http:
        job_id = http.post("/v1/explanations", json=request).json()["job_id"]
        run_workers(redis_conn, stack)
        finished = JobStatus.model_validate(http.get(f"/v1/jobs/{job_id}").json())
        assert finished.status == "finished" and finished.reports is not None
        before = _reads(http, neurons)
        assert json.loads(before[f"/v1/neurons/minilm-l6/{LAYER}"])["total"] == 3

        redis_conn.flushall()
        again = http.post("/v1/explanations", json=request)  # first: no listing has rebuilt the index
        assert again.status_code == 200, again.text
        assert JobStatus.model_validate(again.json()).reports == finished.reports
        assert rq_jobs(redis_conn) == []  # nothing enqueued
        assert _reads(http, neurons) == before

        redis_conn.flushall()
        assert _reads(http, neurons) == before  # each GET before the listing, then from the rebuilt index
        assert _reads(http, neurons) == before


def test_a_jobs_status_and_export_survive_flushall(stack: Settings, redis_conn: redis.Redis) -> None:
    """The job record is durable beside the reports: after FLUSHALL the job's status (its history, usage
    and scan as last derived), its export and a repeat are answered from it."""
    request = {"model": "minilm-l6", "layer": LAYER, "neurons": [5, 6]}
    with serve(create_app(stack)) as url, httpx.Client(base_url=url, timeout=60) as http:
        job_id = http.post("/v1/explanations", json=request).json()["job_id"]
        run_workers(redis_conn, stack)
        finished = http.get(f"/v1/jobs/{job_id}").json()
        assert finished["status"] == "finished" and finished["started_at"] is not None
        export = http.get(f"/v1/jobs/{job_id}/reports")
        assert export.status_code == 200

        redis_conn.flushall()
        after = http.get(f"/v1/jobs/{job_id}")
        assert after.status_code == 200, after.text
        assert after.json() == finished
        exported = http.get(f"/v1/jobs/{job_id}/reports")
        assert exported.status_code == 200, exported.text
        assert exported.content == export.content
        again = http.post("/v1/explanations", json=request)
        assert again.status_code == 200 and again.json() == finished  # a repeat keeps the job's history
        assert rq_jobs(redis_conn) == []


def _first_stored(folder: Path, peer: LLMPeer, stop: threading.Event, seen: list[int]) -> None:
    """Append the peer's call count at the moment the first report object appears in ``folder``."""
    while not stop.is_set():
        names = [p.name for p in folder.iterdir()] if folder.is_dir() else []
        if any(report_object_neuron(name) is not None for name in names):
            seen.append(peer.calls)
            return


def test_each_report_is_in_the_store_while_later_neurons_are_explained(
    stack: Settings, redis_conn: redis.Redis, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the LLM peer (one call in flight, 40 ms each), the first report object appears after that
    neuron's calls and before the job's last call: stored per neuron, not at the end of the job."""
    neurons = list(range(3))  # each takes ~120 calls (scores against chance): three are plenty
    with LLMPeer(latency_ms=40) as peer:
        for name, value in {
            "NEURONLENS_REDIS_URL": redis_url,
            "NEURONLENS_LLM_BASE_URL": peer.base_url,
            "NEURONLENS_LLM_API_KEY": "test-key",
            "NEURONLENS_EXPLAINER_MODEL": "explainer-a",
            "NEURONLENS_SIMULATOR_MODEL": "simulator-a",
            "NEURONLENS_LLM_CONCURRENCY": "1",
        }.items():
            monkeypatch.setenv(name, value)
        monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
        settings = load_settings()  # the API's, as the workers read theirs: the same environment
        request = {"model": "minilm-l6", "layer": LAYER, "neurons": neurons}
        with serve(create_app(settings)) as url, httpx.Client(base_url=url, timeout=60) as http:
            job_id = http.post("/v1/explanations", json=request).json()["job_id"]
            (part_id,) = explain_parts(redis_conn, job_id)
            part = Job.fetch(part_id, connection=redis_conn, serializer=JSONSerializer)
            variant = ExplainJobPayload.model_validate(part.kwargs["payload"]).variant
            assert variant is not None
            folder = Path(settings.artifact_url) / report_folder_key("minilm-l6", LAYER, variant)
            seen: list[int] = []
            stop = threading.Event()
            watcher = threading.Thread(target=_first_stored, args=(folder, peer, stop, seen), daemon=True)
            watcher.start()
            try:
                run_workers(redis_conn, settings)
            finally:
                stop.set()
                watcher.join(timeout=10)
            status = JobStatus.model_validate(http.get(f"/v1/jobs/{job_id}").json())
        total_calls = peer.calls
    assert status.status == "finished" and status.reports_total == len(neurons), status.error
    assert seen and 0 < seen[0] < total_calls, (seen, total_calls)
