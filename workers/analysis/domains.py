"""Domain-specific neurons (MMNeuron, Huo et al. 2024; docs/method.md#domain-specific-neurons). Pure
functions over a layer's per-domain counts of tokens with activation > 0.

p(n, d) = share of domain d's tokens where neuron n is > 0 (its raw firing rate); q(n, ·) = p(n, ·)
normalised over domains. Only neurons with support — at least `MIN_SUPPORT` positive tokens in some
domain — are ranked; every other neuron has infinite entropy. Without that pre-filter, a neuron with one
to three positive tokens has entropy 0 and takes every slot (on synthetic counts: 20/20 picks
near-silent, 0 planted), so a near-silent neuron is never domain-specific. Among the `ENTROPY_SHARE`
lowest-entropy neurons of the layer, a ranked neuron is specific to every domain whose q exceeds the
layer's `PERCENTILE`th percentile of q and where it has the support.

`rates="raw"` is MMNeuron's own pre-filter instead (some raw rate p above the layer's 95th percentile of
p, and domains chosen by p): kept for comparison, not the default, because it misses planted domain
neurons that fire on a few tokens of every sample of their domain: tiny-llava-planted's shape-name
neuron (2 of ~77 tokens per shapes sample, p ≈ 0.03, far below a percentile set by neurons active on
half of all tokens) is found by the normalised rule and missed by the raw one
(tests/workers/test_vl_pipeline.py).
"""

from __future__ import annotations

from typing import Literal

import numpy as np

ENTROPY_SHARE = 0.01
"""Share of the layer's neurons, lowest entropy first, that can be domain-specific."""
PERCENTILE = 95.0
"""Percentile of the layer's (normalised, or raw with rates="raw") rates a domain's rate must exceed."""
MIN_SUPPORT = 20
"""Positive tokens a neuron needs in a domain before it can be specific to it."""


def domain_shares(positive: np.ndarray, tokens: np.ndarray) -> np.ndarray:
    """p [neurons, domains]: tokens with activation > 0 ÷ tokens, per domain (0 for empty domains)."""
    totals = np.asarray(tokens, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        shares = np.where(totals > 0, np.asarray(positive, dtype=np.float64) / totals, 0.0)
    return shares


def domain_specific(
    shares: np.ndarray,
    names: list[str],
    positive: np.ndarray | None = None,
    rates: Literal["normalised", "raw"] = "normalised",
) -> list[list[str]]:
    """For each neuron, the domains it is specific to (empty for most neurons). `positive` [neurons,
    domains] are the positive-token counts behind `shares` (None: no support bar)."""
    n_neurons = shares.shape[0]
    result: list[list[str]] = [[] for _ in range(n_neurons)]
    if n_neurons == 0 or shares.shape[1] < 2:
        return result
    sums = shares.sum(axis=1, keepdims=True)
    normalised = np.divide(shares, sums, out=np.zeros_like(shares), where=sums > 0)
    compared = shares if rates == "raw" else normalised
    supported: np.ndarray = np.asarray(sums > 0).repeat(shares.shape[1], axis=1)
    if positive is not None:
        supported &= np.asarray(positive) >= MIN_SUPPORT
    live = supported.any(axis=1)
    threshold = float(np.percentile(compared[live], PERCENTILE)) if live.any() else np.inf
    passes: np.ndarray = np.asarray((compared > threshold) & supported)
    ranked: np.ndarray = np.asarray(passes.any(axis=1) if rates == "raw" else live)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(normalised > 0, normalised * np.log(normalised), 0.0)
    entropy = np.where(ranked, -terms.sum(axis=1), np.inf)
    n_low = max(1, int(np.ceil(ENTROPY_SHARE * n_neurons)))
    for neuron in np.argsort(entropy, kind="stable")[:n_low]:
        if ranked[neuron]:
            result[int(neuron)] = [names[d] for d in np.flatnonzero(passes[neuron])]
    return result
