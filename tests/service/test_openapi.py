"""The committed OpenAPI document is exactly what the code generates."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from service.contract import SUMMARY_COLUMNS
from service.http.app import package_version
from service.http.error_responses import RETRY_AFTER_S
from service.http.openapi import DEFAULT_PATH, main, render_openapi


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
        "getDictionaryQuality",
        "createExplanation",
        "createComparison",
        "getComparison",
        "exportComparison",
        "createCheck",
        "getCheck",
        "getJob",
        "listJobs",
        "cancelJob",
        "exportJobReports",
        "getNeuronReport",
        "getExemplarImage",
        "getNeuronPage",
        "listLayerNeurons",
        "getHomePage",
        "getLayerPage",
        "getJobPage",
        "getComparisonPage",
        "getComparedNeuronPage",
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


def test_every_request_and_response_has_examples_and_declared_headers() -> None:
    document = json.loads(render_openapi())
    for path, item in document["paths"].items():
        for method, op in item.items():
            where = f"{method.upper()} {path}"
            for media in (op.get("requestBody") or {}).get("content", {}).values():
                assert media.get("examples"), where
            for status, response in op["responses"].items():
                assert "X-Request-ID" in response.get("headers", {}), (where, status)
                for media_type, media in response.get("content", {}).items():
                    if media.get("schema", {}).get("format") == "binary":
                        continue  # bytes have no JSON example
                    assert media.get("examples"), (where, status, media_type)
    post = document["paths"]["/v1/explanations"]["post"]
    assert "Location" in post["responses"]["202"]["headers"]
    assert "Retry-After" in post["responses"]["429"]["headers"]
    report = document["paths"]["/v1/neurons/{model}/{layer}/{neuron}"]["get"]["responses"]
    assert "ETag" in report["200"]["headers"] and "ETag" in report["304"]["headers"]
    image = document["paths"]["/v1/neurons/{model}/{layer}/{neuron}/exemplars/{image}"]["get"]
    png = image["responses"]["200"]
    assert png["content"]["image/png"]["schema"] == {"type": "string", "format": "binary"}
    explainer = document["components"]["schemas"]["ExplanationRequest"]["properties"]["explainer"]
    assert {"$ref": "#/components/schemas/Backend"} in explainer["oneOf"]
    schemes = document["components"]["securitySchemes"]
    assert schemes["bearerKey"]["scheme"] == "bearer" and schemes["apiKeyHeader"]["name"] == "X-API-Key"
    for open_path in ("/healthz", "/readyz", "/metrics"):  # open whatever NEURONLENS_AUTH says
        assert document["paths"][open_path]["get"]["security"] == [], open_path
    assert document["paths"]["/v1/models"]["get"]["security"] == [{"bearerKey": []}, {"apiKeyHeader": []}]


def _examples(document: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any], Any]]:
    """(where, schema, value) of every example of the document: request bodies, answers, parameters."""
    for path, item in document["paths"].items():
        for method, op in item.items():
            where = f"{method.upper()} {path}"
            contents = [("request", (op.get("requestBody") or {}).get("content", {}))]
            contents += [(status, r.get("content", {})) for status, r in op["responses"].items()]
            for status, content in contents:
                for media_type, media in content.items():
                    for name, example in (media.get("examples") or {}).items():
                        yield f"{where} {status} {media_type} {name}", media["schema"], example["value"]
            for parameter in op.get("parameters", []):
                for name, example in (parameter.get("examples") or {}).items():
                    yield f"{where} {parameter['name']} {name}", parameter["schema"], example["value"]


def test_every_example_validates_against_its_schema() -> None:
    document = json.loads(render_openapi())
    registry: Registry[Any] = Registry().with_resource(
        "urn:openapi", Resource.from_contents(document, DRAFT202012)
    )
    checked = 0
    for where, schema, value in _examples(document):
        schema = json.loads(json.dumps(schema).replace('"#/components', '"urn:openapi#/components'))
        errors = list(Draft202012Validator(schema, registry=registry).iter_errors(value))
        assert not errors, (where, [e.message for e in errors][:3])
        checked += 1
    assert checked >= 40
    listing = document["paths"]["/v1/neurons/{model}/{layer}"]["get"]["responses"]["200"]["content"]
    assert "examples" not in listing["application/vnd.apache.parquet"]  # bytes: no JSON listing there
    ndjson = listing["application/x-ndjson"]["examples"]["summary"]["value"]
    csv_header = listing["text/csv"]["examples"]["summary"]["value"].splitlines()[0]
    assert csv_header.split(",") == list(SUMMARY_COLUMNS)  # what the server writes
    assert {"model", "hook", "ci95", "non_default_options"} <= set(json.loads(ndjson.splitlines()[0]))


def test_every_503_and_429_declares_retry_after() -> None:
    document = json.loads(render_openapi())
    answers = [
        (f"{method} {path} {status}", response)
        for path, item in document["paths"].items()
        for method, op in item.items()
        for status, response in op["responses"].items()
        if status in ("503", "429")
    ]
    assert len(answers) > 20
    for where, response in answers:
        assert "Retry-After" in response.get("headers", {}), where
    readyz = document["paths"]["/readyz"]["get"]["responses"]["503"]["headers"]["Retry-After"]
    assert f"({RETRY_AFTER_S})" in readyz["description"]


GENERATOR_CONFIG = """\
content_type_overrides:
  image/png: application/octet-stream
  application/vnd.apache.parquet: application/octet-stream
post_hooks: []
"""
"""openapi-python-client reads bytes only from application/octet-stream; PNGs and Parquet are mapped to it
(so the table exports, Parquet first, answer a File in every format)."""


def test_openapi_python_client_generates_a_client_without_warnings(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(GENERATOR_CONFIG)
    generator = Path(sys.executable).with_name("openapi-python-client")
    done = subprocess.run(
        [str(generator), "generate", "--path", str(DEFAULT_PATH), "--output-path", str(tmp_path / "client"),
         "--config", str(config)],
        capture_output=True, text=True, timeout=240, check=False, cwd=tmp_path,
    )  # fmt: skip
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert not [line for line in output.splitlines() if "warning" in line.lower()], output
    models = tmp_path / "client" / "neuron_lens_client" / "models"
    # One enum class for the nullable backends, not three per field.
    assert (models / "backend.py").is_file()
    assert not list(models.glob("explanation_request_explainer*"))
    api = tmp_path / "client" / "neuron_lens_client" / "api" / "neurons" / "get_exemplar_image.py"
    assert "File(" in api.read_text()
