"""Dictionaries (sparse autoencoders, transcoders) on a device: `load_dictionary` reads a SAELens or sparsify
folder (service/contract/dictionary_files.py), refuses what cannot run, and returns a `LoadedDictionary`
whose `encode` computes latents exactly as the library that wrote the folder does:

- standard (SAELens): relu((x - b_dec·apply) @ W_enc + b_enc)
- jumprelu (SAELens): relu(pre) where pre > threshold, else 0
- topk (SAELens): the k largest pre-activations (after × ‖W_dec row‖ when rescale_acts_by_decoder_norm),
  relu'd, the rest 0
- topk (sparsify): the k largest of relu((x - b_dec, unless transcoding) @ encoder.weightᵀ + encoder.bias)
- groupmax (sparsify): the largest relu'd pre-activation of each of k equal contiguous groups

Constant terms are folded into the weights at load (float32) so that `encode` is one matmul (`addmm`) and one
elementwise or top-k step over a whole batch: b_dec·apply into the encoder bias, SAELens's decoder-norm
rescaling into W_enc's columns and W_dec's rows (the latents are SAELens's own, rescaled ones).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from safetensors.torch import load as load_safetensors_bytes
from safetensors.torch import load_file as load_safetensors_file

from service.contract.dictionary_checks import header_errors
from service.contract.dictionary_files import (
    DictionaryFileError,
    DictionaryHeader,
    open_folder,
    read_dictionary_header,
)
from workers.errors import InvalidDictionary


@dataclass(frozen=True, slots=True, eq=False)
class LoadedDictionary:
    """A dictionary's weights on one device, in the compute dtype, with constant terms folded in."""

    header: DictionaryHeader
    encoder: torch.Tensor
    """[d_in, d_sae]: W_enc (SAELens) or encoder.weightᵀ (sparsify), × ‖W_dec row‖ when rescaled."""
    encoder_bias: torch.Tensor
    """[d_sae]: b_enc − b_dec @ encoder when b_dec is subtracted from the input, else b_enc (× norms)."""
    decoder: torch.Tensor
    """[d_sae, d_out]: W_dec, ÷ ‖W_dec row‖ when rescaled (so it decodes the rescaled latents)."""
    decoder_bias: torch.Tensor
    """[d_out]: b_dec."""
    threshold: torch.Tensor | None
    """[d_sae] JumpReLU thresholds; None for other rules."""
    skip: torch.Tensor | None
    """[d_in, d_out]: W_skipᵀ of skip transcoders; None otherwise."""

    @property
    def dtype(self) -> torch.dtype:
        return self.encoder.dtype

    def pre_activations(self, x: torch.Tensor) -> torch.Tensor:
        """[..., d_in] → [..., d_sae] pre-activations (one matmul), in the compute dtype."""
        flat = x.reshape(-1, x.shape[-1]).to(self.dtype)
        pre = torch.addmm(self.encoder_bias, flat, self.encoder)
        return pre.reshape(*x.shape[:-1], pre.shape[-1])

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """[..., d_in] activations → [..., d_sae] float32 latents (dense; zeros where inactive)."""
        pre = self.pre_activations(x)
        return _ACTIVATIONS[(self.header.format, self.header.architecture)](self, pre).float()

    def decode(self, latents: torch.Tensor, x: torch.Tensor | None = None) -> torch.Tensor:
        """[..., d_sae] latents → [..., d_out] float32 output (the reconstruction, or a transcoder's
        prediction); a skip transcoder adds x @ W_skipᵀ and so needs the input ``x``."""
        flat = latents.reshape(-1, latents.shape[-1]).to(self.dtype)
        out = torch.addmm(self.decoder_bias, flat, self.decoder)
        if self.skip is not None:
            if x is None:
                raise ValueError(
                    "a skip transcoder's decode needs the input x (its output adds x @ W_skip.T)"
                )
            out = out.addmm_(x.reshape(-1, x.shape[-1]).to(self.dtype), self.skip)
        return out.reshape(*latents.shape[:-1], out.shape[-1]).float()

    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        """decode(encode(x), x): the SAE's reconstruction of x or the transcoder's prediction, float32."""
        return self.decode(self.encode(x), x)


def _relu(dictionary: LoadedDictionary, pre: torch.Tensor) -> torch.Tensor:
    return pre.relu_()


def _jumprelu(dictionary: LoadedDictionary, pre: torch.Tensor) -> torch.Tensor:
    assert dictionary.threshold is not None
    return pre.relu().mul_(pre > dictionary.threshold)


def _topk_then_relu(dictionary: LoadedDictionary, pre: torch.Tensor) -> torch.Tensor:
    """SAELens's TopK: the k largest pre-activations, relu'd."""
    values, indices = pre.topk(int(dictionary.header.k or 0), dim=-1, sorted=False)
    return torch.zeros_like(pre).scatter_(-1, indices, values.relu_())


def _relu_then_topk(dictionary: LoadedDictionary, pre: torch.Tensor) -> torch.Tensor:
    """sparsify's fused encoder: relu, then the k largest."""
    values, indices = pre.relu_().topk(int(dictionary.header.k or 0), dim=-1, sorted=False)
    return torch.zeros_like(pre).scatter_(-1, indices, values)


