"""Seeded records for the protocol tests (tests/workers/test_protocols.py) and for the numbers pinned from
the authors' code (tests/workers/authors_pins.py, which says how they were produced from these records)."""

from __future__ import annotations

import numpy as np

WORDS = ("the", "a", "dog", "ran", "past", "blue", "car", "and", "cat", "sat", "on", "mat", "big", "old")
CONCEPT = "red"
N_TOP = 50
N_RANDOM = 50


def _sentence(rng: np.random.Generator) -> list[str]:
    return ["Ġ" + str(w) for w in rng.choice(WORDS, size=int(rng.integers(6, 13)))]


def bills_records(
    seed: int = 7,
) -> tuple[list[list[str]], list[np.ndarray], list[list[str]], list[np.ndarray]]:
    """(top tokens, top activations) in rank order (max descending) and (random tokens, activations):
    a GELU-like neuron (small negatives everywhere) that fires on "red" with a spread of strengths."""
    rng = np.random.default_rng(seed)
    top: list[tuple[list[str], np.ndarray]] = []
    for _ in range(N_TOP):
        tokens = _sentence(rng)
        tokens[int(rng.integers(0, len(tokens)))] = "Ġ" + CONCEPT
        acts = rng.uniform(-0.17, 0.4, size=len(tokens)).round(4)
        acts[np.array([t == "Ġ" + CONCEPT for t in tokens])] = round(float(rng.uniform(1.0, 9.0)), 4)
        top.append((tokens, acts.astype(np.float32)))
    top.sort(key=lambda item: -float(item[1].max()))
    randoms = []
    for _ in range(N_RANDOM):
        tokens = _sentence(rng)
        randoms.append((tokens, rng.uniform(-0.17, 0.6, size=len(tokens)).round(4).astype(np.float32)))
    return [t for t, _ in top], [a for _, a in top], [t for t, _ in randoms], [a for _, a in randoms]


def bills_predictions(tokens: list[str], seed: int) -> np.ndarray:
    """A simulator's expected values (0–10) for one record: high on "red", noisy elsewhere (seeded)."""
    rng = np.random.default_rng(seed)
    return np.array(
        [rng.uniform(6, 10) if t == "Ġ" + CONCEPT else rng.uniform(0, 3) for t in tokens], dtype=np.float64
    ).round(3)


def delphi_records(
    seed: int = 11,
) -> tuple[list[list[str]], list[np.ndarray], list[list[str]], list[np.ndarray]]:
    """(activating tokens, activations) in rank order and (random tokens, activations), as a sparse latent:
    activations ≥ 0, zero where it does not fire. Activating records fire on "red" and, in some, on the
    token after it too (adjacent marks); about half the random records never fire, the others weakly."""
    rng = np.random.default_rng(seed)
    top: list[tuple[list[str], np.ndarray]] = []
    for _ in range(N_TOP):
        tokens = _sentence(rng)
        at = int(rng.integers(0, len(tokens) - 1))
        tokens[at] = "Ġ" + CONCEPT
        acts = np.zeros(len(tokens))
        acts[at] = rng.uniform(2.0, 9.0)
        if rng.uniform() < 0.4:
            acts[at + 1] = acts[at] * rng.uniform(0.2, 0.6)
        if rng.uniform() < 0.5:
            acts[int(rng.integers(0, len(tokens)))] += rng.uniform(0.05, 0.4)
        top.append((tokens, acts.round(4).astype(np.float32)))
    top.sort(key=lambda item: -float(item[1].max()))
    randoms = []
    for _ in range(N_RANDOM):
        tokens = _sentence(rng)
        acts = np.zeros(len(tokens))
        if rng.uniform() < 0.5:
            acts[int(rng.integers(0, len(tokens)))] = rng.uniform(0.05, 1.0)
        randoms.append((tokens, acts.round(4).astype(np.float32)))
    return [t for t, _ in top], [a for _, a in top], [t for t, _ in randoms], [a for _, a in randoms]
