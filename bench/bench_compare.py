"""Issue 19 figures: what a comparison of two checkpoints costs, and how well its verdicts find changes.

In one process, on one embedded Redis and one artifact store, with the API served over loopback and the
project's RQ worker run in burst mode (as the API tests do), CPU only:

- Comparison wall time ÷ its parts, minilm-l6 against a copy of itself registered under another id, every
  layer (SAMPLES probe samples, NEURONS neurons per layer, offline baseline backends). Two ratios:
  *cold*: nothing stored, so the comparison scans both, explains the base and compares; its parts, timed
  directly (no queue) on the same runtime: the two scans, the base's explanations and the re-scoring of
  them on the target. *warm*: the base was explained before (its scan and reports stored, as when a
  fine-tune is compared with an audited base); the comparison scans the target and compares; parts: one
  scan and the re-scoring. Each round uses its own `seed` (a scan option), so nothing of another round
  is reused; fastest of ROUNDS rounds after an untimed warm-up (the runtime loads both models, as a
  running worker has them); the load average is printed beside.
- LLM calls of a comparison of identical checkpoints (the planted BERT and a copy under another id,
  layer 0, 16 neurons) against the loopback LLM peer: explainer calls (goal 0) and simulator calls.
- Precision and recall of the `changed` verdict on the planted changed checkpoint (layer 0, every neuron),
  and the share of the rescaled and dead neurons given their verdict.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from bench._common import load_average  # noqa: E402

MINILM, MINILM_COPY = "minilm-l6", "minilm-l6-copy"
SAMPLES = int(os.environ.get("BENCH_COMPARE_SAMPLES", "1024"))
NEURONS = int(os.environ.get("BENCH_COMPARE_NEURONS", "128"))
ROUNDS = int(os.environ.get("BENCH_COMPARE_ROUNDS", "3"))
GOAL_RATIO = 1.1


def _registry(folder: Path) -> Path:
    """The comparison tests' registry (planted BERT, its changed checkpoint, a copy) plus a copy of
    minilm-l6 under another id, the default text probe set cut to SAMPLES."""
    from service.contract import load_registry
    from tests.service.comparisons_helpers import comparison_registry

    path = comparison_registry(folder, samples=SAMPLES)
    registry = json.loads(path.read_text())
    copy = load_registry().model(MINILM).model_copy(update={"id": MINILM_COPY})
    registry["models"].append(copy.model_dump(mode="json"))
    path.write_text(json.dumps(registry))
    return path


@contextmanager
def _stack(folder: Path, **env: str) -> Iterator[tuple[str, Any, Any]]:
    """(API URL, Redis connection, API settings) on an embedded Redis and ``folder``'s store."""
    import redis

    from service.commands.embedded_redis import EmbeddedRedis
    from service.http.app import create_app
    from service.settings import load_settings
    from tests.service.helpers import serve

    server = EmbeddedRedis(data_dir=folder / "redis").start()
    saved = dict(os.environ)
    os.environ.update(
        {
            "NEURONLENS_REDIS_URL": server.url,
            "NEURONLENS_ARTIFACT_URL": str(folder / "artifacts"),
            "NEURONLENS_DEVICE": "cpu",
            "HF_HUB_OFFLINE": "1",
            **env,
        }
    )
    try:
        settings = load_settings()
        with serve(create_app(settings)) as url:
            yield url, redis.Redis.from_url(server.url), settings
    finally:
        os.environ.clear()
        os.environ.update(saved)
        server.stop()


def _finish(http: Any, url: str, conn: Any, settings: Any, path: str, body: dict[str, Any]) -> Any:
    """POST ``body`` to ``path``, work the queues in this process, return the finished status JSON."""
    from tests.service.helpers import run_workers

    answer = http.post(f"{url}{path}", json=body)
    if answer.status_code != 202:
        raise RuntimeError(f"POST {path}: {answer.status_code} {answer.text}")
    run_workers(conn, settings)
    status = http.get(url + answer.headers["Location"], params={"limit": 1000}).json()
    if status["status"] != "finished":
        raise RuntimeError(f"{path} ended {status['status']}: {status.get('error')}")
    return status


