"""Re-scoring a given explanation on a model's neuron: simulation only, no new explanation.

What a comparison does with the base's explanation on the target's activations, and what a pin check does
with a pinned explanation on the named model: the neuron's held-out records are read from the model's own
scan (prepare_neuron: the same scale, split and type a report of it would have), the explanation is
simulated on them by the request's simulator, and scored by the same pooled Pearson
(workers/simulate/scoring.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from workers.analysis.assemble import PreparedNeuron, ReportContext, prepare_neuron, score_neuron
from workers.simulate.base import Simulator
from workers.simulate.scoring import Score


@dataclass(frozen=True, slots=True)
class Rescored:
    """One explanation scored on one neuron of a scanned layer."""

    prepared: PreparedNeuron
    """The neuron as a report would see it: scale, held-out records, type."""
    explanation: str
    score: Score
    parse_failures: int
    llm_calls: int


def rescore(
    context: ReportContext, neurons: Sequence[int], explanations: Sequence[str], simulator: Simulator
) -> list[Rescored]:
    """Each of `explanations` simulated on the held-out records of the neuron at the same position of
    `neurons` (one simulator call for all of them, as a chunk of reports is simulated)."""
    if len(neurons) != len(explanations):
        raise ValueError(f"{len(neurons)} neurons but {len(explanations)} explanations")
    prepared = [prepare_neuron(context, neuron) for neuron in neurons]
    inputs = [item.simulation_input(text) for item, text in zip(prepared, explanations, strict=True)]
    results = simulator.simulate(inputs)
    return [
        Rescored(
            prepared=item,
            explanation=text,
            score=score_neuron(item, result, context.options.seed),
            parse_failures=result.parse_failures,
            llm_calls=result.llm_calls,
        )
        for item, text, result in zip(prepared, explanations, results, strict=True)
    ]
