"""GPU figure: a llava-1.5-7b-SHAPED random model in bf16, all 32 layers scanned in one pass vs one layer.

The language model of llava-1.5-7b is Vicuna-7B: Llama, hidden 4096, 32 layers × 11008 SiLU-gated MLP
neurons. The vision tower is skipped: this scans a text-only `LlamaForCausalLM` of that shape (random
weights, seed 0, bf16) through the real scan code (TextModelAdapter + ScanPass + LayerRecorder) over
text-probe-v1 samples (≤ 64 tokens each), so the recorder and hook costs are the 7B ones; a real LLaVA
prompt adds 576 patch tokens per sample, which scales every variant alike.

Prints markdown table rows (figure | value | goal | detail): plain forward, one layer (L31), all 32 layers
in one pass, and all 32 layers' latents of an 8×-wide SAE on each layer's residual stream (4,096 → 32,768
latents, a seeded random TopK SAE, k = 64, bf16, in SAELens's format, loaded by the workers' loader; one
layer's files serve every layer, so the weights are read once), tokens/s and peak GPU memory. Without a
GPU it prints "no GPU" rows at once; with `--dry` it runs the same code on a tiny model of that layout on
the CPU (seconds), to check the script.
Usage: python bench/gpu_llava7b.py [--dry] [--samples N]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

import torch  # noqa: E402

from bench.run import markdown_table  # noqa: E402

SHAPE_7B = {
    "hidden_size": 4096,
    "intermediate_size": 11008,
    "num_hidden_layers": 32,
    "num_attention_heads": 32,
}
SHAPE_DRY = {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 4, "num_attention_heads": 4}
N_TOP = 50
BATCH = 64
SAE_WIDTH = 8
"""Latents per residual-stream value of the dictionary variant."""
SAE_K = 64


def _adapter(shape: dict[str, int], device: torch.device, dtype: torch.dtype):  # type: ignore[no-untyped-def]
    from transformers import LlamaConfig, LlamaForCausalLM

    from service.contract import load_registry
    from workers.models.text import TextModelAdapter
    from workers.models.tiny_llama import build_tiny_llama_tokenizer

    tokenizer = build_tiny_llama_tokenizer()
    config = LlamaConfig(**shape, num_key_value_heads=shape["num_attention_heads"], vocab_size=32000)
    torch.manual_seed(0)
    torch.set_default_dtype(dtype)
    with device:
        model = LlamaForCausalLM(config).eval()
    torch.set_default_dtype(torch.float32)
    spec = (
        load_registry()
        .model("tiny-llama")
        .model_copy(
            update={
                "id": "llava-1.5-7b-text-shaped",
                "layers": shape["num_hidden_layers"],
                "neurons_per_layer": shape["intermediate_size"],
            }
        )
    )
    return TextModelAdapter(spec, model.model, tokenizer, device)


def _taps(adapter, folder: Path, layers: list[int]):  # type: ignore[no-untyped-def]
    """The scan point (the residual stream: each decoder layer's output) and taps of a random TopK SAE
    written once in SAELens's format (bf16) and loaded, one copy, for every layer."""
    from service.contract import DictionaryLayer, DictionarySpec, HookPoint
    from tests.dictionary_writers import write_sae_lens
    from workers.models.dictionaries import load_dictionary
    from workers.scan.dictionary_taps import DictionaryTaps

    d_in = adapter.module.config.hidden_size
    d_sae = SAE_WIDTH * d_in
    generator = torch.Generator().manual_seed(0)
    decoder = torch.randn(d_sae, d_in, generator=generator)
    decoder /= decoder.norm(dim=1, keepdim=True)
    tensors = {"W_enc": decoder.T.contiguous(), "b_enc": torch.zeros(d_sae), "W_dec": decoder}
    tensors = {name: t.to(torch.bfloat16) for name, t in {**tensors, "b_dec": torch.zeros(d_in)}.items()}
    path = write_sae_lens(folder / "layer", tensors, "topk", k=SAE_K)
    point = HookPoint(id="resid_post", module="layers.{layer}", capture="output", description="", width=d_in)
    spec = DictionarySpec(
        id="random-8x",
        kind="sae",
        hook=point.id,
        latents=d_sae,
        layers=[DictionaryLayer(layer=layer, path=str(path)) for layer in layers],
        revision="bench",
    )
    dtype = next(adapter.module.parameters()).dtype
    loaded = load_dictionary(str(path), adapter.device, dtype, hook_width=d_in)
    headers = {layer: {"digest": loaded.header.digest} for layer in layers}
    return point, DictionaryTaps(spec, None, {layer: loaded for layer in layers}, headers)


def _run(
    adapter, n_samples: int, layers: list[int] | None, sae: Path | None = None
) -> tuple[float, int, int]:  # type: ignore[no-untyped-def]
    """(seconds, content tokens, peak device bytes) of one pass: plain forward when `layers` is None; the
    latents of a random 8×-wide SAE on every layer of `layers` when `sae` (a scratch folder) is given."""
    from workers.data.text_probe import generate_text_probe
    from workers.scan.scanner import ScanPass, choose_random_ids, plan_batches
    from workers.scan.tokens import build_tokenized_probe

    samples = generate_text_probe(n_samples).samples
    tokenized = adapter.tokenize(samples)
    probe = build_tokenized_probe(samples, tokenized, None)
    cuda = adapter.device.type == "cuda"
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    started = time.perf_counter()
    if layers is None:
        for plan in plan_batches(tokenized, BATCH):
            with torch.inference_mode():
                adapter.forward(
                    adapter.make_batch([samples[i] for i in plan.rows], [tokenized[i] for i in plan.rows])
                )
    else:
        point, taps = adapter.spec.hook_points[0], None
        if sae is not None:
            point, taps = _taps(adapter, sae, layers)
        random_ids = choose_random_ids(n_samples, N_TOP, 0)
        scan = ScanPass(adapter, samples, tokenized, probe, point, layers, N_TOP, random_ids, taps)
        for plan in plan_batches(tokenized, BATCH):
            scan.step(plan)
        for recorder in scan.recorders.values():
            recorder.arrays()
    if cuda:
        torch.cuda.synchronize()
    seconds = time.perf_counter() - started
    peak = torch.cuda.max_memory_allocated() if cuda else 0
    return seconds, probe.n_tokens, peak


def _no_gpu_rows() -> list[dict[str, str]]:
    detail = f"no GPU (torch {torch.__version__}, torch.cuda.is_available() is False): not measured"
    return [
        {"figure": f"GPU 7B-shaped scan, {name}", "value": "no GPU", "goal": "report", "detail": detail}
        for name in (
            "plain forward",
            "1 layer (L31)",
            "all 32 layers, one pass",
            "all 32 layers, 8× SAE on each",
        )
    ]


def main(argv: list[str] | None = None) -> list[dict[str, str]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dry", action="store_true", help="tiny model on the CPU: check the script only")
    parser.add_argument("--samples", type=int, default=2048, help="probe samples per pass (default 2048)")
    args = parser.parse_args(argv)
    if not args.dry and not torch.cuda.is_available():
        return _no_gpu_rows()
    device = torch.device("cpu" if args.dry else "cuda")
    shape = SHAPE_DRY if args.dry else SHAPE_7B
    n_samples = min(args.samples, 128) if args.dry else args.samples
    adapter = _adapter(shape, device, torch.float32 if args.dry else torch.bfloat16)
    last = shape["num_hidden_layers"] - 1
    _run(adapter, min(n_samples, 2 * BATCH), list(range(last + 1)))  # warm-up: kernels, allocator
    every = list(range(last + 1))
    variants = {
        "plain forward": None,
        f"1 layer (L{last})": [last],
        f"all {last + 1} layers, one pass": every,
    }
    results = {name: _run(adapter, n_samples, layers) for name, layers in variants.items()}
    with tempfile.TemporaryDirectory(prefix="nl-gpu-sae-") as scratch:
        name = f"all {last + 1} layers, {SAE_WIDTH}× SAE on each"
        results[name] = _run(adapter, n_samples, every, Path(scratch))
    plain = results["plain forward"][1] / results["plain forward"][0]
    one = results[f"1 layer (L{last})"][0]
    label = "dry run, tiny shape on CPU" if args.dry else torch.cuda.get_device_name(0)
    rows = []
    for name, (seconds, tokens, peak) in results.items():
        rate = tokens / seconds
        rows.append(
            {
                "figure": f"GPU 7B-shaped scan (bf16), {name}",
                "value": f"{rate:.0f} tok/s",
                "goal": "report; all layers ÷ 1 layer time ≤ 1.3",
                "detail": f"{seconds:.2f} s ({seconds / one:.2f}× one layer, {rate / plain:.3f}× plain "
                f"tok/s), {tokens} tokens, {n_samples} samples, batch {BATCH}; peak GPU memory "
                f"{peak / 2**30:.2f} GiB; {label}",
            }
        )
    return rows


if __name__ == "__main__":
    print(markdown_table(main()))