def _groupmax(dictionary: LoadedDictionary, pre: torch.Tensor) -> torch.Tensor:
    """sparsify's groupmax: the largest relu'd value of each of k contiguous groups of latents."""
    groups = int(dictionary.header.k or 0)
    values, indices = pre.relu_().unflatten(-1, (groups, -1)).max(dim=-1)
    width = pre.shape[-1] // groups
    offsets = torch.arange(0, pre.shape[-1], width, device=pre.device)
    return torch.zeros_like(pre).scatter_(-1, indices + offsets, values)


_ACTIVATIONS: dict[tuple[str, str], Callable[[LoadedDictionary, torch.Tensor], torch.Tensor]] = {
    ("sae-lens", "standard"): _relu,
    ("sae-lens", "jumprelu"): _jumprelu,
    ("sae-lens", "topk"): _topk_then_relu,
    ("sparsify", "topk"): _relu_then_topk,
    ("sparsify", "groupmax"): _groupmax,
}


def load_dictionary(
    folder: str,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
    *,
    hook_width: int | None = None,
    out_width: int | None = None,
    hook_label: str = "the hook",
    out_label: str = "the output hook",
) -> LoadedDictionary:
    """Read, check and place a dictionary on ``device``, computing in ``dtype`` (float32 unless memory
    calls for bf16; inputs of any dtype are cast to it, latents and outputs come back float32).

    InvalidDictionary (an InvalidRequest) names every problem: unreadable or missing files, an unsupported
    architecture or normalisation, tensor shapes unlike the cfg, a ``d_in`` unlike ``hook_width`` (or a
    transcoder's ``d_out`` unlike ``out_width``), non-finite weights."""
    try:
        header = read_dictionary_header(folder)
    except DictionaryFileError as exc:
        raise InvalidDictionary(f"dictionary {folder}: {exc}") from None
    errors = header_errors(
        header,
        header.d_in if hook_width is None else hook_width,
        out_width,
        hook_label=hook_label,
        out_label=out_label,
    )
    if errors:
        raise InvalidDictionary(f"dictionary {folder}: " + "; ".join(errors))
    tensors = _read_tensors(header)
    _check_finite(header, tensors)
    return _place(header, tensors, torch.device(device), dtype)


def _read_tensors(header: DictionaryHeader) -> dict[str, torch.Tensor]:
    """Every tensor of the weights file, on the CPU (a local file is memory-mapped)."""
    where = open_folder(header.folder)
    path = where.path(header.weights_file)
    try:
        if type(where.fs).__name__ == "LocalFileSystem":
            return load_safetensors_file(path, device="cpu")
        with where.fs.open(path, "rb") as handle:
            return load_safetensors_bytes(handle.read())
    except (OSError, ValueError, RuntimeError) as exc:
        raise InvalidDictionary(f"dictionary {header.folder}: {path} cannot be read ({exc})") from None


def _check_finite(header: DictionaryHeader, tensors: dict[str, torch.Tensor]) -> None:
    problems = []
    for name, tensor in sorted(tensors.items()):
        # a NaN or ±inf makes the sum non-finite: one pass over finite weights, a count only when not
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor.sum(dtype=torch.float64))):
            bad = int((~torch.isfinite(tensor)).sum())
            if bad:
                problems.append(f"{header.weights_file} {name} has {bad} non-finite values (NaN or ±inf)")
    scaling = tensors.get("scaling_factor")
    if scaling is not None and not bool((scaling == 1).all()):
        problems.append(f"{header.weights_file} scaling_factor is not all ones: fold it into W_dec first")
    if problems:
        raise InvalidDictionary(f"dictionary {header.folder}: " + "; ".join(problems))


def _place(
    header: DictionaryHeader, tensors: dict[str, torch.Tensor], device: torch.device, dtype: torch.dtype
) -> LoadedDictionary:
    """Move every tensor to ``device`` in float32, fold the constant terms there, then cast to ``dtype``."""

    def moved(name: str) -> torch.Tensor:
        return tensors[name].to(device=device, dtype=torch.float32)

    if header.format == "sparsify":
        encoder, encoder_bias = moved("encoder.weight").T, moved("encoder.bias")
    else:
        encoder, encoder_bias = moved("W_enc"), moved("b_enc")
    decoder, decoder_bias = moved("W_dec"), moved("b_dec")
    if header.apply_b_dec_to_input:
        encoder_bias = encoder_bias - decoder_bias @ encoder
    if header.rescale_acts_by_decoder_norm:
        norms = decoder.norm(dim=-1)
        encoder, encoder_bias, decoder = encoder * norms, encoder_bias * norms, decoder / norms[:, None]

    def placed(tensor: torch.Tensor) -> torch.Tensor:
        return tensor.to(dtype=dtype).contiguous()

    return LoadedDictionary(
        header=header,
        encoder=placed(encoder),
        encoder_bias=placed(encoder_bias),
        decoder=placed(decoder),
        decoder_bias=placed(decoder_bias),
        threshold=placed(moved("threshold")) if header.architecture == "jumprelu" else None,
        skip=placed(moved("W_skip").T) if header.skip else None,
    )


def dictionary_bytes(header: DictionaryHeader, dtype: torch.dtype = torch.float32) -> int:
    """Device memory the loaded dictionary takes in ``dtype`` (encoder, decoder, biases, skip)."""
    elements = sum(math.prod(shape.shape) for shape in header.tensors.values())
    return elements * torch.empty((), dtype=dtype).element_size()
