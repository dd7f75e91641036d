"""Export figures: one 1,536-neuron layer of minilm-l6 (every neuron of layer 3, baseline reports) as a
summary table (`GET /v1/jobs/{id}/reports`, NDJSON / CSV / Parquet, gzip and not) vs fetching its full
reports (paged `GET /v1/jobs/{id}` JSON, 100 per page as the SDK pages, and the full NDJSON export):
bytes on the wire and seconds per fetch.

The reports are produced once by the project's own worker (in this process, torch on one thread) through
the API, with Redis (append-only) and the artifact store cached under the temp dir, so later runs only
measure. The API runs as `uvicorn --factory service.http.app:app_from_env` (one process, loopback); the client
is httpx in this process, reading every body to the end (gzip decoded, as a client would). Variants run in
interleaved rounds (each round fetches every variant once, order rotating); the best of ROUNDS is kept.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from bench._common import load_average  # noqa: E402
from bench.bench_api import uvicorn_server  # noqa: E402

MODEL, LAYER, NEURONS = "minilm-l6", 3, 1536
CACHE = Path(tempfile.gettempdir()) / "neuronlens-bench-export"
"""Redis data and artifact store of the produced reports, kept between runs."""
ROUNDS = 5
PAGE = 100
"""Reports per `GET /v1/jobs/{id}` page (the SDK's page size)."""
REQUEST = {"model": MODEL, "layer": LAYER, "neurons": {"start": 0, "stop": NEURONS}}


def produce_reports(url: str, redis_url: str, artifacts: Path) -> str:
    """The finished job of every neuron of the layer, through the API at ``url`` (produced by a worker in
    this process the first time, then reused); its id. RuntimeError when the cache lost part of it."""
    from service.settings import load_settings

    with httpx.Client(base_url=url, timeout=600) as http:
        job_id: str = http.post("/v1/explanations", json=REQUEST).json()["job_id"]
        if http.get(f"/v1/jobs/{job_id}").json().get("status") not in ("finished", None):
            import torch

            from service.contract import QUEUE_NAMES
            from workers.process.worker import build_worker

            os.environ.update(NEURONLENS_ARTIFACT_URL=str(artifacts), HF_HUB_OFFLINE="1")
            torch.set_num_threads(1)
            settings = load_settings(redis_url=redis_url, artifact_url=str(artifacts), device="cpu")
            started = time.perf_counter()
            build_worker(settings, QUEUE_NAMES).work(burst=True)
            print(f"bench_export: produced {NEURONS} reports in {time.perf_counter() - started:.0f}s",
                  file=sys.stderr)  # fmt: skip
        status = http.get(f"/v1/jobs/{job_id}", params={"limit": 1}).json()
    if status.get("status") != "finished" or status.get("reports_total") != NEURONS:
        raise RuntimeError(f"the layer's job did not finish with {NEURONS} reports: {status}")
    return job_id


def fetch(http: httpx.Client, paths: list[str], gzip: bool) -> tuple[int, float]:
    """(bytes on the wire, seconds) to GET every path in turn and read each body to the end."""
    headers = {"Accept-Encoding": "gzip" if gzip else "identity"}
    wire = 0
    started = time.perf_counter()
    for path in paths:
        with http.stream("GET", path, headers=headers) as response:
            response.read()
            if response.status_code != 200:
                raise RuntimeError(f"GET {path}: {response.status_code} {response.text[:300]}")
            wire += response.num_bytes_downloaded
    return wire, time.perf_counter() - started


def variants(job_id: str) -> dict[str, list[str]]:
    export = f"/v1/jobs/{job_id}/reports"
    pages = [f"/v1/jobs/{job_id}?offset={offset}&limit={PAGE}" for offset in range(0, NEURONS, PAGE)]
    return {
        "summary ndjson": [f"{export}?format=ndjson"],
        "summary csv": [f"{export}?format=csv"],
        "summary parquet": [f"{export}?format=parquet"],
        "full ndjson": [f"{export}?format=ndjson&fields=full"],
        f"full, paged JSON ({len(pages)} x GET /v1/jobs)": pages,
    }


def measure(url: str, job_id: str) -> dict[tuple[str, bool], tuple[int, float]]:
    """Best (fewest seconds) of ROUNDS interleaved rounds per (variant, gzip)."""
    cases = [(name, gzip) for name in variants(job_id) for gzip in (False, True)]
    paths = variants(job_id)
    best: dict[tuple[str, bool], tuple[int, float]] = {}
    with httpx.Client(base_url=url, timeout=120) as http:
        for case in cases:  # warm-up: page cache, the app's caches
            fetch(http, paths[case[0]], case[1])
        for round_index in range(ROUNDS):
            shift = round_index % len(cases)
            for name, gzip in cases[shift:] + cases[:shift]:
                wire, seconds = fetch(http, paths[name], gzip)
                if (name, gzip) not in best or seconds < best[(name, gzip)][1]:
                    best[(name, gzip)] = (wire, seconds)
    return best


def _kb(n: int) -> str:
    return f"{n / 1000:,.0f} KB" if n < 10_000_000 else f"{n / 1e6:.1f} MB"


def main() -> list[dict[str, Any]]:
    from service.commands.embedded_redis import EmbeddedRedis

    artifacts = CACHE / "artifacts"
    with EmbeddedRedis(data_dir=CACHE / "redis", append_only=True) as redis_server:
        env = {
            **os.environ,
            "NEURONLENS_REDIS_URL": redis_server.url,
            "NEURONLENS_ARTIFACT_URL": str(artifacts),
            "HF_HUB_OFFLINE": "1",
        }
        with uvicorn_server("service.http.app:app_from_env", env, REPO_ROOT) as (port, _pid):
            url = f"http://127.0.0.1:{port}"
            try:
                job_id = produce_reports(url, redis_server.url, artifacts)
            except RuntimeError:
                # The cache lost its job record or some reports: produce them again from scratch.
                import redis

                shutil.rmtree(artifacts, ignore_errors=True)
                redis.Redis.from_url(redis_server.url).flushall()
                job_id = produce_reports(url, redis_server.url, artifacts)
            best = measure(url, job_id)
    load = load_average()
    full_paged = next(name for name in variants(job_id) if name.startswith("full, paged"))
    base_bytes, base_s = best[(full_paged, False)]
    rows = []
    for name in variants(job_id):
        (plain_bytes, plain_s), (zip_bytes, zip_s) = best[(name, False)], best[(name, True)]
        versus = (
            f"{base_bytes / plain_bytes:.0f}x fewer bytes, {base_s / plain_s:.1f}x faster than the paged "
            "full JSON (identity)"
            if name != full_paged
            else "the baseline of the ratios"
        )
        rows.append(
            {
                "figure": f"export {MODEL} L{LAYER} ({NEURONS} neurons): {name}",
                "value": f"{_kb(plain_bytes)} in {plain_s:.3f} s; gzip {_kb(zip_bytes)} in {zip_s:.3f} s",
                "goal": "one request of a few hundred KB" if name.startswith("summary") else "-",
                "detail": f"{versus}; best of {ROUNDS} interleaved rounds; {load}",
            }
        )
    return rows


if __name__ == "__main__":
    from bench.run import markdown_table

    print(markdown_table([{k: str(v) for k, v in row.items()} for row in main()]))
