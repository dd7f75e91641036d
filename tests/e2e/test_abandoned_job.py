"""A worker SIGKILLed mid-job loses nothing: its job is retried on another worker and finishes.

Real processes throughout: the API (`neuronlens up --workers 0` on the test's Redis) and worker
processes started and killed by the test. The artifact store starts empty; the probe set is cut to 512
samples scanned 8 at a time, progress written after every batch, so the first worker dies once its scan
has recorded samples and has most of them still to do; the second job explains 384 neurons in parts of
96 and its worker dies while it explains.
"""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any

import httpx
import redis
from rq.job import Job
from rq.serializers import JSONSerializer

from service.contract import RedisKeys
from service.jobs.record import read_record
from tests.e2e.helpers import Processes, launch_up, probe_registry, process_env, wait_for, wait_ready

MODEL, LAYER, NEURONS, SAMPLES = "minilm-l6", 1, 384, 512


def start_api(processes: Processes, env: dict[str, str]) -> str:
    api, url = launch_up(processes, env, "--workers", "0", name="api")
    wait_ready(processes, api, url, "the API")
    return url


class JobWatcher:
    def __init__(self, client: httpx.Client, body: dict[str, Any]):
        self.client = client
        posted = client.post("/v1/explanations", json=body)
        assert posted.status_code == 202, posted.text
        self.job_id: str = posted.json()["job_id"]

    def status(self) -> dict[str, Any]:
        answer: dict[str, Any] = self.client.get(f"/v1/jobs/{self.job_id}", params={"limit": 1000}).json()
        assert answer["status"] != "failed", answer
        return answer

    def wait_status(self, wanted: set[str], timeout_s: float) -> dict[str, Any]:
        found: dict[str, Any] = {}

        def reached() -> bool:
            found.update(self.status())
            return found["status"] in wanted

        wait_for(
            reached, timeout_s, f"job {self.job_id} to be {' or '.join(sorted(wanted))}", interval_s=0.02
        )
        return found

    def wait_scan_samples(self, timeout_s: float) -> dict[str, Any]:
        """Wait until the scan has recorded samples (the model loaded, the pass begun) and is not done."""
        found: dict[str, Any] = {}

        def scanning() -> bool:
            found.update(self.status())
            scan = found.get("scan") or {}
            return found["status"] == "scanning" and 0 < scan.get("samples_done", 0) < SAMPLES

        wait_for(scanning, timeout_s, f"job {self.job_id} to scan samples", interval_s=0.01)
        return found

    def all_neurons(self) -> list[int]:
        neurons: list[int] = []
        while True:
            page = self.client.get(f"/v1/jobs/{self.job_id}", params={"offset": len(neurons), "limit": 1000})
            reports = page.json()["reports"]
            if not reports:
                return sorted(neurons)
            neurons += [report["neuron"] for report in reports]


def fetch(redis_conn: redis.Redis, job_id: str | bytes) -> Job:
    key = job_id.decode() if isinstance(job_id, bytes) else job_id
    return Job.fetch(key, connection=redis_conn, serializer=JSONSerializer)


def parts(redis_conn: redis.Redis, job_id: str) -> list[Job]:
    """The explain jobs (one per neuron chunk) of a request, from its job record."""
    record = read_record(redis_conn, RedisKeys(), job_id)  # the tests' deployment has no prefix
    assert record is not None
    return [fetch(redis_conn, part.id) for part in record.parts if part.enqueued]


def test_killed_workers_jobs_are_retried_and_finish(
    redis_url: str, redis_conn: redis.Redis, processes: Processes, tmp_path: Path
) -> None:
    env = process_env(
        NEURONLENS_REDIS_URL=redis_url,
        NEURONLENS_ARTIFACT_URL=str(tmp_path / "artifacts"),
        NEURONLENS_REGISTRY_PATH=str(probe_registry(tmp_path / "registry.json", SAMPLES)),
        NEURONLENS_SCAN_BATCH_SIZE="8",
        NEURONLENS_PROGRESS_INTERVAL_S="0",
        NEURONLENS_EXPLAIN_CHUNK_NEURONS="96",
        NEURONLENS_WORKER_HEARTBEAT_S="1",
        NEURONLENS_JOB_RETRIES="2",
    )
    url = start_api(processes, env)
    first = processes.start_worker(env, "first")
    with httpx.Client(base_url=url, timeout=10) as client:
        # 1. Killed while scanning: the scan job is re-run from the start by the next worker.
        scan_job = JobWatcher(client, {"model": MODEL, "layer": LAYER, "neurons": {"start": 0, "stop": 48}})
        scan_job.wait_scan_samples(60)
        scan_id = parts(redis_conn, scan_job.job_id)[0].dependency_ids[0]
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=10)
        assert scan_job.status()["status"] == "scanning", "the dead worker's scan still counts as running"

        second = processes.start_worker(env, "second")
        finished = scan_job.wait_status({"finished"}, 240)
        assert finished["progress"] == {"done": 48, "total": 48}
        assert scan_job.all_neurons() == list(range(48))
        scan = fetch(redis_conn, scan_id)
        assert scan.worker_name == "second", "the scan was re-run by the second worker"
        assert scan.retries_left == 1, "the abandoned run used one of the two retries"
        assert "requeueing abandoned jobs" in processes.log(second)

        # 2. Killed while explaining (the scan stored): the retry finishes every neuron of every part.
        layer_job = JobWatcher(
            client, {"model": MODEL, "layer": LAYER, "neurons": {"start": 0, "stop": NEURONS}}
        )
        layer_job.wait_status({"explaining", "simulating"}, 60)
        second.send_signal(signal.SIGKILL)
        second.wait(timeout=10)
        third = processes.start_worker(env, "third")
        finished = layer_job.wait_status({"finished"}, 240)
        assert finished["progress"] == {"done": NEURONS, "total": NEURONS}
        assert layer_job.all_neurons() == list(range(NEURONS))

    # The part the second worker was explaining was re-run by the third, using one retry.
    retried = [job for job in parts(redis_conn, layer_job.job_id) if job.retries_left == 1]
    assert [job.worker_name for job in retried] == ["third"]
    assert "requeueing abandoned jobs" in processes.log(third)
