"""The total order of samples in a unit's top N: by max activation descending, then sample id ascending,
as one int64 key per (sample, unit), so ties are decided the same way however the probe set is batched or
sharded (the recorder, its end-of-pass fill and the shard merge all rank with it)."""

from __future__ import annotations

import torch

EMPTY_KEY = torch.iinfo(torch.int64).min
"""Rank key of a top slot not yet filled: below every sample's key."""
ID_SPAN = 2**32
"""Sample ids must be below this (they fill the low 32 bits of a rank key); a key below it holds a value
of at most +0.0."""


def rank_keys(values: torch.Tensor, sample_ids: torch.Tensor) -> torch.Tensor:
    """int64 keys ordering samples by float32 `values` descending, then `sample_ids` ascending.

    The float's bits are mapped to an int32 that sorts like the float (negative floats have their
    magnitude bits flipped) and fill the high 32 bits; `2**32 - 1 - id` fills the low 32 bits. Keys of
    distinct samples are distinct, so topk/argsort on them need no tie rule.
    """
    bits = values.contiguous().view(torch.int32)
    ordered = torch.where(bits < 0, bits ^ 0x7FFFFFFF, bits).to(torch.int64)
    return ordered * ID_SPAN + (ID_SPAN - 1 - sample_ids.to(torch.int64))
