"""A sharded scan run by three real `neuronlens-worker` processes: the K = 3 scan of two MiniLM layers
writes byte-identical arrays to the K = 1 scan, each shard ran on a different worker, and a request with
`shards: 3` through the API yields the same scan-dependent report content as a K = 1 request."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import httpx
import pytest
import redis
from rq import Worker
from rq.job import Job
from rq.job import JobStatus as RqStatus
from rq.serializers import JSONSerializer

from service.contract import ExplanationRequest, JobStatus, NeuronReport, load_registry
from service.estimates.validate import ResolvedRequest, resolve_request
from service.http.app import create_app
from service.jobs.ids import shard_job_id
from service.jobs.queues import JobQueues
from service.jobs.record import read_record
from service.jobs.scan import ensure_scan_jobs
from service.settings import Settings
from tests.e2e.helpers import Processes, process_env, wait_for
from tests.service.helpers import run_workers, serve
from tests.service.test_sharded_jobs import array_hashes, write_registry
from workers.scan.shards import shard_key
from workers.scan.store import FsspecArtifactStore
from workers.scan.token_keys import scan_id, scan_key

BATCH = 16
SAMPLES = 144
WORKERS = 3


def _finished(conn: redis.Redis, job_id: str) -> bool:
    status = Job.fetch(job_id, connection=conn, serializer=JSONSerializer).get_status(refresh=True)
    assert status not in (RqStatus.FAILED, RqStatus.STOPPED), f"job {job_id} {status}"
    return status == RqStatus.FINISHED


def _scan_ids(resolved: ResolvedRequest, layers: list[int]) -> list[str]:
    options = resolved.request.options
    hook = resolved.request.hook or resolved.model.default_hook
    return [scan_id(resolved.model, resolved.dataset, hook, x, options.n_top, options.seed) for x in layers]


def _shard_workers(conn: redis.Redis, merge_id: str, n_shards: int) -> list[str | None]:
    base = merge_id.removesuffix(f"-k{n_shards}")
    return [Job.fetch(shard_job_id(base, k, n_shards), connection=conn).worker_name for k in range(n_shards)]


def _scan_content(report: NeuronReport) -> dict[str, object]:
    """What of a report depends on the scan (and on nothing that varies from run to run)."""
    return report.model_dump(
        mode="json",
        include={
            "neuron",
            "neuron_type",
            "type_evidence",
            "max_activation",
            "exemplars",
            "random_exemplars",
            "domains",
            "domain_specific",
            "normalisation",
            "domain_support",
        },
    )


def _explain(
    http: httpx.Client, url: str, body: dict[str, object], timeout_s: float
) -> tuple[str, list[NeuronReport]]:
    job_id = http.post(f"{url}/v1/explanations", json=body).json()["job_id"]

    def finished() -> JobStatus | None:
        status = JobStatus.model_validate(http.get(f"{url}/v1/jobs/{job_id}").json())
        assert status.status != "failed", status.error
        return status if status.status == "finished" else None

    status = wait_for(finished, timeout_s, f"the request {body} to finish", interval_s=0.5)
    assert isinstance(status, JobStatus) and status.reports is not None
    return job_id, status.reports


def test_three_worker_processes_scan_three_shards_exactly(
    tmp_path: Path,
    settings: Settings,
    redis_url: str,
    redis_conn: redis.Redis,
    processes: Processes,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    registry_path = write_registry(tmp_path / "registry.json", {"minilm-l6": SAMPLES})
    store = tmp_path / "store"
    env = process_env(
        NEURONLENS_REDIS_URL=redis_url,
        NEURONLENS_REGISTRY_PATH=str(registry_path),
        NEURONLENS_ARTIFACT_URL=str(store),
        NEURONLENS_DEVICE="cpu",
        NEURONLENS_SCAN_BATCH_SIZE=str(BATCH),
    )
    names = [f"scan-worker-{k}" for k in range(WORKERS)]
    for name in names:
        processes.start_worker(env, name)
    api = settings.model_copy(
        update={"registry_path": registry_path, "artifact_url": str(store), "scan_batch_size": BATCH}
    )
    registry = load_registry(registry_path)
    resolved = resolve_request(
        registry, ExplanationRequest(model="minilm-l6", layer=1, neurons=[0]), 4096, api
    )
    queues = JobQueues.connect(redis_conn, api)
    wait_for(lambda: len(Worker.all(connection=redis_conn)) == WORKERS, 120, "three workers to register")

    # K = 3, then K = 1 of the same two layers, each from a store without their layer artifacts.
    layers = [1, 4]
    scans = _scan_ids(resolved, layers)
    hashes = {}
    for n_shards in (3, 1):
        for scan in scans:
            shutil.rmtree(store / scan_key(scan), ignore_errors=True)
        job_id = ensure_scan_jobs(redis_conn, queues, api, resolved, layers, None, n_shards)
        wait_for(lambda job_id=job_id: _finished(redis_conn, job_id), 300, f"scan {job_id}", interval_s=0.2)
        hashes[n_shards] = [array_hashes(store, scan) for scan in scans]
        if n_shards == 3:
            ran_on = _shard_workers(redis_conn, job_id, 3)
            assert sorted(filter(None, ran_on)) == names, f"shards ran on {ran_on}"
            artifacts = FsspecArtifactStore(str(store))
            assert not any(artifacts.exists(shard_key(s, k, 3)) for s in scans for k in range(3))
    assert hashes[3] == hashes[1]
    assert set(hashes[1][0]) >= {"top_acts", "top_ids", "random_acts", "global_max", "domain_positive"}

    # Through the API: `shards: 3` on the worker processes, then K = 1 in a second store.
    body: dict[str, object] = {"model": "minilm-l6", "layer": 2, "neurons": {"start": 0, "stop": 12}}
    with serve(create_app(api)) as url, httpx.Client(timeout=60) as http:
        started = time.monotonic()
        job_id, three = _explain(http, url, {**body, "shards": 3}, 300)
        record = read_record(redis_conn, api.redis_keys, job_id)
        merge_id = record.scan_job_id if record is not None else None
        assert merge_id is not None and merge_id.endswith("-k3")
        ran_on = _shard_workers(redis_conn, merge_id, 3)
        assert len(set(ran_on)) == 3 and None not in ran_on, f"shards ran on {ran_on}"
        print(f"K=3 request: {time.monotonic() - started:.1f} s")
    processes.stop_all()
    redis_conn.flushdb()
    other = tmp_path / "store-k1"
    monkeypatch.setenv("NEURONLENS_REGISTRY_PATH", str(registry_path))
    monkeypatch.setenv("NEURONLENS_ARTIFACT_URL", str(other))
    monkeypatch.setenv("NEURONLENS_DEVICE", "cpu")
    monkeypatch.setenv("NEURONLENS_SCAN_BATCH_SIZE", str(BATCH))
    single = api.model_copy(update={"artifact_url": str(other)})
    with serve(create_app(single)) as url, httpx.Client(timeout=60) as http:
        first = http.post(f"{url}/v1/explanations", json=body).json()["job_id"]
        record = read_record(redis_conn, single.redis_keys, first)
        scan = record.scan_job_id if record is not None else None
        assert scan is not None and not scan.endswith("-k3")  # one scan job, no shards
        run_workers(redis_conn, single)
        job_id, one = _explain(http, url, body, 60)
    assert [r.neuron for r in three] == [r.neuron for r in one] == list(range(12))
    assert [_scan_content(r) for r in three] == [_scan_content(r) for r in one]
    assert [r.explanation.text for r in three] == [r.explanation.text for r in one]
