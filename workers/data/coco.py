"""User vision-language probe sets in the COCO + LLaVA `detail_23k` layout: an image folder and a JSON list

    [{"id": "000000215677", "image": "000000215677.jpg",
      "conversations": [{"from": "human", "value": "<image>\\nWhat is in the photo?"},
                        {"from": "gpt", "value": "<the description>"}]}, ...]

The first `gpt` turn is the description fed with teacher forcing; the human turn's question is not used
(every sample is asked the template's question, so template tokens are the same for all samples). Image
paths are relative to the image folder (by default the JSON file's folder). The JSON is checked whole
when loaded; each image is read (local path or fsspec URL) only when its sample is.
"""

from __future__ import annotations

import json
import posixpath
from collections.abc import Sequence
from dataclasses import dataclass

import fsspec
from PIL import Image, UnidentifiedImageError

from workers.data.base import LazySamples, ListProbeSet, ProbeSample
from workers.errors import DatasetUnavailable


@dataclass(frozen=True, slots=True)
class CocoItem:
    """One entry of the JSON list."""

    key: str
    """The entry's `id` (the COCO image id in detail_23k)."""
    image: str
    """Image file, relative to the image folder."""
    description: str
    """The first `gpt` turn: what the image shows."""


def parse_items(entries: object, where: str) -> list[CocoItem]:
    """Validate the JSON list; DatasetUnavailable naming the entry and what it lacks."""
    if not isinstance(entries, list) or not entries:
        raise DatasetUnavailable(f"{where}: expected a non-empty JSON list of {{id, image, conversations}}")
    items = []
    for index, entry in enumerate(entries):
        if not isinstance(entry, dict):
            raise DatasetUnavailable(f"{where}: entry {index} is not a JSON object")
        image = entry.get("image")
        if not isinstance(image, str) or not image:
            raise DatasetUnavailable(f'{where}: entry {index} has no "image" file name')
        turns = entry.get("conversations")
        answers = [
            turn.get("value")
            for turn in (turns if isinstance(turns, list) else [])
            if isinstance(turn, dict) and turn.get("from") == "gpt"
        ]
        if not answers or not isinstance(answers[0], str) or not answers[0].strip():
            raise DatasetUnavailable(
                f'{where}: entry {index} ({image}) has no {{"from": "gpt", "value": "<description>"}} turn'
            )
        items.append(CocoItem(key=str(entry.get("id", index)), image=image, description=answers[0].strip()))
    return items


class CocoSamples(LazySamples):
    """The samples of a COCO-layout set; each image is read when its sample is."""

    def __init__(self, items: Sequence[CocoItem], image_dir: str) -> None:
        self._items = list(items)
        self._image_dir = image_dir.rstrip("/")

    def __len__(self) -> int:
        return len(self._items)

    def make(self, index: int) -> ProbeSample:
        item = self._items[index]
        return ProbeSample(id=index, text=item.description, domain=None, image=self.read_image(item))

    def item(self, index: int) -> CocoItem:
        return self._items[index]

    def read_image(self, item: CocoItem) -> Image.Image:
        url = f"{self._image_dir}/{item.image}"
        try:
            with fsspec.open(url, "rb") as handle:
                image = Image.open(handle)
                image.load()
        except FileNotFoundError:
            raise DatasetUnavailable(
                f"image {item.image!r} of entry {item.key!r} is missing: no file {url}"
            ) from None
        except (UnidentifiedImageError, OSError) as exc:
            raise DatasetUnavailable(f"image {url} of entry {item.key!r} cannot be read ({exc})") from None
        return image.convert("RGB")


def load_coco_detail(
    annotations: str,
    dataset_id: str,
    revision: str,
    image_dir: str | None = None,
    n_samples: int | None = None,
) -> ListProbeSet:
    """A vision-language probe set from a detail_23k-style JSON (local path or fsspec URL) and its images.

    With `n_samples`, exactly the first `n_samples` entries are used (the file must have that many).
    """
    try:
        with fsspec.open(annotations, "rt", encoding="utf-8") as handle:
            entries = json.load(handle)
    except (FileNotFoundError, OSError) as exc:
        raise DatasetUnavailable(f"probe set {dataset_id!r}: cannot read {annotations} ({exc})") from None
    except json.JSONDecodeError as exc:
        raise DatasetUnavailable(f"probe set {dataset_id!r}: {annotations} is not JSON ({exc.msg})") from None
    items = parse_items(entries, annotations)
    if n_samples is not None:
        if len(items) < n_samples:
            raise DatasetUnavailable(
                f"probe set {dataset_id!r}: {annotations} has {len(items)} entries, not {n_samples}"
            )
        items = items[:n_samples]
    folder = image_dir if image_dir is not None else posixpath.dirname(annotations) or "."
    return ListProbeSet(
        id=dataset_id, revision=revision, modality="vision-language", samples=CocoSamples(items, folder)
    )
