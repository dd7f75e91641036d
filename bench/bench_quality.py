"""Result-quality figures for issue 10, side by side in one run (baseline backends unless said otherwise):

- LLM calls and prompt tokens per text neuron by scorer (per-record simulation, batched simulation,
  detection, fuzzing), through workers.process.{scan_job,explain_job} with the `openai` backends against
  the in-process peer (tokens as the peer bills them: characters / 4), 16 minilm-l6 layer-3 neurons on
  text-probe-v2;
- minilm-l6 layer 3: share of the 1,536 neurons typed `unknown` before (text-probe-v1, Xu et al.'s rule,
  global-max scale) and after (text-probe-v2, the text-model rule, quantile scale), and the share of
  those `unknown` neurons whose simulation score is ≥ 0.7; the demo's neuron 42 on v2;
- planted-neuron recovery: tiny-bert-planted (workers/models/planted_text.py, text-probe-v2) and
  tiny-llava-planted (vl-probe-v2): type, concept named in the explanation, score rank in the layer;
- the scale default: the same planted and unknown figures with `scale` = global-max vs quantile.
Artifacts go to NEURONLENS_BENCH_STORE (default /tmp/neuronlens-bench-quality), so reruns reuse scans.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
STORE = os.environ.get("NEURONLENS_BENCH_STORE", "/tmp/neuronlens-bench-quality")
LLM_NEURONS = list(range(16))
PLANTED_VL_CONCEPTS = {
    11: "blue",
    42: ("circle", "square", "triangle", "star", "diamond", "cross"),
    200: "red",
}
PLANTED_TEXT_WORDS = {10: "numbers", 20: "play", 30: '"?"', 40: '"?"'}
"""tiny-bert-planted: neuron → what its explanation must name (40: "?" plus one outlier sample)."""


def _explain(runtime: Any, model: Any, dataset: Any, layer: int, neurons: list[int], **kw: Any) -> list[Any]:
    from bench._common import explanation_request
    from service.contract import PipelineOptions, report_variant
    from workers.process.explain_job import explain_neurons
    from workers.process.scan_job import scan_layers

    options = PipelineOptions(**kw.pop("options", {}))
    request = explanation_request(
        model,
        dataset,
        layer,
        neurons,
        explainer=kw.pop("explainer", "baseline"),
        simulator=kw.pop("simulator", "baseline"),
        options=options,
        **kw,
    )
    point = model.hook(model.default_hook)
    scan_layers(runtime, model, dataset, point, [layer], options)
    # Exemplar images (vision-language sets) are stored under the report variant: only baseline runs here
    # use such sets; the LLM rows explain a text model.
    baseline = "openai" not in (request.explainer, request.simulator)
    variant = (
        report_variant(request, revision=model.revision, dataset=dataset, models=None) if baseline else None
    )
    return list(explain_neurons(runtime, model, dataset, point, request, neurons, variant=variant))


def llm_rows(registry: Any) -> list[dict[str, str]]:
    from service.settings import load_settings
    from tests.llm_peer import LLMPeer
    from tests.llm_peer import rules as peer_model
    from workers.process.worker import build_runtime

    model, dataset = registry.model("minilm-l6"), registry.dataset("text-probe-v2")
    per: dict[str, tuple[int, int]] = {}
    with LLMPeer() as peer:
        settings = load_settings(
            artifact_url=STORE,
            device="cpu",
            llm_base_url=peer.base_url,
            explainer_model="peer",
            llm_api_key="b",
        )
        runtime = build_runtime(settings)
        for scorers in (["simulation"], ["simulation-batched", "detection", "fuzzing"]):
            start = len(peer.requests)
            _explain(
                runtime, model, dataset, 3, LLM_NEURONS, explainer="openai", simulator="openai",
                endpoint="default", candidates=1, options={"scorers": scorers},
            )  # fmt: skip
            for request in peer.requests[start:]:
                prompt = peer_model.read_prompt(request.body["messages"])
                if request.role == "explainer":
                    continue
                key = {"records": "simulation-batched", "detections": "detection", "fuzzing": "fuzzing"}.get(
                    peer_model.scorer_of(prompt) or "", "simulation"
                )
                calls, tokens = per.get(key, (0, 0))
                per[key] = (calls + 1, tokens + request.prompt_tokens)
    n = len(LLM_NEURONS)
    rows = []
    for key, goal in (
        ("simulation", "-"),
        ("simulation-batched", "≤ 4"),
        ("detection", "-"),
        ("fuzzing", "-"),
    ):
        calls, tokens = per.get(key, (0, 0))
        rows.append(
            {
                "figure": f"LLM calls / prompt tokens per text neuron: {key}",
                "value": f"{calls / n:.1f} calls, {tokens / n:.0f} tokens",
                "goal": goal,
                "detail": f"{n} minilm-l6 L3 neurons, text-probe-v2, openai backends vs the peer; 10 held-out"
                " top + 10 random records; batch_records 10; explainer call (1/neuron) not included",
            }
        )
    return rows


def _unknown(reports: list[Any], types: dict[int, str]) -> tuple[float, float, int]:
    unknown = [r for r in reports if types[r.neuron] == "unknown"]
    good = [r for r in unknown if (r.simulation.correlation or 0.0) >= 0.7]
    return len(unknown) / len(reports), (len(good) / len(unknown) if unknown else 0.0), len(unknown)


def minilm_rows(registry: Any, runtime: Any) -> list[dict[str, str]]:
    import numpy as np

    from service.contract import PipelineOptions
    from workers.analysis.neuron_types import classify_neuron
    from workers.process.scan_job import open_context

    model = registry.model("minilm-l6")
    neurons = list(range(model.neurons_per_layer))
    rows = []
    v1 = registry.dataset("text-probe-v1")
    old = PipelineOptions(scale="global-max")
    before = _explain(runtime, model, v1, 3, neurons, options={"scale": "global-max"})
    context = open_context(runtime, model, v1, model.default_hook, 3, old)
    scan, probe = context.scan, context.probe
    xu = {
        n: classify_neuron(
            scan.top_acts(n),
            probe.modality[scan.top_ids[n]],
            float(scan.global_max[n]),
            old,
            text_model=False,
        ).neuron_type
        for n in neurons
    }
    v2 = registry.dataset("text-probe-v2")
    results = {"before (v1, Xu rule, global max)": (before, xu)}
    for scale in ("global-max", "quantile"):
        after = _explain(runtime, model, v2, 3, neurons, options={"scale": scale})
        results[f"after (v2, text rule, {scale})"] = (after, {r.neuron: r.neuron_type for r in after})
    for label, (reports, types) in results.items():
        share, good, count = _unknown(reports, types)
        scores = [r.simulation.correlation for r in reports if r.simulation.correlation is not None]
        rows.append(
            {
                "figure": f"minilm-l6 L3 typed unknown, {label}",
                "value": f"{share:.1%} ({count}); {good:.0%} of them r ≥ 0.7",
                "goal": "after: unknown with r ≥ 0.7 = 0",
                "detail": f"1536 neurons, baseline explainer + simulator; median r {np.median(scores):.2f} "
                f"({len(scores)} defined of {len(reports)})",
            }
        )
    demo = next(r for r in results["after (v2, text rule, quantile)"][0] if r.neuron == 42)
    rows.append(
        {
            "figure": "demo neuron minilm-l6 L3 #42 on text-probe-v2",
            "value": f"{demo.neuron_type}, r={demo.simulation.correlation}",
            "goal": "text, with a score",
            "detail": f"{demo.explanation.text!r}; before: {xu[42]} on v1",
        }
    )
    return rows


def _rank(reports: list[Any], neuron: int) -> int:
    scores = sorted((r.simulation.correlation or -2.0 for r in reports), reverse=True)
    mine = next(r.simulation.correlation or -2.0 for r in reports if r.neuron == neuron)
    return scores.index(mine) + 1


def planted_rows(registry: Any, runtime: Any) -> list[dict[str, str]]:
    from workers.models.loader import weights_path
    from workers.models.planted_text import build_planted_bert

    minilm = registry.model("minilm-l6")
    folder = Path(tempfile.mkdtemp(prefix="tiny-bert-planted-"))
    bert = build_planted_bert(minilm, weights_path(minilm), folder)
    llava = registry.model("tiny-llava-planted")
    cases = [
        (bert, registry.dataset("text-probe-v2"), 0, PLANTED_TEXT_WORDS, "text"),
        (llava, registry.dataset("vl-probe-v2"), 2, PLANTED_VL_CONCEPTS, None),
    ]
    rows = []
    for model, dataset, layer, concepts, _ in cases:
        neurons = list(range(model.neurons_per_layer))
        for scale in ("quantile", "global-max"):
            reports = _explain(runtime, model, dataset, layer, neurons, options={"scale": scale})
            planted = {p.neuron: p.type for p in (model.planted or [])} or {n: "text" for n in concepts}
            parts = []
            for neuron, words in concepts.items():
                report = reports[neuron]
                named = any(
                    w in report.explanation.text for w in ((words,) if isinstance(words, str) else words)
                )
                parts.append(
                    f"#{neuron} {report.neuron_type}{'✓' if report.neuron_type == planted[neuron] else '✗'} "
                    f"concept {'✓' if named else '✗'} rank {_rank(reports, neuron)}/{len(reports)}"
                )
            rows.append(
                {
                    "figure": f"planted recovery {model.id} ({dataset.id}, scale {scale})",
                    "value": "; ".join(parts),
                    "goal": "type ✓, concept ✓, top ranks",
                    "detail": "baseline explainer + simulator, pooled r ranked over the whole layer",
                }
            )
    return rows


def main() -> list[dict[str, str]]:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    sys.path.insert(0, str(REPO_ROOT))
    import torch

    from service.contract import load_registry
    from service.settings import load_settings

    torch.set_num_threads(2)
    registry = load_registry()
    from workers.process.worker import build_runtime

    runtime = build_runtime(load_settings(artifact_url=STORE, device="cpu"))
    load = os.getloadavg()[0]
    rows = llm_rows(registry) + minilm_rows(registry, runtime) + planted_rows(registry, runtime)
    for row in rows:
        row["detail"] += f"; load average {load:.1f}"
    return rows


if __name__ == "__main__":
    for row in main():
        print(row)
