"""One shard of a sharded scan, in its own process (bench_scan's K-workers figure): loads the model and
the probe set, records shard K_INDEX of K for the given layers into the store, prints its seconds.
Usage: python bench/_shard_child.py MODEL DATASET N_SAMPLES LAYERS(comma) SHARD N_SHARDS STORE_URL"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main(argv: list[str]) -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch

    torch.set_num_threads(1)
    from service.contract import PipelineOptions, load_registry
    from service.settings import load_settings
    from workers.models.loader import ModelCache
    from workers.scan.shards import scan_shard
    from workers.scan.store import FsspecArtifactStore

    model_id, dataset_id, n_samples, layers, shard, n_shards, url = argv
    registry = load_registry()
    model = registry.model(model_id)
    dataset = registry.dataset(dataset_id).model_copy(update={"n_samples": int(n_samples)})
    store = FsspecArtifactStore(url)
    settings = load_settings(artifact_url=url, device="cpu")
    started = time.perf_counter()
    adapter = ModelCache(store, "cpu").get(model)
    info = scan_shard(
        store,
        adapter,
        dataset,
        model.default_hook,
        [int(layer) for layer in layers.split(",")],
        PipelineOptions(),
        int(shard),
        int(n_shards),
        settings.scan_batch_size,
        2**34,
    )
    print(json.dumps({"seconds": time.perf_counter() - started, "passes": info.passes}))


if __name__ == "__main__":
    main(sys.argv[1:])
