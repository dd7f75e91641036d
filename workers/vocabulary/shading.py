"""Activation shading of exemplar images (docs/method.md#exemplar-images, Xu et al. 2025).

Each pixel fades toward white by how little the patch covering it activates the neuron:
pixel' = pixel·(a/10) + 255·(1 − a/10), with a = clip(10·activation/max_activation, 0, 10) of that patch.
A patch at the neuron's maximum keeps its pixels; a patch at or below zero turns white. The patch grid is
laid over the image the model saw (`model_view`: its centred square crop) and stretched to the size
shown. PIL and numpy only: no torch.
"""

from __future__ import annotations

import io
from collections.abc import Sequence

import numpy as np
from PIL import Image

from workers.vocabulary.records import normalise


def model_view(image: Image.Image) -> Image.Image:
    """The centred square crop of `image`: what CLIP-style processors (and Qwen2-VL here) show the model."""
    side = min(image.size)
    left, top = (image.width - side) // 2, (image.height - side) // 2
    return image.crop((left, top, left + side, top + side))


def patch_map(grid: tuple[int, int], size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """For an image of `size` (width, height): the grid row of each pixel row and grid col of each column.

    Pixel (x, y) lies in patch (⌊y·rows/height⌋, ⌊x·cols/width⌋): nearest-neighbour upsampling, so every
    pixel takes exactly one patch's value.
    """
    rows, cols = grid
    width, height = size
    return (np.arange(height) * rows) // height, (np.arange(width) * cols) // width


def shade_image(
    image: Image.Image,
    patch_activations: Sequence[float] | np.ndarray,
    grid: tuple[int, int],
    max_activation: float,
) -> Image.Image:
    """The image with every pixel faded by its patch's normalised activation (RGB, same size).

    `patch_activations` are raw values, row-major over `grid` (rows, cols); `max_activation` is the
    neuron's maximum over the probe set. Results round half up to whole 0–255 values.
    """
    rows, cols = grid
    acts = np.asarray(patch_activations, dtype=np.float32)
    if rows < 1 or cols < 1 or acts.shape != (rows * cols,):
        raise ValueError(
            f"patch activations must be {rows}×{cols} = {rows * cols} values (row-major), got {acts.shape}"
        )
    keep = normalise(acts, max_activation).reshape(rows, cols).astype(np.float64) / 10.0
    row_of, col_of = patch_map(grid, image.size)
    weight = keep[row_of[:, None], col_of[None, :]][..., None]
    pixels = np.asarray(image.convert("RGB"), dtype=np.float64)
    shaded = pixels * weight + 255.0 * (1.0 - weight)
    return Image.fromarray(np.floor(shaded + 0.5).clip(0, 255).astype(np.uint8), mode="RGB")


def shaded_png(
    image: Image.Image,
    patch_activations: Sequence[float] | np.ndarray,
    grid: tuple[int, int],
    max_activation: float,
) -> bytes:
    """`shade_image` encoded as PNG bytes (lossless, so the shading values survive exactly)."""
    return png_bytes(shade_image(image, patch_activations, grid, max_activation))


def png_bytes(image: Image.Image) -> bytes:
    """`image` in RGB, encoded as PNG bytes."""
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, format="PNG")
    return buffer.getvalue()
