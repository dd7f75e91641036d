"""A dictionary's files (a sparse autoencoder or transcoder): which on-disk format a folder holds and what its
`cfg.json` and safetensors header say, read without a tensor's data (docs/dictionaries.md).

Two formats are read. SAELens (`SAE.save_model`): `cfg.json` + `sae_weights.safetensors` holding `W_enc`
[d_in, d_sae], `b_enc`, `W_dec` [d_sae, d_out], `b_dec` [d_out], `threshold` (JumpReLU) and `W_skip`
[d_out, d_in] (skip transcoders); its architecture is the cfg's `architecture` (SAELens ≥ 6) or, in older
cfgs, `activation_fn_str` / `activation_fn_kwargs.k`. EleutherAI sparsify (`SparseCoder.save_to_disk`):
`cfg.json` + `sae.safetensors` holding `encoder.weight` [d_sae, d_in], `encoder.bias`, `W_dec` [d_sae, d_in],
`b_dec` [d_in] and `W_skip` [d_in, d_in] (skip connection); the folder is named after its hookpoint.

Torch- and numpy-free (the API reads headers to validate registry entries); fsspec is imported on first use,
so the SDK, which vendors the contract without fsspec, can import this module. What is wrong with a header
that was read is said by service/contract/dictionary_checks.py.
"""

from __future__ import annotations

import hashlib
import json
import struct
import threading
from dataclasses import dataclass
from typing import Any

from pydantic import Field

from service.contract.base import ContractModel
from service.contract.dictionary_formats import (
    CFG_FILE,
    SAE_LENS_WEIGHTS,
    SPARSIFY_WEIGHTS,
    DictionaryFileError,
    DictionaryFormat,
    DictionaryKind,
    sae_lens_fields,
    sparsify_fields,
)

MAX_HEADER_BYTES = 100 * 1024 * 1024
"""Largest safetensors JSON header read (the format's own limit): a larger length means a corrupt file."""
SAFETENSORS_DTYPES = {"F64": "float64", "F32": "float32", "F16": "float16", "BF16": "bfloat16"}
"""Safetensors dtype codes of the floating-point tensors a dictionary may hold, and their torch names."""
DIGEST_CHUNK = 1 << 20


class DictionaryTensor(ContractModel):
    """One tensor of a dictionary's safetensors file, as its header describes it."""

    dtype: str = Field(description="Safetensors dtype code, e.g. `F32`, `BF16`.")
    shape: list[int] = Field(description="The tensor's shape.")


class DictionaryHeader(ContractModel):
    """What a dictionary's `cfg.json` and safetensors header say, and a digest of both files' bytes."""

    folder: str = Field(description="The folder read (local path or fsspec URL), as given.")
    format: DictionaryFormat = Field(description="`sae-lens` or `sparsify`: which files the folder holds.")
    kind: DictionaryKind = Field(description="`sae` (reconstructs its input) or `transcoder`.")
    architecture: str = Field(
        description="The encoder's activation rule: `standard` (ReLU), `topk`, `jumprelu` or `groupmax` "
        "(sparsify); any other value is the cfg's own name for an architecture this version does not run."
    )
    cfg_architecture: str = Field(
        description="The architecture as the cfg names it: SAELens's `architecture` (e.g. "
        "`jumprelu_skip_transcoder`) or, for sparsify, its `activation`, plus ` transcoder` when transcoding."
    )
    d_in: int = Field(description="Input width: values per token the dictionary reads.")
    d_sae: int = Field(description="Number of latents.")
    d_out: int = Field(
        description="Output width: `d_in` for SAEs, the predicted hook's width for transcoders."
    )
    skip: bool = Field(
        description="Whether a linear skip connection `W_skip` adds `x @ W_skip.T` to the output."
    )
    hook_name: str | None = Field(
        description="The hook the cfg says it was trained on (SAELens `metadata.hook_name`, or the sparsify "
        "folder's name, its hookpoint); null when the cfg names none. Informational: NeuronLens attaches "
        "a dictionary to a registry hook point."
    )
    hook_name_out: str | None = Field(
        description="A transcoder's output hook as its cfg names it (SAELens `metadata.hook_name_out`); null "
        "when not named."
    )
    k: int | None = Field(
        description="Active latents per token (top-k) or groups (groupmax); null otherwise."
    )
    apply_b_dec_to_input: bool = Field(description="Whether `b_dec` is subtracted from the input first.")
    rescale_acts_by_decoder_norm: bool = Field(
        description="SAELens top-k: pre-activations are multiplied by each decoder row's norm before "
        "the top-k."
    )
    normalize_activations: str = Field(
        description="SAELens's input normalisation (`none`, `expected_average_only_in`, `layer_norm`, …); "
        "only `none` is run."
    )
    reshape_activations: str = Field(
        description="SAELens's input reshaping (`none` or `hook_z`); only `none` runs."
    )
    finetuning_scaling_factor: bool = Field(
        description="Older SAELens cfgs: a per-latent scaling factor multiplies latents before "
        "decoding; not run."
    )
    dtype: str = Field(description="Torch dtype name of the stored encoder weight, e.g. `float32`.")
    tensors: dict[str, DictionaryTensor] = Field(description="Every tensor of the weights file, by name.")
    cfg_file: str = Field(description="Name of the config file inside the folder (`cfg.json`).")
    weights_file: str = Field(description="Name of the weights file inside the folder.")
    weights_bytes: int = Field(description="Size of the weights file in bytes.")
    digest: str = Field(
        description="BLAKE2b-128 hex digest of the cfg file's bytes, then the weights file's."
    )


