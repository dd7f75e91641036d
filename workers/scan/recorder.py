"""Streaming per-layer statistics of one scan, kept on the scan device (docs/method.md#scan).

State per layer is O(neurons × N × T): the top-N samples by max activation with their per-token
activations, the running global max, the per-token activations of N random samples chosen up front,
and per-domain counts of activations > 0. Beside it, off the device, every sample's max activation per
neuron (fp16, [samples, neurons], copied to the CPU batch by batch so the device memory stays flat): what
comparisons of two checkpoints correlate. Every update is a handful of whole-tensor operations; the
top-N merge only touches neurons whose weakest kept sample the batch beats, only the batch samples that
beat it, and only the slots they replace.

Top-N order is total: by max activation descending, then sample id ascending (`rank_keys`), so ties are
decided the same way however the probe set is batched or sharded (workers/scan/shards.py merges shard
states with the same keys).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

ACT_DTYPE = torch.float16
"""Stored per-token activations (fp16: ample for display and scoring, half the memory)."""

_FLOAT32_EXACT = 2**24
"""Every integer up to this is exact in float32."""

EMPTY_KEY = torch.iinfo(torch.int64).min
"""Rank key of a top slot not yet filled: below every sample's key."""
_ID_SPAN = 2**32
"""Sample ids must be below this (they fill the low 32 bits of a rank key)."""


