"""Dictionary figures (SAE latents as units), side by side in one run, 1 torch intra-op thread:

- the scan of all 6 layers of minilm-l6 with an 8×-wide SAE on each layer's residual stream (`resid_post`,
  384 → 3,072 latents; a seeded random TopK SAE, k = 32, in SAELens's format, loaded by the workers' own
  loader) ÷ the least any tool must do to get those latents: a forward pass whose hooks encode them and keep
  nothing (goal ≥ 0.9); both also ÷ the plain forward pass. The variants run batch by batch in turn, each
  batch counted with its fastest time over ROUNDS rounds;
- dictionary load time: the trained test SAE of one layer (1,536 → 3,072, 37.8 MB) read, checked and placed,
  first (digest computed) and again;
- reconstruction of the trained test SAE (tests/dictionary_training.py: TopK, 160 steps on the first 1,024
  samples, latent 1000 planted on digits): FVU on its training tokens and, through a scan, on all 4,096
  samples of the probe set; dead latents; the planted latent's recall and false fires.

Every row's detail ends with the load average when the bench ran.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:  # run as a script from bench/
    sys.path.insert(0, str(REPO_ROOT))

from bench._common import fastest_variants, load_average, load_scan_setup  # noqa: E402

ROUNDS = 3
MODEL = "minilm-l6"
LAYERS = [0, 1, 2, 3, 4, 5]
N_TOP = 50
WIDTH = 8
"""Latents per residual-stream value."""
HOOK = "resid_post"
K = 32


def _random_sae_registry(folder: Path, d_in: int) -> Any:
    """minilm-l6 seen through a random TopK SAE on `resid_post` of every layer (SAELens folders)."""
    import torch

    from service.contract import DictionaryLayer, DictionarySpec, load_registry
    from tests.dictionary_writers import write_sae_lens

    d_sae = WIDTH * d_in
    generator = torch.Generator().manual_seed(0)
    paths = {}
    for layer in LAYERS:
        decoder = torch.randn(d_sae, d_in, generator=generator)
        decoder /= decoder.norm(dim=1, keepdim=True)
        tensors = {
            "W_enc": decoder.T.contiguous(),
            "b_enc": torch.zeros(d_sae),
            "W_dec": decoder,
            "b_dec": torch.zeros(d_in),
        }
        paths[layer] = write_sae_lens(folder / f"layer_{layer}", tensors, "topk", k=K)
    spec = DictionarySpec(
        id="random-8x",
        kind="sae",
        hook=HOOK,
        latents=d_sae,
        layers=[DictionaryLayer(layer=layer, path=str(path)) for layer, path in paths.items()],
        revision="bench",
    )
    minilm = load_registry().model(MODEL)
    return minilm.model_copy(update={"dictionaries": [spec]}).through(spec.id)


def _encode_only(ctx: dict[str, Any], taps: Any, point: Any) -> Any:
    """(step, finish) of a forward pass whose hooks encode every layer's latents and keep nothing."""
    from functools import partial

    import torch

    from workers.models.hooks import capture_activations, run_forward
    from workers.scan.scanner import content_activations

    adapter, samples, tokenized = ctx["adapter"], ctx["samples"], ctx["tokenized"]

    def step(plan: Any) -> None:
        index = None if plan.index is None else torch.from_numpy(plan.index)

        def encode(layer: int, output: torch.Tensor) -> None:
            taps.dictionaries[layer].encode(content_activations(output, plan, index))

        inputs = adapter.make_batch([samples[i] for i in plan.rows], [tokenized[i] for i in plan.rows])
        with torch.inference_mode(), capture_activations(adapter.module, point, LAYERS, True, encode):
            run_forward(partial(adapter.forward, inputs))

    return step, lambda: None


def _sae_scan(ctx: dict[str, Any], seen: Any, point: Any) -> Any:
    """(step, finish) of NeuronLens's scan of every layer's latents (fresh taps and recorders)."""
    from workers.models.dictionary_cache import DictionaryCache
    from workers.scan.dictionary_taps import open_taps
    from workers.scan.scanner import ScanPass, choose_random_ids

    taps = open_taps(seen, LAYERS, ctx["adapter"].device, DictionaryCache())
    random_ids = choose_random_ids(len(ctx["samples"]), N_TOP, 0)
    scan = ScanPass(
        ctx["adapter"], ctx["samples"], ctx["tokenized"], ctx["probe"], point, LAYERS, N_TOP, random_ids, taps
    )

    def finish() -> None:
        for recorder in scan.recorders.values():
            recorder.arrays()

    return scan.step, finish


