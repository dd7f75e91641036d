"""LLaVA-style vision-language models for the scan: the adapter (prompt, processor, modality layout) and
loading by registry entry, either a generated model (`tiny-llava`, `tiny-llava-planted`) or real weights
(llava-hf/llava-1.5-7b-hf, Qwen2-VL) from a local folder or the local Hugging Face cache. Nothing is ever
downloaded: absent weights fail at once with ModelWeightsMissing, saying how to provide them.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from transformers import PreTrainedModel, ProcessorMixin

from service.contract import ModelSpec
from workers.data.base import ProbeSample
from workers.data.vl_probe import QUESTION
from workers.errors import UnknownModel
from workers.models.availability import local_checkpoint
from workers.models.base import ModelAdapter, TokenizedSample
from workers.models.layout import LLAVA_TEMPLATE, QWEN2_VL_TEMPLATE, BatchLayout, layout_batch
from workers.models.planted import PLANTED_ID, PLANTED_REVISION, build_tiny_llava_planted
from workers.models.tiny_llava import TINY_LLAVA_ID, TINY_LLAVA_REVISION, build_tiny_llava
from workers.models.weights_cache import Builder, WeightsStore, cached_model_dir
from workers.vocabulary.shading import model_view

QWEN2_VL_IMAGE_SIZE = 448
"""Qwen2-VL sees every image resized to this square, so its patch grid is fixed (16 × 16 tokens)."""
QWEN2_VL_PIXELS_PER_TOKEN = 28
"""14 px patches merged 2 × 2 into one language-model token."""

TOKENIZE_CHUNK = 64
"""Samples per processor call while tokenising a probe set (bounds the pixel tensors held at once)."""

_MODEL_CLASSES = {"llava": "LlavaForConditionalGeneration", "qwen2-vl": "Qwen2VLForConditionalGeneration"}
_TEMPLATES = {"llava": LLAVA_TEMPLATE, "qwen2-vl": QWEN2_VL_TEMPLATE}


class VisionLanguageAdapter:
    """A loaded vision-language model as the scan sees it (workers.models.base.ModelAdapter).

    Every sample becomes the prompt `USER: <image>\\n{question} ASSISTANT: {caption}` (the
    architecture's template) through the real processor. Content tokens are the patch tokens (modality
    image, named `<patch row,col>`) and the caption tokens (modality text); template tokens are neither.
    """

    def __init__(
        self, spec: ModelSpec, model: PreTrainedModel, processor: ProcessorMixin, device: torch.device
    ) -> None:
        if spec.architecture not in _TEMPLATES:
            allowed = ", ".join(sorted(_TEMPLATES))
            raise UnknownModel(
                f"model {spec.id!r}: architecture {spec.architecture!r} is not one of {allowed}"
            )
        self.spec = spec
        self.module = model
        self._processor = processor
        self.device = device
        self._template = _TEMPLATES[spec.architecture]
        self.question = QUESTION

    @property
    def processor(self) -> ProcessorMixin:
        return self._processor

    @property
    def patch_grid(self) -> tuple[int, int]:
        if self.spec.architecture == "qwen2-vl":
            side = QWEN2_VL_IMAGE_SIZE // QWEN2_VL_PIXELS_PER_TOKEN
            return side, side
        vision = self.module.config.vision_config
        side = int(vision.image_size) // int(vision.patch_size)
        return side, side

    @property
    def image_token(self) -> str:
        return str(self._processor.image_token)  # type: ignore[attr-defined]

    @property
    def image_token_id(self) -> int:
        return int(self._processor.image_token_id)  # type: ignore[attr-defined]

    def prompts(self, samples: Sequence[ProbeSample]) -> list[str]:
        """The prompt of each sample, with one image token (before the processor expands it)."""
        return [self._template.render(self.image_token, self.question, sample.text) for sample in samples]

    def encode(self, samples: Sequence[ProbeSample]) -> tuple[dict[str, torch.Tensor], BatchLayout]:
        """Processor output (CPU tensors, right-padded) and the modality layout of every position."""
        texts = self.prompts(samples)
        features = self._processor(
            text=texts,
            images=self._images(samples),
            return_tensors="pt",
            padding=True,
            return_offsets_mapping=True,
        )
        offsets = features.pop("offset_mapping").numpy()
        ids = features["input_ids"].numpy()
        n_image = (ids == self.image_token_id).sum(axis=1)
        # The processor repeats the image token once per patch; the caption is the end of the text.
        lengths = [
            len(text) + (int(n) - 1) * len(self.image_token) for text, n in zip(texts, n_image, strict=True)
        ]
        starts = [length - len(sample.text) for length, sample in zip(lengths, samples, strict=True)]
        suffix = self._template.suffix
        layout = layout_batch(
            ids,
            features["attention_mask"].numpy(),
            offsets,
            starts,
            self.image_token_id,
            [self.patch_grid] * len(samples),
            special_ids=self._processor.tokenizer.all_special_ids,  # type: ignore[attr-defined]
            caption_lead_in=len(suffix) - len(suffix.rstrip()),
        )
        return dict(features), layout

    def tokenize(self, samples: Sequence[ProbeSample]) -> list[TokenizedSample]:
        # In chunks: the processor's pixel tensors of a whole probe set would not fit in memory.
        result: list[TokenizedSample] = []
        for begin in range(0, len(samples), TOKENIZE_CHUNK):
            result.extend(self._tokenize_chunk(samples[begin : begin + TOKENIZE_CHUNK]))
        return result

    def _tokenize_chunk(self, samples: Sequence[ProbeSample]) -> list[TokenizedSample]:
        features, layout = self.encode(samples)
        ids = features["input_ids"].numpy()
        lengths = features["attention_mask"].numpy().sum(axis=1)
        content = layout.content_mask()
        tokenizer = self._processor.tokenizer  # type: ignore[attr-defined]
        cols = self.patch_grid[1]
        result = []
        for row, sample in enumerate(samples):
            positions = np.flatnonzero(content[row]).astype(np.int64)
            patches = layout.patch_index[row, positions]
            names = tokenizer.convert_ids_to_tokens(ids[row, positions].tolist())
            tokens = [
                f"<patch {p // cols},{p % cols}>" if p >= 0 else name
                for p, name in zip(patches, names, strict=True)
            ]
            result.append(
                TokenizedSample(
                    sample_id=sample.id,
                    input_ids=ids[row, : int(lengths[row])].astype(np.int64),
                    content_positions=positions,
                    tokens=tuple(tokens),
                    modality=layout.modality[row, positions].astype(np.uint8),
                    patch_index=patches.astype(np.int32),
                )
            )
        return result

    def make_batch(
        self, samples: Sequence[ProbeSample], tokenized: Sequence[TokenizedSample]
    ) -> Mapping[str, torch.Tensor]:
        features, _ = self.encode(samples)
        for row, item in enumerate(tokenized):
            if not torch.equal(
                features["input_ids"][row, : len(item.input_ids)], torch.from_numpy(item.input_ids)
            ):
                raise ValueError(
                    f"sample {item.sample_id}: its tokens differ from the ones it was scanned with"
                )
        inputs = {name: value.to(self.device) for name, value in features.items() if name != "offset_mapping"}
        for name in ("pixel_values", "pixel_values_videos"):
            if name in inputs:
                inputs[name] = inputs[name].to(self.module.dtype)
        return inputs

    def forward(self, inputs: Mapping[str, torch.Tensor]) -> None:
        # The base model, not the *ForConditionalGeneration head: the logits are never read.
        self.module.model(**inputs, use_cache=False)  # type: ignore[operator]

    def _images(self, samples: Sequence[ProbeSample]) -> list[Image.Image]:
        images = []
        for sample in samples:
            if not isinstance(sample.image, Image.Image):
                raise ValueError(
                    f"sample {sample.id} has no image: vision-language models scan image + caption samples"
                )
            image = sample.image.convert("RGB")
            if self.spec.architecture == "qwen2-vl":
                # A fixed size gives every image the same patch grid (Qwen2-VL's grid follows the image size).
                image = model_view(image).resize(
                    (QWEN2_VL_IMAGE_SIZE, QWEN2_VL_IMAGE_SIZE), Image.Resampling.BICUBIC
                )
            images.append(image)
        return images


GENERATED_MODELS: dict[str, tuple[str, Builder]] = {
    TINY_LLAVA_ID: (TINY_LLAVA_REVISION, build_tiny_llava),
    PLANTED_ID: (PLANTED_REVISION, build_tiny_llava_planted),
}
"""Generated vision-language models by id: (revision this code builds, builder)."""


def load_llava_adapter(spec: ModelSpec, store: WeightsStore, device: torch.device) -> ModelAdapter:
    """Load a registry vision-language model in eval mode on `device` (the loader's AdapterBuilder).

    float32 on CPU, bfloat16 on accelerators. Generated models are built (once) into the artifact store;
    real checkpoints must already be on this host.
    """
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import transformers
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    if spec.architecture not in _MODEL_CLASSES:
        allowed = ", ".join(sorted(_MODEL_CLASSES))
        raise UnknownModel(f"model {spec.id!r}: architecture {spec.architecture!r} is not one of {allowed}")
    folder = resolve_weights(spec, store)
    if spec.architecture == "qwen2-vl" and importlib.util.find_spec("torchvision") is None:
        # transformers' Qwen2VLProcessor cannot even be built without it (its video processor needs it).
        raise UnknownModel(
            f"model {spec.id!r}: Qwen2-VL's processor needs the torchvision package, which this worker "
            "lacks; install the torchvision build that matches its torch"
        )
    dtype = torch.float32 if device.type == "cpu" else torch.bfloat16
    model_class = getattr(transformers, _MODEL_CLASSES[spec.architecture])
    model = model_class.from_pretrained(folder, dtype=dtype, local_files_only=True)
    processor = transformers.AutoProcessor.from_pretrained(folder, local_files_only=True)
    processor.tokenizer.padding_side = "right"
    return VisionLanguageAdapter(spec, model.to(device).eval(), processor, device)


def resolve_weights(spec: ModelSpec, store: WeightsStore) -> Path:
    """The local folder with the model's files; ModelWeightsMissing when a real checkpoint is absent."""
    source = spec.source
    if source.kind == "generated":
        if spec.id not in GENERATED_MODELS:
            known = ", ".join(GENERATED_MODELS)
            raise UnknownModel(f"model {spec.id!r}: no generator for this id (generated models: {known})")
        revision, build = GENERATED_MODELS[spec.id]
        if spec.revision != revision:
            raise UnknownModel(
                f"model {spec.id!r}: the registry asks for revision {spec.revision!r}; "
                f"this NeuronLens builds {revision!r}"
            )
        return cached_model_dir(store, spec.id, revision, build)
    if source.kind != "hub-or-path" or not source.path:
        raise UnknownModel(f"model {spec.id!r}: source kind {source.kind!r} needs `path` (hub id or folder)")
    return local_checkpoint(spec, source.path)
