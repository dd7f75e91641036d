"""The LLM calls of a request, estimated from the request alone: what quotas charge
(service/access/ratelimit.py) and what the dry run (service/estimates/estimate.py) counts per neuron and
per explain job."""

from __future__ import annotations

from typing import TYPE_CHECKING

from service.contract import (
    CALIBRATION_STRIDE,
    CallEstimate,
    ExplanationRequest,
    PipelineOptions,
    chance_donors,
)
from service.settings import Settings

if TYPE_CHECKING:
    from service.estimates.validate import ResolvedRequest

DEFAULT_CHUNK_NEURONS = int(Settings.model_fields["explain_chunk_neurons"].default)
"""Neurons per explain job when no deployment's settings say otherwise."""


def estimate_calls(resolved: ResolvedRequest, chunk_neurons: int | None = None) -> CallEstimate:
    """The estimate for a resolved request (backends, endpoint and candidates filled in); its explain jobs
    take ``chunk_neurons`` neurons each (the deployment's `explain_chunk_neurons`; None: the default)."""
    request = resolved.request
    options = request.options
    explanation = explanation_calls(request)
    simulation = simulation_calls(options, 2 * options.n_holdout) if request.simulator == "openai" else 0
    per_neuron = explanation + simulation * (1 + null_k(resolved))
    neurons = len(resolved.neurons) * len(resolved.layers)  # the neurons of every requested layer
    donors = 0
    if explanation:
        for layer in resolved.layers:
            for part in parts(resolved.neurons, chunk_neurons):
                donors += explanation * len(extra_donors(resolved, layer, part))
    return CallEstimate(
        neurons=neurons,
        llm_calls_per_neuron=per_neuron,
        donor_explanation_calls=donors,
        llm_calls=neurons * per_neuron + donors,
        scan_passes=1,
    )


def explanation_calls(request: ExplanationRequest) -> int:
    """LLM requests of one explanation: the draw, and with k > 1 candidates their calibration."""
    if request.explainer != "openai":
        return 0
    candidates = request.candidates or 1
    return 1 + (candidates * (request.options.n_explain // CALIBRATION_STRIDE) if candidates > 1 else 0)


def simulation_calls(options: PipelineOptions, records: int) -> int:
    """LLM requests of one simulation of ``records`` text records: one per record, or one per
    `batch_records` with `simulation-batched`."""
    if "simulation-batched" in options.scorers:
        return -(-records // options.batch_records)
    return records


def null_k(resolved: ResolvedRequest) -> int:
    """Null simulations per neuron: k, or fewer in a layer of fewer than k + 1 neurons."""
    return min(resolved.request.options.chance_explanations, resolved.model.neurons_per_layer - 1)


def parts(neurons: list[int], chunk_neurons: int | None) -> list[list[int]]:
    """The requested neurons of one layer as its explain jobs take them (service/jobs/submit.py)."""
    size = chunk_neurons or DEFAULT_CHUNK_NEURONS
    return [neurons[a : a + size] for a in range(0, len(neurons), size)]


def extra_donors(resolved: ResolvedRequest, layer: int, part: list[int]) -> list[int]:
    """The donors of the chance null that one explain job explains besides its own neurons."""
    options = resolved.request.options
    donors = chance_donors(resolved.model.neurons_per_layer, options.chance_explanations, options.seed, layer)
    inside = set(part)
    return [donor for donor in donors if donor not in inside]
