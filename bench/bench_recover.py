"""Recovery figures: samples a scan reads again after a Redis outage (bench/_outage_scan.py), and seconds
until a SIGKILLed worker's job runs again, and finishes, under `neuronlens up`.

One `neuronlens up --workers 1` with the default settings (heartbeat 10 s, so a job is abandoned after
30 s without a beat) on a fresh data folder. A first job scans minilm-l6 layer 3; a second job explains a
whole layer of it (1,536 neurons, baseline backends). Once it has stored some reports, the worker is
SIGKILLed. Measured from the kill: until the supervisor has a new worker running, until the job runs again
(a later `started_at`), and until it finishes. Seconds, reported (no goal).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from bench._common import stop_process  # noqa: E402
from bench._outage_scan import AT, BATCH, OUTAGE_S, SAMPLES, outage_scan  # noqa: E402
from service.commands.embedded_redis import free_port  # noqa: E402

MODEL, LAYER = "minilm-l6", 3
TIMEOUT_S = 900.0
"""Give up on any one wait after this many seconds."""


def _until(predicate: Any, what: str, interval_s: float = 0.05) -> Any:
    deadline = time.monotonic() + TIMEOUT_S
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"waited {TIMEOUT_S:.0f}s for {what}")
        time.sleep(interval_s)


def _workers(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid and b"workers.process.worker" in cmdline:
            found.append(int(entry.name))
    return found


def _finish(client: httpx.Client, body: dict[str, Any]) -> str:
    job_id: str = client.post("/v1/explanations", json=body).json()["job_id"]
    _until(lambda: client.get(f"/v1/jobs/{job_id}").json()["status"] == "finished", f"job {job_id}", 0.2)
    return job_id


def measure(folder: Path) -> dict[str, float]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEURONLENS_") and k != "REDIS_URL"}
    env.update(HF_HUB_OFFLINE="1", PYTHONUNBUFFERED="1")
    command = [
        sys.executable,
        "-m",
        "service.commands.main",
        "up",
        "--port",
        str(port),
        "--data-dir",
        str(folder),
    ]
    with (folder / "up.log").open("wb") as log:
        up = subprocess.Popen(command, cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            _until(lambda: _get_ok(client, "/readyz"), "the stack to start", 0.2)
            _finish(client, {"model": MODEL, "layer": LAYER, "neurons": [0]})  # scans the layer
            job_id = client.post(
                "/v1/explanations",
                json={"model": MODEL, "layer": LAYER, "neurons": {"start": 1, "stop": 1536}},
            ).json()["job_id"]
            status = lambda: client.get(f"/v1/jobs/{job_id}").json()  # noqa: E731
            first = _until(lambda: (s := status())["progress"]["done"] > 0 and s, "the first reports")
            (worker,) = _workers(up.pid)
            os.kill(worker, signal.SIGKILL)
            killed = time.monotonic()
            _until(lambda: [p for p in _workers(up.pid) if p != worker], "a restarted worker")
            restarted = time.monotonic() - killed
            started = datetime.fromisoformat(first["started_at"])
            _until(
                lambda: (s := status())["started_at"] and datetime.fromisoformat(s["started_at"]) > started,
                "the job to run again",
            )
            running = time.monotonic() - killed
            _until(lambda: status()["status"] == "finished", "the job to finish", 0.2)
            finished = time.monotonic() - killed
    finally:
        stop_process(up)
    return {"restarted_s": restarted, "running_s": running, "finished_s": finished}


def _get_ok(client: httpx.Client, path: str) -> bool:
    try:
        return client.get(path).status_code == 200
    except httpx.TransportError:
        return False


CHECKPOINT_S = 2.0
"""Checkpoint interval of the outage figure: short, so the CPU scan of a few seconds checkpoints."""


def outage_rows() -> list[dict[str, str]]:
    """Samples re-read after a 15 s Redis outage at 60% of a scan, with checkpoints and without."""
    rows = []
    for checkpoint_s in (CHECKPOINT_S, None):
        with tempfile.TemporaryDirectory(prefix="neuronlens-outage-") as folder:
            got = outage_scan(Path(folder), checkpoint_s)
        how = f"checkpoints every {checkpoint_s:g} s" if checkpoint_s else "no checkpoints (before issue 20)"
        per_s = SAMPLES / max(got["seconds"], 1e-9) * (got["failed_read"] + got["retry_read"]) / SAMPLES
        rows.append(
            {
                "figure": f"samples re-read after a {OUTAGE_S:g} s Redis outage at {AT:.0%} of a scan, {how}",
                "value": f"{got['reread']:.0f}",
                "goal": f"≤ the samples of one checkpoint interval ({checkpoint_s:g} s)"
                if checkpoint_s
                else "reported",
                "detail": f"{SAMPLES} minilm-l6 samples, 2 layers, batches of {BATCH} on the CPU: the failed "
                f"attempt read {got['failed_read']:.0f}, the retry {got['retry_read']:.0f}; "
                f"{got['seconds']:.1f} s of scanning in all (about {per_s:.0f} samples/s)",
            }
        )
    return rows


def main() -> list[dict[str, str]]:
    rows = outage_rows()
    with tempfile.TemporaryDirectory(prefix="neuronlens-recover-") as folder:
        figures = measure(Path(folder))
    load = " ".join(f"{value:.2f}" for value in os.getloadavg())
    return rows + [
        {
            "figure": "time to recover a SIGKILLed worker's job under neuronlens up (s)",
            "value": f"{figures['running_s']:.1f}",
            "goal": "reported",
            "detail": f"kill → new worker process {figures['restarted_s']:.1f}s, → job running again "
            f"{figures['running_s']:.1f}s (heartbeat 10 s, abandoned after 30 s), → job finished "
            f"{figures['finished_s']:.1f}s (1,535 minilm-l6 neurons, baseline); load average {load}",
        }
    ]


if __name__ == "__main__":
    for row in outage_rows() if "--outage" in sys.argv else main():
        print(row)
