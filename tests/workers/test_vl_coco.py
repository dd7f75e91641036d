"""User vision-language data in the COCO + LLaVA detail_23k layout, on a tiny folder the test writes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from workers.data.coco import load_coco_detail
from workers.errors import DatasetUnavailable


def entry(key: str, image: str, description: str) -> dict[str, object]:
    return {
        "id": key,
        "image": image,
        "conversations": [
            {"from": "human", "value": "<image>\nWhat is happening in this photo?"},
            {"from": "gpt", "value": description},
            {"from": "human", "value": "And then?"},
            {"from": "gpt", "value": "a later turn that is not the description"},
        ],
    }


@pytest.fixture()
def coco(tmp_path: Path) -> Path:
    images = tmp_path / "train2017"
    images.mkdir()
    Image.new("RGB", (40, 30), (200, 10, 10)).save(images / "000000000001.jpg", quality=95)
    Image.new("RGB", (16, 16), (10, 10, 200)).save(images / "000000000002.png")
    entries = [
        entry("000000000001", "000000000001.jpg", "A red wall fills the picture."),
        entry("000000000002", "000000000002.png", "  A small blue tile.  "),
    ]
    (tmp_path / "detail_23k.json").write_text(json.dumps(entries))
    return tmp_path


def test_loads_descriptions_and_images(coco: Path) -> None:
    probe = load_coco_detail(
        str(coco / "detail_23k.json"), "coco-detail", "v1", image_dir=str(coco / "train2017")
    )
    assert (probe.id, probe.revision, probe.modality, len(probe.samples)) == (
        "coco-detail",
        "v1",
        "vision-language",
        2,
    )
    first, second = probe.samples
    assert (first.id, first.text, first.domain) == (0, "A red wall fills the picture.", None)
    assert second.text == "A small blue tile."
    assert first.image.size == (40, 30) and first.image.mode == "RGB"
    assert np.abs(np.asarray(first.image).astype(int) - [200, 10, 10]).max() <= 8  # JPEG, nearly exact
    assert np.asarray(second.image)[0, 0].tolist() == [10, 10, 200]


def test_images_default_to_the_json_folder_and_n_samples_takes_a_prefix(coco: Path) -> None:
    for image in (coco / "train2017").iterdir():
        image.rename(coco / image.name)
    probe = load_coco_detail(str(coco / "detail_23k.json"), "coco-detail", "v1", n_samples=1)
    assert len(probe.samples) == 1 and probe.samples[0].image.size == (40, 30)
    with pytest.raises(DatasetUnavailable, match="has 2 entries, not 3"):
        load_coco_detail(str(coco / "detail_23k.json"), "coco-detail", "v1", n_samples=3)


def test_missing_image_is_named_when_read(coco: Path) -> None:
    probe = load_coco_detail(
        str(coco / "detail_23k.json"), "coco-detail", "v1", image_dir=str(coco / "elsewhere")
    )
    with pytest.raises(
        DatasetUnavailable, match="image '000000000001.jpg' of entry '000000000001' is missing"
    ):
        probe.samples[0]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "is not JSON"),
        ("[]", "non-empty JSON list"),
        (json.dumps([{"id": "1", "conversations": []}]), 'entry 0 has no "image"'),
        (
            json.dumps([{"id": "1", "image": "a.jpg", "conversations": [{"from": "human", "value": "hi"}]}]),
            'no {"from": "gpt"',
        ),
    ],
)
def test_malformed_json_says_what_is_wrong(tmp_path: Path, content: str, message: str) -> None:
    (tmp_path / "d.json").write_text(content)
    with pytest.raises(DatasetUnavailable, match=message.replace("{", r"\{").replace('"', '"')):
        load_coco_detail(str(tmp_path / "d.json"), "coco-detail", "v1")


def test_absent_json_file(tmp_path: Path) -> None:
    with pytest.raises(DatasetUnavailable, match="cannot read"):
        load_coco_detail(str(tmp_path / "nope.json"), "coco-detail", "v1")
