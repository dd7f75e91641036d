"""How each dictionary format's `cfg.json` reads: SAELens's (≥ 6 and older) and EleutherAI sparsify's, turned
into the fields of a `DictionaryHeader` (service/contract/dictionary_files.py). Pure standard library.

A cfg value of the wrong JSON type (`"d_in": "768"`) is a DictionaryFileError naming the file and key; what is
well-formed but not supported (an architecture, a normalisation) is left for `header_errors` to say.
"""

from __future__ import annotations

from typing import Any, Literal

CFG_FILE = "cfg.json"
SAE_LENS_WEIGHTS = "sae_weights.safetensors"
SPARSIFY_WEIGHTS = "sae.safetensors"

DictionaryFormat = Literal["sae-lens", "sparsify"]
"""The on-disk format: SAELens's `save_model` or EleutherAI sparsify's `save_to_disk`."""
DictionaryKind = Literal["sae", "transcoder"]
"""An SAE reconstructs its input; a transcoder predicts another hook's activations from it."""

SAE_LENS_ARCHITECTURES: dict[str, tuple[str, DictionaryKind, bool]] = {
    "standard": ("standard", "sae", False),
    "topk": ("topk", "sae", False),
    "jumprelu": ("jumprelu", "sae", False),
    "transcoder": ("standard", "transcoder", False),
    "skip_transcoder": ("standard", "transcoder", True),
    "jumprelu_transcoder": ("jumprelu", "transcoder", False),
    "jumprelu_skip_transcoder": ("jumprelu", "transcoder", True),
}
"""SAELens `architecture` values run → (activation rule, kind, has W_skip). Others (gated, abstopk,
matching_pursuit, temporal, …) are read and then refused by `header_errors`."""
SPARSIFY_ACTIVATIONS = ("topk", "groupmax")
"""sparsify `activation` values run."""
RUN_ACTIVATIONS = ("standard", "topk", "jumprelu", "groupmax")
"""Activation rules the workers compute (workers/models/dictionaries.py)."""


class DictionaryFileError(ValueError):
    """A dictionary folder whose files are missing, unreadable or not what their format says."""


def _value(
    cfg: dict[str, Any], key: str, kind: type, path: str, default: Any = None, required: bool = False
) -> Any:
    """cfg[key] when of JSON type ``kind`` (an int is no bool here), ``default`` when absent or null."""
    value = cfg.get(key)
    if value is None:
        if required:
            raise DictionaryFileError(f"{path}: {key} is missing")
        return default
    if isinstance(value, bool) and kind is not bool or not isinstance(value, kind):
        raise DictionaryFileError(f"{path}: {key} must be {kind.__name__}, found {value!r}")
    return value


def sae_lens_fields(cfg: dict[str, Any], path: str) -> dict[str, Any]:
    """The header fields of a SAELens cfg: SAELens ≥ 6 names `architecture` and keeps hook names in
    `metadata`; older cfgs have no `architecture` (standard, or top-k when `activation_fn_str` is `topk`
    with `activation_fn_kwargs.k`) and hold `hook_name` (or `hook_point`) at the top level."""
    metadata = _value(cfg, "metadata", dict, path, default={})
    d_in = _value(cfg, "d_in", int, path, required=True)
    d_sae = _value(cfg, "d_sae", int, path, required=True)
    k = _value(cfg, "k", int, path)
    named = _value(cfg, "architecture", str, path)
    if named is None:
        activation = cfg.get("activation_fn_str", cfg.get("activation_fn", "relu"))
        kwargs = _value(cfg, "activation_fn_kwargs", dict, path, default={})
        if activation == "topk" and kwargs.get("k") is not None:
            named, k = "topk", _value(kwargs, "k", int, f"{path} activation_fn_kwargs")
        else:
            named = "standard" if activation == "relu" else f"activation_fn {activation}"
    rule, kind, skip = SAE_LENS_ARCHITECTURES.get(
        named, (named, "transcoder" if "transcoder" in named else "sae", False)
    )
    normalize = cfg.get("normalize_activations")
    if isinstance(normalize, bool):  # SAELens < 6 wrote a flag for its one normalisation
        normalize = "expected_average_only_in" if normalize else "none"
    hook = _value(metadata, "hook_name", str, path) or _value(cfg, "hook_name", str, path)
    return {
        "kind": kind,
        "architecture": rule,
        "cfg_architecture": named,
        "d_in": d_in,
        "d_sae": d_sae,
        "d_out": _value(cfg, "d_out", int, path, default=d_in) if kind == "transcoder" else d_in,
        "skip": skip,
        "hook_name": hook or _value(cfg, "hook_point", str, path),
        "hook_name_out": _value(metadata, "hook_name_out", str, path)
        or _value(cfg, "hook_name_out", str, path),
        "k": k,
        "apply_b_dec_to_input": _value(cfg, "apply_b_dec_to_input", bool, path, default=True),
        "rescale_acts_by_decoder_norm": _value(
            cfg, "rescale_acts_by_decoder_norm", bool, path, default=False
        ),
        "normalize_activations": str(normalize or "none"),
        "reshape_activations": str(cfg.get("reshape_activations") or "none"),
        "finetuning_scaling_factor": bool(cfg.get("finetuning_scaling_factor") or False),
    }


def sparsify_fields(cfg: dict[str, Any], path: str, root: str) -> dict[str, Any]:
    """The header fields of a sparsify cfg: `d_in`, `num_latents` (or `d_in × expansion_factor` when 0),
    `k`, `activation` (`topk` when absent: older versions had no other), `transcode`, `skip_connection`.
    The input has `b_dec` subtracted unless transcoding; the output is `d_in` wide either way; the hookpoint
    is the folder's name (sparsify saves each hookpoint's coder in a folder named after it)."""
    d_in = _value(cfg, "d_in", int, path, required=True)
    d_sae = _value(cfg, "num_latents", int, path, default=0) or d_in * _value(
        cfg, "expansion_factor", int, path, default=32
    )
    transcode = _value(cfg, "transcode", bool, path, default=False)
    activation = _value(cfg, "activation", str, path, default="topk")
    if _value(cfg, "signed", bool, path, default=False):
        activation = "signed topk"
    return {
        "kind": "transcoder" if transcode else "sae",
        "architecture": activation,
        "cfg_architecture": activation + (" transcoder" if transcode else ""),
        "d_in": d_in,
        "d_sae": d_sae,
        "d_out": d_in,
        "skip": _value(cfg, "skip_connection", bool, path, default=False),
        "hook_name": root.rstrip("/").rsplit("/", 1)[-1] or None,
        "hook_name_out": None,
        "k": _value(cfg, "k", int, path, default=32),
        "apply_b_dec_to_input": not transcode,
        "rescale_acts_by_decoder_norm": False,
        "normalize_activations": "none",
        "reshape_activations": "none",
        "finetuning_scaling_factor": False,
    }
