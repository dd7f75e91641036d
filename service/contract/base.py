"""What every contract model shares: the strict base class, strict JSON numbers, and the vocabulary of
types and modalities."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Strict

NeuronType = Literal["visual", "text", "multimodal", "unknown"]
"""A neuron's type (docs/method.md#neuron-types): which modality its top samples fire on."""

Modality = Literal["text", "vision-language"]
"""What a model reads and what a probe set holds: text only, or images with text."""

StrictInt = Annotated[int, Strict()]
"""An integer that must be a JSON integer: no `true`, no `"3"`."""
StrictFloat = Annotated[float, Strict()]
"""A number that must be a JSON number (integers accepted): no `true`, no `"3.0"`."""


class ContractModel(BaseModel):
    """A contract model: unknown fields are an error, so a typo never passes silently."""

    model_config = ConfigDict(extra="forbid")
