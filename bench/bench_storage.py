"""Storage figure: Redis memory per stored report, durable storage (object in the artifact store, neuron id
in the Redis index, as `workers.process.report_writer.store_report` writes it) against the old layout (the
whole report JSON as a Redis string), side by side.

1,536 real reports of minilm-l6 layer 3 (its default probe set, baseline explainer and simulator) are made
once with `explain_neurons`, then stored both ways into one private Redis, flushed between, alternating for
ROUNDS rounds; the figure is INFO used_memory after − before, ÷ reports, best (lowest) round of each. The
worker-metrics hash that storing also updates counts in both. MEMORY USAGE of the index set is reported
too. Set NEURONLENS_BENCH_STORAGE_SAMPLES to scan fewer probe samples (the reports get no smaller).
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:  # run as a script from bench/
    sys.path.insert(0, str(REPO_ROOT))

LAYER = 3
ROUNDS = 3
GOAL_BYTES = 2048


def _reports(root: str) -> tuple[list[Any], str]:
    """Every neuron's report of minilm-l6 layer LAYER, and their report variant."""
    from service.contract import ExplanationRequest, PipelineOptions, load_registry, report_variant
    from service.settings import load_settings
    from workers.process.explain_job import explain_neurons
    from workers.process.scan_job import scan_layers
    from workers.process.worker import build_runtime

    registry = load_registry()
    model = registry.model("minilm-l6")
    dataset = registry.dataset(model.datasets[0])
    samples = os.environ.get("NEURONLENS_BENCH_STORAGE_SAMPLES")
    if samples:
        dataset = dataset.model_copy(update={"n_samples": int(samples)})
    runtime = build_runtime(load_settings(artifact_url=root, device="cpu"))
    point = model.hook(model.default_hook)
    scan_layers(runtime, model, dataset, point, [LAYER], PipelineOptions())
    neurons = list(range(model.neurons_per_layer))
    request = ExplanationRequest(
        model=model.id, layer=LAYER, neurons=neurons, hook=point.id, dataset=dataset.id,
        explainer="baseline", simulator="baseline",
    )  # fmt: skip
    variant = report_variant(request, revision=model.revision, dataset=dataset, models=None)
    return list(explain_neurons(runtime, model, dataset, point, request, neurons)), variant


def _used(client: Any) -> int:
    return int(client.info("memory")["used_memory"])


OLD_KEY = "nl:report:{model}:{layer}:{neuron}:{variant}"
"""Redis key of a report in the layout before durable reports (the whole JSON as a string)."""


def _store_all(client: Any, layout: str, objects: Any, reports: list[Any], variant: str) -> None:
    from service.contract import RedisKeys, report_key
    from workers.process.report_writer import store_report

    for report in reports:
        if layout == "old":
            old_key = OLD_KEY.format(
                model=report.model, layer=report.layer, neuron=report.neuron, variant=variant
            )
            client.set(old_key, report.model_dump_json())
        else:
            key = report_key(report.model, report.layer, report.neuron, variant)
            store_report(client, RedisKeys(), objects, key, variant, report, None)


def _measure(root: str, reports: list[Any], variant: str) -> tuple[dict[str, list[int]], int]:
    """used_memory deltas per layout and round, and MEMORY USAGE of the index set."""
    import redis

    from service.commands.embedded_redis import EmbeddedRedis
    from service.contract import RedisKeys
    from workers.process.report_writer import ReportObjects

    rounds: dict[str, list[int]] = {"old": [], "new": []}
    index_bytes = 0
    with EmbeddedRedis() as server:
        client = redis.Redis.from_url(server.url)
        for round_ in range(ROUNDS):
            for layout in ("old", "new"):
                client.flushall()
                before = _used(client)
                objects = ReportObjects(os.path.join(root, f"store-{layout}-{round_}"))
                _store_all(client, layout, objects, reports, variant)
                rounds[layout].append(_used(client) - before)
                if layout == "new":
                    usage = client.memory_usage(RedisKeys().report_index("minilm-l6", LAYER, variant))
                    index_bytes = int(usage or 0)
        client.close()
    return rounds, index_bytes


def main() -> list[dict[str, str]]:
    with tempfile.TemporaryDirectory(prefix="neuronlens-bench-storage-") as root:
        reports, variant = _reports(root)
        rounds, index_bytes = _measure(root, reports, variant)
    n = len(reports)
    old, new = min(rounds["old"]) / n, min(rounds["new"]) / n
    mean_json = sum(len(report.model_dump_json()) for report in reports) / n
    load = "load average " + " ".join(f"{x:.1f}" for x in os.getloadavg())
    return [
        {
            "figure": "Redis memory per stored report (object in the store, neuron id in the Redis index)",
            "value": f"{new:.0f} B",
            "goal": f"≤ {GOAL_BYTES} B",
            "detail": f"old layout (JSON in Redis) {old:.0f} B per report, {old / max(new, 1):.0f}× more; "
            f"INFO used_memory delta over {n} real reports of minilm-l6 layer {LAYER} (mean JSON "
            f"{mean_json:.0f} B), best of {ROUNDS} interleaved rounds; MEMORY USAGE of the layer's index "
            f"set {index_bytes} B ({index_bytes / n:.0f} B per report); {load}",
        }
    ]


if __name__ == "__main__":
    for row in main():
        print(row)
