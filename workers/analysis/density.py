"""Activation density of a neuron over the probe set (docs/method.md#density). Pure functions.

The threshold is the typing threshold (`text_threshold` of the 0–10 scale, in raw units text_threshold ÷
10 × scale). When fewer than N samples exceed it, every one of them is among the scan's top N samples
(they are chosen by their max), so samples and tokens above it are counted exactly from the top samples'
maxima and per-token activations. Otherwise both shares are estimated from the scan's random records, a
seeded uniform draw of samples (`exact: false`).
"""

from __future__ import annotations

import numpy as np

from service.contract import Density
from workers.scan.artifacts import LayerScan
from workers.scan.tokens import TokenizedProbe


def _tokens_above(acts: np.ndarray, lengths: np.ndarray, raw: float) -> tuple[int, int]:
    """(tokens above `raw`, content tokens) of records `acts` [R, T] with `lengths` content tokens."""
    content = np.arange(acts.shape[1])[None, :] < np.asarray(lengths)[:, None]
    return int(((acts > raw) & content).sum()), int(content.sum())


def activation_density(
    top: tuple[np.ndarray, np.ndarray, np.ndarray],
    random: tuple[np.ndarray, np.ndarray],
    scale: float,
    threshold: float,
    totals: tuple[int, int],
) -> Density:
    """Density above `threshold` (0–10) on `scale`. `top` is (per-sample maxima, per-token activations,
    content lengths) of the top samples, highest first; `random` is (per-token activations, content
    lengths) of the random records; `totals` is the probe set's (samples, content tokens)."""
    top_max, top_acts, top_lengths = top
    n_samples, n_tokens = totals
    if not scale > 0:  # the 0–10 scale is all zeros: nothing exceeds any threshold
        return Density(
            threshold=threshold,
            threshold_raw=0.0,
            sample_fraction=0.0,
            token_fraction=0.0,
            n_samples_above=0,
            exact=True,
        )
    raw = threshold / 10.0 * scale
    above = np.asarray(top_max) > raw
    if len(top_max) == 0 or not above[-1] or len(top_max) >= n_samples:
        tokens, _ = _tokens_above(top_acts, top_lengths, raw)
        count = int(above.sum())
        return Density(
            threshold=threshold,
            threshold_raw=raw,
            sample_fraction=count / n_samples if n_samples else 0.0,
            token_fraction=min(1.0, tokens / n_tokens) if n_tokens else 0.0,
            n_samples_above=count,
            exact=True,
        )
    random_acts, random_lengths = random
    content = np.arange(random_acts.shape[1])[None, :] < np.asarray(random_lengths)[:, None]
    sample_above = (np.where(content, random_acts, -np.inf) > raw).any(axis=1)
    tokens, total = _tokens_above(random_acts, random_lengths, raw)
    return Density(
        threshold=threshold,
        threshold_raw=raw,
        sample_fraction=float(sample_above.mean()) if sample_above.size else 0.0,
        token_fraction=tokens / total if total else 0.0,
        exact=False,
        n_records=int(sample_above.size),
    )


def scan_density(
    scan: LayerScan,
    probe: TokenizedProbe,
    neuron: int,
    acts: tuple[np.ndarray, np.ndarray],
    scale: float,
    threshold: float,
) -> Density:
    """`activation_density` of one neuron of a layer scan; `acts` are its (top, random) per-token arrays."""
    top_ids = scan.top_ids[neuron]
    return activation_density(
        (scan.top_max[neuron], acts[0], probe.lengths[top_ids]),
        (acts[1], probe.lengths[scan.random_ids]),
        scale,
        threshold,
        (probe.n_samples, probe.n_tokens),
    )