@dataclass(frozen=True)
class DictionaryFolder:
    """A folder's filesystem (fsspec) and its root path."""

    fs: Any
    root: str

    def path(self, name: str) -> str:
        return f"{self.root}/{name}"


def open_folder(folder: str) -> DictionaryFolder:
    """The fsspec filesystem of a local path or URL (fsspec is imported here, not at module import)."""
    from fsspec.core import url_to_fs

    fs, root = url_to_fs(folder)
    return DictionaryFolder(fs, str(root).rstrip("/") or "/")


def read_dictionary_header(folder: str) -> DictionaryHeader:
    """Detect the format of ``folder`` and read its cfg and safetensors header (no tensor data), and the
    digest of both files (cached per file size and modification time). DictionaryFileError when a file is
    missing, unreadable or malformed, with its path."""
    where = open_folder(folder)
    cfg_path = where.path(CFG_FILE)
    if not where.fs.isfile(cfg_path):
        raise DictionaryFileError(f"{cfg_path}: no {CFG_FILE} in the dictionary folder {folder!r}")
    if where.fs.isfile(where.path(SAE_LENS_WEIGHTS)):
        format_: DictionaryFormat = "sae-lens"
        weights_file = SAE_LENS_WEIGHTS
    elif where.fs.isfile(where.path(SPARSIFY_WEIGHTS)):
        format_, weights_file = "sparsify", SPARSIFY_WEIGHTS
    else:
        raise DictionaryFileError(
            f"{folder}: neither {SAE_LENS_WEIGHTS} (SAELens) nor {SPARSIFY_WEIGHTS} (sparsify) "
            "is in the folder"
        )
    cfg_bytes = _read_bytes(where, cfg_path)
    cfg = _parse_cfg(cfg_bytes, cfg_path)
    weights_path = where.path(weights_file)
    tensors, weights_bytes = read_safetensors_header(where, weights_path)
    fields = (
        sae_lens_fields(cfg, cfg_path)
        if format_ == "sae-lens"
        else sparsify_fields(cfg, cfg_path, where.root)
    )
    return DictionaryHeader(
        folder=folder,
        format=format_,
        dtype=_encoder_dtype(tensors),
        tensors=tensors,
        cfg_file=CFG_FILE,
        weights_file=weights_file,
        weights_bytes=weights_bytes,
        digest=dictionary_digest(where, cfg_path, weights_path),
        **fields,
    )


def _read_bytes(where: DictionaryFolder, path: str) -> bytes:
    try:
        with where.fs.open(path, "rb") as handle:
            data: bytes = handle.read()
            return data
    except OSError as exc:
        raise DictionaryFileError(f"{path}: cannot be read ({exc})") from None