def rank_keys(values: torch.Tensor, sample_ids: torch.Tensor) -> torch.Tensor:
    """int64 keys ordering samples by float32 `values` descending, then `sample_ids` ascending.

    The float's bits are mapped to an int32 that sorts like the float (negative floats have their
    magnitude bits flipped) and fill the high 32 bits; `2**32 - 1 - id` fills the low 32 bits. Keys of
    distinct samples are distinct, so topk/argsort on them need no tie rule.
    """
    bits = values.contiguous().view(torch.int32)
    ordered = torch.where(bits < 0, bits ^ 0x7FFFFFFF, bits).to(torch.int64)
    return ordered * _ID_SPAN + (_ID_SPAN - 1 - sample_ids.to(torch.int64))


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
    """Top-N, global max, random records and domain counts of every neuron of one layer (and, when
    `n_samples` is given, every sample's max activation per neuron, kept on the CPU)."""

    def __init__(
        self,
        n_neurons: int,
        n_top: int,
        max_tokens: int,
        n_random: int,
        n_domains: int,
        device: torch.device,
        n_samples: int = 0,
    ) -> None:
        self.n_top = n_top
        # -inf where a sample was not recorded (a shard's other samples, or one without content tokens).
        self.sample_max = (
            torch.full((n_samples, n_neurons), float("-inf"), dtype=ACT_DTYPE) if n_samples else None
        )
        self.max_tokens = max_tokens
        self.top_max = torch.full((n_neurons, n_top), float("-inf"), device=device)
        self.top_ids = torch.full((n_neurons, n_top), -1, dtype=torch.int64, device=device)
        self.top_key = torch.full((n_neurons, n_top), EMPTY_KEY, dtype=torch.int64, device=device)
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
        if self.sample_max is not None:
            self.sample_max[batch.sample_ids.cpu()] = sample_max.to(ACT_DTYPE).cpu()
        torch.maximum(self.global_max, sample_max.amax(dim=0), out=self.global_max)
        self._count_positives(batch, positive)
        if batch.random_rows is not None and batch.random_slots is not None:
            self._record_random(acts, batch.lengths, batch.random_rows, batch.random_slots)
        threshold = self.top_max.amin(dim=1)
        # Float pre-filter: only neurons whose batch max reaches their weakest kept value can change.
        beaten = (sample_max.amax(dim=0) >= threshold).nonzero().squeeze(1)
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
        """Replace, per neuron in `cols`, the top slots that batch samples beat (by rank key).

        Only candidates (batch samples whose key beats the neuron's weakest kept key) can enter; when they
        are at most K per neuron, K below the batch size, the batch is cut to each neuron's K best first,
        so the top-N merge works on N + K columns instead of N + B. Slots are unordered until `arrays()`:
        only the evicted slots are written, so the cost is the number of replacements × T_batch.
        """
        n_top = self.n_top
        keys = rank_keys(sample_max[:, cols].T, batch.sample_ids[None, :])  # [C, B]
        weakest = self.top_key[cols].amin(dim=1, keepdim=True)
        n_candidates = int((keys > weakest).sum(dim=1).max())
        if n_candidates == 0:
            return
        rows_of = None
        if n_candidates < keys.shape[1]:
            keys, rows_of = keys.topk(n_candidates, dim=1, sorted=False)  # every candidate is among them
        union = torch.cat([self.top_key[cols], keys], dim=1)  # [C, N + K]
        kept = torch.zeros_like(union, dtype=torch.bool)
        kept.scatter_(1, union.topk(n_top, dim=1, sorted=False).indices, True)
        # Per column, evicted old slots and incoming batch rows are equally many; nonzero() lists both
        # column by column, so the k-th evicted slot pairs with the k-th incoming row.
        evicted = (~kept[:, :n_top]).nonzero()
        incoming = kept[:, n_top:].nonzero()
        picks = incoming[:, 1] if rows_of is None else rows_of[incoming[:, 0], incoming[:, 1]]
        neurons, slots, rows = cols[evicted[:, 0]], evicted[:, 1], picks
        self.top_key[neurons, slots] = union[incoming[:, 0], n_top + incoming[:, 1]]
        self.top_max[neurons, slots] = sample_max[rows, neurons]
        self.top_ids[neurons, slots] = batch.sample_ids[rows]
        width = acts.shape[1]
        per_token = acts[rows, :, neurons]  # a fresh [R, width] tensor: padding is zeroed in place
        per_token.masked_fill_(_mask(batch.lengths[rows], width).logical_not_(), 0.0)
        block = torch.zeros((rows.numel(), self.max_tokens), dtype=ACT_DTYPE, device=acts.device)
        block[:, :width] = per_token
        self.top_acts[neurons, slots] = block

    def positive_tokens(self) -> np.ndarray:
        """int64 [neurons]: content tokens where each unit is > 0, over every sample folded in (labelled
        or not)."""
        self._flush_positives()
        return self.domain_positive.sum(dim=0).cpu().numpy()

    _STATE = ("top_max", "top_ids", "top_key", "top_acts", "global_max", "random_acts", "domain_positive")

    def state(self) -> dict[str, np.ndarray]:
        """The running state as arrays, for a checkpoint (workers/scan/checkpoint.py): `from_state` makes
        a recorder that folds the next batches in exactly as this one would."""
        self._flush_positives()
        arrays = {name: getattr(self, name).cpu().numpy() for name in self._STATE}
        return arrays if self.sample_max is None else arrays | {"sample_max": self.sample_max.numpy()}

    @classmethod
    @torch.inference_mode()  # as the scan makes its recorders (in its hooks)
    def from_state(cls, arrays: dict[str, np.ndarray], device: torch.device) -> LayerRecorder:
        """A recorder restored from `state()`'s arrays, on `device`."""
        n_neurons, n_top, max_tokens = arrays["top_acts"].shape
        sample_max = arrays.get("sample_max")
        recorder = cls(
            n_neurons,
            n_top,
            max_tokens,
            arrays["random_acts"].shape[1],
            arrays["domain_positive"].shape[0] - 1,
            device,
            0 if sample_max is None else sample_max.shape[0],
        )
        for name in cls._STATE:
            getattr(recorder, name).copy_(torch.from_numpy(arrays[name]))
        if recorder.sample_max is not None and sample_max is not None:
            recorder.sample_max.copy_(torch.from_numpy(sample_max))
        return recorder

    def arrays(self) -> dict[str, np.ndarray]:
        """The layer's statistics as numpy arrays, neuron-major so one neuron is one contiguous slice;
        top samples in rank order (highest max activation first, ties by lower sample id)."""
        self._flush_positives()
        order = self.top_key.argsort(dim=1, descending=True)
        top_acts = self.top_acts.gather(1, order[:, :, None].expand(-1, -1, self.max_tokens))
        extra = {} if self.sample_max is None else {"sample_max": self.sample_max.T.contiguous().numpy()}
        return extra | {
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
