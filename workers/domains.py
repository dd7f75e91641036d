"""Domain-specific neurons (MMNeuron, Huo et al. 2024; DESIGN §4.7). Pure functions over a layer's
per-domain counts of tokens with activation > 0.

p(n, d) = share of domain d's tokens where neuron n is > 0; q(n, ·) = p(n, ·) normalised over domains.
The entropy of q says how spread the neuron is; among the `ENTROPY_SHARE` lowest-entropy neurons of the
layer, a neuron is specific to every domain whose q(n, d) exceeds the layer's `PERCENTILE`th percentile of
all q values. (Normalised values are compared: raw shares are dominated by neurons active on most
tokens, whose shares are high everywhere.)
"""

from __future__ import annotations

import numpy as np

ENTROPY_SHARE = 0.01
"""Share of the layer's neurons, lowest entropy first, that can be domain-specific."""
PERCENTILE = 95.0
"""Percentile of all p(n, d) of the layer a share must exceed."""


def domain_shares(positive: np.ndarray, tokens: np.ndarray) -> np.ndarray:
    """p [neurons, domains]: tokens with activation > 0 ÷ tokens, per domain (0 for empty domains)."""
    totals = np.asarray(tokens, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        shares = np.where(totals > 0, np.asarray(positive, dtype=np.float64) / totals, 0.0)
    return shares


def domain_specific(shares: np.ndarray, names: list[str]) -> list[list[str]]:
    """For each neuron, the domains it is specific to (empty for most neurons)."""
    n_neurons = shares.shape[0]
    result: list[list[str]] = [[] for _ in range(n_neurons)]
    if n_neurons == 0 or shares.shape[1] < 2:
        return result
    sums = shares.sum(axis=1, keepdims=True)
    live = sums[:, 0] > 0  # a neuron never > 0 has no distribution over domains
    normalised = np.divide(shares, sums, out=np.zeros_like(shares), where=sums > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(normalised > 0, normalised * np.log(normalised), 0.0)
    entropy = np.where(live, -terms.sum(axis=1), np.inf)
    n_low = max(1, int(np.ceil(ENTROPY_SHARE * n_neurons)))
    threshold = float(np.percentile(normalised[live], PERCENTILE)) if live.any() else np.inf
    for neuron in np.argsort(entropy, kind="stable")[:n_low]:
        if not live[neuron]:
            continue
        result[int(neuron)] = [names[d] for d in np.flatnonzero(normalised[neuron] > threshold)]
    return result
