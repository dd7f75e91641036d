"""Streaming per-layer statistics of one scan, kept on the scan device (DESIGN §4.3).

State per layer is O(neurons × N × T): the top-N samples by max activation with their per-token
activations, the running global max, the per-token activations of N random samples chosen up front,
and per-domain counts of activations > 0. Every update is a handful of whole-tensor operations; the
top-N merge only touches neurons whose weakest kept sample the batch beats, and only the slots it
replaces.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

ACT_DTYPE = torch.float16
"""Stored per-token activations (fp16: ample for display and scoring, half the memory)."""

_FLOAT32_EXACT = 2**24
"""Every integer up to this is exact in float32."""


@dataclass(frozen=True)
class BatchView:
    """Where one batch's samples sit in the probe set, on the scan device."""

    sample_ids: torch.Tensor
    """int64 [B] probe-set indices of the batch rows."""
    lengths: torch.Tensor
    """int64 [B] content tokens per row; positions past a row's length are padding."""
    groups: list[tuple[int, int, int]]
    """(first row, end row, length) runs of equally long rows: rows are sorted by length, so each run's
    real tokens are the view acts[first:end, :length] and no masked copy is needed."""
    domain_ids: torch.Tensor
    """int64 [B] domain index per row (n_domains for unlabelled samples)."""
    random_rows: torch.Tensor | None
    """int64 rows of the batch that are random-record samples; None when there are none."""
    random_slots: torch.Tensor | None
    """int64 slot of each of those rows among the random records."""


