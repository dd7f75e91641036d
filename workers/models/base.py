"""What the scan needs from a model: a `ModelAdapter` (tokenise samples, batch them, run a forward pass).

Text models use `workers.models.text.TextModelAdapter`; a vision-language adapter implements the same
Protocol and marks image-patch tokens with MODALITY_IMAGE and their patch index.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import torch

from service.contract import ModelSpec
from workers.data.base import ProbeSample


@dataclass(frozen=True, slots=True)
class TokenizedSample:
    """One sample as the model sees it, and which of its positions are content tokens."""

    sample_id: int
    """Index of the sample in the probe set."""
    input_ids: np.ndarray
    """int64 ids of the whole input sequence, special and template tokens included, no padding."""
    content_positions: np.ndarray
    """int64 positions into `input_ids` of the content tokens, increasing."""
    tokens: tuple[str, ...]
    """Content token strings, one per content position."""
    modality: np.ndarray
    """uint8 MODALITY_TEXT / MODALITY_IMAGE per content token."""
    patch_index: np.ndarray | None = None
    """int32 row-major patch number per content token (-1 for text), vision-language models only."""


class ModelAdapter(Protocol):
    """A loaded model ready to scan. Implementations must pad on the right so that
    `TokenizedSample.content_positions` index the padded batch directly."""

    @property
    def spec(self) -> ModelSpec: ...

    @property
    def device(self) -> torch.device: ...

    @property
    def module(self) -> torch.nn.Module:
        """Root module that the registry's hook-point paths are relative to."""
        ...

    @property
    def patch_grid(self) -> tuple[int, int] | None:
        """[rows, cols] of image patches; None for text models."""
        ...

    def tokenize(self, samples: Sequence[ProbeSample]) -> list[TokenizedSample]:
        """Tokenise samples (CPU); content tokens exclude special and prompt-template tokens."""
        ...

    def make_batch(
        self, samples: Sequence[ProbeSample], tokenized: Sequence[TokenizedSample]
    ) -> Mapping[str, torch.Tensor]:
        """Model keyword inputs for one batch, right-padded, on `device`."""
        ...

    def forward(self, inputs: Mapping[str, torch.Tensor]) -> None:
        """One forward pass (under torch.inference_mode by the caller); outputs are read by hooks."""
        ...
