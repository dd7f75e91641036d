"""Dictionaries (SAEs, transcoders) on the torch side: workers/models/dictionaries.py.

The folders under dictionary_fixtures/ were written by the libraries themselves, and expected.json holds
their own encode (dense latents) and forward outputs on fixed inputs: sae-lens 6.54.12 `SAE.save_model`
and eai-sparsify 1.3.3 `SparseCoder.save_to_disk`, each in a throwaway virtual environment with torch 2.13.0,
by dictionary_fixtures/make_fixtures.py (its docstring has the commands). The other tests check encode and
decode against plain-torch formulas written here from the libraries' code, on seeded random weights.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file

from tests.dictionary_writers import sparsify_tensors, write_sae_lens, write_sparsify
from workers.errors import InvalidDictionary, InvalidRequest
from workers.models.dictionaries import dictionary_bytes, load_dictionary

FIXTURES = Path(__file__).with_name("dictionary_fixtures")
D_IN, D_SAE, D_OUT, K = 24, 64, 20, 5


def library_cases() -> list[tuple[str, str]]:
    cases = []
    for library in ("sae-lens", "sparsify"):
        expected = json.loads((FIXTURES / library / "expected.json").read_text())
        cases += [(library, name) for name in expected if name not in ("library", "inputs")]
    return cases


@pytest.mark.parametrize(("library", "name"), library_cases())
def test_folders_written_by_the_libraries_encode_and_decode_as_the_libraries_do(
    library: str, name: str
) -> None:
    expected = json.loads((FIXTURES / library / "expected.json").read_text())
    x = torch.tensor(expected["inputs"])
    dictionary = load_dictionary(str(FIXTURES / library / name))
    latents = dictionary.encode(x)
    torch.testing.assert_close(latents, torch.tensor(expected[name]["latents"]), atol=1e-5, rtol=0)
    torch.testing.assert_close(
        dictionary.reconstruct(x), torch.tensor(expected[name]["output"]), atol=1e-5, rtol=0
    )


@pytest.mark.parametrize(
    ("library", "name", "options"),
    [
        ("sae-lens", "topk", {"architecture": "topk", "k": 3, "rescale_acts_by_decoder_norm": False}),
        ("sae-lens", "jumprelu_skip_transcoder", {"architecture": "jumprelu_skip_transcoder"}),
        ("sparsify", "groupmax", {"k": 4, "activation": "groupmax"}),
        ("sparsify", "skip-transcoder", {"k": 3, "transcode": True}),
    ],
)
def test_the_test_writers_write_what_the_libraries_write(
    tmp_path: Path, library: str, name: str, options: dict[str, Any]
) -> None:
    """tests/dictionary_writers.py (used by the trained test SAE) against the libraries' own folders."""
    original = FIXTURES / library / name
    if library == "sae-lens":
        tensors = load_file(original / "sae_weights.safetensors")
        cfg = json.loads((original / "cfg.json").read_text())
        hooks = {key: cfg["metadata"].get(key) for key in ("hook_name", "hook_name_out")}
        written = write_sae_lens(tmp_path / name, tensors, **options, **hooks)
    else:
        tensors = load_file(original / "sae.safetensors")
        written = write_sparsify(tmp_path / name, tensors, **options)
    assert json.loads((written / "cfg.json").read_text()) == json.loads(
        (original / "cfg.json").read_text()
    ) or (library == "sae-lens" and json.loads((written / "cfg.json").read_text()) == cfg)
    weights = "sae_weights.safetensors" if library == "sae-lens" else "sae.safetensors"
    assert (written / weights).read_bytes() == (original / weights).read_bytes()


def random_tensors(architecture: str, seed: int = 0) -> dict[str, torch.Tensor]:
    """SAELens-named tensors, every term random (thresholds positive), so each term of a formula counts."""
    generator = torch.Generator().manual_seed(seed)
    d_out = D_OUT if "transcoder" in architecture else D_IN

    def random(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=generator) * 0.4

    tensors = {
        "W_enc": random(D_IN, D_SAE),
        "b_enc": random(D_SAE),
        "W_dec": random(D_SAE, d_out),
        "b_dec": random(d_out),
    }
    if "jumprelu" in architecture:
        tensors["threshold"] = random(D_SAE).abs()
    if "skip" in architecture:
        tensors["W_skip"] = random(d_out, D_IN)
    return tensors


def plain_latents(t: dict[str, torch.Tensor], x: torch.Tensor, architecture: str, **cfg: Any) -> torch.Tensor:
    """The libraries' encode written out longhand, token by token's worth of broadcasting, no folding."""
    sae_in = x - t["b_dec"] if cfg.get("apply_b_dec_to_input", "transcoder" not in architecture) else x
    pre = sae_in @ t["W_enc"] + t["b_enc"]
    if architecture == "topk":
        if cfg.get("rescale_acts_by_decoder_norm"):
            pre = pre * t["W_dec"].norm(dim=-1)
        values, indices = torch.topk(pre, K, dim=-1)
        return torch.zeros_like(pre).scatter(-1, indices, torch.relu(values))
    if "jumprelu" in architecture:
        return torch.relu(pre) * (pre > t["threshold"]).float()
    return torch.relu(pre)


