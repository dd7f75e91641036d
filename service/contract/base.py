"""What every contract model shares: the strict base class and the vocabulary of types and modalities."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict

NeuronType = Literal["visual", "text", "multimodal", "unknown"]
"""A neuron's type (docs/method.md#neuron-types): which modality its top samples fire on."""

Modality = Literal["text", "vision-language"]
"""What a model reads and what a probe set holds: text only, or images with text."""


class ContractModel(BaseModel):
    """A contract model: unknown fields are an error, so a typo never passes silently."""

    model_config = ConfigDict(extra="forbid")
