"""`neuronlens up` keeps its data and heals itself: a stack stopped (SIGTERM, or its supervisor SIGKILLed)
and started again on the same --data-dir serves every report and job; a worker SIGKILLed under it is
started again while the API and Redis keep running, and its job finishes."""

from __future__ import annotations

import os
import re
import signal
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.helpers import (
    Processes,
    child_pids,
    command_line,
    launch_up,
    probe_registry,
    process_env,
    wait_for,
    wait_ready,
)

MODEL, LAYER, NEURON = "minilm-l6", 3, 42


def wait_finished(url: str, job_id: str, timeout_s: float) -> dict[str, Any]:
    found: dict[str, Any] = {}

    def finished() -> bool:
        found.update(httpx.get(f"{url}/v1/jobs/{job_id}", timeout=10).json())
        assert found["status"] != "failed", found
        return found["status"] == "finished"

    wait_for(finished, timeout_s, f"job {job_id} to finish", interval_s=0.2)
    return found


def workers_of(pid: int) -> list[int]:
    return [child for child in child_pids(pid) if "workers.process.worker" in command_line(child)]


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "sigkill"])
def test_a_restarted_stack_serves_every_report_and_job(
    processes: Processes, tmp_path: Path, stop: signal.Signals
) -> None:
    # A store of its own (reports outlive Redis there), on a probe set of 256 samples: a scan of seconds.
    env = process_env(
        NEURONLENS_ARTIFACT_URL=str(tmp_path / "artifacts"),
        NEURONLENS_REGISTRY_PATH=str(probe_registry(tmp_path / "registry.json", 256)),
    )
    data_dir = str(tmp_path / "data")
    up, url = launch_up(processes, env, "--workers", "1", "--grace", "5", "--data-dir", data_dir)
    wait_ready(processes, up, url)
    posted = httpx.post(f"{url}/v1/explanations", json={"model": MODEL, "layer": LAYER, "neurons": [NEURON]})
    assert posted.status_code == 202, posted.text
    job_id = posted.json()["job_id"]
    before = wait_finished(url, job_id, 240)

    up.send_signal(stop)
    up.wait(timeout=60)
    again, url = launch_up(processes, env, "--workers", "0", "--data-dir", data_dir, name="again")
    wait_ready(processes, again, url)

    report = httpx.get(f"{url}/v1/neurons/{MODEL}/{LAYER}/{NEURON}", timeout=10)
    assert report.status_code == 200, report.text
    assert report.json() == before["reports"][0]
    job = httpx.get(f"{url}/v1/jobs/{job_id}", timeout=10).json()
    assert job["status"] == "finished" and job["reports"] == before["reports"]
    repeated = httpx.post(
        f"{url}/v1/explanations", json={"model": MODEL, "layer": LAYER, "neurons": [NEURON]}
    )
    assert repeated.status_code == 200  # stored: answered at once, with no worker running


def test_a_killed_worker_is_restarted_and_its_job_finishes(processes: Processes, tmp_path: Path) -> None:
    # A fresh artifact store and 512 samples scanned 8 at a time, progress written after each batch: the
    # worker is killed once its scan has recorded samples, with most of them still to do.
    env = process_env(
        NEURONLENS_ARTIFACT_URL=str(tmp_path / "artifacts"),
        NEURONLENS_REGISTRY_PATH=str(probe_registry(tmp_path / "registry.json", 512)),
        NEURONLENS_SCAN_BATCH_SIZE="8",
        NEURONLENS_PROGRESS_INTERVAL_S="0",
        NEURONLENS_WORKER_HEARTBEAT_S="1",
    )
    up, url = launch_up(processes, env, "--workers", "1", "--grace", "5")
    wait_ready(processes, up, url)
    posted = httpx.post(f"{url}/v1/explanations", json={"model": MODEL, "layer": 0, "neurons": [7]})
    job_id = posted.json()["job_id"]

    def scanning() -> bool:
        status = httpx.get(f"{url}/v1/jobs/{job_id}").json()
        return status["status"] == "scanning" and 0 < (status["scan"] or {}).get("samples_done", 0) < 512

    wait_for(scanning, 60, "the scan to record samples", interval_s=0.01)
    (worker,) = workers_of(up.pid)
    os.kill(worker, signal.SIGKILL)

    restarted = wait_for(lambda: [pid for pid in workers_of(up.pid) if pid != worker], 30, "a new worker")
    assert httpx.get(f"{url}/readyz").status_code == 200 and up.poll() is None
    wait_finished(url, job_id, 240)
    assert httpx.get(f"{url}/v1/neurons/{MODEL}/0/7").status_code == 200
    log = processes.log(up)
    assert f"worker-1 (pid {worker}) was killed by SIGKILL; restarting it in 1s (restart 1)" in log
    assert re.search(rf"worker-1 started again \(pid {restarted[0]}\)", log)  # type: ignore[index]
    assert up.poll() is None
