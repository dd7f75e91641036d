"""A client generated from the committed OpenAPI document (openapi-python-client, the configuration
docs/api.md gives) calls every operation of a live API and reads its answers: the layer listing and the
job export in every format included, with the declared defaults sent as generated clients send them."""

from __future__ import annotations

import importlib
import io
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pyarrow.parquet as pq
import pytest
import redis

from service.contract import ExplanationRequest
from service.http.openapi import DEFAULT_PATH
from tests.service.helpers import store_reports
from tests.service.test_openapi import GENERATOR_CONFIG
from workers.process.report_writer import ReportObjects

PACKAGE = "neuron_lens_client"


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ModuleType]:
    root = tmp_path_factory.mktemp("generated")
    (root / "config.yaml").write_text(GENERATOR_CONFIG)
    generator = Path(sys.executable).with_name("openapi-python-client")
    done = subprocess.run(
        [str(generator), "generate", "--path", str(DEFAULT_PATH), "--output-path", str(root / "client"),
         "--config", str(root / "config.yaml")],
        capture_output=True, text=True, timeout=240, check=False, cwd=root,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    sys.path.insert(0, str(root / "client"))
    try:
        yield importlib.import_module(PACKAGE)
    finally:
        sys.path.remove(str(root / "client"))
        for name in [name for name in sys.modules if name.split(".")[0] == PACKAGE]:
            del sys.modules[name]


def _operations() -> dict[str, tuple[str, set[int]]]:
    """operationId → (module name of its generated function, documented statuses)."""
    document = json.loads(DEFAULT_PATH.read_text())
    found: dict[str, tuple[str, set[int]]] = {}
    for item in document["paths"].values():
        for op in item.values():
            module = "".join("_" + c.lower() if c.isupper() else c for c in op["operationId"])
            found[op["operationId"]] = (f"{op['tags'][0]}.{module}", {int(s) for s in op["responses"]})
    return found


def test_a_generated_client_calls_every_operation(
    generated: ModuleType,
    api_url: str,
    redis_conn: redis.Redis,
    report_objects: ReportObjects,
    minilm_revision: str,
) -> None:
    store_reports(
        redis_conn,
        report_objects,
        ExplanationRequest(model="minilm-l6", layer=3, neurons=[5, 42]),
        minilm_revision,
    )
    models = importlib.import_module(f"{PACKAGE}.models")
    client = generated.Client(base_url=api_url, raise_on_unexpected_status=True, timeout=httpx.Timeout(30))
    operations = _operations()
    called: set[str] = set()

    def call(op: str, *args: Any, **kwargs: Any) -> Any:
        module_name, statuses = operations[op]
        module = importlib.import_module(f"{PACKAGE}.api.{module_name}")
        answer = module.sync_detailed(*args, client=client, **kwargs)
        assert answer.status_code in statuses, (op, answer.status_code, answer.content[:300])
        assert answer.parsed is not None, (op, answer.status_code)
        called.add(op)
        return answer

    for op in ("healthz", "readyz", "metrics", "listModels", "getHomePage"):
        assert call(op).status_code == 200, op
    request = models.ExplanationRequest.from_dict({"model": "minilm-l6", "layer": 3, "neurons": [5, 42]})
    finished = call("createExplanation", body=request)
    assert finished.status_code == 200 and finished.parsed.status == "finished"
    job_id = finished.parsed.job_id
    assert call("getJob", job_id).parsed.reports_total == 2
    listing = call("listLayerNeurons", "minilm-l6", 3, format_=models.ListLayerNeuronsFormat("json"))
    assert [row["neuron"] for row in json.loads(listing.content)["neurons"]] == [5, 42]
    for table in ("ndjson", "csv", "parquet"):
        rows = call("listLayerNeurons", "minilm-l6", 3, format_=models.ListLayerNeuronsFormat(table))
        exported = call("exportJobReports", job_id, format_=models.ExportJobReportsFormat(table))
        for answer in (rows, exported):
            body = answer.parsed.payload.read()
            assert body == answer.content
            count = pq.read_table(io.BytesIO(body)).num_rows if table == "parquet" else len(body.splitlines())
            assert count == 2 + (table == "csv"), (table, body[:200])
    report = call("getNeuronReport", "minilm-l6", 3, 42)
    assert report.parsed.neuron == 42
    image = report.parsed.exemplars[0].image_url if report.parsed.exemplars[0].image_url else None
    call("getExemplarImage", "minilm-l6", 3, 42, (image or "/0.png").rsplit("/", 1)[-1])
    for op, args in (
        ("getNeuronPage", ("minilm-l6", 3, 42)),
        ("getLayerPage", ("minilm-l6", 3)),
        ("getJobPage", (job_id,)),
    ):
        assert call(op, *args).status_code == 200, op
    dry = {"dry_run": True}
    estimate = call(
        "createExplanation",
        body=models.ExplanationRequest.from_dict({"model": "minilm-l6", "layer": 3, "neurons": [7], **dry}),
    )
    assert estimate.status_code == 200 and estimate.parsed.neurons == 1
    document = json.loads(DEFAULT_PATH.read_text())
    for op, path, model in (
        ("createCheck", "/v1/checks", "CheckRequest"),
        ("createComparison", "/v1/comparisons", "ComparisonRequest"),
    ):
        example = next(
            iter(
                document["paths"][path]["post"]["requestBody"]["content"]["application/json"][
                    "examples"
                ].values()
            )
        )
        call(op, body=getattr(models, model).from_dict({**example["value"], **dry}))
    listed = call("listJobs")
    assert job_id in [job.job_id for job in listed.parsed.jobs], listed.content[:300]
    assert call("cancelJob", job_id).parsed.status == "finished"  # a finished job stays as it is
    call("getCheck", "chk-" + "0" * 24)
    call("getDictionaryQuality", "minilm-l6", "none")  # the bundled registry attaches no dictionary: 404
    call("getComparison", "cmp-" + "0" * 24)
    call("exportComparison", "cmp-" + "0" * 24)
    call("getComparisonPage", "cmp-" + "0" * 24)
    call("getComparedNeuronPage", "cmp-" + "0" * 24, 0, 1)
    assert called == set(operations)
