"""Latents of a dictionary (SAE or transcoder) recorded in the scan's own forward pass
(docs/dictionaries.md).

The scan's hook hands each layer's activations at the content tokens to `DictionaryTaps.encode`, which
returns the latents the layer's recorder folds in like neurons, and adds the batch to the layer's
reconstruction totals: an SAE's reconstruction of those activations, or, for a transcoder, its prediction
of the activations at the output hook point, which a second hook of the same pass hands to
`observe_output`. Totals are float64 sums, so the fraction of variance unexplained over the probe set is
exact whatever the batching:

    FVU = Σ‖x − x̂‖² ÷ Σ‖x − x̄‖²,   Σ‖x − x̄‖² = Σ‖x‖² − ‖Σx‖² ÷ n   (x̄: the mean over all n tokens)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from service.contract import DictionarySpec, HookPoint, ModelSpec
from service.contract.dictionary_files import DictionaryHeader
from workers.models.dictionaries import LoadedDictionary
from workers.models.dictionary_cache import DictionaryCache

DENSE_FRACTION = 0.1
"""A latent active (> 0) on more than this share of the probe set's content tokens counts as dense."""


@dataclass
class ReconstructionTotals:
    """Running sums of one layer's reconstruction over the probe set's content tokens."""

    squared_error: float = 0.0
    squared_norm: float = 0.0
    tokens: int = 0
    sum: torch.Tensor | None = field(default=None)

    def add(self, target: torch.Tensor, estimate: torch.Tensor) -> None:
        """Fold in one batch: `target` and `estimate` [tokens, d] (content tokens only)."""
        target = target.float()
        self.squared_error += float((target - estimate).square().sum(dtype=torch.float64))
        self.squared_norm += float(target.square().sum(dtype=torch.float64))
        batch_sum = target.sum(dim=0, dtype=torch.float64)
        self.sum = batch_sum if self.sum is None else self.sum + batch_sum
        self.tokens += target.shape[0]

    def fvu(self) -> float | None:
        """Fraction of variance unexplained; None before any token (or when the target never varies)."""
        if self.tokens == 0 or self.sum is None:
            return None
        variance = self.squared_norm - float(self.sum.square().sum()) / self.tokens
        return self.squared_error / variance if variance > 0 else None


def _content_rows(acts: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """[tokens, d] rows of `acts` [B, T, d] at each row's real (non-padding) tokens."""
    mask = torch.arange(acts.shape[1], device=acts.device)[None, :] < lengths[:, None]
    return acts[mask]


class DictionaryTaps:
    """The dictionaries of one scan, by layer: encode at the hook, reconstruction totals per layer."""

    def __init__(
        self,
        spec: DictionarySpec,
        output_point: HookPoint | None,
        dictionaries: Mapping[int, LoadedDictionary],
        headers: Mapping[int, Mapping[str, object]],
    ) -> None:
        self.spec = spec
        self.output_point = output_point
        """Transcoders: the hook point whose activations the decoder predicts (None for SAEs)."""
        self.dictionaries = dict(dictionaries)
        self.headers = dict(headers)
        """Per layer, what the scan manifest records of the files read (format, digest, …)."""
        self.totals = {layer: ReconstructionTotals() for layer in self.dictionaries}
        self._pending: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}

    @property
    def latents(self) -> int:
        return self.spec.latents

    def encode(self, layer: int, acts: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Latents [B, T, d_sae] of the hook's content activations `acts` [B, T, d_in]; an SAE's batch is
        added to the reconstruction totals here, a transcoder's when its output arrives."""
        dictionary = self.dictionaries[layer]
        latents = dictionary.encode(acts)
        rows, inputs = _content_rows(latents, lengths), _content_rows(acts, lengths)
        if self.output_point is None:
            self.totals[layer].add(inputs, dictionary.decode(rows, inputs))
        else:
            self._pending[layer] = (rows, inputs)
        return latents

    def observe_output(self, layer: int, acts: torch.Tensor, lengths: torch.Tensor) -> None:
        """A transcoder's target: the output hook's content activations [B, T, d_out] of the batch whose
        latents `encode` made last for `layer`."""
        pending = self._pending.pop(layer, None)
        if pending is not None:
            rows, inputs = pending
            self.totals[layer].add(
                _content_rows(acts, lengths), self.dictionaries[layer].decode(rows, inputs)
            )

    def manifest(self, layer: int, positive_tokens: np.ndarray, n_tokens: int) -> dict[str, object]:
        """What the layer's scan manifest says of its dictionary: the files read, the reconstruction
        quality and the latent density (`positive_tokens` [latents]: content tokens where each is > 0)."""
        density = positive_tokens / max(n_tokens, 1)
        fvu = self.totals[layer].fvu()
        return {
            "id": self.spec.id,
            "kind": self.spec.kind,
            "revision": self.spec.revision,
            **self.headers[layer],
            "fvu" if self.output_point is None else "output_fvu": fvu,
            "tokens": self.totals[layer].tokens,
            "dead": int((positive_tokens == 0).sum()),
            "dense": int((density > DENSE_FRACTION).sum()),
            "dense_fraction": DENSE_FRACTION,
            "density_quantiles": {str(q): float(np.quantile(density, q)) for q in (0.1, 0.5, 0.9, 0.99)},
        }


def open_taps(
    model: ModelSpec,
    layers: Sequence[int],
    device: torch.device,
    cache: DictionaryCache,
    dtype: torch.dtype = torch.float32,
) -> DictionaryTaps | None:
    """The taps of a scan of ``layers`` of ``model`` (seen through a dictionary), each layer's dictionary
    loaded and checked through ``cache``, computing in ``dtype`` (float32, or a 16-bit model's own dtype);
    None when the model's units are its neurons."""
    spec = model.units
    if spec is None:
        return None
    loaded = {layer: cache.get(model, layer, device, dtype) for layer in layers}
    output = None if spec.output_hook is None else model.registry_model.hook(spec.output_hook)
    headers = {layer: _files_read(dictionary.header) for layer, dictionary in loaded.items()}
    return DictionaryTaps(spec, output, loaded, headers)


def _files_read(header: DictionaryHeader) -> dict[str, object]:
    """What a scan manifest records of the files a layer's dictionary was loaded from."""
    return {
        "folder": header.folder,
        "digest": header.digest,
        "format": header.format,
        "architecture": header.architecture,
        "d_in": header.d_in,
        "d_sae": header.d_sae,
        "d_out": header.d_out,
    }
