"""A worker rides out a Redis outage: Redis (AOF on, so queued jobs survive) is SIGKILLed while a real
worker process scans (512 samples, 8 a batch: killed once the scan has recorded samples), and started again
on the same port and folder 20 s later. The worker process is still
alive afterwards and the job finishes (finished in place, or retried through the abandoned-job path)."""

from __future__ import annotations

import time
from pathlib import Path

import httpx

from service.commands.embedded_redis import EmbeddedRedis
from tests.e2e.helpers import Processes, launch_up, probe_registry, process_env, wait_for, wait_ready

OUTAGE_S = 20


def test_a_busy_worker_survives_redis_down_for_20s(processes: Processes, tmp_path: Path) -> None:
    data_dir = tmp_path / "redis"
    server = EmbeddedRedis(data_dir=data_dir, append_only=True).start()
    port = server.port
    env = process_env(
        NEURONLENS_REDIS_URL=server.url,
        NEURONLENS_ARTIFACT_URL=str(tmp_path / "artifacts"),  # empty: the job scans
        NEURONLENS_REGISTRY_PATH=str(probe_registry(tmp_path / "registry.json", 512)),
        NEURONLENS_SCAN_BATCH_SIZE="8",
        NEURONLENS_PROGRESS_INTERVAL_S="0",
        NEURONLENS_WORKER_HEARTBEAT_S="1",
    )
    api, url = launch_up(processes, env, "--workers", "0", name="api")
    restarted: EmbeddedRedis | None = None
    try:
        wait_ready(processes, api, url, "the API")
        posted = httpx.post(f"{url}/v1/explanations", json={"model": "minilm-l6", "layer": 2, "neurons": [9]})
        job_id = posted.json()["job_id"]
        worker = processes.start_worker(env, "worker")
        status = lambda: httpx.get(f"{url}/v1/jobs/{job_id}", timeout=10).json()  # noqa: E731

        def scanning() -> bool:
            now = status()
            return now["status"] == "scanning" and 0 < (now["scan"] or {}).get("samples_done", 0) < 512

        wait_for(scanning, 60, "the scan to record samples", interval_s=0.01)

        assert server.process is not None
        server.process.kill()
        server.process.wait()
        time.sleep(OUTAGE_S)
        assert worker.poll() is None, processes.log(worker)
        restarted = EmbeddedRedis(port=port, data_dir=data_dir, append_only=True).start()

        wait_for(lambda: status()["status"] == "finished", 240, "the job to finish after the outage", 0.5)
        assert worker.poll() is None, processes.log(worker)
        assert "Redis unreachable during" in processes.log(worker)
        assert httpx.get(f"{url}/v1/neurons/minilm-l6/2/9", timeout=10).status_code == 200
    finally:
        processes.stop_all()
        for running in (server, restarted):
            if running is not None:
                running.stop()
