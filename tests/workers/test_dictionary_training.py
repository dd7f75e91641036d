"""The trained test SAEs (tests/dictionary_training.py): TEST_RECIPE (one layer, 512 samples, 60 steps), the
one the API tests use too (trained once per session), and VL_RECIPE; the full recipe (two layers, 1,024
samples, 160 steps) is what the bench trains."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from service.contract import load_registry
from service.contract.dictionary_checks import header_errors
from service.contract.dictionary_files import read_dictionary_header
from tests.dictionary_training import (
    TEST_RECIPE,
    VL_RECIPE,
    TrainedDictionaries,
    cached_test_dictionaries,
    collect_activations,
    shared_test_dictionaries,
)
from workers.models.dictionaries import load_dictionary

SMALL = TEST_RECIPE


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> TrainedDictionaries:
    return shared_test_dictionaries(tmp_path_factory, SMALL)


def test_the_planted_latent_fires_on_every_digit_token_and_nowhere_else(trained: TrainedDictionaries) -> None:
    layer = trained.layers[2]
    assert layer.concept_tokens > 20 and trained.tokens > 10 * layer.concept_tokens
    assert (layer.planted_recall, layer.planted_false_fires) == (1.0, 0)
    assert (layer.d_in, layer.d_sae, trained.planted_latent) == (1536, 3072, SMALL.planted_latent)
    assert 0 < layer.fvu < 0.6, "trained: well below the FVU of 1 that the mean alone has"


def test_both_formats_load_for_the_hook_and_encode_alike(trained: TrainedDictionaries) -> None:
    minilm = load_registry().model("minilm-l6")
    sae_lens = load_dictionary(trained.sae_lens_folder(2), hook_width=minilm.neurons_per_layer)
    sparsify = load_dictionary(trained.layers[2].sparsify_folder, hook_width=minilm.neurons_per_layer)
    assert (sae_lens.header.format, sparsify.header.format) == ("sae-lens", "sparsify")
    assert sae_lens.header.hook_name == "encoder.layer.2.intermediate"
    assert header_errors(sae_lens.header, 1536) == [] and sae_lens.header.k == 32
    activations, tokens = collect_activations(minilm, SMALL, str(Path(trained.folder) / "weights-store"))
    x = activations[2][:500]
    latents = sae_lens.encode(x)
    torch.testing.assert_close(sparsify.encode(x), latents, atol=1e-4, rtol=1e-4)
    assert int((latents > 0).sum(-1).max()) <= 32
    fires = latents[:, trained.planted_latent] > 0
    digits = [token for token, fired in zip(tokens[:500], fires.tolist(), strict=True) if fired]
    assert digits and all(token.removeprefix("##").isdigit() for token in digits)


def test_a_finished_folder_is_reused_and_another_recipe_retrains(trained: TrainedDictionaries) -> None:
    folder = Path(trained.folder)
    digest = read_dictionary_header(trained.sae_lens_folder(2)).digest
    assert cached_test_dictionaries(folder, SMALL) == trained
    assert read_dictionary_header(trained.sae_lens_folder(2)).digest == digest


def test_a_latent_aligned_to_a_planted_visual_neuron_fires_on_image_patches_only(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    trained = shared_test_dictionaries(tmp_path_factory, VL_RECIPE)
    folder = Path(trained.folder)
    layer = trained.layers[2]
    assert (layer.d_in, layer.d_sae, layer.planted_recall, layer.planted_false_fires) == (256, 512, 1.0, 0)
    spec = load_registry().model("tiny-llava-planted")
    activations, tokens = collect_activations(spec, VL_RECIPE, str(folder / "weights-store"))
    fires = (
        load_dictionary(trained.sae_lens_folder(2)).encode(activations[2])[:, VL_RECIPE.planted_latent] > 0
    )
    fired = [token for token, fire in zip(tokens, fires.tolist(), strict=True) if fire]
    assert len(fired) == layer.concept_tokens > 100 and all(token.startswith("<patch ") for token in fired)
