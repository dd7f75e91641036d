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

from service.app import create_app
from service.contract import BUNDLED_REGISTRY, JobStatus, report_folder_key, report_object_neuron
from service.settings import Settings
from tests.service.helpers import rq_jobs, run_workers, serve

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
        assert _reads(http, neurons) == before
        again = http.post("/v1/explanations", json=request)
        assert again.status_code == 200, again.text
        assert JobStatus.model_validate(again.json()).reports == finished.reports
        assert rq_jobs(redis_conn) == []  # nothing enqueued
        assert _reads(http, neurons) == before  # and again from the rebuilt index


def test_each_report_is_in_the_store_before_its_job_finishes(
    stack: Settings, redis_conn: redis.Redis, redis_url: str
) -> None:
    neurons = list(range(40))
    request = {"model": "minilm-l6", "layer": LAYER, "neurons": neurons}
    with serve(create_app(stack)) as url, httpx.Client(base_url=url, timeout=60) as http:
        job_id = http.post("/v1/explanations", json=request).json()["job_id"]
        variant = Job.fetch(job_id, connection=redis_conn, serializer=JSONSerializer).kwargs["variant"]
        folder = Path(stack.artifact_url) / report_folder_key("minilm-l6", LAYER, variant)
        seen: list[tuple[int, str]] = []  # (reports in the store, job status) when the first appeared
        stop = threading.Event()

        def watch() -> None:
            watcher = redis.Redis.from_url(redis_url)
            while not stop.is_set():
                names = list(folder.iterdir()) if folder.is_dir() else []
                stored = [n for n in names if report_object_neuron(n.name) is not None]
                if stored:
                    job = Job.fetch(job_id, connection=watcher, serializer=JSONSerializer)
                    seen.append((len(stored), str(job.get_status())))
                    break
            watcher.close()

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        try:
            run_workers(redis_conn, stack)
        finally:
            stop.set()
            watcher.join(timeout=10)
        status = JobStatus.model_validate(http.get(f"/v1/jobs/{job_id}").json())
    assert status.status == "finished"
    assert seen and seen[0][0] < len(neurons) and seen[0][1] != "finished", seen
