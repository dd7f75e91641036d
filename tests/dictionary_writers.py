"""Write dictionary folders exactly as SAELens's `SAE.save_model` and sparsify's `SparseCoder.save_to_disk`
do (same file names, tensor names and shapes, cfg keys), for tests and the trained test SAE; the folders
under tests/workers/dictionary_fixtures/ were written by the libraries themselves and check these writers."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file

SAE_LENS_VERSION = "6.54.12"
"""The SAELens version whose `save_model` output these folders copy (cfg keys and metadata)."""


def write_sae_lens(
    folder: Path,
    tensors: dict[str, torch.Tensor],
    architecture: str = "standard",
    hook_name: str = "",
    hook_name_out: str | None = None,
    **cfg: Any,
) -> Path:
    """A SAELens folder: `cfg.json` (SAELens ≥ 6 keys) and `sae_weights.safetensors` holding ``tensors``
    (W_enc [d_in, d_sae], b_enc, W_dec [d_sae, d_out], b_dec, threshold, W_skip [d_out, d_in])."""
    folder.mkdir(parents=True, exist_ok=True)
    d_in, d_sae = tensors["W_enc"].shape
    transcoder = "transcoder" in architecture
    metadata: dict[str, Any] = {
        "sae_lens_version": SAE_LENS_VERSION,
        "sae_lens_training_version": SAE_LENS_VERSION,
        "hook_name": hook_name,
    }
    if hook_name_out is not None:
        metadata["hook_name_out"] = hook_name_out
    config: dict[str, Any] = {
        "d_in": int(d_in),
        "d_sae": int(d_sae),
        "dtype": str(tensors["W_enc"].dtype).removeprefix("torch."),
        "device": "cpu",
        "apply_b_dec_to_input": not transcoder,
        "normalize_activations": "none",
        "reshape_activations": "none",
        "metadata": metadata,
        "architecture": architecture,
    }
    if transcoder:
        config["d_out"] = int(tensors["W_dec"].shape[1])
    config.update(cfg)
    save_file(
        {name: tensor.contiguous() for name, tensor in tensors.items()}, folder / "sae_weights.safetensors"
    )
    (folder / "cfg.json").write_text(json.dumps(config))
    return folder


def write_sparsify(folder: Path, tensors: dict[str, torch.Tensor], k: int, **cfg: Any) -> Path:
    """A sparsify folder: `cfg.json` (SparseCoderConfig fields plus `d_in`) and `sae.safetensors` holding
    ``tensors`` (encoder.weight [d_sae, d_in], encoder.bias, W_dec [d_sae, d_in], b_dec, W_skip)."""
    folder.mkdir(parents=True, exist_ok=True)
    d_sae, d_in = tensors["encoder.weight"].shape
    config: dict[str, Any] = {
        "activation": "topk",
        "expansion_factor": 32,
        "normalize_decoder": True,
        "num_latents": int(d_sae),
        "k": k,
        "multi_topk": False,
        "skip_connection": "W_skip" in tensors,
        "transcode": False,
        "d_in": int(d_in),
    }
    config.update(cfg)
    save_file({name: tensor.contiguous() for name, tensor in tensors.items()}, folder / "sae.safetensors")
    (folder / "cfg.json").write_text(json.dumps(config))
    return folder


def sparsify_tensors(sae_lens_tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The same SAE's tensors under sparsify's names and layout (encoder.weight is W_encᵀ)."""
    renamed = {
        "encoder.weight": sae_lens_tensors["W_enc"].T.contiguous(),
        "encoder.bias": sae_lens_tensors["b_enc"],
        "W_dec": sae_lens_tensors["W_dec"],
        "b_dec": sae_lens_tensors["b_dec"],
    }
    if "W_skip" in sae_lens_tensors:
        renamed["W_skip"] = sae_lens_tensors["W_skip"]
    return renamed
