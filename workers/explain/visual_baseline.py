"""The baseline explainer for vision-language models: the text baseline plus a visual phrase
(docs/method.md#explanation).

A visual neuron is described by what its top patches share: the colour most of their activation mass is
nearest to (with the mean RGB of those patches), where in the grid they sit (or anywhere), and the words
most captions of its top images contain. A multimodal neuron gets the text baseline's sentence and the
visual phrase; text and unknown neurons get the text baseline alone. Offline and deterministic, labelled
`baseline` in the report; the phrase is the contract of workers/vocabulary/visual_features.py.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from workers.data.images import ImageSource
from workers.explain.base import ExplainerResult
from workers.explain.baseline import NOTHING, BaselineExplainer, describe
from workers.vocabulary.records import (
    MODALITY_IMAGE,
    MODALITY_TEXT,
    ActivationRecord,
    NeuronRecords,
    word_spans,
)
from workers.vocabulary.visual_features import (
    JOIN,
    VisualConcept,
    colour_names,
    format_visual,
    patch_centres,
    patch_colours,
    position_name,
)

VISUAL_PROMPT_VERSION = "baseline-visual-1"
"""Rule-set version of the visual phrase (joined to the text one with `+` for multimodal neurons)."""
TOP_PATCH_LEVEL = 2.0
"""Normalised activation (0–10) above which a patch counts as a top patch (the visual threshold of
docs/method.md#neuron-types); each top patch weighs its activation squared, so the strongest dominate."""
COLOUR_SHARE = 0.5
"""Name a colour when at least this share of the top patches' mass is nearest to it, else `any colour`."""
POSITION_SPREAD = 0.2
"""Name a region when the top patches' weighted spread (RMS distance from their centroid, in image
fractions) is at most this; a uniform spread over the image is about 0.41."""
MAX_CAPTION_WORDS = 3
"""Most caption words named."""
CAPTION_SHARE = 0.5
"""Name a caption word when at least this share of the top images' captions contain it."""
STOPWORDS = frozenset(
    "a an the and or of on in at to with under over is are was be it its this that there by for as".split()
)
"""Function words never named as caption words."""


@dataclass(frozen=True, slots=True)
class TopPatches:
    """The top patches of a neuron's explainer records, pooled over records."""

    colours: np.ndarray
    """float64 [K, 3] mean RGB of each patch."""
    centres: np.ndarray
    """float64 [K, 2] (row, col) of each patch's centre, fractions of the image."""
    weights: np.ndarray
    """float64 [K] normalised activation squared."""


def _patch_values(record: ActivationRecord, max_activation: float) -> np.ndarray:
    """Normalised activation per patch, row-major: patch tokens come in grid order."""
    return record.normalised(max_activation)[record.record.modality == MODALITY_IMAGE].astype(np.float64)


def top_patches(neuron: NeuronRecords, images: ImageSource) -> TopPatches:
    """Every patch above TOP_PATCH_LEVEL in the records that have an image."""
    colours, centres, weights = [], [], []
    for record in neuron.records:
        grid = record.record.patch_grid
        values = _patch_values(record, neuron.max_activation) if grid is not None else None
        if grid is None or values is None or values.size != grid[0] * grid[1]:
            continue
        chosen = np.flatnonzero(values > TOP_PATCH_LEVEL)
        image = images.image(record.sample_id) if chosen.size else None
        if image is None:
            continue
        colours.append(patch_colours(image, grid)[chosen])
        centres.append(patch_centres(grid)[chosen])
        weights.append(values[chosen] ** 2)
    if not weights:
        return TopPatches(np.zeros((0, 3)), np.zeros((0, 2)), np.zeros(0))
    return TopPatches(np.concatenate(colours), np.concatenate(centres), np.concatenate(weights))


def shared_colour(patches: TopPatches) -> tuple[int, int, int] | None:
    """Mean RGB of the patches nearest to the colour name with most mass, when it has COLOUR_SHARE."""
    names = np.array(colour_names(patches.colours))
    mass: Counter[str] = Counter()
    for name, weight in zip(names.tolist(), patches.weights.tolist(), strict=True):
        mass[name] += weight
    best, best_mass = max(mass.items(), key=lambda item: (item[1], item[0]))
    if best_mass < COLOUR_SHARE * patches.weights.sum():
        return None
    chosen = names == best
    rgb = np.average(patches.colours[chosen], axis=0, weights=patches.weights[chosen])
    return (int(round(rgb[0])), int(round(rgb[1])), int(round(rgb[2])))


def shared_position(patches: TopPatches) -> str | None:
    """The named region of the patches' weighted centroid when they are concentrated, else None."""
    centroid = np.average(patches.centres, axis=0, weights=patches.weights)
    spread = np.sqrt(np.average(np.sum((patches.centres - centroid) ** 2, axis=1), weights=patches.weights))
    return position_name((float(centroid[0]), float(centroid[1]))) if spread <= POSITION_SPREAD else None


def caption_words(neuron: NeuronRecords) -> tuple[str, ...]:
    """Words (not STOPWORDS) in at least CAPTION_SHARE of the image records' captions, most common first."""
    counts: Counter[str] = Counter()
    n_captions = 0
    for record in neuron.records:
        if record.record.patch_grid is None:
            continue
        n_captions += 1
        text = (record.record.modality == MODALITY_TEXT).tolist()
        words = {
            word.lower()
            for word, start, end in word_spans(record.tokens)
            if all(text[start:end]) and word.isalpha() and word.lower() not in STOPWORDS
        }
        counts.update(words)
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    return tuple(word for word, count in ranked[:MAX_CAPTION_WORDS] if count >= CAPTION_SHARE * n_captions)


def describe_visual(neuron: NeuronRecords, images: ImageSource) -> str | None:
    """The visual phrase for one neuron; None when no patch of its records is above TOP_PATCH_LEVEL."""
    patches = top_patches(neuron, images)
    if patches.weights.size == 0:
        return None
    concept = VisualConcept(
        rgb=shared_colour(patches), position=shared_position(patches), caption_words=caption_words(neuron)
    )
    return format_visual(concept)


class VisualBaselineExplainer:
    """Explainer backend `baseline` for vision-language probe sets (needs their images)."""

    backend = BaselineExplainer.backend
    model = BaselineExplainer.model
    prompt_version = BaselineExplainer.prompt_version

    def __init__(self, images: ImageSource) -> None:
        self.images = images

    def explain(self, neurons: Sequence[NeuronRecords]) -> list[ExplainerResult]:
        return [self._explain_one(neuron) for neuron in neurons]

    def _explain_one(self, neuron: NeuronRecords) -> ExplainerResult:
        text = describe(neuron)
        if neuron.neuron_type not in ("visual", "multimodal"):
            return ExplainerResult(text=text)
        visual = describe_visual(neuron, self.images)
        if visual is None:
            return ExplainerResult(text=text)
        if neuron.neuron_type == "visual" or text == NOTHING:
            return ExplainerResult(text=visual, prompt_version=VISUAL_PROMPT_VERSION)
        return ExplainerResult(
            text=text + JOIN + visual, prompt_version=f"{self.prompt_version}+{VISUAL_PROMPT_VERSION}"
        )
