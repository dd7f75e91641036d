"""Domain-specific neurons (MMNeuron) on hand-built counts."""

from __future__ import annotations

import numpy as np

from workers.analysis.domains import domain_shares, domain_specific


def test_shares_divide_positive_tokens_by_domain_tokens() -> None:
    shares = domain_shares(np.array([[5, 0, 3], [10, 4, 0]]), np.array([10, 8, 0]))
    assert shares.tolist() == [[0.5, 0.0, 0.0], [1.0, 0.5, 0.0]]


def test_only_low_entropy_neurons_above_the_layer_percentile_are_specific() -> None:
    rng = np.random.default_rng(0)
    # 200 neurons spread evenly over 4 domains, one neuron focused on domain 2, one dead neuron.
    shares = rng.uniform(0.2, 0.3, size=(200, 4))
    shares[17] = [0.01, 0.02, 0.95, 0.01]
    shares[50] = 0.0
    specific = domain_specific(shares, ["a", "b", "c", "d"])
    assert specific[17] == ["c"]
    # 1% of 200 neurons = 2 lowest-entropy candidates: the focused one and the next most uneven one,
    # which is specific only to domains above the layer's 95th percentile of normalised shares, if any.
    normalised = shares[shares.sum(axis=1) > 0] / shares[shares.sum(axis=1) > 0].sum(axis=1, keepdims=True)
    threshold = np.percentile(normalised, 95)
    for neuron in [n for n, domains in enumerate(specific) if domains and n != 17]:
        row = shares[neuron] / shares[neuron].sum()
        assert all(row["abcd".index(d)] > threshold for d in specific[neuron])
    assert len([n for n, domains in enumerate(specific) if domains]) <= 2
    assert specific[50] == []


def test_a_single_domain_cannot_make_a_neuron_specific() -> None:
    assert domain_specific(np.array([[0.9], [0.1]]), ["only"]) == [[], []]
