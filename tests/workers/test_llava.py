"""tiny-llava: offline tokenizer and processor, seeded build, artifact-store cache, hook points, and
real-checkpoint entries that fail clearly when their weights are absent."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import LlavaForConditionalGeneration
from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil

from service.contract import ModelSpec, load_registry
from workers.data.vl_probe import caption_corpus, generate_vl_probe
from workers.errors import ModelWeightsMissing, UnknownModel
from workers.models.hooks import capture_activations
from workers.models.llava import VisionLanguageAdapter, load_llava_adapter, resolve_weights
from workers.models.tiny_llava import TINY_LLAVA_REVISION, build_tiny_llava, build_tiny_tokenizer
from workers.models.weights_cache import cached_model_dir, model_key
from workers.scan.store import FsspecArtifactStore
from workers.vocabulary.records import MODALITY_IMAGE, MODALITY_TEXT

os.environ.setdefault("HF_HUB_OFFLINE", "1")
CPU = torch.device("cpu")
LLAVA_HOOK_POINTS = tuple(load_registry().model("tiny-llava").hook_points)
"""The hook points the bundled registry offers for LLaVA models."""


def vl_spec(model_id: str = "tiny-llava", **changes: object) -> ModelSpec:
    entry: dict[str, object] = {
        "id": model_id,
        "architecture": "llava",
        "modality": "vision-language",
        "layers": 4,
        "neurons_per_layer": 256,
        "hook_points": [point.model_dump() for point in LLAVA_HOOK_POINTS],
        "revision": TINY_LLAVA_REVISION,
        "source": {"kind": "generated"},
        "datasets": ["vl-probe-v1"],
    }
    entry.update(changes)
    return ModelSpec.model_validate(entry)


@pytest.fixture(scope="module")
def tiny() -> tuple[LlavaForConditionalGeneration, object]:
    return build_tiny_llava()


def test_tokenizer_has_every_caption_word_as_one_token() -> None:
    tokenizer = build_tiny_tokenizer()
    words = {word for text in caption_corpus() for word in text.replace(".", " .").split()}
    split = {w: tokenizer.tokenize(w) for w in words if tokenizer.tokenize(w) != [w]}
    assert not split
    assert tokenizer("red")["input_ids"][0] == tokenizer.bos_token_id
    pieces = tokenizer.tokenize("zebra")  # an unseen word splits into WordPiece-style pieces
    assert len(pieces) > 1 and pieces[0] == "z" and all(p.startswith("##") for p in pieces[1:])
    assert tokenizer.decode(tokenizer("a zebra", add_special_tokens=False)["input_ids"]) == "a zebra"


def test_tokenizer_build_is_deterministic() -> None:
    assert build_tiny_tokenizer().get_vocab() == build_tiny_tokenizer().get_vocab()


def test_processor_uses_pil_backend_and_expands_image_token(tiny: tuple) -> None:
    _, processor = tiny
    assert isinstance(processor.image_processor, CLIPImageProcessorPil)
    sample = generate_vl_probe(1).samples[0]
    features = processor(text=["USER: <image>\nDescribe the image. ASSISTANT: a"], images=[sample.image])
    ids = features["input_ids"][0]
    assert ids.count(processor.image_token_id) == 64
    assert np.asarray(features["pixel_values"]).shape == (1, 3, 64, 64)


def test_seeded_build_is_reproducible(tiny: tuple) -> None:
    model, processor = tiny
    assert model.config.image_token_id == processor.image_token_id == 4
    again, _ = build_tiny_llava()
    other, _ = build_tiny_llava(seed=1)
    state, same, different = model.state_dict(), again.state_dict(), other.state_dict()
    assert all(torch.equal(state[name], same[name]) for name in state)
    assert not torch.equal(state["lm_head.weight"], different["lm_head.weight"])
    assert model.config.text_config.intermediate_size == 256
    assert model.config.text_config.hidden_act == "silu"


def test_cache_builds_once_then_loads_from_the_store(tmp_path: Path) -> None:
    store = FsspecArtifactStore(str(tmp_path / "store"))
    builds: list[int] = []

    def build() -> tuple:
        builds.append(1)
        return build_tiny_llava()

    folder = cached_model_dir(store, "tiny-llava", TINY_LLAVA_REVISION, build)
    again = cached_model_dir(store, "tiny-llava", TINY_LLAVA_REVISION, build)
    assert builds == [1]
    assert folder == again == tmp_path / "store" / model_key("tiny-llava", TINY_LLAVA_REVISION)
    assert store.verify(model_key("tiny-llava", TINY_LLAVA_REVISION))["revision"] == "seed0-v1"
    assert (folder / "model.safetensors").exists() and (folder / "tokenizer.json").exists()


def test_remote_store_is_copied_to_a_local_folder() -> None:
    store = FsspecArtifactStore("memory://neuronlens-test-llava")
    folder = cached_model_dir(store, "tiny-llava", "remote-test", build_tiny_llava)
    assert (folder / "config.json").exists()
    assert LlavaForConditionalGeneration.from_pretrained(folder).config.text_config.num_hidden_layers == 4


def test_loaded_adapter_matches_a_fresh_build(tmp_path: Path, tiny: tuple) -> None:
    model, _ = tiny
    store = FsspecArtifactStore(str(tmp_path))
    adapter = load_llava_adapter(vl_spec(), store, CPU)
    assert isinstance(adapter, VisionLanguageAdapter)
    assert adapter.patch_grid == (8, 8)
    assert isinstance(adapter.processor.image_processor, CLIPImageProcessorPil)  # type: ignore[attr-defined]
    loaded = adapter.module.state_dict()
    assert all(torch.equal(tensor, loaded[name]) for name, tensor in model.state_dict().items())


def test_hook_points_read_act_fn_output_and_down_proj_input(tmp_path: Path) -> None:
    adapter = load_llava_adapter(vl_spec(), FsspecArtifactStore(str(tmp_path)), CPU)
    samples = generate_vl_probe(3).samples[:3]
    inputs = adapter.make_batch(samples, adapter.tokenize(samples))
    mlp = adapter.module.get_submodule("model.language_model.layers.1.mlp")
    seen: dict[str, torch.Tensor] = {}
    handle = mlp.register_forward_pre_hook(lambda _m, args: seen.update(x=args[0].detach()))
    try:
        with torch.inference_mode():
            with capture_activations(adapter.module, LLAVA_HOOK_POINTS[0], [1]) as act:
                with capture_activations(adapter.module, LLAVA_HOOK_POINTS[1], [1]) as down_in:
                    adapter.forward(inputs)
    finally:
        handle.remove()
    x = seen["x"]
    with torch.inference_mode():
        expected_act = torch.nn.functional.silu(mlp.gate_proj(x))
        expected_down_in = expected_act * mlp.up_proj(x)
    assert act[1].shape == (3, inputs["input_ids"].shape[1], 256)
    torch.testing.assert_close(act[1], expected_act)
    torch.testing.assert_close(down_in[1], expected_down_in)


def test_tokenize_marks_patches_and_caption(tmp_path: Path) -> None:
    adapter = load_llava_adapter(vl_spec(), FsspecArtifactStore(str(tmp_path)), CPU)
    sample = generate_vl_probe(1).samples[0]
    (item,) = adapter.tokenize([sample])
    images = item.modality == MODALITY_IMAGE
    assert images.sum() == 64
    assert item.tokens[:2] == ("<patch 0,0>", "<patch 0,1>") and item.tokens[63] == "<patch 7,7>"
    assert item.patch_index[images].tolist() == list(range(64))
    caption = [t for t, m in zip(item.tokens, item.modality, strict=True) if m == MODALITY_TEXT]
    assert " ".join(caption) == sample.text.replace(".", " .").replace("  ", " ").strip()
    # Template tokens (BOS, USER, :, Describe the image ., ASSISTANT :) are not content.
    assert len(item.input_ids) == len(item.content_positions) + 9


def test_generated_model_revision_must_match(tmp_path: Path) -> None:
    with pytest.raises(UnknownModel, match="builds 'seed0-v1'"):
        resolve_weights(vl_spec(revision="seed9"), FsspecArtifactStore(str(tmp_path)))


def real_spec(model_id: str, architecture: str, path: str, layers: int, neurons: int) -> ModelSpec:
    return vl_spec(
        model_id,
        architecture=architecture,
        layers=layers,
        neurons_per_layer=neurons,
        revision="main",
        source={"kind": "hub-or-path", "path": path},
    )


@pytest.mark.parametrize(
    ("model_id", "architecture", "hub_id"),
    [
        ("llava-1.5-7b", "llava", "neuronlens-absent/llava-1.5-7b-hf"),
        ("qwen2-vl-2b", "qwen2-vl", "neuronlens-absent/Qwen2-VL-2B-Instruct"),
    ],
)
def test_absent_real_checkpoint_fails_at_once_saying_how_to_provide_it(
    model_id: str, architecture: str, hub_id: str, tmp_path: Path
) -> None:
    spec = real_spec(model_id, architecture, hub_id, 32, 11008)
    with pytest.raises(ModelWeightsMissing) as caught:
        load_llava_adapter(spec, FsspecArtifactStore(str(tmp_path)), CPU)
    message = str(caught.value)
    assert hub_id in message and "never downloads" in message
    assert f"huggingface-cli download {hub_id}" in message and "source.path" in message


def test_real_checkpoint_loads_from_a_local_folder(tmp_path: Path, tiny: tuple) -> None:
    model, processor = tiny
    model.save_pretrained(tmp_path / "ckpt")
    processor.save_pretrained(tmp_path / "ckpt")
    spec = real_spec("local-llava", "llava", str(tmp_path / "ckpt"), 4, 256)
    adapter = load_llava_adapter(spec, FsspecArtifactStore(str(tmp_path / "store")), CPU)
    assert adapter.module.config.text_config.num_hidden_layers == 4
    assert not (tmp_path / "store").exists()  # real checkpoints are never copied into the store


def test_folder_without_weights_is_reported(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    spec = real_spec("local-llava", "llava", str(tmp_path / "empty"), 4, 256)
    with pytest.raises(ModelWeightsMissing, match="no config.json"):
        resolve_weights(spec, FsspecArtifactStore(str(tmp_path)))


@pytest.mark.skipif(importlib.util.find_spec("torchvision") is not None, reason="this host has torchvision")
def test_qwen2_vl_without_torchvision_says_what_is_missing(tmp_path: Path) -> None:
    folder = tmp_path / "qwen"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    (folder / "model.safetensors").write_bytes(b"")
    spec = real_spec("qwen2-vl-2b", "qwen2-vl", str(folder), 28, 8960)
    with pytest.raises(UnknownModel, match="needs the torchvision package"):
        load_llava_adapter(spec, FsspecArtifactStore(str(tmp_path)), CPU)
