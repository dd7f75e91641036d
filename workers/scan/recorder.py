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

from workers.scan.rank_keys import EMPTY_KEY, rank_keys
from workers.scan.top_fill import ranked_top

__all__ = ["ACT_DTYPE", "EMPTY_KEY", "BatchView", "LayerRecorder", "rank_keys"]

ACT_DTYPE = torch.float16
"""Stored per-token activations (fp16: ample for display and scoring, half the memory)."""

_FLOAT32_EXACT = 2**24
"""Every integer up to this is exact in float32."""
_COUNT_CHUNK = 2**20
"""Values compared at once when counting positives (4 MiB of float32: stays in cache for the sum)."""


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
        deferred = _all_zero_rows(sample_max, acts, batch.groups) if self.sample_max is not None else None
        entering = sample_max if deferred is None else sample_max.masked_fill(deferred, float("-inf"))
        # Float pre-filter: only neurons whose batch max reaches their weakest kept value can change. When
        # every row has content tokens, no entering sample's max is -inf (deferred rows are): those skip.
        best = entering.amax(dim=0)
        beaten = best >= self.top_max.amin(dim=1)
        if sum(end - first for first, end, _ in batch.groups) == acts.shape[0]:
            beaten &= best > float("-inf")
        cols = beaten.nonzero().squeeze(1)
        if cols.numel():
            self._merge_top(cols, sample_max, deferred, acts, batch)

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
        self,
        cols: torch.Tensor,
        sample_max: torch.Tensor,
        deferred: torch.Tensor | None,
        acts: torch.Tensor,
        batch: BatchView,
    ) -> None:
        """Replace, per neuron in `cols`, the top slots that batch samples outrank (by rank key).

        With the neuron's K best batch keys in descending order and its K weakest kept keys in ascending
        order (K: the most candidates any of these neurons has, at most N), the i-th best candidate
        replaces the i-th weakest slot exactly when it outranks it: the comparison is true for a prefix
        of the K pairs, which is the merge of the two lists. Slots are unordered until `arrays()`: only
        the replaced slots are written, so the cost is the number of replacements × T_batch.
        """
        n_top = self.n_top
        batch_keys = rank_keys(sample_max[:, cols].T, batch.sample_ids[None, :])  # [C, B]
        if deferred is not None:
            batch_keys.masked_fill_(deferred[:, cols].T, EMPTY_KEY)
        weakest = self.top_key[cols].amin(dim=1, keepdim=True)
        n_candidates = int((batch_keys > weakest).sum(dim=1).max())
        if n_candidates == 0:
            return
        k = min(n_candidates, n_top)
        incoming_keys, incoming_rows = batch_keys.topk(k, dim=1)  # descending
        kept_keys, kept_slots = self.top_key[cols].topk(k, dim=1, largest=False)  # ascending
        col, rank = (incoming_keys > kept_keys).nonzero().unbind(1)
        neurons, rows = cols[col], incoming_rows[col, rank]
        flat = neurons * n_top + kept_slots[col, rank]
        self.top_key.view(-1)[flat] = incoming_keys[col, rank]
        self.top_max.view(-1)[flat] = sample_max[rows, neurons]
        self.top_ids.view(-1)[flat] = batch.sample_ids[rows]
        block = torch.zeros((rows.numel(), self.max_tokens), dtype=ACT_DTYPE, device=acts.device)
        block[:, : acts.shape[1]] = _token_rows(acts, rows, neurons, batch.lengths).T
        _copy_rows(self.top_acts.view(-1, self.max_tokens), flat, block)

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
        ids, maxima, top_acts = ranked_top(
            self.top_key, self.top_ids, self.top_max, self.top_acts, self.sample_max
        )
        extra = {} if self.sample_max is None else {"sample_max": self.sample_max.T.contiguous().numpy()}
        return extra | {
            "top_acts": top_acts.numpy(),
            "top_ids": ids.to(torch.int32).numpy(),
            "top_max": maxima.numpy(),
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
        return part.amax(dim=1), _count_positive(part)
    sample_max = torch.full((n_rows, n_neurons), float("-inf"), device=acts.device)
    positive = torch.zeros((n_rows, n_neurons), device=acts.device)
    for first, end, length in groups:
        part = acts[first:end, :length]
        sample_max[first:end] = part.amax(dim=1)
        positive[first:end] = _count_positive(part)
    return sample_max, positive


def _count_positive(part: torch.Tensor) -> torch.Tensor:
    """float32 [rows, neurons] count of `part`'s values > 0 over its tokens.

    A float32 comparison summed as floats is several times cheaper than summing a bool tensor (which
    accumulates in int64), and a row's token count is exact in float32. The comparison goes a few tokens
    at a time into one cache-sized buffer: a batch-sized buffer would be fresh memory each batch (wide
    units: tens of MB), paid in page faults."""
    rows, width, neurons = part.shape
    step = max(1, min(width, _COUNT_CHUNK // max(rows * neurons, 1)))
    buffer = torch.empty(rows * step * neurons, device=part.device)
    count = torch.zeros((rows, neurons), device=part.device)
    for first in range(0, width, step):
        chunk = part[:, first : first + step]
        above = buffer[: chunk.numel()].view(chunk.shape)
        torch.gt(chunk, 0, out=above)
        count += above.sum(dim=1)
    return count


def _all_zero_rows(
    sample_max: torch.Tensor, acts: torch.Tensor, groups: list[tuple[int, int, int]]
) -> torch.Tensor | None:
    """bool [B, neurons]: True where a row's activations are all exactly +0.0; None when there is none.

    Such a (row, neuron) never enters the top slots during the pass: its entry is known without it (max
    +0, activations all zero), and `arrays()` fills the slots that +0 samples take from `sample_max`.
    Units that are mostly exactly zero (sparse-autoencoder latents) would otherwise churn their slots
    through the pass: ties at zero go to the lower sample id, and ids arrive in no order. All-zero means
    the bits: the max is +0.0 and the least value read as int32 is 0 (-0.0 and negative values read as
    negative ints), so rows holding -0.0 or a negative value stay in the pass.
    """
    zero_max = sample_max.view(torch.int32) == 0
    if not bool(zero_max.any()):
        return None
    least = torch.full(sample_max.shape, -1, dtype=torch.int32, device=acts.device)
    bits = acts.view(torch.int32)
    for first, end, length in groups:
        least[first:end] = bits[first:end, :length].amin(dim=1)
    return zero_max & (least == 0)


def _token_rows(
    acts: torch.Tensor, rows: torch.Tensor, neurons: torch.Tensor, lengths: torch.Tensor
) -> torch.Tensor:
    """[T_batch, R] activations of neuron `neurons[r]` on batch row `rows[r]`, zero past the row's length.

    Read through flat offsets into `acts`'s storage, token-major: consecutive pairs of one row read
    nearby addresses for each token (advanced indexing acts[rows, :, neurons] reads each pair's tokens
    one neuron-stride apart, a cache miss per value)."""
    width = acts.shape[1]
    stride_row, stride_token, stride_neuron = acts.stride()
    span = sum((size - 1) * stride for size, stride in zip(acts.shape, acts.stride(), strict=True)) + 1
    flat = acts.as_strided((span,), (1,), acts.storage_offset())
    tokens = torch.arange(width, device=acts.device)
    offsets = tokens[:, None] * stride_token + (rows * stride_row + neurons * stride_neuron)[None, :]
    values = flat.take(offsets)
    return values.masked_fill_(tokens[:, None] >= lengths[rows][None, :], 0.0)


def _copy_rows(target: torch.Tensor, index: torch.Tensor, rows: torch.Tensor) -> None:
    """target[index] = rows (2-D, same dtype), each row moved as the widest integers that tile it: an
    index copy costs per element, and an fp16 row of 52 tokens is 13 int64."""
    width_bytes = target.shape[1] * target.element_size()
    wide = next(
        dtype
        for dtype in (torch.int64, torch.int32, torch.int16, torch.uint8)
        if width_bytes % dtype.itemsize == 0
    )
    target.view(wide).index_copy_(0, index, rows.view(wide))


def _mask(lengths: torch.Tensor, width: int) -> torch.Tensor:
    """bool [rows, width]: True at each row's real tokens."""
    return torch.arange(width, device=lengths.device)[None, :] < lengths[:, None]
