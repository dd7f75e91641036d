"""LLM stage figures: neurons explained and simulated by the `openai` backends against the OpenAI-compatible
peer, through the worker pipeline (`workers.process.explain_job.explain_neurons`, as an explain job runs it).

The peer runs as its own process (``python -m tests.llm_peer``) with a fixed latency per call, so the
client side (the real `openai` client, our retrying caller, the thread pools, report assembly) is
measured, not the peer. Neurons are real: a MiniLM layer scanned over text-probe-v1 and, when the registry
serves it, the planted neurons of tiny-llava-planted over vl-probe-v1 (artifacts are reused when they exist).

- achieved ÷ ideal throughput (200 text neurons): ideal = concurrency / (calls per neuron × latency);
- LLM calls and prompt/completion tokens per neuron, text and visual (from each report's provenance,
  checked against the peer's own call count; the peer bills characters / 4 and 85 tokens per image, so
  token figures show prompt sizes, not a real tokenizer's counts).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.request import urlopen

REPO_ROOT = Path(__file__).resolve().parent.parent
N_NEURONS = 200
LATENCY_MS = 50.0
TEXT = ("minilm-l6", 3, "text-probe-v1")
"""(model, layer, probe set) of the text neurons."""
VISUAL = ("tiny-llava-planted", 2, "vl-probe-v1")
"""(model, layer, probe set) of the visual neurons: its planted neurons (registry description)."""
VISUAL_NEURONS = [11, 42, 99, 200]
"""tiny-llava-planted's planted neurons at layer 2: visual, text, multimodal, multimodal."""


@contextmanager
def peer_process(latency_ms: float) -> Iterator[str]:
    """The peer in a child process; yields its base URL."""
    from bench._common import stop_process
    from service.commands.embedded_redis import free_port

    port = free_port()
    command = [sys.executable, "-m", "tests.llm_peer", "--port", str(port), "--latency-ms", str(latency_ms)]
    process = subprocess.Popen(command, cwd=REPO_ROOT, stdout=subprocess.PIPE, text=True)
    try:
        line = process.stdout.readline() if process.stdout is not None else ""
        if "listening on" not in line:
            raise RuntimeError(f"the LLM peer did not start: {line!r}")
        yield line.rsplit(" ", 1)[-1].strip()
    finally:
        stop_process(process)


def peer_calls(base_url: str) -> int:
    with urlopen(base_url.removesuffix("/v1") + "/peer/stats", timeout=10) as answer:
        return int(json.load(answer)["calls"])


def explain(settings: Any, which: tuple[str, int, str], neurons: list[int]) -> tuple[list[Any], float]:
    """Scan the layer (reused when stored), then explain `neurons` with the `openai` backends through the
    pipeline; (reports, seconds of the explain stage)."""
    from bench._common import explanation_request
    from service.contract import load_registry
    from service.estimates.validate import resolve_request
    from workers.process.explain_job import explain_neurons
    from workers.process.scan_job import scan_layers
    from workers.process.worker import build_runtime

    model_id, layer, dataset_id = which
    registry = load_registry(settings.registry_path)
    model, dataset = registry.model(model_id), registry.dataset(dataset_id)
    request = explanation_request(
        model,
        dataset,
        layer,
        neurons,
        explainer="openai",
        simulator="openai",
        endpoint="default",
        candidates=1,
    )
    runtime = build_runtime(settings)
    point = model.hook(model.default_hook)
    scan_layers(runtime, model, dataset, point, [layer], request.options)
    # The report variant names where a vision-language probe set's shaded exemplar images are stored
    # (explain_neurons needs it for those); resolved as the API resolves the request, endpoint models too.
    variant = resolve_request(registry, request, len(neurons), settings).variant
    started = time.perf_counter()
    reports = list(explain_neurons(runtime, model, dataset, point, request, neurons, variant=variant))
    return reports, time.perf_counter() - started


def per_neuron(reports: list[Any]) -> tuple[float, float, float]:
    """(calls, prompt tokens, completion tokens) per neuron, from the reports' provenance."""
    n = len(reports)
    calls = sum(sum((r.provenance.llm_calls or {}).values()) for r in reports)
    prompt = sum(r.provenance.llm_tokens["prompt"] for r in reports)
    completion = sum(r.provenance.llm_tokens["completion"] for r in reports)
    return calls / n, prompt / n, completion / n


def donor_calls(settings: Any, which: tuple[str, int, str], neurons: list[int]) -> int:
    """LLM calls the peer sees but no report counts: the explanations of the chance null's donors that are
    not among `neurons` (a donor among them keeps its explanation and usage; k=1, one call each)."""
    from service.contract import PipelineOptions, chance_donors, load_registry

    model_id, layer, _ = which
    model = load_registry(settings.registry_path).model(model_id)
    options = PipelineOptions()
    donors = chance_donors(model.neurons_per_layer, options.chance_explanations, options.seed, layer)
    return len(set(donors) - set(neurons))


