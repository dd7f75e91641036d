"""Chance-level figures (docs/method.md#chance-level): what the null of k donor explanations costs with an
LLM simulator, and how much of a layer the offline baseline explains beyond chance.

- LLM calls per text neuron with `simulation-batched`, k = 5 against k = 0: N_LLM neurons of minilm-l6 L3
  explained and simulated by the `openai` backends against the loopback peer (a process, as in
  bench_llm.py), counted by the peer itself; the k + 1 donor explanations of the job are spread over its
  neurons.
- Share of a layer beyond chance with the baseline (default k = 5, alpha 0.01) for minilm-l6 L3 and
  tiny-llama L1 over their default probe set (every neuron of the layer), with n defined / n total beside
  it: an undefined score has no verdict and is counted, never dropped.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
N_LLM = 20
"""Text neurons explained with the LLM backends per k."""
LLM_LAYER = ("minilm-l6", 3, "text-probe-v1")
LAYERS = (("minilm-l6", 3), ("tiny-llama", 1))
"""(model, layer) whose every neuron is explained with the baseline (the model's default probe set)."""


def _explain(
    settings: Any, model_id: str, layer: int, dataset_id: str | None, neurons: Any, **fields: Any
) -> Any:
    from bench._common import explanation_request
    from service.contract import load_registry
    from workers.process.explain_job import explain_neurons
    from workers.process.scan_job import scan_layers
    from workers.process.worker import build_runtime

    registry = load_registry(settings.registry_path)
    model = registry.model(model_id)
    dataset = registry.dataset(dataset_id or model.datasets[0])
    neurons = list(range(model.neurons_per_layer)) if neurons is None else neurons
    request = explanation_request(model, dataset, layer, neurons, **fields)
    runtime = build_runtime(settings)
    point = model.hook(model.default_hook)
    scan_layers(runtime, model, dataset, point, [layer], request.options)
    return list(explain_neurons(runtime, model, dataset, point, request, neurons)), dataset.id


def llm_rows() -> list[dict[str, str]]:
    from bench.bench_llm import peer_calls, peer_process
    from service.settings import load_settings

    model_id, layer, dataset_id = LLM_LAYER
    calls: dict[int, float] = {}
    with peer_process(0.0) as base_url:
        settings = load_settings(llm_base_url=base_url, explainer_model="peer", llm_api_key="bench")
        for k in (0, 5):
            before = peer_calls(base_url)
            options = {"scorers": ["simulation-batched"], "chance_explanations": k}
            reports, _ = _explain(
                settings,
                model_id,
                layer,
                dataset_id,
                list(range(N_LLM)),
                explainer="openai",
                simulator="openai",
                endpoint="default",
                candidates=1,
                options=options,
            )
            calls[k] = (peer_calls(base_url) - before) / len(reports)
    return [
        {
            "figure": "LLM calls per text neuron with the chance null (k = 5, simulation-batched)",
            "value": f"{calls[5]:.2f}",
            "goal": "-",
            "detail": f"vs {calls[0]:.2f} at k = 0; {N_LLM} {model_id} L{layer} neurons against the loopback "
            "peer, counted by the peer: 1 explanation + ⌈20 held-out records / 10⌉ = 2 batched simulations "
            "for the own explanation and 2 per null explanation, plus the job's 6 donor explanations "
            f"spread over its {N_LLM} neurons",
        }
    ]


def layer_rows() -> list[dict[str, str]]:
    from service.settings import load_settings

    settings = load_settings(device="cpu")
    rows = []
    for model_id, layer in LAYERS:
        reports, dataset = _explain(
            settings, model_id, layer, None, None, explainer="baseline", simulator="baseline"
        )
        total = len(reports)
        defined = [r for r in reports if r.simulation.correlation is not None]
        verdicts = [r.simulation.chance.beyond_chance for r in reports if r.simulation.chance is not None]
        beyond = sum(v is True for v in verdicts)
        mean = sum(r.simulation.correlation for r in defined) / len(defined) if defined else float("nan")
        rows.append(
            {
                "figure": f"share of {model_id} L{layer} beyond chance (baseline)",
                "value": f"{beyond / total:.1%} ({beyond} of {total})",
                "goal": "reported",
                "detail": f"{len(defined)} defined of {total} scores (mean r {mean:.3f} over those); "
                f"k = 5 donor explanations of the layer, one-sided t-prediction p < 0.01; {dataset}",
            }
        )
    return rows


def main() -> list[dict[str, str]]:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    sys.path.insert(0, str(REPO_ROOT))
    return llm_rows() + layer_rows()


if __name__ == "__main__":
    for row in main():
        print(row)
