"""Dictionary headers without torch (service/contract/dictionary_files.py, dictionary_checks.py), on the
folders sae-lens 6.54.12 and eai-sparsify 1.3.3 wrote themselves (tests/workers/dictionary_fixtures/)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from service.contract.dictionary_checks import expected_tensors, header_errors
from service.contract.dictionary_files import DictionaryFileError, read_dictionary_header

FIXTURES = Path(__file__).parents[1] / "workers" / "dictionary_fixtures"
ROOT = Path(__file__).parents[2]


@pytest.mark.parametrize(
    ("folder", "fields"),
    [
        (
            "sae-lens/topk",
            {"kind": "sae", "architecture": "topk", "k": 3, "d_out": 8, "apply_b_dec_to_input": True},
        ),
        ("sae-lens/jumprelu", {"architecture": "jumprelu", "k": None, "hook_name": "blocks.0.hook_mlp_out"}),
        (
            "sae-lens/jumprelu_skip_transcoder",
            {"kind": "transcoder", "architecture": "jumprelu", "skip": True, "d_out": 6},
        ),
        (
            "sae-lens/transcoder",
            {"hook_name_out": "blocks.0.hook_mlp_out_next", "apply_b_dec_to_input": False},
        ),
        (
            "sparsify/groupmax",
            {"format": "sparsify", "architecture": "groupmax", "k": 4, "hook_name": "groupmax"},
        ),
        (
            "sparsify/skip-transcoder",
            {"kind": "transcoder", "skip": True, "d_out": 8, "apply_b_dec_to_input": False},
        ),
    ],
)
def test_headers_of_library_written_folders(folder: str, fields: dict[str, object]) -> None:
    header = read_dictionary_header(str(FIXTURES / folder))
    assert (header.d_in, header.d_sae, header.dtype) == (8, 16, "float32")
    assert {name: getattr(header, name) for name in fields} == fields
    assert {name: tensor.shape for name, tensor in header.tensors.items()} == expected_tensors(header)
    assert header_errors(header, 8, header.d_out) == []
    assert len(header.digest) == 32


def test_a_pre_6_sae_lens_cfg_reads_its_top_k_and_hook(tmp_path: Path) -> None:
    folder = tmp_path / "old"
    shutil.copytree(FIXTURES / "sae-lens" / "topk", folder)
    cfg = json.loads((folder / "cfg.json").read_text())
    for key in ("architecture", "k", "metadata"):
        del cfg[key]
    cfg |= {
        "activation_fn_str": "topk",
        "activation_fn_kwargs": {"k": 3},
        "hook_point": "blocks.2.hook_resid_pre",
    }
    cfg["normalize_activations"] = False
    (folder / "cfg.json").write_text(json.dumps(cfg))
    header = read_dictionary_header(str(folder))
    assert (header.architecture, header.k, header.hook_name, header.normalize_activations) == (
        "topk",
        3,
        "blocks.2.hook_resid_pre",
        "none",
    )


def test_the_digest_follows_the_bytes_and_is_cached_by_size_and_mtime(tmp_path: Path) -> None:
    folder = tmp_path / "sae"
    shutil.copytree(FIXTURES / "sae-lens" / "standard", folder)
    first = read_dictionary_header(str(folder)).digest
    copy = tmp_path / "copy"
    shutil.copytree(folder, copy)
    assert read_dictionary_header(str(copy)).digest == first
    weights = folder / "sae_weights.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 1
    weights.write_bytes(bytes(data))
    changed = read_dictionary_header(str(folder)).digest
    assert changed != first
    stat = weights.stat()
    data[-1] ^= 1
    weights.write_bytes(bytes(data))
    os.utime(weights, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert read_dictionary_header(str(folder)).digest == changed  # same size and mtime: the cached digest


def test_header_errors_name_file_and_field(tmp_path: Path) -> None:
    header = read_dictionary_header(str(FIXTURES / "sae-lens" / "skip_transcoder"))
    errors = header_errors(header, 1536, 384, hook_label="hook mlp_act of minilm-l6", out_label="hook resid")
    assert errors == [
        "cfg.json d_in is 8 but hook mlp_act of minilm-l6 yields 1536 values per token",
        "cfg.json d_out is 6 but hook resid yields 384 values per token",
    ]
    broken = header.model_copy(update={"k": None, "architecture": "topk", "tensors": {}})
    errors = header_errors(broken, 8)
    assert "cfg.json k is None but a topk dictionary needs 1 ≤ k ≤ d_sae (16)" in errors
    assert "sae_weights.safetensors has no tensor W_skip (expected shape [6, 8])" in errors


def test_unreadable_files_raise_a_named_error_with_the_path(tmp_path: Path) -> None:
    with pytest.raises(DictionaryFileError, match=f"{tmp_path}/cfg.json: no cfg.json"):
        read_dictionary_header(str(tmp_path))
    (tmp_path / "cfg.json").write_text("[1, 2]")
    (tmp_path / "sae.safetensors").write_bytes(b"\xff" * 4)
    with pytest.raises(DictionaryFileError, match="a JSON object was expected, found list"):
        read_dictionary_header(str(tmp_path))
    (tmp_path / "cfg.json").write_text('{"d_in": 8}')
    with pytest.raises(DictionaryFileError, match="4 bytes, too short for a safetensors file"):
        read_dictionary_header(str(tmp_path))
    assert issubclass(DictionaryFileError, ValueError)


def test_the_header_module_imports_without_torch_numpy_or_fsspec() -> None:
    code = (
        "import sys; import service.contract.dictionary_checks; "
        "print(sorted(m for m in ('torch', 'numpy', 'fsspec', 'safetensors') if m in sys.modules))"
    )
    found = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert found.stdout.strip() == "[]"