class LayerRecorder:
    """Top-N, global max, random records and domain counts of every neuron of one layer."""

    def __init__(
        self, n_neurons: int, n_top: int, max_tokens: int, n_random: int, n_domains: int, device: torch.device
    ) -> None:
        self.n_top = n_top
        self.max_tokens = max_tokens
        self.top_max = torch.full((n_neurons, n_top), float("-inf"), device=device)
        self.top_ids = torch.full((n_neurons, n_top), -1, dtype=torch.int64, device=device)
        self.top_acts = torch.zeros((n_neurons, n_top, max_tokens), dtype=ACT_DTYPE, device=device)
        self.global_max = torch.full((n_neurons,), float("-inf"), device=device)
        self.random_acts = torch.zeros((n_neurons, n_random, max_tokens), dtype=ACT_DTYPE, device=device)
        # One extra row collects unlabelled samples; it is dropped when the artifact is written.
        self.domain_positive = torch.zeros((n_domains + 1, n_neurons), dtype=torch.int64, device=device)
        self._pending_positive = torch.zeros((n_domains + 1, n_neurons), device=device)
        self._pending_tokens = 0
        """Tokens folded into `_pending_positive` since it last moved into `domain_positive`."""

    def update(self, acts: torch.Tensor, batch: BatchView) -> None:
        """Fold in one batch: `acts` [B, T_batch, neurons] at the content tokens (padding per `groups`)."""
        if acts.dtype != torch.float32:
            # bf16/fp16 models: counts and maxima are reduced in float32 (bf16 is exact only up to 256).
            acts = acts.float()
        sample_max, positive = _sample_max_and_positives(acts, batch.groups)
        torch.maximum(self.global_max, sample_max.amax(dim=0), out=self.global_max)
        self._count_positives(batch, positive)
        if batch.random_rows is not None and batch.random_slots is not None:
            self._record_random(acts, batch.lengths, batch.random_rows, batch.random_slots)
        beaten = (sample_max.amax(dim=0) > self.top_max.amin(dim=1)).nonzero().squeeze(1)
        if beaten.numel():
            self._merge_top(beaten, sample_max, acts, batch)

    def _count_positives(self, batch: BatchView, positive: torch.Tensor) -> None:
        """Add a batch's per-row positive counts to the domain counts.

        They go into a float32 buffer first (a float index_add is several times cheaper than converting
        to int64 each batch), which moves into the int64 counts before any count in it could pass 2**24,
        the largest float32 holding every integer below it: every value stays exact.
        """
        n_tokens = sum((end - first) * length for first, end, length in batch.groups)
        if self._pending_tokens + n_tokens >= _FLOAT32_EXACT:
            self._flush_positives()
        self._pending_positive.index_add_(0, batch.domain_ids, positive)
        self._pending_tokens += n_tokens

    @torch.inference_mode()  # the state is made in the scan's inference mode; arrays() runs outside it
    def _flush_positives(self) -> None:
        if self._pending_tokens:
            self.domain_positive += self._pending_positive.to(torch.int64)
            self._pending_positive.zero_()
            self._pending_tokens = 0

    def _record_random(
        self, acts: torch.Tensor, lengths: torch.Tensor, rows: torch.Tensor, slots: torch.Tensor
    ) -> None:
        picked = acts.index_select(0, rows).masked_fill(~_mask(lengths[rows], acts.shape[1])[:, :, None], 0.0)
        self.random_acts[:, slots, : picked.shape[1]] = picked.permute(2, 0, 1).to(ACT_DTYPE)

    def _merge_top(
        self, cols: torch.Tensor, sample_max: torch.Tensor, acts: torch.Tensor, batch: BatchView
    ) -> None:
        """Replace, per neuron in `cols`, the top slots that batch samples beat.

        Slots are unordered until `arrays()`: only the evicted slots are written, so the cost is the
        number of replacements × T_batch, not neurons × N × T for every batch.
        """
        n_top = self.n_top
        values = torch.cat([self.top_max[cols], sample_max[:, cols].T], dim=1)  # [C, N + B]
        kept = torch.zeros_like(values, dtype=torch.bool)
        kept.scatter_(1, values.topk(n_top, dim=1, sorted=False).indices, True)
        # Per column, evicted old slots and incoming batch rows are equally many; nonzero() lists both
        # column by column, so the k-th evicted slot pairs with the k-th incoming row.
        evicted = (~kept[:, :n_top]).nonzero()
        incoming = kept[:, n_top:].nonzero()
        neurons, slots, rows = cols[evicted[:, 0]], evicted[:, 1], incoming[:, 1]
        self.top_max[neurons, slots] = sample_max[rows, neurons]
        self.top_ids[neurons, slots] = batch.sample_ids[rows]
        width = acts.shape[1]
        per_token = acts[rows, :, neurons]  # a fresh [R, width] tensor: padding is zeroed in place
        per_token.masked_fill_(_mask(batch.lengths[rows], width).logical_not_(), 0.0)
        block = torch.zeros((rows.numel(), self.max_tokens), dtype=ACT_DTYPE, device=acts.device)
        block[:, :width] = per_token
        self.top_acts[neurons, slots] = block

    def arrays(self) -> dict[str, np.ndarray]:
        """The layer's statistics as numpy arrays, neuron-major so one neuron is one contiguous slice;
        top samples in rank order (highest max activation first)."""
        self._flush_positives()
        order = self.top_max.argsort(dim=1, descending=True)
        top_acts = self.top_acts.gather(1, order[:, :, None].expand(-1, -1, self.max_tokens))
        return {
            "top_acts": top_acts.cpu().numpy(),
            "top_ids": self.top_ids.gather(1, order).to(torch.int32).cpu().numpy(),
            "top_max": self.top_max.gather(1, order).cpu().numpy(),
            "global_max": self.global_max.cpu().numpy(),
            "random_acts": self.random_acts.cpu().numpy(),
            "domain_positive": self.domain_positive[:-1].T.contiguous().cpu().numpy(),
        }


def _sample_max_and_positives(
    acts: torch.Tensor, groups: list[tuple[int, int, int]]
) -> tuple[torch.Tensor, torch.Tensor]:
    """float32 [B, neurons] max activation per row and count of its activations > 0 (-inf and 0 for rows
    without content tokens). A batch of one run, the common case, is reduced without the filled copies."""
    n_rows, _, n_neurons = acts.shape
    if len(groups) == 1 and groups[0][:2] == (0, n_rows):
        part = acts[:, : groups[0][2]]
        # clamp+sign+sum counts positives faster than (x > 0).sum(); small counts are exact in float.
        return part.amax(dim=1), part.clamp(min=0).sign_().sum(dim=1)
    sample_max = torch.full((n_rows, n_neurons), float("-inf"), device=acts.device)
    positive = torch.zeros((n_rows, n_neurons), device=acts.device)
    for first, end, length in groups:
        part = acts[first:end, :length]
        sample_max[first:end] = part.amax(dim=1)
        positive[first:end] = part.clamp(min=0).sign_().sum(dim=1)
    return sample_max, positive


def _mask(lengths: torch.Tensor, width: int) -> torch.Tensor:
    """bool [rows, width]: True at each row's real tokens."""
    return torch.arange(width, device=lengths.device)[None, :] < lengths[:, None]