def plain_output(
    t: dict[str, torch.Tensor], latents: torch.Tensor, x: torch.Tensor, **cfg: Any
) -> torch.Tensor:
    if cfg.get("rescale_acts_by_decoder_norm"):
        latents = latents / t["W_dec"].norm(dim=-1)
    out = latents @ t["W_dec"] + t["b_dec"]
    return out + x @ t["W_skip"].T if "W_skip" in t else out


SAE_LENS_CASES: list[tuple[str, dict[str, Any]]] = [
    ("standard", {}),
    ("standard", {"apply_b_dec_to_input": False}),
    ("topk", {"k": K}),
    ("topk", {"k": K, "rescale_acts_by_decoder_norm": True}),
    ("jumprelu", {}),
    ("transcoder", {}),
    ("skip_transcoder", {}),
    ("jumprelu_transcoder", {}),
    ("jumprelu_skip_transcoder", {}),
]


@pytest.fixture(scope="module")
def batch() -> torch.Tensor:
    """[B, T, d_in], as the scan's hook hands over."""
    return torch.randn(3, 7, D_IN, generator=torch.Generator().manual_seed(5))


@pytest.mark.parametrize(("architecture", "cfg"), SAE_LENS_CASES)
def test_sae_lens_encode_and_decode_match_the_plain_formula_on_a_batch(
    tmp_path: Path, batch: torch.Tensor, architecture: str, cfg: dict[str, Any]
) -> None:
    tensors = random_tensors(architecture)
    folder = write_sae_lens(tmp_path / "sae", tensors, architecture, **cfg)
    dictionary = load_dictionary(str(folder))
    latents = dictionary.encode(batch)
    assert latents.shape == (3, 7, D_SAE) and latents.dtype == torch.float32
    expected = plain_latents(tensors, batch, architecture, **cfg)
    torch.testing.assert_close(latents, expected, atol=1e-5, rtol=1e-5)
    assert bool((latents > 0).any()) and bool((latents == 0).any())
    output = dictionary.decode(latents, batch)
    assert output.shape == (3, 7, tensors["b_dec"].shape[0])
    torch.testing.assert_close(output, plain_output(tensors, expected, batch, **cfg), atol=1e-5, rtol=1e-5)