def _parts(seed: int) -> dict[str, float]:
    """Seconds of the parts, timed directly on the worker's runtime: both scans, the base's explanations,
    the re-scoring of them on the target."""
    from service.contract import ExplanationRequest, PipelineOptions
    from service.estimates.validate import resolve_request
    from tests.service.helpers import worker_runtime
    from workers.analysis.rescore import rescore
    from workers.process.backends import make_simulator
    from workers.process.explain_job import explain_neurons
    from workers.process.scan_job import open_context, scan_layers

    runtime = worker_runtime()
    base, target = runtime.registry.model(MINILM), runtime.registry.model(MINILM_COPY)
    dataset = runtime.registry.dataset(base.datasets[0])
    point, options, layers = base.hook_points[0], PipelineOptions(seed=seed), list(range(base.layers))
    neurons = list(range(NEURONS))
    seconds: dict[str, float] = {}
    for name, model in (("scan base", base), ("scan target", target)):
        started = time.perf_counter()
        scan_layers(runtime, model, dataset, point, layers, options)
        seconds[name] = time.perf_counter() - started
    texts: dict[int, list[str]] = {}
    started = time.perf_counter()
    for layer in layers:
        request = ExplanationRequest(model=MINILM, layer=layer, neurons=neurons, options=options)
        resolved = resolve_request(runtime.registry, request, max_neurons=4096).request
        reports = explain_neurons(runtime, base, dataset, point, resolved, neurons)
        texts[layer] = [report.explanation.text for report in reports]
    seconds["explain base"] = time.perf_counter() - started
    simulator = make_simulator("baseline", runtime.llm, images=runtime.probe_images(dataset))
    started = time.perf_counter()
    for layer in layers:
        context = open_context(runtime, target, dataset, point.id, layer, options)
        rescore(context, neurons, texts[layer], simulator)
    seconds["rescore"] = time.perf_counter() - started
    return seconds


def ratio_rows(folder: Path) -> list[dict[str, str]]:
    import httpx

    body = {"base": MINILM, "target": MINILM_COPY, "layers": "all", "neurons": {"start": 0, "stop": NEURONS}}
    cold, warm, parts = [], [], []
    loads = [load_average()]
    with _stack(folder, NEURONLENS_REGISTRY_PATH=str(_registry(folder / "checkpoints"))) as stack:
        url, conn, settings = stack
        with httpx.Client(timeout=120) as http:
            # warm-up (not timed): the worker's runtime loads both models, as a running worker has them
            warm_up = body | {"layers": [0], "neurons": [0], "options": {"seed": 999}}
            _finish(http, url, conn, settings, "/v1/comparisons", warm_up)
            _parts(999)
            for index in range(ROUNDS):
                seeds = [10 * index + offset for offset in (1, 2, 3)]
                started = time.perf_counter()
                _finish(http, url, conn, settings, "/v1/comparisons", body | {"options": {"seed": seeds[0]}})
                cold.append(time.perf_counter() - started)
                parts.append(_parts(seeds[1]))
                explain = {"model": MINILM, "layers": "all", "neurons": body["neurons"]}
                _finish(
                    http, url, conn, settings, "/v1/explanations", explain | {"options": {"seed": seeds[2]}}
                )
                started = time.perf_counter()
                _finish(http, url, conn, settings, "/v1/comparisons", body | {"options": {"seed": seeds[2]}})
                warm.append(time.perf_counter() - started)
                loads.append(load_average())
    best = {name: min(p[name] for p in parts) for name in parts[0]}
    cold_parts = sum(best.values())
    warm_parts = best["scan target"] + best["rescore"]
    shown = ", ".join(f"{name} {value:.1f}s" for name, value in best.items())
    setting = (
        f"minilm-l6 vs a copy, 6 layers × {NEURONS} neurons, {SAMPLES} samples, baseline backends, CPU; "
        f"fastest of {ROUNDS}; {' → '.join(loads)}"
    )
    return [
        {
            "figure": "comparison wall time ÷ its parts, cold (two scans + base explanations + re-scoring)",
            "value": f"{min(cold) / cold_parts:.2f}",
            "goal": f"≤ {GOAL_RATIO}",
            "detail": f"comparison {min(cold):.1f}s; parts {cold_parts:.1f}s ({shown}); {setting}",
        },
        {
            "figure": "comparison wall time ÷ its parts, base explained before (target scan + re-scoring)",
            "value": f"{min(warm) / warm_parts:.2f}",
            "goal": f"≤ {GOAL_RATIO}",
            "detail": f"comparison {min(warm):.1f}s; parts {warm_parts:.1f}s; {setting}",
        },
    ]


