"""A layer's top-N in rank order at the end of a pass, with the +0 samples the pass left out filled in.

The recorder (workers/scan/recorder.py) keeps (row, unit) pairs whose activations are all exactly +0.0 out
of its top slots during the pass: ties at +0 go to the lower sample id, so a mostly-zero unit (a
sparse-autoencoder latent) would replace its slots again and again as lower ids arrive. Their entries are
known without the pass: max +0, activations all zero. Here they are taken back from the per-sample maxima
(fp16: a float32 +0 stays +0, and only a positive value below 2**-25 also becomes +0): per unit whose
weakest kept entry is at most +0, the lowest sample ids whose maximum is +0, not already kept, enter the
ranking with the key of +0. The result is the top N of all samples, exactly what a pass that kept every
pair would hold: a sample whose stored maximum is +0 but that the pass did keep in play (a positive below
2**-25, or +0 with -0.0 or negative tokens) competed there already, and the kept entries that beat it
beat its +0 key too.
"""

from __future__ import annotations

import torch

from workers.scan.rank_keys import EMPTY_KEY, ID_SPAN, rank_keys

_UNITS_PER_CHUNK = 1024
"""Units filled at once (bounds the [samples, units] masks)."""


def ranked_top(
    top_key: torch.Tensor,
    top_ids: torch.Tensor,
    top_max: torch.Tensor,
    top_acts: torch.Tensor,
    sample_max: torch.Tensor | None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(ids, maxima, per-token activations) of each unit's top N, highest rank first, on the CPU.

    `top_*` are the recorder's slots (unordered); `sample_max` [samples, units] fp16 the per-sample
    maxima (None: the pass kept every pair in play, nothing to fill)."""
    top_key, top_ids, top_max, top_acts = (t.cpu() for t in (top_key, top_ids, top_max, top_acts))
    order = top_key.argsort(dim=1, descending=True)
    ids = top_ids.gather(1, order)
    maxima = top_max.gather(1, order)
    acts = top_acts.gather(1, order[:, :, None].expand(-1, -1, top_acts.shape[2]))
    if sample_max is not None:
        # Keys below ID_SPAN hold a value of at most +0 (or an empty slot): a +0 sample may outrank them.
        open_units = (top_key.amin(dim=1) < ID_SPAN).nonzero().squeeze(1)
        for units in open_units.split(_UNITS_PER_CHUNK):
            _fill(units, (top_key, top_ids, top_max, top_acts), sample_max, (ids, maxima, acts))
    return ids, maxima, acts


def _fill(
    units: torch.Tensor,
    slots: tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor],
    sample_max: torch.Tensor,
    ranked: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
) -> None:
    """Rank `units`' kept slots together with their lowest-id +0 samples; write the top N into `ranked`."""
    top_key, top_ids, top_max, top_acts = slots
    ids, maxima, acts = ranked
    n_samples, n_top = sample_max.shape[0], top_key.shape[1]
    zero = sample_max[:, units].view(torch.int16) == 0  # [samples, units]: +0 exactly
    if not bool(zero.any()):
        return
    candidates = _lowest_zero_ids(zero, min(2 * n_top, n_samples))
    kept_ids = top_ids[units]
    valid = (candidates < n_samples) & ~(candidates[:, :, None] == kept_ids[:, None, :]).any(dim=2)
    fill_keys = rank_keys(torch.zeros(candidates.shape), candidates).masked_fill_(~valid, EMPTY_KEY)
    pick = torch.cat([top_key[units], fill_keys], dim=1).argsort(dim=1, descending=True)[:, :n_top]
    from_slot = pick < n_top
    slot, fill = pick.clamp(max=n_top - 1), (pick - n_top).clamp(min=0)
    filled = valid.gather(1, fill)
    empty_id = torch.full_like(fill, -1)
    ids[units] = torch.where(
        from_slot, kept_ids.gather(1, slot), torch.where(filled, candidates.gather(1, fill), empty_id)
    )
    empty_max = torch.where(filled, 0.0, float("-inf"))
    maxima[units] = torch.where(from_slot, top_max[units].gather(1, slot), empty_max)
    unit_acts = top_acts[units].gather(1, slot[:, :, None].expand(-1, -1, top_acts.shape[2]))
    acts[units] = unit_acts.masked_fill_(~from_slot[:, :, None], 0.0)


def _lowest_zero_ids(zero: torch.Tensor, count: int) -> torch.Tensor:
    """int64 [units, count]: per unit (column of `zero`), its `count` lowest sample ids where `zero` holds,
    ascending, padded with the sample count. At most N of a unit's +0 samples are kept already, so 2·N
    lowest hold the N it may need. Mostly-zero units find them among the first few ids: the search looks
    at the first 4·count ids first and at all of them only for units that are short there."""
    n_samples = zero.shape[0]
    lowest = torch.full((zero.shape[1], count), n_samples, dtype=torch.int64)
    short = torch.ones(zero.shape[1], dtype=torch.bool)
    for rows in dict.fromkeys((min(4 * count, n_samples), n_samples)):
        units = short.nonzero().squeeze(1)
        if not units.numel():
            break
        block = zero[:rows, units]
        sample_ids = torch.arange(rows, dtype=torch.int32)[:, None]
        found = torch.where(block, sample_ids, n_samples).topk(min(count, rows), dim=0, largest=False)
        lowest[units, : found.values.shape[0]] = found.values.T.to(torch.int64)
        short[units] = block.sum(dim=0) < count if rows < n_samples else False
    return lowest
