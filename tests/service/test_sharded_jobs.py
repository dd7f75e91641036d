"""Sharded scans through the API and RQ, run by the project's NeuronLensWorker in this process: a failed
shard fails the job with the shard's error and a repeated request re-runs it; the scan state sums the
shards; tiny-llava's K = 3 scan writes byte-identical arrays to its K = 1 scan. (Three real worker
processes run a sharded MiniLM scan in tests/e2e/test_sharded_scan.py.)"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis
from rq.job import Job
from rq.job import JobStatus as RqStatus
from rq.serializers import JSONSerializer
from safetensors.numpy import load as load_tensors

from service.contract import BUNDLED_REGISTRY, ExplanationRequest, JobStatus, load_registry
from service.estimates.validate import resolve_request
from service.http.app import create_app
from service.jobs.ids import shard_job_id
from service.jobs.queues import JobQueues
from service.jobs.scan import ensure_scan_jobs, scan_state
from service.settings import Settings
from tests.service.helpers import explain_parts, run_workers, serve
from workers.scan.artifacts import ACTIVATIONS_FILE
from workers.scan.shards import shard_key
from workers.scan.store import FsspecArtifactStore
from workers.scan.token_keys import scan_id, scan_key

BATCH = 16


def write_registry(path: Path, samples: dict[str, int]) -> Path:
    """The bundled registry with the default probe set of each model in ``samples`` cut to that many."""
    registry = json.loads(BUNDLED_REGISTRY.read_text())
    for model_id, count in samples.items():
        (model,) = [m for m in registry["models"] if m["id"] == model_id]
        (dataset,) = [d for d in registry["datasets"] if d["id"] == model["datasets"][0]]
        dataset["n_samples"] = count
    path.write_text(json.dumps(registry))
    return path


def array_hashes(store_root: Path, scan: str) -> dict[str, str]:
    """SHA-256 of every array of a layer scan artifact."""
    store = FsspecArtifactStore(str(store_root))
    arrays = load_tensors(store.read_bytes(scan_key(scan), ACTIVATIONS_FILE))
    return {name: hashlib.sha256(array.tobytes()).hexdigest() for name, array in arrays.items()}


@pytest.fixture()
def sharded(
    tmp_path: Path, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[Settings, Path]]:
    """API settings and an in-process worker environment sharing a registry with small probe sets, a
    fresh artifact store, batch size BATCH and no RQ retries (a failure is final at once)."""
    registry = write_registry(tmp_path / "registry.json", {"minilm-l6": 96, "tiny-llava": 48})
    store = tmp_path / "store"
    for name, value in {
        "NEURONLENS_REGISTRY_PATH": str(registry),
        "NEURONLENS_ARTIFACT_URL": str(store),
        "NEURONLENS_DEVICE": "cpu",
        "NEURONLENS_SCAN_BATCH_SIZE": str(BATCH),
        "HF_HUB_OFFLINE": "1",
    }.items():
        monkeypatch.setenv(name, value)
    updates = {
        "registry_path": registry,
        "artifact_url": str(store),
        "scan_batch_size": BATCH,
        "job_retries": 0,
    }
    yield settings.model_copy(update=updates), store


def _status(http: httpx.Client, url: str, job_id: str) -> JobStatus:
    response = http.get(f"{url}/v1/jobs/{job_id}")
    assert response.status_code == 200, response.text
    return JobStatus.model_validate(response.json())


def test_a_failed_shard_fails_the_job_and_a_repeated_request_reruns_it(
    sharded: tuple[Settings, Path], redis_conn: redis.Redis
) -> None:
    settings, store = sharded
    registry = load_registry(settings.registry_path)
    model = registry.model("minilm-l6")
    dataset = registry.dataset(model.datasets[0])
    layer = 3
    # A plain file where shard 1's artifact folder goes: that shard's worker cannot store its result.
    request = ExplanationRequest(model="minilm-l6", layer=layer, neurons=[0, 1])
    options = request.options
    scan = scan_id(model, dataset, model.default_hook, layer, options.n_top, options.seed)
    blocker = store / shard_key(scan, 1, 3)
    blocker.parent.mkdir(parents=True)
    blocker.write_text("not an artifact")
    body = {"model": "minilm-l6", "layer": layer, "neurons": [0, 1], "shards": 3}
    with serve(create_app(settings)) as url, httpx.Client(timeout=60) as http:
        job_id = http.post(f"{url}/v1/explanations", json=body).json()["job_id"]
        (part_id,) = explain_parts(redis_conn, job_id)
        merge_id = Job.fetch(part_id, connection=redis_conn, serializer=JSONSerializer).meta["scan_job_id"]
        before = scan_state(redis_conn, merge_id)
        assert before is not None and (before.shards, before.shards_done) == (3, 0)
        run_workers(redis_conn, settings)

        status = _status(http, url, job_id)
        assert status.status == "failed"
        assert status.error is not None and shard_key(scan, 1, 3) in status.error.message, status.error
        shard_one = Job.fetch(merge_id.rsplit("-k", 1)[0] + "-s1of3", connection=redis_conn)
        assert shard_one.get_status() == RqStatus.FAILED
        state = scan_state(redis_conn, merge_id)
        assert state is not None and (state.shards, state.shards_done) == (3, 2), state
        assert state.samples_total == 96, state

        blocker.unlink()
        again = http.post(f"{url}/v1/explanations", json=body)
        assert again.status_code == 202 and again.json()["job_id"] == job_id
        run_workers(redis_conn, settings)
        status = _status(http, url, job_id)
    assert status.status == "finished", status.error
    assert status.reports is not None and [r.neuron for r in status.reports] == [0, 1]
    done = scan_state(redis_conn, merge_id)
    assert done is not None and (done.shards, done.shards_done, done.samples_total) == (3, 3, 96), done
    assert done.passes_done == done.passes_planned == 1
    assert shard_one.get_status(refresh=True) == RqStatus.FINISHED
    artifacts = FsspecArtifactStore(str(store))
    assert artifacts.exists(scan_key(scan))
    assert not any(artifacts.exists(shard_key(scan, k, 3)) for k in range(3)), "shards kept after merge"


def test_tiny_llava_three_shards_equal_one(sharded: tuple[Settings, Path], redis_conn: redis.Redis) -> None:
    settings, store = sharded
    registry = load_registry(settings.registry_path)
    resolved = resolve_request(
        registry,
        ExplanationRequest(model="tiny-llava", layer=0, neurons=[0]),
        settings.max_neurons_per_request,
        settings,
    )
    queues = JobQueues.connect(redis_conn, settings)
    layers = [0, 3]
    options = resolved.request.options
    hook = resolved.request.hook or resolved.model.default_hook
    scans = [scan_id(resolved.model, resolved.dataset, hook, x, options.n_top, options.seed) for x in layers]
    hashes = {}
    for n_shards in (3, 1):
        for scan in scans:
            shutil.rmtree(store / scan_key(scan), ignore_errors=True)
        job_id = ensure_scan_jobs(redis_conn, queues, settings, resolved, layers, None, n_shards)
        run_workers(redis_conn, settings)
        job = Job.fetch(job_id, connection=redis_conn, serializer=JSONSerializer)
        assert job.get_status() == RqStatus.FINISHED, job.meta
        hashes[n_shards] = [array_hashes(store, scan) for scan in scans]
        if n_shards == 3:
            base = job_id.rsplit("-k", 1)[0]
            parts = [Job.fetch(shard_job_id(base, k, 3), connection=redis_conn) for k in range(3)]
            assert all(part.get_status() == RqStatus.FINISHED for part in parts)
            assert sorted(job.dependency_ids) == sorted(part.id for part in parts)
    assert hashes[3] == hashes[1]
    assert set(hashes[1][0]) >= {"top_acts", "top_ids", "random_acts", "global_max", "domain_positive"}
