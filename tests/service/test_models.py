"""GET /v1/models lists the registry's models with everything a client needs to form a request."""

from __future__ import annotations

import httpx

from service.contract import ModelSpec, load_registry


def test_models_lists_the_registry(http: httpx.Client) -> None:
    response = http.get("/v1/models")
    assert response.status_code == 200
    models = [ModelSpec.model_validate(item) for item in response.json()]
    assert models == load_registry().models
    minilm = next(m for m in models if m.id == "minilm-l6")
    assert (minilm.layers, minilm.neurons_per_layer, minilm.modality) == (6, 1536, "text")
    assert minilm.default_hook == "mlp_act"
    assert minilm.hook("mlp_act").module == "encoder.layer.{layer}.intermediate"
    assert minilm.revision and minilm.datasets[0] == "text-probe-v2"
