"""Posting a request again after its worker was SIGKILLed and the retry failed re-runs the failed part.

RQ keeps a killed execution's id in the job's execution registry for a minute after the execution itself
expired; RQ's `Job.delete` then raised `ValueError: Execution … not found in Redis`, and every re-POST in
that minute answered 500. Real processes: the API (`neuronlens up --workers 0`), a worker killed while
it explains, a worker whose registry lacks the model (the retry fails there), and a healthy worker that
finishes the re-run.
"""

from __future__ import annotations

import json
import signal
from datetime import datetime
from pathlib import Path

import httpx
import redis

from service.contract import BUNDLED_REGISTRY
from tests.e2e.helpers import Processes, launch_up, probe_registry, process_env, wait_for, wait_ready

MODEL, LAYER, SAMPLES = "minilm-l6", 1, 64
BODY = {"model": MODEL, "layer": LAYER, "neurons": {"start": 0, "stop": 256}}


def _registry_without_minilm(path: Path) -> Path:
    registry = json.loads(BUNDLED_REGISTRY.read_text())
    registry["models"] = [m for m in registry["models"] if m["id"] != MODEL]
    path.write_text(json.dumps(registry))
    return path


def _status(client: httpx.Client, job_id: str) -> dict[str, object]:
    answer = client.get(f"/v1/jobs/{job_id}")
    assert answer.status_code == 200, answer.text
    found: dict[str, object] = answer.json()
    return found


def _wait(client: httpx.Client, job_id: str, wanted: set[str], timeout_s: float) -> dict[str, object]:
    found: dict[str, object] = {}

    def reached() -> bool:
        found.update(_status(client, job_id))
        return found["status"] in wanted

    wait_for(reached, timeout_s, f"job {job_id} to be {' or '.join(sorted(wanted))}", interval_s=0.05)
    return found


def _times(status: dict[str, object]) -> list[datetime]:
    return [datetime.fromisoformat(str(status[k])) for k in ("created_at", "started_at", "ended_at")]


def test_a_repost_after_a_killed_worker_and_a_failed_retry_re_runs_the_part(
    redis_url: str, redis_conn: redis.Redis, processes: Processes, tmp_path: Path
) -> None:
    env = process_env(
        NEURONLENS_REDIS_URL=redis_url,
        NEURONLENS_ARTIFACT_URL=str(tmp_path / "artifacts"),
        NEURONLENS_REGISTRY_PATH=str(probe_registry(tmp_path / "registry.json", SAMPLES)),
        NEURONLENS_EXPLAIN_CHUNK_NEURONS="256",
        NEURONLENS_WORKER_HEARTBEAT_S="1",
        NEURONLENS_JOB_RETRIES="1",
    )
    api, url = launch_up(processes, env, "--workers", "0", name="api")
    wait_ready(processes, api, url, "the API")
    first = processes.start_worker(env, "first")
    with httpx.Client(base_url=url, timeout=10) as client:
        posted = client.post("/v1/explanations", json=BODY)
        assert posted.status_code == 202, posted.text
        job_id = posted.json()["job_id"]
        _wait(client, job_id, {"explaining", "simulating"}, 120)
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=10)

        # The retry runs on a worker that cannot load the model: the part fails for good.
        broken = dict(env, NEURONLENS_REGISTRY_PATH=str(_registry_without_minilm(tmp_path / "broken.json")))
        failing = processes.start_worker(broken, "broken")
        failed = _wait(client, job_id, {"failed"}, 60)
        assert failed["error"] is not None
        failing.send_signal(signal.SIGKILL)
        failing.wait(timeout=10)

        for _ in range(3):  # every repeat within RQ's minute of stale execution ids
            again = client.post("/v1/explanations", json=BODY)
            assert again.status_code == 202, again.text
            assert again.json()["job_id"] == job_id
        requeued = _status(client, job_id)
        assert requeued["status"] == "queued" and requeued["created_at"] == failed["created_at"]

        processes.start_worker(env, "healthy")
        finished = _wait(client, job_id, {"finished"}, 120)
        assert finished["created_at"] == failed["created_at"], "a repeat keeps the job's history"
        created, started, ended = _times(finished)
        assert created <= started <= ended
