"""What the offline baseline knows about images: patch colours, colour names, positions in the patch grid,
and the visual phrase of a baseline explanation (the contract between the baseline explainer and
simulator, docs/method.md#explanation). PIL and numpy only.

A visual phrase reads

    image regions that are red (RGB 221, 32, 30), anywhere in the image,
    in images whose captions often say red, circle and square

or `image regions of any colour, in the top-left of the image`. The colour name is the nearest entry of
COLOUR_NAMES to the RGB, which the simulator compares each patch's mean colour with; the position is one
of POSITIONS (thirds of the grid) or `anywhere in the image`; the caption words are informative only.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image

from workers.vocabulary.shading import patch_map

COLOUR_NAMES: dict[str, tuple[int, int, int]] = {
    "black": (20, 20, 20),
    "gray": (128, 128, 128),
    "white": (250, 250, 250),
    "red": (220, 30, 30),
    "orange": (245, 140, 20),
    "yellow": (240, 210, 30),
    "green": (40, 160, 60),
    "blue": (40, 100, 230),
    "purple": (150, 60, 170),
    "pink": (240, 130, 180),
    "brown": (120, 60, 40),
}
"""Basic colour names and a typical RGB of each; a colour is named by the nearest (Euclidean RGB)."""

ANYWHERE = "anywhere in the image"
POSITIONS: dict[str, tuple[float, float]] = {
    "top-left": (1 / 6, 1 / 6),
    "top": (1 / 6, 1 / 2),
    "top-right": (1 / 6, 5 / 6),
    "left": (1 / 2, 1 / 6),
    "centre": (1 / 2, 1 / 2),
    "right": (1 / 2, 5 / 6),
    "bottom-left": (5 / 6, 1 / 6),
    "bottom": (5 / 6, 1 / 2),
    "bottom-right": (5 / 6, 5 / 6),
}
"""Named regions of the grid (thirds) and their centre as (row, col) fractions of the image, 0…1."""

VISUAL_LEAD = "image regions "
"""Every visual phrase starts with this; in a multimodal explanation it follows the text part after JOIN."""
JOIN = "; and "
"""Joins a text part and a visual part."""

_PHRASE = re.compile(
    r"image regions (?:that are (?P<colour>[a-z]+) \(RGB (?P<r>\d{1,3}), (?P<g>\d{1,3}), (?P<b>\d{1,3})\)"
    r"|of any colour), (?:anywhere in the image|in the (?P<position>[a-z-]+) of the image)"
    r"(?:, in images whose captions often say (?P<words>[^;]+))?"
)


@dataclass(frozen=True, slots=True)
class VisualConcept:
    """What a visual neuron's top patches share."""

    rgb: tuple[int, int, int] | None
    """Typical colour of the top patches; None when they share none (`of any colour`)."""
    position: str | None
    """A key of POSITIONS, or None for anywhere in the image."""
    caption_words: tuple[str, ...] = ()
    """Words most captions of the top images contain (shown to readers, not used to simulate)."""

    @property
    def colour(self) -> str | None:
        return None if self.rgb is None else colour_name(self.rgb)


_NAMES = list(COLOUR_NAMES)
_NAMED_RGB = np.asarray([COLOUR_NAMES[name] for name in _NAMES], dtype=np.float64)


def colour_names(rgb: np.ndarray) -> list[str]:
    """The COLOUR_NAMES entry nearest to each row of `rgb` [K, 3] (ties: the earlier entry)."""
    points = np.asarray(rgb, dtype=np.float64).reshape(-1, 3)
    distances = ((points[:, None, :] - _NAMED_RGB[None, :, :]) ** 2).sum(axis=2)
    return [_NAMES[index] for index in distances.argmin(axis=1).tolist()]


def colour_name(rgb: Sequence[float]) -> str:
    """The COLOUR_NAMES entry nearest to `rgb`."""
    return colour_names(np.asarray(rgb))[0]


def patch_colours(image: Image.Image, grid: tuple[int, int]) -> np.ndarray:
    """float64 [rows·cols, 3]: the mean RGB of the pixels under each patch (row-major), with the grid laid
    over the whole image as in `workers.vocabulary.shading.shade_image`."""
    rows, cols = grid
    pixels = np.asarray(image.convert("RGB"), dtype=np.float64)
    row_of, col_of = patch_map(grid, image.size)
    patch = (row_of[:, None] * cols + col_of[None, :]).ravel()
    counts = np.bincount(patch, minlength=rows * cols).astype(np.float64)
    sums = np.stack(
        [np.bincount(patch, weights=pixels[..., c].ravel(), minlength=rows * cols) for c in range(3)], axis=1
    )
    return sums / np.maximum(counts, 1.0)[:, None]


def patch_centres(grid: tuple[int, int]) -> np.ndarray:
    """float64 [rows·cols, 2]: (row, col) of each patch's centre as fractions of the image, 0…1."""
    rows, cols = grid
    r, c = np.meshgrid((np.arange(rows) + 0.5) / rows, (np.arange(cols) + 0.5) / cols, indexing="ij")
    return np.stack([r.ravel(), c.ravel()], axis=1)


def position_name(centre: Sequence[float]) -> str:
    """The POSITIONS entry whose third of the grid holds `centre` (row, col fractions)."""
    row, col = (min(int(value * 3), 2) for value in centre)
    vertical = ("top", "", "bottom")[row]
    horizontal = ("left", "", "right")[col]
    return "-".join(part for part in (vertical, horizontal) if part) or "centre"


def format_visual(concept: VisualConcept) -> str:
    """The visual phrase of a baseline explanation (see the module docstring)."""
    if concept.rgb is None:
        text = f"{VISUAL_LEAD}of any colour"
    else:
        r, g, b = concept.rgb
        text = f"{VISUAL_LEAD}that are {concept.colour} (RGB {r}, {g}, {b})"
    text += f", {ANYWHERE}" if concept.position is None else f", in the {concept.position} of the image"
    if concept.caption_words:
        words = list(concept.caption_words)
        listed = words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]
        text += f", in images whose captions often say {listed}"
    return text


def split_explanation(text: str) -> tuple[str, VisualConcept | None]:
    """(text part, visual concept) of a baseline explanation; the concept is None without a visual part
    (or with one that does not parse), the text part "" when the explanation is visual only."""
    if text.startswith(VISUAL_LEAD):
        head, tail = "", text
    else:
        head, joined, tail = text.partition(JOIN + VISUAL_LEAD)
        if not joined:
            return text, None
        tail = VISUAL_LEAD + tail
    match = _PHRASE.match(tail)
    if match is None:
        return head, None
    position = match["position"]
    if position is not None and position not in POSITIONS:
        return head, None
    rgb = None
    if match["colour"] is not None:
        rgb = (min(int(match["r"]), 255), min(int(match["g"]), 255), min(int(match["b"]), 255))
    words = tuple(re.split(r", | and ", match["words"])) if match["words"] else ()
    return head, VisualConcept(rgb=rgb, position=position, caption_words=words)