def llm_rows(folder: Path) -> list[dict[str, str]]:
    import httpx

    from tests.llm_peer import LLMPeer
    from tests.service.comparisons_helpers import BASE, COPY

    neurons = list(range(16))
    with LLMPeer() as peer:
        env = {
            "NEURONLENS_REGISTRY_PATH": str(_registry(folder / "checkpoints")),
            "NEURONLENS_LLM_BASE_URL": peer.base_url,
            "NEURONLENS_LLM_API_KEY": "bench-key",
            "NEURONLENS_EXPLAINER_MODEL": "peer-explainer",
            "NEURONLENS_SIMULATOR_MODEL": "peer-simulator",
        }
        with _stack(folder, **env) as (url, conn, settings), httpx.Client(timeout=120) as http:
            options = {"n_holdout": 2}
            explain = {"model": BASE, "layer": 0, "neurons": neurons, "options": options}
            _finish(http, url, conn, settings, "/v1/explanations", explain)
            before = len(peer.requests)
            body = {"base": BASE, "target": COPY, "layers": [0], "neurons": neurons, "options": options}
            status = _finish(http, url, conn, settings, "/v1/comparisons", body)
            during = peer.requests[before:]
    explainer = sum(1 for r in during if r.role == "explainer")
    simulator = sum(1 for r in during if r.role == "simulator")
    return [
        {
            "figure": "LLM explanation calls of a comparison of identical checkpoints",
            "value": str(explainer),
            "goal": "0",
            "detail": f"{simulator} simulator calls re-scoring the base's explanations; verdicts "
            f"{status['verdicts']}; planted BERT vs a copy, layer 0, {len(neurons)} neurons, loopback peer",
        }
    ]


def verdict_rows(folder: Path) -> list[dict[str, str]]:
    import httpx

    from tests.service.comparisons_helpers import BASE, CHANGES, TARGET

    registry = _registry(folder / "checkpoints")
    with _stack(folder, NEURONLENS_REGISTRY_PATH=str(registry)) as (url, conn, settings):
        with httpx.Client(timeout=120) as http:
            body = {"base": BASE, "target": TARGET, "layers": [0], "neurons": "all"}
            status = _finish(http, url, conn, settings, "/v1/comparisons", body)
    found = {item["neuron"]: item["verdict"] for item in status["comparisons"]}
    truth = CHANGES.truth()
    called = {n for n, v in found.items() if v == "changed"}
    true = {n for n, v in truth.items() if v == "changed"}
    hits = len(called & true)
    precision, recall = hits / max(len(called), 1), hits / max(len(true), 1)

    def share(neurons: tuple[int, ...], verdict: str) -> str:
        return f"{sum(found[n] == verdict for n in neurons)}/{len(neurons)}"

    return [
        {
            "figure": "verdicts on the planted changed checkpoint: precision / recall of `changed`",
            "value": f"{precision:.2f} / {recall:.2f}",
            "goal": "≥ 0.9 / ≥ 0.9",
            "detail": f"{len(true)} changed neurons planted, {len(called)} called changed; rescaled "
            f"called rescaled {share(CHANGES.rescaled, 'rescaled')}, dead called dead "
            f"{share(CHANGES.dead, 'dead')}; "
            f"layer 0, {len(found)} neurons, {SAMPLES} samples",
        }
    ]


def main() -> list[dict[str, str]]:
    with tempfile.TemporaryDirectory(prefix="bench-compare-") as tmp:
        root = Path(tmp)
        rows = verdict_rows(root / "verdicts")
        rows += llm_rows(root / "llm")
        rows += ratio_rows(root / "ratio")
    return rows


if __name__ == "__main__":
    for row in main():
        print(" | ".join(row[column] for column in ("figure", "value", "goal", "detail")))
