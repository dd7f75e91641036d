"""A score's chance level (docs/method.md#chance-level): which neurons lend the null explanations, and
the report's :class:`ChanceLevel`.

The donors are chosen here, in the contract, because both sides need them: the explain workers explain
them and simulate their explanations on every neuron's held-out records, and the API's dry run counts
their explanations (service/estimates/estimate.py).
"""

from __future__ import annotations

import hashlib
import heapq

from pydantic import Field

from service.contract.base import ContractModel

MAX_CHANCE_EXPLANATIONS = 20
"""Largest k (`chance_explanations`): k more simulations per neuron."""


def chance_donors(neurons_per_layer: int, k: int, seed: int, layer: int) -> list[int]:
    """The k + 1 donor neurons of a layer (fewer when the layer has fewer), in donor order: the neurons
    whose BLAKE2b digest of ``(seed, layer, neuron)`` is smallest. Deterministic on every machine and
    Python version, and the same for every neuron and every job of the layer, so scores compare; a neuron's
    null explanations are those of the first k donors other than itself (:func:`null_donors`)."""
    if k <= 0:
        return []

    def rank(neuron: int) -> bytes:
        return hashlib.blake2b(f"chance:{seed}:{layer}:{neuron}".encode(), digest_size=8).digest()

    return heapq.nsmallest(min(k + 1, neurons_per_layer), range(neurons_per_layer), key=rank)


def null_donors(donors: list[int], neuron: int, k: int) -> list[int]:
    """The donors whose explanations make ``neuron``'s null: the first k of ``donors`` other than it."""
    return [donor for donor in donors if donor != neuron][:k]


class ChanceLevel(ContractModel):
    """The score against chance: the same held-out records simulated from the explanations of k other
    neurons of the layer (the donors) give a null distribution of r; the score's z and one-sided p are
    against it (docs/method.md#chance-level)."""

    k: int = Field(ge=0, description="Null explanations simulated (the donors used; `chance_explanations`).")
    donors: list[int] = Field(description="Neurons of the layer whose explanations made the null, in order.")
    null_correlations: list[float | None] = Field(
        description="Pooled Pearson r of each donor's explanation on this neuron's held-out records, as "
        "the donors; null where r is undefined (a constant simulation: the explanation predicts nothing "
        "here), which the null counts as 0."
    )
    n_undefined: int = Field(ge=0, description="Null correlations that were undefined (counted as 0).")
    mean: float = Field(description="Mean of the null correlations (undefined ones as 0), −1 … 1.")
    sd: float = Field(
        ge=0,
        description="Standard deviation of the null correlations (ddof = 1, undefined ones as 0), floored at "
        "`sd_floor`; 0 … 2.",
    )
    sd_floor: float = Field(
        ge=0,
        description="Smallest `sd` used: 1/√n, n the held-out tokens pooled into the score (the spread of r "
        "between unrelated series of n values), so a null that is all zeros cannot make p vanish.",
    )
    z: float | None = Field(
        default=None,
        description="(r − mean) / (sd · √(1 + 1/k)): the score's distance from the null in prediction "
        "standard deviations; null when the score is undefined or k < 2.",
    )
    p_value: float | None = Field(
        default=None,
        ge=0,
        le=1,
        description="One-sided p of the score under the null: Student t with k − 1 degrees of freedom at "
        "`z` (the prediction interval of a new draw from the null); null when `z` is.",
    )
    alpha: float = Field(gt=0, le=1, description="Significance level of `beyond_chance` (`chance_alpha`).")
    beyond_chance: bool | None = Field(
        default=None,
        description="True when the score is defined and `p_value` < `alpha`; null when p is (score "
        "undefined, or k < 2).",
    )