def throughput_rows(settings: Any, base_url: str) -> list[dict[str, str]]:
    model_id, layer, _ = TEXT
    before = peer_calls(base_url)
    reports, seconds = explain(settings, TEXT, list(range(N_NEURONS)))
    calls, prompt, completion = per_neuron(reports)
    seen = peer_calls(base_url) - before
    donors = donor_calls(settings, TEXT, list(range(N_NEURONS)))
    if seen != round(calls * N_NEURONS) + donors:
        raise RuntimeError(
            f"the reports count {calls * N_NEURONS:.0f} LLM calls (+ {donors} donor explanations) but the "
            f"peer saw {seen}"
        )
    concurrency = settings.llm_concurrency
    achieved = N_NEURONS / seconds
    ideal = concurrency / (calls * LATENCY_MS / 1000)
    return [
        {
            "figure": "LLM stage: achieved ÷ ideal throughput",
            "value": f"{achieved / ideal:.2f}",
            "goal": "≥ 0.8",
            "detail": f"{N_NEURONS} {model_id} L{layer} neurons through "
            "workers.process.explain_job.explain_neurons in "
            f"{seconds:.1f}s = {achieved:.1f}/s; ideal {ideal:.1f}/s = concurrency {concurrency} / "
            f"({calls:.0f} calls × {LATENCY_MS:.0f} ms); peer process on loopback",
        },
        {
            "figure": "LLM calls per neuron (text)",
            "value": f"{calls:.1f}",
            "goal": "-",
            "detail": "1 explanation + 1 simulation per held-out record (n_holdout top + as many random), "
            "candidates k=1, no faults injected; with the chance null's donor explanations outside the "
            "200 neurons, equals the peer's own count",
        },
        {
            "figure": "LLM tokens per neuron (text)",
            "value": f"{prompt:.0f} prompt + {completion:.0f} completion",
            "goal": "-",
            "detail": "as the peer bills them (characters / 4); n_explain 20 records shown to the explainer",
        },
    ]


def visual_rows(settings: Any, base_url: str) -> list[dict[str, str]]:
    from service.contract import load_registry

    model_id, layer, _ = VISUAL
    served = {m.id for m in load_registry(settings.registry_path).models}
    if model_id not in served:
        detail = f"{model_id} is not in the registry yet: visual neurons not measured"
        return [
            {"figure": "LLM calls per neuron (visual)", "value": "n/a", "goal": "-", "detail": detail},
            {"figure": "LLM tokens per neuron (visual)", "value": "n/a", "goal": "-", "detail": detail},
        ]
    before = peer_calls(base_url)
    reports, _ = explain(settings, VISUAL, VISUAL_NEURONS)
    donors = donor_calls(settings, VISUAL, VISUAL_NEURONS)
    if peer_calls(base_url) - before != round(per_neuron(reports)[0] * len(reports)) + donors:
        raise RuntimeError(
            "the visual reports' LLM calls (+ donor explanations) do not match the peer's count"
        )
    visual = [r for r in reports if r.neuron_type in ("visual", "multimodal")]
    if not visual:
        raise RuntimeError(f"no planted neuron of {model_id} was classified visual or multimodal")
    calls, prompt, completion = per_neuron(visual)
    shown = ", ".join(
        f"{r.neuron} {r.neuron_type} r={r.simulation.correlation:.2f}"
        if r.simulation.correlation is not None
        else f"{r.neuron} {r.neuron_type} r=null"
        for r in visual
    )
    return [
        {
            "figure": "LLM calls per neuron (visual)",
            "value": f"{calls:.1f}",
            "goal": "-",
            "detail": f"{model_id} L{layer} planted neurons classified visual/multimodal ({shown}; scored by "
            "the peer's colour rule); 1 explanation (visual-explainer-1) + per held-out record a text and "
            "an image (patch grid) simulation; k=1",
        },
        {
            "figure": "LLM tokens per neuron (visual)",
            "value": f"{prompt:.0f} prompt + {completion:.0f} completion",
            "goal": "-",
            "detail": "as the peer bills them (characters / 4, 85 per image); visual and multimodal "
            "neurons show the explainer 20 shaded images",
        },
    ]


def main() -> list[dict[str, str]]:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    sys.path.insert(0, str(REPO_ROOT))
    from service.settings import load_settings

    with peer_process(LATENCY_MS) as base_url:
        settings = load_settings(llm_base_url=base_url, explainer_model="peer", llm_api_key="bench")
        return throughput_rows(settings, base_url) + visual_rows(settings, base_url)


if __name__ == "__main__":
    for row in main():
        print(row)