def test_sparsify_topk_and_groupmax_match_the_plain_formula(tmp_path: Path, batch: torch.Tensor) -> None:
    t = random_tensors("standard")
    topk = load_dictionary(str(write_sparsify(tmp_path / "topk", sparsify_tensors(t), k=K)))
    pre = torch.relu((batch - t["b_dec"]) @ t["W_enc"] + t["b_enc"])
    values, indices = pre.topk(K, dim=-1)
    torch.testing.assert_close(
        topk.encode(batch), torch.zeros_like(pre).scatter(-1, indices, values), atol=1e-5, rtol=0
    )
    groupmax = load_dictionary(
        str(write_sparsify(tmp_path / "groupmax", sparsify_tensors(t), k=8, activation="groupmax"))
    )
    groups = pre.reshape(3, 7, 8, D_SAE // 8)
    winners = groups == groups.amax(dim=-1, keepdim=True)
    torch.testing.assert_close(
        groupmax.encode(batch), (groups * winners).reshape(3, 7, D_SAE), atol=1e-5, rtol=0
    )


def test_transcoders_of_sparsify_do_not_subtract_b_dec(tmp_path: Path, batch: torch.Tensor) -> None:
    t = random_tensors("standard")
    folder = write_sparsify(tmp_path / "tc", sparsify_tensors(t), k=D_SAE, transcode=True)
    latents = load_dictionary(str(folder)).encode(batch)
    torch.testing.assert_close(latents, torch.relu(batch @ t["W_enc"] + t["b_enc"]), atol=1e-5, rtol=0)


def test_half_precision_inputs_come_back_float32_and_bf16_weights_compute(
    tmp_path: Path, batch: torch.Tensor
) -> None:
    tensors = random_tensors("standard")
    folder = str(write_sae_lens(tmp_path / "sae", tensors))
    exact = plain_latents(tensors, batch, "standard")
    from_bf16 = load_dictionary(folder).encode(batch.to(torch.bfloat16))
    assert from_bf16.dtype == torch.float32
    torch.testing.assert_close(from_bf16, exact, atol=0.05, rtol=0.05)
    in_bf16 = load_dictionary(folder, dtype=torch.bfloat16)
    assert in_bf16.encoder.dtype == torch.bfloat16 and in_bf16.encode(batch).dtype == torch.float32
    torch.testing.assert_close(in_bf16.encode(batch), exact, atol=0.1, rtol=0.05)


def test_a_skip_transcoder_decode_needs_the_input(tmp_path: Path, batch: torch.Tensor) -> None:
    dictionary = load_dictionary(
        str(write_sae_lens(tmp_path / "s", random_tensors("skip_transcoder"), "skip_transcoder"))
    )
    with pytest.raises(ValueError, match="needs the input x"):
        dictionary.decode(dictionary.encode(batch))


def invalid(folder: Path, **widths: Any) -> str:
    with pytest.raises(InvalidDictionary) as caught:
        load_dictionary(str(folder), **widths)
    assert isinstance(caught.value, InvalidRequest)
    return str(caught.value)


def test_a_d_in_unlike_the_hook_width_is_refused_with_both_widths(tmp_path: Path) -> None:
    folder = write_sae_lens(tmp_path / "sae", random_tensors("standard"))
    message = invalid(folder, hook_width=1536, hook_label="hook mlp_act of minilm-l6")
    assert f"cfg.json d_in is {D_IN} but hook mlp_act of minilm-l6 yields 1536 values per token" in message
    transcoder = write_sae_lens(tmp_path / "tc", random_tensors("transcoder"), "transcoder")
    message = invalid(transcoder, hook_width=D_IN, out_width=384, out_label="hook resid of minilm-l6")
    assert f"cfg.json d_out is {D_OUT} but hook resid of minilm-l6 yields 384 values per token" in message


def test_an_unsupported_architecture_or_normalisation_is_refused(tmp_path: Path) -> None:
    gated = write_sae_lens(tmp_path / "gated", random_tensors("standard"), "gated")
    assert "cfg.json architecture 'gated' is not supported (supported: standard, topk, jumprelu" in invalid(
        gated
    )
    layer_norm = write_sae_lens(
        tmp_path / "ln", random_tensors("standard"), normalize_activations="layer_norm"
    )
    assert "cfg.json normalize_activations is 'layer_norm': only 'none' is supported" in invalid(layer_norm)
    signed = write_sparsify(
        tmp_path / "signed", sparsify_tensors(random_tensors("standard")), k=K, signed=True
    )
    assert "cfg.json activation 'signed topk' is not supported (supported: topk, groupmax)" in invalid(signed)


def test_non_finite_weights_are_refused_with_the_tensor_and_count(tmp_path: Path) -> None:
    tensors = random_tensors("jumprelu")
    tensors["W_enc"][0, :3] = math.nan
    tensors["threshold"][5] = math.inf
    message = invalid(write_sae_lens(tmp_path / "nan", tensors, "jumprelu"))
    assert "sae_weights.safetensors W_enc has 3 non-finite values (NaN or ±inf)" in message
    assert "sae_weights.safetensors threshold has 1 non-finite values" in message


def test_missing_files_and_tensors_are_refused_with_their_path(tmp_path: Path) -> None:
    folder = write_sae_lens(tmp_path / "sae", random_tensors("standard"))
    (folder / "sae_weights.safetensors").unlink()
    assert "neither sae_weights.safetensors (SAELens) nor sae.safetensors (sparsify)" in invalid(folder)
    assert f"{tmp_path}/nowhere/cfg.json: no cfg.json in the dictionary folder" in invalid(
        tmp_path / "nowhere"
    )
    tensors = random_tensors("jumprelu")
    del tensors["threshold"]
    message = invalid(write_sae_lens(tmp_path / "jr", tensors, "jumprelu"))
    assert f"sae_weights.safetensors has no tensor threshold (expected shape [{D_SAE}])" in message


def test_shapes_unlike_the_cfg_are_refused(tmp_path: Path) -> None:
    tensors = random_tensors("standard")
    folder = write_sae_lens(tmp_path / "sae", tensors, d_sae=D_SAE + 1)
    message = invalid(folder)
    assert f"sae_weights.safetensors W_enc has shape [{D_IN}, {D_SAE}] but cfg.json " in message
    assert f"calls for [{D_IN}, {D_SAE + 1}]" in message


def test_malformed_cfg_and_weights_are_refused(tmp_path: Path) -> None:
    folder = write_sae_lens(tmp_path / "sae", random_tensors("standard"))
    (folder / "cfg.json").write_text("{not json")
    assert f"{folder}/cfg.json: not JSON" in invalid(folder)
    write_sae_lens(folder, random_tensors("standard"), d_in="24")
    assert "cfg.json: d_in must be int, found '24'" in invalid(folder)
    write_sae_lens(folder, random_tensors("standard"))
    weights = folder / "sae_weights.safetensors"
    weights.write_bytes(weights.read_bytes()[:-10])
    assert "truncated" in invalid(folder)


def test_a_dictionary_loads_from_an_fsspec_url(batch: torch.Tensor, tmp_path: Path) -> None:
    import fsspec

    local = write_sae_lens(tmp_path / "sae", random_tensors("topk"), "topk", k=K)
    memory = fsspec.filesystem("memory")
    for name in ("cfg.json", "sae_weights.safetensors"):
        memory.pipe_file(f"/dicts/topk/{name}", (local / name).read_bytes())
    remote = load_dictionary("memory://dicts/topk")
    torch.testing.assert_close(remote.encode(batch), load_dictionary(str(local)).encode(batch))
    assert remote.header.digest == load_dictionary(str(local)).header.digest


def test_device_bytes_count_every_tensor() -> None:
    header = load_dictionary(str(FIXTURES / "sae-lens" / "skip_transcoder")).header
    assert dictionary_bytes(header) == 4 * (8 * 16 + 16 + 16 * 6 + 6 + 6 * 8)
