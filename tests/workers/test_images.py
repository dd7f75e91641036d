"""Activation shading (docs/method.md#exemplar-images): pixel' = pixel·(a/10) + 255·(1 − a/10), exact
values."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from workers.vocabulary.shading import model_view, patch_map, shade_image, shaded_png


def solid(width: int, height: int, rgb: tuple[int, int, int]) -> Image.Image:
    return Image.new("RGB", (width, height), rgb)


def test_each_patch_fades_by_its_normalised_activation() -> None:
    image = solid(4, 4, (100, 50, 0))
    # max 8: a = 10·act/8 → patches (row-major) a = 10, 5, 0 (negative clips), 2.5
    shaded = np.asarray(shade_image(image, [8.0, 4.0, -3.0, 2.0], (2, 2), 8.0))
    assert shaded[0, 0].tolist() == [100, 50, 0]  # a = 10 keeps the pixel
    assert shaded[0, 2].tolist() == [178, 153, 128]  # a = 5: 100·0.5 + 127.5 = 177.5 → 178 (half up)
    assert shaded[2, 0].tolist() == [255, 255, 255]  # a ≤ 0 is white
    assert shaded[3, 3].tolist() == [216, 204, 191]  # a = 2.5: 25 + 191.25 = 216.25; 12.5 + 191.25 = 203.75
    assert np.array_equal(shaded[:2, :2], np.broadcast_to([100, 50, 0], (2, 2, 3)))


def test_activation_above_max_clips_to_ten() -> None:
    shaded = np.asarray(shade_image(solid(2, 2, (10, 20, 30)), [20.0], (1, 1), 5.0))
    assert shaded.reshape(-1, 3).tolist() == [[10, 20, 30]] * 4


def test_grid_is_stretched_over_any_image_size() -> None:
    rows, cols = patch_map((2, 3), (7, 5))  # 7 wide, 5 high
    assert rows.tolist() == [0, 0, 0, 1, 1]  # ⌊y·2/5⌋
    assert cols.tolist() == [0, 0, 0, 1, 1, 2, 2]  # ⌊x·3/7⌋
    acts = [10, 0, 10, 0, 10, 0]
    shaded = np.asarray(shade_image(solid(7, 5, (0, 0, 0)), acts, (2, 3), 10.0))[..., 0]
    expected = np.where(np.array(acts).reshape(2, 3)[rows][:, cols] == 10, 0, 255)
    assert np.array_equal(shaded, expected)


def test_no_positive_maximum_gives_a_white_image() -> None:
    shaded = np.asarray(shade_image(solid(3, 3, (1, 2, 3)), [0.0, -1.0, 0.0, -2.0], (2, 2), 0.0))
    assert np.all(shaded == 255)


def test_png_round_trips_exact_values() -> None:
    image = Image.fromarray(np.arange(4 * 4 * 3, dtype=np.uint8).reshape(4, 4, 3))
    data = shaded_png(image, [10.0, 3.0, 7.0, 0.0], (2, 2), 10.0)
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    decoded = np.asarray(Image.open(io.BytesIO(data)))
    assert np.array_equal(decoded, np.asarray(shade_image(image, [10.0, 3.0, 7.0, 0.0], (2, 2), 10.0)))
    assert decoded[0, 0].tolist() == [0, 1, 2] and decoded[3, 3].tolist() == [255, 255, 255]
    assert decoded[0, 2].tolist() == [180, 181, 181]  # pixel (6, 7, 8)·0.3 + 178.5: 180.3, 180.6, 180.9


def test_wrong_number_of_patch_values_is_an_error() -> None:
    with pytest.raises(ValueError, match="2×2 = 4 values"):
        shade_image(solid(4, 4, (0, 0, 0)), [1.0, 2.0, 3.0], (2, 2), 3.0)


def test_model_view_is_the_centred_square() -> None:
    image = Image.fromarray(np.arange(6 * 4, dtype=np.uint8).reshape(4, 6))  # 6 wide, 4 high
    view = model_view(image)
    assert view.size == (4, 4) and np.asarray(view)[0].tolist() == [1, 2, 3, 4]