def _parse_cfg(data: bytes, path: str) -> dict[str, Any]:
    try:
        cfg = json.loads(data)
    except (UnicodeDecodeError, ValueError) as exc:
        raise DictionaryFileError(f"{path}: not JSON ({exc})") from None
    if not isinstance(cfg, dict):
        raise DictionaryFileError(f"{path}: a JSON object was expected, found {type(cfg).__name__}")
    return cfg


def read_safetensors_header(where: DictionaryFolder, path: str) -> tuple[dict[str, DictionaryTensor], int]:
    """The tensors a safetensors file's header lists (8-byte little-endian length, then that much JSON), and
    the file's size; DictionaryFileError when the header is malformed or the file shorter than it says."""
    try:
        size = int(where.fs.size(path))
        with where.fs.open(path, "rb") as handle:
            prefix = handle.read(8)
            if len(prefix) < 8:
                raise DictionaryFileError(f"{path}: {len(prefix)} bytes, too short for a safetensors file")
            (length,) = struct.unpack("<Q", prefix)
            if length > MAX_HEADER_BYTES or 8 + length > size:
                raise DictionaryFileError(f"{path}: header length {length} does not fit a {size}-byte file")
            raw = handle.read(length)
    except OSError as exc:
        raise DictionaryFileError(f"{path}: cannot be read ({exc})") from None
    try:
        header = json.loads(raw)
    except (UnicodeDecodeError, ValueError) as exc:
        raise DictionaryFileError(f"{path}: the safetensors header is not JSON ({exc})") from None
    if not isinstance(header, dict):
        raise DictionaryFileError(f"{path}: the safetensors header is not a JSON object")
    tensors: dict[str, DictionaryTensor] = {}
    data_end = 0
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        try:
            tensors[name] = DictionaryTensor(dtype=entry["dtype"], shape=entry["shape"])
            data_end = max(data_end, int(entry["data_offsets"][1]))
        except (KeyError, TypeError, IndexError, ValueError):
            raise DictionaryFileError(f"{path}: the header entry of tensor {name!r} is malformed") from None
    if 8 + length + data_end > size:
        raise DictionaryFileError(
            f"{path}: truncated: the header needs {8 + length + data_end} bytes, the file has {size}"
        )
    return tensors, size


def _encoder_dtype(tensors: dict[str, DictionaryTensor]) -> str:
    """The torch dtype name of the encoder weight (the code when not a float type; header_errors says so)."""
    entry = tensors.get("W_enc") or tensors.get("encoder.weight") or next(iter(tensors.values()), None)
    if entry is None:
        return "none"
    return SAFETENSORS_DTYPES.get(entry.dtype, entry.dtype)


_DIGESTS: dict[tuple[Any, ...], str] = {}
_DIGEST_LOCK = threading.Lock()


def _file_identity(where: DictionaryFolder, path: str) -> tuple[Any, ...]:
    """(path, size, modification time) as the filesystem reports them: a digest cache key."""
    info = where.fs.info(path)
    stamp = next(
        (info[key] for key in ("mtime", "LastModified", "updated", "created", "ETag", "etag") if key in info),
        None,
    )
    return (path, info.get("size"), str(stamp))


def dictionary_digest(where: DictionaryFolder, cfg_path: str, weights_path: str) -> str:
    """BLAKE2b-128 hex of the cfg bytes then the weights bytes (streamed), each preceded by its length so
    that no two pairs of files share a digest; cached in-process by each file's (url, size, mtime)."""
    key = (type(where.fs).__name__, _file_identity(where, cfg_path), _file_identity(where, weights_path))
    with _DIGEST_LOCK:
        cached = _DIGESTS.get(key)
    if cached is not None:
        return cached
    digest = hashlib.blake2b(digest_size=16)
    for path in (cfg_path, weights_path):
        digest.update(struct.pack("<Q", int(where.fs.size(path))))
        with where.fs.open(path, "rb") as handle:
            while chunk := handle.read(DIGEST_CHUNK):
                digest.update(chunk)
    value = digest.hexdigest()
    with _DIGEST_LOCK:
        _DIGESTS[key] = value
    return value
