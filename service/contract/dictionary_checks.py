"""What is wrong with a dictionary's header for the hook it is attached to, in words that name the file and
field (the API answers 422 with them; the workers refuse to load with them). Pure standard library."""

from __future__ import annotations

from service.contract.dictionary_files import SAFETENSORS_DTYPES, DictionaryHeader
from service.contract.dictionary_formats import RUN_ACTIVATIONS, SAE_LENS_ARCHITECTURES, SPARSIFY_ACTIVATIONS


def expected_tensors(header: DictionaryHeader) -> dict[str, list[int]]:
    """The tensors (name → shape) the header's format and architecture call for, from its cfg's widths."""
    d_in, d_sae, d_out = header.d_in, header.d_sae, header.d_out
    if header.format == "sparsify":
        shapes = {
            "encoder.weight": [d_sae, d_in],
            "encoder.bias": [d_sae],
            "W_dec": [d_sae, d_out],
            "b_dec": [d_out],
        }
    else:
        shapes = {"W_enc": [d_in, d_sae], "b_enc": [d_sae], "W_dec": [d_sae, d_out], "b_dec": [d_out]}
    if header.architecture == "jumprelu":
        shapes["threshold"] = [d_sae]
    if header.skip:
        shapes["W_skip"] = [d_out, d_in]
    return shapes


def header_errors(
    header: DictionaryHeader,
    hook_width: int,
    out_width: int | None = None,
    *,
    hook_label: str = "the hook",
    out_label: str = "the output hook",
) -> list[str]:
    """Everything that keeps ``header`` from running on a hook of ``hook_width`` values per token (and, for a
    transcoder, predicting one of ``out_width``), each naming the file and field; empty when it can run.
    ``hook_label`` names the hook in the messages, e.g. "hook mlp_act of minilm-l6"."""
    cfg = header.cfg_file
    errors = _cfg_errors(header)
    if header.d_in != hook_width:
        errors.append(f"{cfg} d_in is {header.d_in} but {hook_label} yields {hook_width} values per token")
    if header.kind == "transcoder" and out_width is not None and header.d_out != out_width:
        field = "d_out" if header.format == "sae-lens" else "d_in (a sparsify transcoder's output width)"
        errors.append(f"{cfg} {field} is {header.d_out} but {out_label} yields {out_width} values per token")
    return errors + _tensor_errors(header)


def _cfg_errors(header: DictionaryHeader) -> list[str]:
    cfg = header.cfg_file
    errors: list[str] = []
    if header.architecture not in RUN_ACTIVATIONS:
        if header.format == "sae-lens":
            known = ", ".join(SAE_LENS_ARCHITECTURES)
            errors.append(
                f"{cfg} architecture {header.cfg_architecture!r} is not supported (supported: {known})"
            )
        else:
            known = ", ".join(SPARSIFY_ACTIVATIONS)
            errors.append(f"{cfg} activation {header.architecture!r} is not supported (supported: {known})")
    if header.normalize_activations != "none":
        errors.append(
            f"{cfg} normalize_activations is {header.normalize_activations!r}: only 'none' is supported "
            "(fold a constant scaling into the weights: SAELens's fold_activation_norm_scaling_factor)"
        )
    if header.reshape_activations != "none":
        errors.append(
            f"{cfg} reshape_activations is {header.reshape_activations!r}: only 'none' is supported"
        )
    if header.finetuning_scaling_factor:
        errors.append(f"{cfg} finetuning_scaling_factor is true: not supported (fold it into W_dec first)")
    if header.d_in < 1 or header.d_sae < 1 or header.d_out < 1:
        errors.append(
            f"{cfg} widths must be positive: d_in {header.d_in}, d_sae {header.d_sae}, d_out {header.d_out}"
        )
    errors += _k_errors(header)
    if header.kind == "sae" and header.format == "sae-lens" and header.d_out != header.d_in:
        errors.append(f"{cfg} d_out is {header.d_out} but an SAE's output is its input ({header.d_in} wide)")
    return errors


def _k_errors(header: DictionaryHeader) -> list[str]:
    cfg, k = header.cfg_file, header.k
    if header.architecture not in ("topk", "groupmax"):
        return []
    if k is None or not 1 <= k <= header.d_sae:
        return [f"{cfg} k is {k} but a {header.architecture} dictionary needs 1 ≤ k ≤ d_sae ({header.d_sae})"]
    if header.architecture == "groupmax" and header.d_sae % k:
        return [f"{cfg} k is {k}: groupmax splits the {header.d_sae} latents into k equal groups"]
    return []


def _tensor_errors(header: DictionaryHeader) -> list[str]:
    weights = header.weights_file
    errors: list[str] = []
    for name, shape in expected_tensors(header).items():
        found = header.tensors.get(name)
        if found is None:
            errors.append(f"{weights} has no tensor {name} (expected shape {shape})")
            continue
        if found.shape != shape:
            errors.append(
                f"{weights} {name} has shape {found.shape} but {header.cfg_file} "
                f"(d_in {header.d_in}, d_sae {header.d_sae}, d_out {header.d_out}) calls for {shape}"
            )
        if found.dtype not in SAFETENSORS_DTYPES:
            known = ", ".join(SAFETENSORS_DTYPES)
            errors.append(
                f"{weights} {name} has dtype {found.dtype}: a floating-point one is needed ({known})"
            )
    return errors
