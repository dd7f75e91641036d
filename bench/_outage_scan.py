"""A Redis outage in the middle of a scan, for bench_recover: samples read again by the retried scan.

A real Redis (`redis-server`, as `neuronlens up` runs it) holds the scan's progress, written after every
batch as a worker's job meta is (`NEURONLENS_PROGRESS_INTERVAL_S=0`). At 60% of the pass the server is
SIGKILLed: the next progress write raises `redis.ConnectionError` and fails the scan, as it fails a worker's
scan job. After OUTAGE_S seconds the server is started again on the same port and the scan runs again,
as RQ retries the job. Samples read again = samples the failed attempt read + samples the retry read −
samples in the pass; without checkpoints it is everything the failed attempt read.
"""

from __future__ import annotations

import time
from pathlib import Path

import redis

from service.commands.embedded_redis import EmbeddedRedis
from service.contract import PipelineOptions, load_registry
from workers.models.loader import ModelCache
from workers.scan.passes import ScanProgress
from workers.scan.run import ScanSetup, scan_model_layers
from workers.scan.store import FsspecArtifactStore

MODEL, LAYERS, SAMPLES, BATCH = "minilm-l6", [2, 3], 768, 8
OUTAGE_S, AT = 15.0, 0.6
NEVER_S = 1e9
"""A checkpoint interval no scan reaches (checkpoints off: the behaviour before issue 20)."""


def outage_scan(folder: Path, checkpoint_s: float | None) -> dict[str, float]:
    """Scan with a Redis outage at 60%; samples read by each attempt, re-read, and the scan's seconds."""
    registry = load_registry()
    model = registry.model(MODEL)
    dataset = registry.dataset("text-probe-v1").model_copy(update={"n_samples": SAMPLES})
    point = model.hook(model.default_hook)
    store = FsspecArtifactStore(str(folder / "artifacts"))
    setup = ScanSetup(store, ModelCache(store, "cpu"), BATCH, checkpoint_s=checkpoint_s or NEVER_S)
    server = EmbeddedRedis(data_dir=folder / "redis").start()
    connection = redis.Redis.from_url(server.url, socket_timeout=2, socket_connect_timeout=2)
    read: list[int] = []
    killed: list[float] = []

    def progress(state: ScanProgress) -> None:
        if state.samples_done == 0:
            return
        read[-1] = state.samples_done - state.samples_resumed
        if not killed and state.samples_done >= AT * state.samples_total and server.process is not None:
            server.process.kill()
            server.process.wait()
            killed.append(time.monotonic())
        connection.hset("bench:scan", mapping={"samples_done": state.samples_done})

    started = time.monotonic()
    restarted: EmbeddedRedis | None = None
    try:
        read.append(0)
        try:
            scan_model_layers(setup, model, dataset, point, LAYERS, PipelineOptions(), scan_progress=progress)
            raise RuntimeError("the scan did not fail during the Redis outage")
        except redis.ConnectionError:
            pass
        time.sleep(max(0.0, OUTAGE_S - (time.monotonic() - killed[0])))
        restarted = EmbeddedRedis(port=server.port, data_dir=folder / "redis").start()
        read.append(0)
        scan_model_layers(setup, model, dataset, point, LAYERS, PipelineOptions(), scan_progress=progress)
    finally:
        for running in (server, restarted):
            if running is not None:
                running.stop()
    return {
        "failed_read": read[0],
        "retry_read": read[1],
        "reread": read[0] + read[1] - SAMPLES,
        "seconds": time.monotonic() - started - OUTAGE_S,
    }
