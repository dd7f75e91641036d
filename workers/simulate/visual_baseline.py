"""The baseline simulator for vision-language models (docs/method.md#simulation-and-scores): each image patch
is predicted from the image's own pixels and the explanation's visual phrase, text tokens from its text part
as the text baseline does.

For a phrase naming a colour with RGB c, a patch whose mean colour is p gets
10·exp(−(‖p − c‖/COLOUR_SCALE)²), times exp(−d²/(2·POSITION_SCALE²)) when the phrase names a region, d
being the distance from the patch centre to the region's centre (fractions of the image). `of any
colour` gives every patch 10 (times the position weight). An explanation with neither quoted tokens nor
a visual phrase is a parse failure, as for the text baseline.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image

from workers.data.images import ImageSource
from workers.simulate.base import SimulationInput, SimulatorResult
from workers.simulate.baseline import BaselineSimulator, predict_record
from workers.vocabulary.records import MODALITY_IMAGE, TokenRecord
from workers.vocabulary.text_phrase import TextPhrase, parse_text_phrase
from workers.vocabulary.visual_features import (
    POSITIONS,
    VisualConcept,
    patch_centres,
    patch_colours,
    split_explanation,
)

COLOUR_SCALE = 80.0
"""RGB distance at which a patch's predicted value falls to 1/e of 10 (red vs orange is about 110)."""
POSITION_SCALE = 0.3
"""Standard deviation, in image fractions, of the position weight around a named region's centre."""


def predict_patches(concept: VisualConcept, image: Image.Image, grid: tuple[int, int]) -> np.ndarray:
    """0–10 per patch (row-major) of `image` for the visual concept."""
    n_patches = grid[0] * grid[1]
    if concept.rgb is None:
        values = np.full(n_patches, 10.0)
    else:
        colours = patch_colours(image, grid)
        distance = np.linalg.norm(colours - np.asarray(concept.rgb, dtype=np.float64), axis=1)
        values = 10.0 * np.exp(-((distance / COLOUR_SCALE) ** 2))
    if concept.position is not None:
        offset = patch_centres(grid) - np.asarray(POSITIONS[concept.position])
        values = values * np.exp(-np.sum(offset**2, axis=1) / (2 * POSITION_SCALE**2))
    return values.astype(np.float32)


def predict_visual_record(
    parsed: TextPhrase | None,
    concept: VisualConcept | None,
    record: TokenRecord,
    image: Image.Image | None,
) -> np.ndarray:
    """0–10 per token of `record`: text tokens from `parsed` (0 without it), patches from `concept` and the
    image (0 without either)."""
    if parsed is None:
        values = np.zeros(len(record.tokens), dtype=np.float32)
    else:
        values = predict_record(parsed, record)
    grid = record.patch_grid
    is_patch = record.modality == MODALITY_IMAGE
    if concept is None or grid is None or image is None or int(is_patch.sum()) != grid[0] * grid[1]:
        return values
    values[is_patch] = predict_patches(concept, image, grid)
    return values


class VisualBaselineSimulator:
    """Simulator backend `baseline` for vision-language probe sets (reads their images)."""

    backend = BaselineSimulator.backend
    model = BaselineSimulator.model

    def __init__(self, images: ImageSource) -> None:
        self.images = images

    def simulate(self, items: Sequence[SimulationInput]) -> list[SimulatorResult]:
        return [self._simulate_one(item) for item in items]

    def _simulate_one(self, item: SimulationInput) -> SimulatorResult:
        head, concept = split_explanation(item.explanation)
        parsed = parse_text_phrase(head) if head else None
        if parsed is None and concept is None:
            return SimulatorResult(predictions=[None] * len(item.records), parse_failures=1)
        predictions: list[np.ndarray | None] = []
        for record in item.records:
            needs_image = concept is not None and record.patch_grid is not None
            image = self.images.image(record.sample_id) if needs_image else None
            predictions.append(predict_visual_record(parsed, concept, record, image))
        return SimulatorResult(predictions=predictions, parse_failures=0)
