"""Domain-specific neurons (MMNeuron, Huo et al. 2024; DESIGN §4.7). Pure functions over a layer's
per-domain counts of tokens with activation > 0.

p(n, d) = share of domain d's tokens where neuron n is > 0 (its raw firing rate). As in MMNeuron's code,
a neuron is only ranked when some domain's raw rate is above the layer's `PERCENTILE`th percentile of all
rates (the activity pre-filter); every other neuron has infinite entropy. Without it, a neuron with one
to three positive tokens has entropy 0 and takes every slot (measured on synthetic counts: 20/20 picks
near-silent, 0 planted). On top, a domain needs `MIN_SUPPORT` positive tokens (so a layer of mostly
silent neurons, whose 95th percentile is tiny, cannot flag a neuron from a handful of tokens). The
entropy of q(n, ·) = p(n, ·) normalised over domains ranks the ranked neurons; among the `ENTROPY_SHARE`
lowest-entropy neurons of the layer, a neuron is specific to every domain that passes both bars.

(The previous rule compared normalised shares q with their percentile; it is dropped: it flagged
near-silent neurons and found no planted domain neuron the raw-rate rule misses.)
"""

from __future__ import annotations

import numpy as np

ENTROPY_SHARE = 0.01
"""Share of the layer's neurons, lowest entropy first, that can be domain-specific."""
PERCENTILE = 95.0
"""Percentile of all raw rates p(n, d) of the layer a rate must exceed."""
MIN_SUPPORT = 20
"""Positive tokens a neuron needs in a domain before it can be specific to it."""


def domain_shares(positive: np.ndarray, tokens: np.ndarray) -> np.ndarray:
    """p [neurons, domains]: tokens with activation > 0 ÷ tokens, per domain (0 for empty domains)."""
    totals = np.asarray(tokens, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        shares = np.where(totals > 0, np.asarray(positive, dtype=np.float64) / totals, 0.0)
    return shares


def domain_specific(
    shares: np.ndarray, names: list[str], positive: np.ndarray | None = None
) -> list[list[str]]:
    """For each neuron, the domains it is specific to (empty for most neurons). `positive` [neurons,
    domains] are the positive-token counts behind `shares` (None: no support bar)."""
    n_neurons = shares.shape[0]
    result: list[list[str]] = [[] for _ in range(n_neurons)]
    if n_neurons == 0 or shares.shape[1] < 2:
        return result
    threshold = float(np.percentile(shares, PERCENTILE))
    passes: np.ndarray = np.asarray(shares > threshold)
    if positive is not None:
        passes &= np.asarray(positive) >= MIN_SUPPORT
    ranked: np.ndarray = np.asarray(passes.any(axis=1))
    sums = shares.sum(axis=1, keepdims=True)
    normalised = np.divide(shares, sums, out=np.zeros_like(shares), where=sums > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(normalised > 0, normalised * np.log(normalised), 0.0)
    entropy = np.where(ranked, -terms.sum(axis=1), np.inf)
    n_low = max(1, int(np.ceil(ENTROPY_SHARE * n_neurons)))
    for neuron in np.argsort(entropy, kind="stable")[:n_low]:
        if ranked[neuron]:
            result[int(neuron)] = [names[d] for d in np.flatnonzero(passes[neuron])]
    return result
