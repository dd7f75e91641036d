"""The images of a vision-language probe set as the model saw them, by sample id: the `ImageSource`
that explainers, simulators and exemplar images read."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from PIL import Image

from workers.data.base import ProbeSample
from workers.vocabulary.shading import model_view


class ImageSource(Protocol):
    """The image a vision-language sample showed the model, by sample id."""

    def image(self, sample_id: int) -> Image.Image | None: ...


class ProbeSetImages:
    """ImageSource over a probe set's samples: the centred square crop the model saw
    (workers.vocabulary.shading)."""

    def __init__(self, samples: Sequence[ProbeSample]) -> None:
        self.samples = samples

    def image(self, sample_id: int) -> Image.Image | None:
        image = self.samples[sample_id].image
        return model_view(image) if isinstance(image, Image.Image) else None
