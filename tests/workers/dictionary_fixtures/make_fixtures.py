"""Writes the dictionary fixtures of tests/workers/test_dictionaries.py with the libraries themselves.

Not run by the tests (the project does not depend on sae-lens or eai-sparsify): run it by hand in a throwaway
virtual environment holding them, e.g.

    python3 -m venv /tmp/saelens-venv && /tmp/saelens-venv/bin/pip install torch==2.13.0 sae-lens
    /tmp/saelens-venv/bin/python tests/workers/dictionary_fixtures/make_fixtures.py sae-lens

    python3 -m venv /tmp/sparsify-venv && /tmp/sparsify-venv/bin/pip install torch==2.13.0 eai-sparsify
    /tmp/sparsify-venv/bin/python tests/workers/dictionary_fixtures/make_fixtures.py sparsify

Each architecture gets a folder written by the library's own save function (SAELens `SAE.save_model`,
sparsify `SparseCoder.save_to_disk`) from seeded random weights, and `expected.json` gets, per folder, the
library's own `encode` (as dense latents) and reconstruction of INPUTS, which the test compares against.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import torch

HERE = Path(__file__).resolve().parent
D_IN, D_SAE, D_OUT, K = 8, 16, 6, 3
N_INPUTS = 5


def inputs() -> torch.Tensor:
    """The fixed inputs every folder is encoded on (also stored in expected.json)."""
    generator = torch.Generator().manual_seed(1)
    return torch.randn(N_INPUTS, D_IN, generator=generator)


def randomise(module: torch.nn.Module, seed: int) -> None:
    """Every parameter random (biases and thresholds too), so each term of the formula counts."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, parameter in sorted(module.named_parameters()):
            values = torch.randn(parameter.shape, generator=generator) * 0.5
            if name == "threshold":
                values = values.abs() * 0.5
            parameter.copy_(values)


def rounded(tensor: torch.Tensor) -> list[Any]:
    return [[round(float(value), 6) for value in row] for row in tensor.reshape(-1, tensor.shape[-1])]


def sae_lens_fixtures() -> dict[str, Any]:
    import sae_lens
    from sae_lens.registry import get_sae_class

    cases: dict[str, dict[str, Any]] = {
        "standard": {},
        "topk": {"k": K},
        "topk-rescaled": {"k": K, "rescale_acts_by_decoder_norm": True},
        "jumprelu": {},
        "no-b-dec-input": {"apply_b_dec_to_input": False},
        "transcoder": {"d_out": D_OUT, "apply_b_dec_to_input": False},
        "skip_transcoder": {"d_out": D_OUT, "apply_b_dec_to_input": False},
        "jumprelu_transcoder": {"d_out": D_OUT, "apply_b_dec_to_input": False},
        "jumprelu_skip_transcoder": {"d_out": D_OUT, "apply_b_dec_to_input": False},
    }
    x = inputs()
    expected: dict[str, Any] = {"library": f"sae-lens {sae_lens.__version__}", "inputs": rounded(x)}
    for seed, (name, extra) in enumerate(cases.items()):
        architecture = {"topk-rescaled": "topk", "no-b-dec-input": "standard"}.get(name, name)
        sae_class, config_class = get_sae_class(architecture)
        config = config_class(d_in=D_IN, d_sae=D_SAE, **extra)
        config.metadata.hook_name = "blocks.0.hook_mlp_out"
        if "transcoder" in name:
            config.metadata.hook_name_out = "blocks.0.hook_mlp_out_next"
        sae = sae_class(config)
        randomise(sae, seed)
        folder = HERE / "sae-lens" / name
        sae.save_model(folder)
        with torch.no_grad():
            latents = sae.encode(x)
            output = sae.forward(x)
        expected[name] = {"latents": rounded(latents), "output": rounded(output)}
    return expected


def sparsify_fixtures() -> dict[str, Any]:
    from importlib.metadata import version

    from sparsify import SparseCoder, SparseCoderConfig

    cases: dict[str, dict[str, Any]] = {
        "topk": {"k": K, "num_latents": D_SAE},
        "groupmax": {"k": 4, "num_latents": D_SAE, "activation": "groupmax"},
        "transcoder": {"k": K, "num_latents": D_SAE, "transcode": True},
        "skip-transcoder": {"k": K, "num_latents": D_SAE, "transcode": True, "skip_connection": True},
    }
    x = inputs()
    expected: dict[str, Any] = {"library": f"eai-sparsify {version('eai-sparsify')}", "inputs": rounded(x)}
    for seed, (name, extra) in enumerate(cases.items()):
        coder = SparseCoder(D_IN, SparseCoderConfig(**extra))
        randomise(coder, seed)
        folder = HERE / "sparsify" / name
        coder.save_to_disk(folder)
        with torch.no_grad():
            encoded = coder.encode(x)
            latents = torch.zeros(N_INPUTS, D_SAE).scatter(-1, encoded.top_indices, encoded.top_acts)
            output = coder.forward(x).sae_out
        expected[name] = {"latents": rounded(latents), "output": rounded(output)}
    return expected


if __name__ == "__main__":
    which = sys.argv[1]
    result = sae_lens_fixtures() if which == "sae-lens" else sparsify_fixtures()
    (HERE / which / "expected.json").write_text(json.dumps(result, indent=1) + "\n")