def _speed_rows(ctx: dict[str, Any], folder: Path) -> list[dict[str, str]]:
    from workers.models.dictionary_cache import DictionaryCache
    from workers.scan.dictionary_taps import open_taps

    seen = _random_sae_registry(folder, ctx["model"].hook_width(HOOK))
    point = seen.hook(HOOK)
    taps = open_taps(seen, LAYERS, ctx["adapter"].device, DictionaryCache())
    extra = {
        "encode": lambda: _encode_only(ctx, taps, point),
        "sae": lambda: _sae_scan(ctx, seen, point),
    }
    fastest = fastest_variants(ctx, [5], LAYERS, N_TOP, ROUNDS, extra)
    plain, encode, sae, neurons = fastest["plain"], fastest["encode"], fastest["sae"], fastest["all"]
    latents = seen.neurons_per_layer
    where = f"{ctx['probe'].n_tokens} content tokens, {len(ctx['samples'])} samples, 1 thread"
    return [
        {
            "figure": f"SAE scan ÷ encoding pass, all 6 layers, {latents:,} latents ({WIDTH}×) each",
            "value": f"{encode / sae:.3f}",
            "goal": "≥ 0.9",
            "detail": f"{sae:.2f} s scan (encode + record top-N, random records, counts, FVU totals) vs "
            f"{encode:.2f} s forward + encode only; {where}; {load_average()}",
        },
        {
            "figure": "SAE scan ÷ plain forward (time ratio plain ÷ scan), all 6 layers, 8× SAE on each",
            "value": f"{plain / sae:.3f}",
            "goal": "report",
            "detail": f"plain {plain:.2f} s; encoding alone {plain / encode:.3f}× plain (a random TopK SAE "
            f"on {HOOK}, 384 → {latents:,}, k = {K}, float32); the neuron scan of the same 6 layers "
            f"{plain / neurons:.3f}× plain in the same rounds; {load_average()}",
        },
    ]


def _load_rows(trained: Any) -> list[dict[str, str]]:
    from service.contract.dictionary_files import read_dictionary_header
    from workers.models.dictionaries import load_dictionary

    folder = str(Path(trained.folder) / "load-copy")  # a fresh path: its first load computes the digest
    shutil.copytree(trained.sae_lens_folder(2), folder)
    timings = []
    for _ in range(3):
        started = time.perf_counter()
        load_dictionary(folder, hook_width=1536)
        timings.append(time.perf_counter() - started)
    header = read_dictionary_header(folder)
    return [
        {
            "figure": "dictionary load (read, check, place), one layer 1,536 → 3,072",
            "value": f"{timings[0] * 1000:.0f} ms",
            "goal": "report",
            "detail": f"first load {timings[0] * 1000:.0f} ms (digest of "
            f"{header.weights_bytes / 2**20:.1f} MiB computed), then {min(timings[1:]) * 1000:.0f} ms; "
            f"CPU; {load_average()}",
        }
    ]


def _reconstruction_rows(trained: Any, folder: Path, batch_size: int) -> list[dict[str, str]]:
    from service.contract import DictionaryLayer, DictionarySpec, load_registry
    from workers.models.loader import ModelCache
    from workers.scan.run import ScanSetup, scan_model_layers
    from workers.scan.store import FsspecArtifactStore

    spec = DictionarySpec(
        id="trained",
        kind="sae",
        hook="mlp_act",
        latents=trained.d_sae,
        layers=[
            DictionaryLayer(layer=layer, path=trained.sae_lens_folder(layer)) for layer in trained.layers
        ],
        revision="bench",
    )
    registry = load_registry()
    seen = registry.model(MODEL).model_copy(update={"dictionaries": [spec]}).through(spec.id)
    dataset = registry.dataset(seen.datasets[0])
    store = FsspecArtifactStore(str(folder / "store"))
    setup = ScanSetup(store, ModelCache(store, "cpu"), batch_size)
    infos = scan_model_layers(setup, seen, dataset, seen.hook("mlp_act"), sorted(trained.layers), _options())
    rows = []
    for layer, figures in sorted(trained.layers.items()):
        read = store.read_manifest(f"scans/{infos[layer].scan_id}")["dictionary"]
        rows.append(
            {
                "figure": f"trained test SAE, minilm-l6 L{layer} mlp_act (1,536 → {figures.d_sae:,}, TopK)",
                "value": f"FVU {read['fvu']:.3f}",
                "goal": "report",
                "detail": f"FVU {figures.fvu:.3f} on its {trained.tokens:,} training tokens, "
                f"{read['fvu']:.3f} through the scan on all {dataset.n_samples:,} samples "
                f"({read['tokens']:,} tokens); dead latents {read['dead']} of {figures.d_sae:,} on the probe "
                f"set ({figures.dead_latents} on the training tokens), dense {read['dense']}; "
                f"planted latent {trained.planted_latent}: recall "
                f"{figures.planted_recall:.3f}, {figures.planted_false_fires} false fires on the training "
                f"tokens; trained in {figures.train_seconds:.1f} s; {load_average()}",
            }
        )
    return rows


def _options() -> Any:
    from service.contract import PipelineOptions

    return PipelineOptions()


def main() -> list[dict[str, str]]:
    import torch

    from tests.dictionary_training import train_test_dictionaries

    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory(prefix="nl-bench-dict-") as tmp:
        folder = Path(tmp)
        ctx = load_scan_setup(MODEL, "text-probe-v2")
        trained = train_test_dictionaries(folder / "trained")
        rows = _load_rows(trained) + _reconstruction_rows(trained, folder, ctx["batch_size"])
        rows += _speed_rows(ctx, folder / "random")
    return rows


if __name__ == "__main__":
    from bench.run import markdown_table

    print(markdown_table(main()))
