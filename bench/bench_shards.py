"""Sharded scan through RQ: a K = 2 scan (two shard jobs and a merge job) run by 2 `neuronlens-worker`
processes ÷ the K = 1 scan job run by one of them, wall time from enqueueing to the finished job.

minilm-l6, all 6 layers, its default probe set cut to SAMPLES samples, a private Redis, one intra-op torch
thread per worker (OMP_NUM_THREADS=1). Both workers run throughout and are warmed (model loaded) before
timing; the variants alternate over ROUNDS rounds, each from a store without the layer artifacts (the
tokenised probe set is kept), and each counts its median. On this 2-core shared machine no speed-up is
the point: the figure shows what the RQ overhead and the merge cost next to the scan itself.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:  # run as a script from bench/
    sys.path.insert(0, str(REPO_ROOT))

from bench._common import load_average, stop_process  # noqa: E402  (after the path set-up above)

SAMPLES = 1024
ROUNDS = 3
WORKERS = 2
LAYERS = [0, 1, 2, 3, 4, 5]


def _registry(path: Path) -> Path:
    from service.contract import BUNDLED_REGISTRY

    registry = json.loads(BUNDLED_REGISTRY.read_text())
    (model,) = [m for m in registry["models"] if m["id"] == "minilm-l6"]
    (dataset,) = [d for d in registry["datasets"] if d["id"] == model["datasets"][0]]
    dataset["n_samples"] = SAMPLES
    path.write_text(json.dumps(registry))
    return path


def _wait(predicate: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout_s}s waiting for {what}")
        time.sleep(0.02)


def main() -> list[dict[str, str]]:
    import redis
    from rq import Worker
    from rq.job import Job
    from rq.job import JobStatus as RqStatus
    from rq.serializers import JSONSerializer

    from service.commands.embedded_redis import EmbeddedRedis
    from service.contract import ExplanationRequest, load_registry
    from service.estimates.validate import resolve_request
    from service.jobs.queues import JobQueues
    from service.jobs.scan import ensure_scan_jobs
    from service.settings import load_settings
    from workers.scan.token_keys import scan_id, scan_key

    with tempfile.TemporaryDirectory() as root, EmbeddedRedis() as server:
        registry_path = _registry(Path(root) / "registry.json")
        store = Path(root) / "store"
        settings = load_settings(
            redis_url=server.url, registry_path=registry_path, artifact_url=str(store), job_retries=0
        )
        env = {k: v for k, v in os.environ.items() if not k.startswith("NEURONLENS_")}
        env.update(
            HF_HUB_OFFLINE="1",
            OMP_NUM_THREADS="1",
            MKL_NUM_THREADS="1",
            NEURONLENS_REDIS_URL=server.url,
            NEURONLENS_REGISTRY_PATH=str(registry_path),
            NEURONLENS_ARTIFACT_URL=str(store),
            NEURONLENS_DEVICE="cpu",
            NEURONLENS_SCAN_BATCH_SIZE=str(settings.scan_batch_size),
        )
        workers = [
            subprocess.Popen(
                [sys.executable, "-m", "workers.process.worker", "--queues", "scan", "--name", f"bench-{k}"],
                env=env,
                cwd=REPO_ROOT,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            for k in range(WORKERS)
        ]
        connection = redis.Redis.from_url(server.url)
        try:
            _wait(lambda: len(Worker.all(connection=connection)) == WORKERS, 120, "the workers to register")
            registry = load_registry(registry_path)
            request = ExplanationRequest(model="minilm-l6", layer=0, neurons=[0])
            resolved = resolve_request(registry, request, 4096, settings)
            queues = JobQueues.connect(connection, settings)
            options = resolved.request.options
            hook = resolved.request.hook or resolved.model.default_hook
            model, dataset = resolved.model, resolved.dataset
            scans = [scan_id(model, dataset, hook, x, options.n_top, options.seed) for x in LAYERS]

            def run(n_shards: int) -> float:
                for scan in scans:
                    shutil.rmtree(store / scan_key(scan), ignore_errors=True)
                for key in connection.scan_iter("rq:job:scan-*"):
                    connection.delete(key)  # a fresh job each round (the ids repeat)
                started = time.perf_counter()
                job_id = ensure_scan_jobs(connection, queues, settings, resolved, LAYERS, None, n_shards)

                def finished() -> bool:
                    job = Job.fetch(job_id, connection=connection, serializer=JSONSerializer)
                    status = job.get_status(refresh=True)
                    if status in (RqStatus.FAILED, RqStatus.STOPPED):
                        raise RuntimeError(f"scan job {job_id} failed: {job.meta.get('error')}")
                    return status == RqStatus.FINISHED

                _wait(finished, 600, f"scan job {job_id}")
                return time.perf_counter() - started

            run(WORKERS)  # warm-up: every worker loads the model and the probe set is tokenised and stored
            seconds: dict[int, list[float]] = {1: [], WORKERS: []}
            for _ in range(ROUNDS):
                for n_shards in (1, WORKERS):
                    seconds[n_shards].append(run(n_shards))
        finally:
            for worker in workers:
                stop_process(worker)
            connection.close()
    one, two = statistics.median(seconds[1]), statistics.median(seconds[WORKERS])
    return [
        {
            "figure": f"sharded scan through RQ, K = {WORKERS} shard jobs on {WORKERS} worker processes ÷ "
            "K = 1 scan job, wall time, minilm-l6 all 6 layers",
            "value": f"{two / one:.3f}",
            "goal": "report (merged arrays byte-identical: tests/e2e/test_sharded_scan.py; 2 shared cores)",
            "detail": f"median {two:.2f} s vs {one:.2f} s over {ROUNDS} alternating rounds "
            f"(K={WORKERS}: {', '.join(f'{s:.2f}' for s in seconds[WORKERS])}; K=1: "
            f"{', '.join(f'{s:.2f}' for s in seconds[1])}), {SAMPLES} samples, enqueue → merge finished, "
            f"warm workers, 1 torch thread each; {load_average()}",
        }
    ]


if __name__ == "__main__":
    from bench.run import markdown_table

    print(markdown_table(main()))
