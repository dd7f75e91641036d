"""LLM stage figures: 200 text neurons explained and simulated against the OpenAI-compatible peer.

The peer runs as its own process (``python -m workers.llm.peer``) with a fixed latency per call, so the
client side (the real `openai` client, our retrying caller, the thread pools) is measured, not the peer.
Neurons are real: a MiniLM layer scanned over text-probe-v1 (the artifact is reused when it exists), fed
through the pipeline's chunks (explain a chunk, then simulate it), as `workers.pipeline` does.

- achieved ÷ ideal throughput: ideal = concurrency / (calls per neuron × latency) neurons/s;
- LLM calls per neuron and prompt/completion tokens per neuron (text neurons; the peer counts tokens as
  characters / 4, so token figures show the prompt sizes, not a real tokenizer's counts).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.request import urlopen

REPO_ROOT = Path(__file__).resolve().parent.parent
N_NEURONS = 200
LATENCY_MS = 50.0
LAYER = 3
MODEL_ID = "minilm-l6"
DATASET_ID = "text-probe-v1"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def peer_process(latency_ms: float) -> Iterator[str]:
    """The peer in a child process; yields its base URL."""
    port = _free_port()
    command = [sys.executable, "-m", "workers.llm.peer", "--port", str(port), "--latency-ms", str(latency_ms)]
    process = subprocess.Popen(command, cwd=REPO_ROOT, stdout=subprocess.PIPE, text=True)
    try:
        line = process.stdout.readline() if process.stdout is not None else ""
        if "listening on" not in line:
            raise RuntimeError(f"the LLM peer did not start: {line!r}")
        yield line.rsplit(" ", 1)[-1].strip()
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def main() -> list[dict[str, str]]:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    sys.path.insert(0, str(REPO_ROOT))
    from service.schemas import PipelineOptions, load_registry
    from service.settings import load_settings
    from workers.explain.openai_explainer import make_openai_explainer
    from workers.pipeline import CHUNK_NEURONS, open_context
    from workers.report import prepare_neuron
    from workers.scan.run import scan_layers
    from workers.simulate.openai_simulator import make_openai_simulator

    registry = load_registry()
    model, dataset = registry.model(MODEL_ID), registry.dataset(DATASET_ID)
    options = PipelineOptions()
    base = load_settings()
    scan_layers(base, model, dataset, model.default_hook, [LAYER], options)
    context = open_context(base, model, dataset, model.default_hook, LAYER, options)
    prepared = [prepare_neuron(context, neuron) for neuron in range(N_NEURONS)]

    with peer_process(LATENCY_MS) as base_url:
        settings = load_settings(llm_base_url=base_url, explainer_model="peer", llm_api_key="bench")
        explainer, simulator = make_openai_explainer(settings), make_openai_simulator(settings)
        concurrency = simulator.caller.endpoint.concurrency
        prompt_tokens = completion_tokens = 0
        started = time.perf_counter()
        for begin in range(0, N_NEURONS, CHUNK_NEURONS):
            chunk = prepared[begin : begin + CHUNK_NEURONS]
            explained = explainer.explain([item.explainer_input(LAYER) for item in chunk])
            simulated = simulator.simulate(
                [item.simulation_input(result.text) for item, result in zip(chunk, explained, strict=True)]
            )
            for explanation, simulation in zip(explained, simulated, strict=True):
                prompt_tokens += explanation.prompt_tokens + simulation.prompt_tokens
                completion_tokens += explanation.completion_tokens + simulation.completion_tokens
        seconds = time.perf_counter() - started
        with urlopen(base_url.removesuffix("/v1") + "/peer/stats", timeout=10) as answer:
            stats = json.load(answer)

    calls_per_neuron = stats["calls"] / N_NEURONS
    achieved = N_NEURONS / seconds
    ideal = concurrency / (calls_per_neuron * LATENCY_MS / 1000)
    return [
        {
            "figure": "LLM stage: achieved ÷ ideal throughput",
            "value": f"{achieved / ideal:.2f}",
            "goal": "≥ 0.8",
            "detail": f"{N_NEURONS} {MODEL_ID} L{LAYER} neurons in {seconds:.1f}s = {achieved:.1f}/s; ideal "
            f"{ideal:.1f}/s = concurrency {concurrency} / ({calls_per_neuron:.0f} calls × "
            f"{LATENCY_MS:.0f} ms); "
            f"peer process on loopback saw at most {stats['max_in_flight']} calls in flight",
        },
        {
            "figure": "LLM calls per neuron (text)",
            "value": f"{calls_per_neuron:.1f}",
            "goal": "-",
            "detail": "1 explanation + 1 simulation per held-out record (n_holdout top + as many random), "
            "candidates k=1, no faults injected",
        },
        {
            "figure": "LLM tokens per neuron (text)",
            "value": f"{prompt_tokens / N_NEURONS:.0f} prompt + "
            f"{completion_tokens / N_NEURONS:.0f} completion",
            "goal": "-",
            "detail": "as the peer bills them (characters / 4); n_explain 20 records shown to the explainer",
        },
    ]


if __name__ == "__main__":
    for row in main():
        print(row)
