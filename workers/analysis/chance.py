"""A score against chance (docs/method.md#chance-level).

The null of a neuron's score: the explanations of k other neurons of the layer (the donors,
`service.contract.chance_donors`) simulated on the neuron's SAME held-out records by the same simulator
and scored by the same pooled Pearson. An undefined null r (a constant simulation: the donor's explanation
predicts nothing on these records) counts as 0 and is counted. The score's z is its distance from the
null mean in prediction standard deviations, sd · √(1 + 1/k), with sd (ddof = 1) floored at 1/√n (n the
pooled tokens); p is the one-sided Student t prediction p with k − 1 degrees of freedom.

Pure functions first; then the two steps the explain job runs per job part (donor explanations) and per
neuron (null inputs, chance level).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy import stats

from service.contract import ChanceLevel, NeuronReport, null_donors
from workers.analysis.assemble import PreparedNeuron, ReportContext, prepare_neuron
from workers.explain.base import Explainer
from workers.simulate.base import SimulationInput, Simulator, SimulatorResult
from workers.simulate.scoring import Score, pearson

__all__ = [
    "NeuronNull",
    "NullRun",
    "chance_level",
    "donor_explanations",
    "neuron_chance",
    "null_correlation",
    "null_simulations",
    "sd_floor",
    "with_chance",
]


@dataclass
class NullRun:
    """The chance null of one job part: the layer's donors (none when k = 0), k, and the donors'
    explanation texts once explained."""

    donors: list[int]
    k: int
    texts: dict[int, str] = field(default_factory=dict)


@dataclass(frozen=True)
class NeuronNull:
    """One neuron's null: its null donors and their explanations' simulations on its held-out records."""

    donors: list[int]
    simulations: list[SimulatorResult]

    @property
    def llm_calls(self) -> int:
        return sum(result.llm_calls for result in self.simulations)


def null_correlation(real: Sequence[np.ndarray], predicted: Sequence[np.ndarray | None]) -> float | None:
    """Pooled Pearson r of one donor's simulation over the records it could predict (None: undefined)."""
    kept = [i for i, values in enumerate(predicted) if values is not None]
    if not kept:
        return None
    x = np.concatenate([np.asarray(real[i], dtype=np.float64) for i in kept])
    y = np.concatenate([np.asarray(predicted[i], dtype=np.float64) for i in kept])
    return pearson(x, y)[0]


def sd_floor(n_tokens: int) -> float:
    """1/√n: the spread of Pearson's r between two unrelated series of n values (1 when n < 1)."""
    return 1.0 / math.sqrt(max(1, n_tokens))


def chance_level(
    correlation: float | None,
    nulls: Sequence[float | None],
    donors: Sequence[int],
    n_tokens: int,
    alpha: float,
) -> ChanceLevel:
    """The score ``correlation`` against the null correlations of ``donors`` (same order); ``n_tokens`` is
    the held-out tokens pooled into the score (for the sd floor)."""
    if len(nulls) != len(donors):
        raise ValueError(f"{len(nulls)} null correlations for {len(donors)} donors")
    k = len(nulls)
    values = np.array([0.0 if r is None else r for r in nulls], dtype=np.float64)
    floor = sd_floor(n_tokens)
    mean = float(values.mean()) if k else 0.0
    sd = max(float(values.std(ddof=1)), floor) if k >= 2 else floor
    z = p = None
    if correlation is not None and k >= 2:
        z = (correlation - mean) / (sd * math.sqrt(1.0 + 1.0 / k))
        p = float(stats.t.sf(z, k - 1))
    return ChanceLevel(
        k=k,
        donors=list(donors),
        null_correlations=list(nulls),
        n_undefined=sum(r is None for r in nulls),
        mean=mean,
        sd=sd,
        sd_floor=floor,
        z=z,
        p_value=p,
        alpha=alpha,
        beyond_chance=None if p is None else p < alpha,
    )


def donor_explanations(
    context: ReportContext,
    explainer: Explainer,
    donors: Sequence[int],
    known: Mapping[int, str] | None = None,
) -> dict[int, str]:
    """The donors' explanation texts: those in ``known`` (neurons this job explains anyway) reused, the
    others explained now, all in one explainer call (the explainer runs its items concurrently)."""
    known = known or {}
    todo = [donor for donor in donors if donor not in known]
    texts = {donor: known[donor] for donor in donors if donor in known}
    if todo:
        inputs = [prepare_neuron(context, donor).explainer_input(context.layer) for donor in todo]
        for donor, result in zip(todo, explainer.explain(inputs), strict=True):
            texts[donor] = result.text
    return texts


def _null_inputs(item: PreparedNeuron, null: NullRun) -> tuple[list[int], list[SimulationInput]]:
    """A neuron's null donors (the first k donors other than itself) and their simulation inputs: each
    donor's explanation on this neuron's held-out records."""
    chosen = null_donors(null.donors, item.neuron, null.k)
    return chosen, [item.simulation_input(null.texts[donor]) for donor in chosen]


def null_simulations(
    items: Sequence[PreparedNeuron], null: NullRun, simulator: Simulator
) -> list[NeuronNull | None]:
    """Each neuron's null simulations, all in one simulator call (None per neuron when k = 0)."""
    if not null.donors:
        return [None] * len(items)
    plans = [_null_inputs(item, null) for item in items]
    results = simulator.simulate([one for _, inputs in plans for one in inputs])
    nulls: list[NeuronNull | None] = []
    at = 0
    for donors, inputs in plans:
        nulls.append(NeuronNull(donors, results[at : at + len(inputs)]))
        at += len(inputs)
    return nulls


def neuron_chance(item: PreparedNeuron, score: Score, null: NeuronNull, alpha: float) -> ChanceLevel:
    """A neuron's chance level: its score against its donors' simulations on its held-out records."""
    real = [record.activations for record in item.heldout]
    nulls = [null_correlation(real, result.predictions) for result in null.simulations]
    return chance_level(score.correlation, nulls, null.donors, score.n_tokens, alpha)


def with_chance(report: NeuronReport, chance: ChanceLevel, llm_calls: int) -> NeuronReport:
    """The report with its chance level, and the null simulations' LLM requests as `chance` among
    `provenance.llm_calls`."""
    calls = report.provenance.llm_calls
    provenance = report.provenance.model_copy(
        update={"llm_calls": None if calls is None else {**calls, "chance": llm_calls}}
    )
    simulation = report.simulation.model_copy(update={"chance": chance})
    return report.model_copy(update={"simulation": simulation, "provenance": provenance})
