"""Whole-model audit figure: one request for every layer ÷ one request for one layer, wall time through the
API with a real worker (`neuronlens up --workers 1`, embedded Redis, fresh data folder).

Each request explains neuron 0 (baseline backends) of the last layer, or of every layer. A one-layer scan
stops the forward pass after its layer, so the last layer's is the one-layer scan that runs the whole
model, as the whole-model scan must (a middle layer's is cheaper by the layers it skips). Its
`options.seed` is new each time, so every request scans from scratch (the seed is part of the scan's
identity) while the worker keeps its model loaded (one warm-up request per model first). Timed from the
POST to the moment the job's `scan` shows every planned pass done (its one scan job is done: the scan
figure, goal ≤ 1.3), and to `finished` (scan and explain parts, detail). Variants alternate within each
round and the best of ``ROUNDS`` is kept; torch runs one intra-op thread in the worker; the load average
is printed beside. minilm-l6 scans its probe set cut to 1,024 samples, tiny-llava its whole 512.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from bench._common import load_average, stop_process  # noqa: E402
from service.commands.embedded_redis import free_port  # noqa: E402

MODELS = {"minilm-l6": 1024, "tiny-llava": 512}
"""Model → probe-set samples scanned."""
ROUNDS = 3
"""Interleaved rounds per model; the fastest of each variant counts."""
TIMEOUT_S = 900.0
"""Give up on one request after this many seconds."""


def _registry(folder: Path) -> Path:
    from service.contract import BUNDLED_REGISTRY

    registry = json.loads(BUNDLED_REGISTRY.read_text())
    datasets = {d["id"]: d for d in registry["datasets"]}
    for model in registry["models"]:
        if model["id"] in MODELS:
            datasets[model["datasets"][0]]["n_samples"] = MODELS[model["id"]]
    path = folder / "registry.json"
    path.write_text(json.dumps(registry))
    return path


def _timed(client: httpx.Client, body: dict[str, Any]) -> tuple[float, float]:
    """(seconds until the scan is done, seconds until the job finished) of one request."""
    started = time.perf_counter()
    answer = client.post("/v1/explanations", json=body)
    if answer.status_code != 202:
        raise RuntimeError(f"expected a new job, got {answer.status_code}: {answer.text[:300]}")
    job_id = answer.json()["job_id"]
    scanned = None
    while True:
        status = client.get(f"/v1/jobs/{job_id}", params={"limit": 1}).json()
        now = time.perf_counter() - started
        if status["status"] == "failed":
            raise RuntimeError(f"job {job_id} failed: {status['error']}")
        scan = status.get("scan") or {}
        if scanned is None and (
            0 < scan.get("passes_planned", 0) <= scan.get("passes_done", 0)
            or status["status"] not in ("queued", "scanning")
        ):
            scanned = now
        if status["status"] == "finished":
            return scanned, now
        if now > TIMEOUT_S:
            raise TimeoutError(f"job {job_id} did not finish within {TIMEOUT_S:.0f}s")
        time.sleep(0.02)


def _ready(client: httpx.Client) -> bool:
    try:
        return client.get("/readyz").status_code == 200 and client.get("/v1/models").status_code == 200
    except httpx.HTTPError:
        return False


def measure(folder: Path) -> dict[str, dict[str, list[float]]]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEURONLENS_") and k != "REDIS_URL"}
    env.update(
        HF_HUB_OFFLINE="1",
        PYTHONUNBUFFERED="1",
        OMP_NUM_THREADS="1",
        MKL_NUM_THREADS="1",
        NEURONLENS_DEVICE="cpu",
        NEURONLENS_REGISTRY_PATH=str(_registry(folder)),
    )
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
    seed = 1000
    found: dict[str, dict[str, list[float]]] = {}
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as client:
            deadline = time.monotonic() + TIMEOUT_S
            while not _ready(client):
                if up.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"neuronlens up did not start; see {folder / 'up.log'}")
                time.sleep(0.2)
            for model in MODELS:
                layers = next(m for m in client.get("/v1/models").json() if m["id"] == model)["layers"]
                one = {"model": model, "layer": layers - 1, "neurons": [0]}
                every = {"model": model, "layers": "all", "neurons": [0]}
                _timed(client, {**one, "options": {"seed": seed}})  # warm-up: loads the model
                seed += 1
                times: dict[str, list[float]] = {"one": [], "all": [], "one_job": [], "all_job": []}
                for round_ in range(ROUNDS):
                    order = [("one", one), ("all", every)]
                    for name, body in order if round_ % 2 == 0 else order[::-1]:
                        scan_s, job_s = _timed(client, {**body, "options": {"seed": seed}})
                        seed += 1
                        times[name].append(scan_s)
                        times[f"{name}_job"].append(job_s)
                found[model] = {**times, "layers": [float(layers)]}
    finally:
        stop_process(up)
    return found


def main() -> list[dict[str, str]]:
    with tempfile.TemporaryDirectory(prefix="bench-audit-") as folder:
        found = measure(Path(folder))
    load = load_average()
    rows = []
    for model, times in found.items():
        one, every = min(times["one"]), min(times["all"])
        one_job, all_job = min(times["one_job"]), min(times["all_job"])
        layers = int(times["layers"][0])
        rows.append(
            {
                "figure": f"whole-model request ÷ one-layer request, scan wall time via the API ({model})",
                "value": f"{every / one:.2f}",
                "goal": "≤ 1.3",
                "detail": f"all {layers} layers {every:.2f}s vs one layer {one:.2f}s (best of {ROUNDS}, "
                f"interleaved; {MODELS[model]} samples; POST → scan done); whole job incl. explaining "
                f"neuron 0 of each layer {all_job:.2f}s vs {one_job:.2f}s; {layers} separate requests would "
                f"scan ≈ {layers * one:.1f}s; 1 torch thread; {load}",
            }
        )
    return rows


if __name__ == "__main__":
    for row in main():
        print(row)
