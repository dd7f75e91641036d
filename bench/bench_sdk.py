"""SDK figure: every neuron of minilm-l6 (6 layers × 1,536 = 9,216 stored reports) as a pandas DataFrame,
the old way (`to_dataframe(list(client.iter_reports(job)))`: every full report paged as JSON and parsed
into pydantic models) against the new (`client.to_dataframe(job)`: one Parquet export read by pyarrow),
side by side in one run.

The reports are synthetic but schema-valid (bench_api's report: 20 exemplars of 16 tokens, about 9 KB of
JSON each; reports of real runs are larger, which favours the new path further), stored as an explain
worker stores them in an embedded Redis and a temporary artifact store; the whole-model request then
answers 200 with the finished job. The API runs as `uvicorn --factory service.http.app:app_from_env` (one
process, loopback). Each way runs in a fresh Python process (so its peak resident memory is its own):
wall seconds from the first request to the DataFrame, and peak RSS (the process's `ru_maxrss`, imports
of pandas, pyarrow and the SDK included; their cost alone is given too). Rounds alternate the two ways;
the best of ROUNDS is kept.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from bench._common import load_average  # noqa: E402

MODEL, NEURONS = "minilm-l6", 1536
ROUNDS = 2
REQUEST = {"model": MODEL, "layers": "all", "neurons": "all"}
GOAL_S, GOAL_MB = 5.0, 300.0
"""The issue's figure for the new path on this machine."""

CHILD = """
import json, resource, sys, time
import pandas, pyarrow.parquet
from neuronlens import Client, to_dataframe
url, job_id, way = sys.argv[1:4]
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
start = time.perf_counter()
with Client(url, timeout_s=600) as client:
    if way == "old":
        frame = to_dataframe(list(client.iter_reports(job_id)))
    else:
        frame = client.to_dataframe(job_id)
seconds = time.perf_counter() - start
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"seconds": seconds, "rows": len(frame), "peak_kb": peak, "imports_kb": base}))
"""


def store_model(redis_url: str, store: str) -> int:
    """Store a report for every neuron of every layer; the bytes of one report."""
    import redis

    from bench.bench_api import _stored_report
    from service.contract import ExplanationRequest, RedisKeys, load_registry
    from service.estimates.validate import resolve_request
    from service.reports.listing import request_report_keys
    from workers.process.report_writer import ReportObjects, store_report

    _, _, template = _stored_report()
    registry = load_registry()
    client = redis.Redis.from_url(redis_url)
    objects = ReportObjects(store)
    for layer in range(registry.model(MODEL).layers):
        request = ExplanationRequest(model=MODEL, layer=layer, neurons={"start": 0, "stop": NEURONS})
        resolved = resolve_request(registry, request, max_neurons=NEURONS)
        for neuron, key in zip(resolved.neurons, request_report_keys(resolved), strict=True):
            report = template.model_copy(update={"layer": layer, "neuron": neuron})
            store_report(client, RedisKeys(), objects, key, resolved.variant, report, None)
    client.close()
    return len(template.model_dump_json())


def run_child(url: str, job_id: str, way: str) -> dict[str, Any]:
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT))
    out = subprocess.run(
        [sys.executable, "-c", CHILD, url, job_id, way],
        check=True, capture_output=True, text=True, timeout=900, env=env, cwd=REPO_ROOT,
    )  # fmt: skip
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def main() -> list[dict[str, str]]:
    import httpx

    from bench.bench_api import uvicorn_server
    from service.commands.embedded_redis import EmbeddedRedis

    env = {k: v for k, v in os.environ.items() if not k.startswith("NEURONLENS_")}
    env["PYTHONPATH"] = str(REPO_ROOT)
    results: dict[str, list[dict[str, Any]]] = {"old": [], "new": []}
    with EmbeddedRedis() as server, tempfile.TemporaryDirectory(prefix="neuronlens-bench-sdk-") as store:
        report_bytes = store_model(server.url, store)
        api_env = {**env, "NEURONLENS_REDIS_URL": server.url, "NEURONLENS_ARTIFACT_URL": store}
        with uvicorn_server("service.http.app:app_from_env", api_env, REPO_ROOT) as (port, _):
            url = f"http://127.0.0.1:{port}"
            answer = httpx.post(f"{url}/v1/explanations", json=REQUEST, timeout=600).json()
            if answer.get("status") != "finished":
                raise RuntimeError(f"the whole-model request did not answer finished: {answer}")
            for _ in range(ROUNDS):
                for way in ("old", "new"):
                    results[way].append(run_child(url, answer["job_id"], way))
    best = {way: min(runs, key=lambda r: r["seconds"]) for way, runs in results.items()}
    rows = best["new"]["rows"]
    detail = (
        f"{rows} rows ({report_bytes} B of JSON per report); old: to_dataframe(list(iter_reports)) "
        f"{best['old']['seconds']:.1f} s, peak RSS {best['old']['peak_kb'] / 1024:.0f} MB; new: "
        f"client.to_dataframe (Parquet) {best['new']['seconds']:.2f} s, peak RSS "
        f"{best['new']['peak_kb'] / 1024:.0f} MB; imports alone {best['new']['imports_kb'] / 1024:.0f} MB; "
        f"best of {ROUNDS}; {load_average()}"
    )
    goal = f"≤ {GOAL_S:g} s and ≤ {GOAL_MB:g} MB"
    return [
        {"figure": "SDK whole-model DataFrame, old path (s)", "value": f"{best['old']['seconds']:.1f}",
         "goal": "report (no goal set)", "detail": detail},
        {"figure": "SDK whole-model DataFrame, Parquet path (s)", "value": f"{best['new']['seconds']:.2f}",
         "goal": goal, "detail": detail},
        {"figure": "SDK whole-model DataFrame, Parquet path peak RSS (MB)",
         "value": f"{best['new']['peak_kb'] / 1024:.0f}", "goal": goal, "detail": detail},
        {"figure": "SDK whole-model DataFrame, old path peak RSS (MB)",
         "value": f"{best['old']['peak_kb'] / 1024:.0f}", "goal": "report (no goal set)", "detail": detail},
    ]  # fmt: skip


if __name__ == "__main__":
    for row in main():
        print(json.dumps(row))
