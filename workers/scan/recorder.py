"""Streaming per-layer statistics of one scan, kept on the scan device (DESIGN §4.3).

State per layer is O(neurons × N × T): the top-N samples by max activation with their per-token
activations, the running global max, the per-token activations of N random samples chosen up front,
and per-domain counts of activations > 0. Every update is a handful of whole-tensor operations; the
top-N merge only touches neurons whose N-th best value the batch beats.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

ACT_DTYPE = torch.float16
"""Stored per-token activations (fp16: ample for display and scoring, half the memory)."""


@dataclass(frozen=True)
class BatchView:
    """Where one batch's samples sit in the probe set, on the scan device."""

    sample_ids: torch.Tensor
    """int64 [B] probe-set indices of the batch rows."""
    mask: torch.Tensor | None
    """bool [B, T_batch] content-token mask; None when every row has T_batch content tokens."""
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

    def update(self, acts: torch.Tensor, batch: BatchView) -> None:
        """Fold in one batch: `acts` [B, T_batch, neurons] at the content tokens (padding per `mask`)."""
        masked = acts if batch.mask is None else acts.masked_fill(~batch.mask[:, :, None], float("-inf"))
        sample_max = masked.amax(dim=1).float()
        torch.maximum(self.global_max, sample_max.amax(dim=0), out=self.global_max)
        # clamp+sign+sum counts positives faster than (x > 0).sum(); counts ≤ T_batch are exact in float.
        positive = masked.clamp(min=0).sign_().sum(dim=1).to(torch.int64)
        self.domain_positive.index_add_(0, batch.domain_ids, positive)
        if batch.random_rows is not None and batch.random_slots is not None:
            self._record_random(acts, batch.mask, batch.random_rows, batch.random_slots)
        beaten = (sample_max.amax(dim=0) > self.top_max[:, -1]).nonzero().squeeze(1)
        if beaten.numel():
            self._merge_top(beaten, sample_max, acts, batch)

    def _content(self, acts: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        """[neurons', B', T] fp16 activations with padding zeroed, padded to `max_tokens`."""
        if mask is not None:
            acts = acts.masked_fill(~mask[:, :, None], 0.0)
        out = torch.zeros(
            (acts.shape[2], acts.shape[0], self.max_tokens), dtype=ACT_DTYPE, device=acts.device
        )
        out[:, :, : acts.shape[1]] = acts.permute(2, 0, 1)
        return out

    def _record_random(
        self, acts: torch.Tensor, mask: torch.Tensor | None, rows: torch.Tensor, slots: torch.Tensor
    ) -> None:
        row_mask = None if mask is None else mask.index_select(0, rows)
        self.random_acts[:, slots] = self._content(acts.index_select(0, rows), row_mask)

    def _merge_top(
        self, cols: torch.Tensor, sample_max: torch.Tensor, acts: torch.Tensor, batch: BatchView
    ) -> None:
        n_cols, n_batch = cols.numel(), sample_max.shape[0]
        values = torch.cat([self.top_max[cols], sample_max[:, cols].T], dim=1)
        ids = torch.cat([self.top_ids[cols], batch.sample_ids.expand(n_cols, n_batch)], dim=1)
        best, order = values.topk(self.n_top, dim=1)
        merged = torch.cat(
            [self.top_acts[cols], self._content(acts.index_select(2, cols), batch.mask)], dim=1
        )
        self.top_max[cols] = best
        self.top_ids[cols] = ids.gather(1, order)
        self.top_acts[cols] = merged.gather(1, order[:, :, None].expand(-1, -1, self.max_tokens))

    def arrays(self) -> dict[str, np.ndarray]:
        """The layer's statistics as numpy arrays, neuron-major so one neuron is one contiguous slice."""
        return {
            "top_acts": self.top_acts.cpu().numpy(),
            "top_ids": self.top_ids.to(torch.int32).cpu().numpy(),
            "top_max": self.top_max.cpu().numpy(),
            "global_max": self.global_max.cpu().numpy(),
            "random_acts": self.random_acts.cpu().numpy(),
            "domain_positive": self.domain_positive[:-1].T.contiguous().cpu().numpy(),
        }
