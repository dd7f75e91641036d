"""The committed OpenAPI document is exactly what the code generates."""

from __future__ import annotations

import json
from pathlib import Path

from service.app import package_version
from service.openapi import DEFAULT_PATH, main, render_openapi


def test_committed_openapi_matches_the_code() -> None:
    assert DEFAULT_PATH.read_text() == render_openapi(), (
        "openapi/openapi.json is out of date: run `make openapi` and commit it"
    )


def test_generation_is_deterministic() -> None:
    assert render_openapi() == render_openapi()


def test_check_mode_reports_drift(tmp_path: Path) -> None:
    target = tmp_path / "openapi.json"
    assert main(["--output", str(target), "--check"]) == 1
    assert main(["--output", str(target)]) == 0
    assert main(["--output", str(target), "--check"]) == 0
    target.write_text(target.read_text().replace('"NeuronLens"', '"Other"'))
    assert main(["--output", str(target), "--check"]) == 1


def test_document_describes_every_operation() -> None:
    document = json.loads(render_openapi())
    assert document["info"]["title"] == "NeuronLens"
    assert document["info"]["version"] == package_version()
    operations = [op for path in document["paths"].values() for op in path.values()]
    assert {op["operationId"] for op in operations} == {
        "listModels",
        "createExplanation",
        "getJob",
        "getNeuronReport",
        "getExemplarImage",
        "getNeuronPage",
        "listLayerNeurons",
        "getHomePage",
        "getLayerPage",
        "getJobPage",
        "healthz",
        "readyz",
        "metrics",
    }
    for op in operations:
        assert op.get("description") and op.get("summary"), op["operationId"]
    post = document["paths"]["/v1/explanations"]["post"]
    assert post["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/ExplanationRequest"
    }
    assert set(post["responses"]) >= {"200", "202", "400", "422", "503"}
    assert "application/problem+json" in post["responses"]["422"]["content"]
