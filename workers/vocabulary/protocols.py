"""Record selection of the authors' protocols (docs/method.md#protocols), written for NeuronLens.

- `bills-2023` (Bills et al. 2023, openai/automated-interpretability, activations/activations.py): the top
  records are cut into four interleaved splits (train, calibration, valid, test: rank r goes to split
  r mod 4) of `per_split` records each, the random records into three (calibration, valid, test: slot s
  to split s mod 3). The explainer sees the train split (ranks 0, 4, 8, …); scoring uses the valid split
  of the top records (ranks 2, 6, 10, …) and of the random records (slots 1, 4, 7, …). No text check:
  theirs has none.
- `delphi` (EleutherAI/delphi, latents/samplers.py and latents/constructors.py): the held-out activating
  records are drawn across `n_quantiles` equal slices of the top records in rank order, `n // n_quantiles`
  per slice by Python's `random.sample` seeded with 22 (a slice with fewer records gives them all);
  non-activating records are random records on which the neuron never exceeds 0. The explainer sees the
  best-ranked records that are not held out (and whose text is not a held-out record's).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Hashable, Sequence

import numpy as np

from service.contract import BILLS_PER_SPLIT, DELPHI_QUANTILES, PipelineOptions
from workers.vocabulary.records import RecordSplit, split_records

BILLS_TOP_SPLITS = ("train", "calibration", "valid", "test")
"""Bills et al.'s splits of the top records, in interleaving order."""
BILLS_RANDOM_SPLITS = ("calibration", "valid", "test")
"""Bills et al.'s splits of the random records, in interleaving order."""
DELPHI_SEED = 22
"""Delphi's sampler seed (`split_quantiles(..., seed=22)`)."""


def interleaved(splits: Sequence[str], split: str, per_split: int) -> list[int]:
    """Indices of `split` when `per_split` × len(splits) items are dealt round-robin to `splits`."""
    stride = len(splits)
    return list(range(splits.index(split), per_split * stride, stride))


def bills_split(n_top: int, n_random: int, per_split: int) -> RecordSplit:
    """Bills et al.'s train split (explainer) and valid split (held out) of the top and random records."""
    if n_top < per_split * len(BILLS_TOP_SPLITS) or n_random < per_split * len(BILLS_RANDOM_SPLITS):
        raise ValueError(
            f"bills-2023 needs {per_split * len(BILLS_TOP_SPLITS)} top and "
            f"{per_split * len(BILLS_RANDOM_SPLITS)} random records; the scan has {n_top} and {n_random}"
        )
    return RecordSplit(
        explain_ranks=interleaved(BILLS_TOP_SPLITS, "train", per_split),
        holdout_top_ranks=interleaved(BILLS_TOP_SPLITS, "valid", per_split),
        holdout_random_slots=interleaved(BILLS_RANDOM_SPLITS, "valid", per_split),
    )


def quantile_sample(n_examples: int, n_quantiles: int, n_samples: int, seed: int = DELPHI_SEED) -> list[int]:
    """Positions (in rank order, strongest first) drawn `n_samples // n_quantiles` per quantile slice.

    Slice q holds positions q·size … (q+1)·size − 1 with size = n_examples // n_quantiles (a remainder
    past the last slice is never drawn); one generator seeded once draws every slice in turn, so the
    positions equal Delphi's for the same number of examples.
    """
    rng = random.Random(seed)
    size = n_examples // n_quantiles
    per_quantile = n_samples // n_quantiles
    drawn: list[int] = []
    for quantile in range(n_quantiles):
        positions = list(range(quantile * size, (quantile + 1) * size))
        drawn += positions if len(positions) < per_quantile else rng.sample(positions, per_quantile)
    return drawn


def non_activating_slots(random_max: np.ndarray, n: int, excluded: set[int] | None = None) -> list[int]:
    """Random-record slots whose max activation is ≤ 0, in draw order, then (when fewer than `n` are)
    the least active of the others, lowest max first; `excluded` slots are never taken."""
    excluded = excluded or set()
    maxima = np.asarray(random_max, dtype=np.float64)
    free = [slot for slot in range(maxima.size) if slot not in excluded]
    silent = [slot for slot in free if maxima[slot] <= 0]
    rest = sorted((slot for slot in free if maxima[slot] > 0), key=lambda slot: (maxima[slot], slot))
    return (silent + rest)[:n]


def delphi_split(
    top_ids: Sequence[int] | np.ndarray,
    random_ids: Sequence[int] | np.ndarray,
    random_max: np.ndarray,
    n_explain: int,
    n_holdout: int,
    n_quantiles: int,
    text_of: Callable[[int], Hashable] | None = None,
) -> RecordSplit:
    """Delphi's held-out records (activating across quantiles, then non-activating) and the explainer's."""
    key = text_of if text_of is not None else (lambda sample: ("id", sample))
    held = sorted(quantile_sample(len(top_ids), n_quantiles, n_holdout))
    held_keys = {key(int(top_ids[rank])) for rank in held}
    explain = [
        rank
        for rank in range(len(top_ids))
        if rank not in set(held) and key(int(top_ids[rank])) not in held_keys
    ][:n_explain]
    used = {int(top_ids[rank]) for rank in held + explain}
    seen = {key(int(top_ids[rank])) for rank in explain}
    excluded = {
        slot for slot, sample in enumerate(random_ids) if int(sample) in used or key(int(sample)) in seen
    }
    return RecordSplit(
        explain_ranks=explain,
        holdout_top_ranks=held,
        holdout_random_slots=non_activating_slots(random_max, len(held), excluded),
    )


def protocol_split(
    options: PipelineOptions,
    top_ids: np.ndarray,
    random_ids: np.ndarray,
    random_rows: tuple[np.ndarray, np.ndarray],
    text_of: Callable[[int], Hashable],
) -> RecordSplit:
    """The split the request's protocol makes of one neuron's top and random records; `random_rows` is
    (the random records' activations [R, T], padded, and their lengths)."""
    if options.protocol == "bills-2023":
        return bills_split(len(top_ids), len(random_ids), BILLS_PER_SPLIT)
    if options.protocol == "delphi":
        acts, lengths = random_rows
        random_max = np.array(
            [float(np.max(row[:n], initial=0.0)) for row, n in zip(acts, lengths, strict=True)]
        )
        return delphi_split(
            top_ids, random_ids, random_max, options.n_explain, options.n_holdout, DELPHI_QUANTILES, text_of
        )
    return split_records(top_ids, random_ids, options.n_explain, options.n_holdout, text_of=text_of)
