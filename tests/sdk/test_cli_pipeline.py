"""`neuronlens explain` and `neuronlens models` for pipelines: formats, options, exit codes, warnings —
the real command in a subprocess against a live stack, checked against the SDK's typed reports."""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from neuronlens import Client, ExplanationAccepted, NeuronReport
from tests.e2e.helpers import Processes, probe_registry, process_env, run_cli, running_up
from tests.sdk.conftest import IdleApi

MODEL, LAYER = "minilm-l6", 3
RANGE = ["--model", MODEL, "--layer", str(LAYER), "--range", "200:203"]


@pytest.fixture(scope="module")
def expected(live_url: str) -> list[NeuronReport]:
    with Client(live_url) as client:
        return client.explain(MODEL, LAYER, range(200, 203))


@pytest.mark.parametrize("fmt", ["json", "jsonl", "csv", "summary", "ndjson", "parquet"])
def test_every_format_agrees_with_the_reports(
    live_url: str, expected: list[NeuronReport], fmt: str, tmp_path: Path
) -> None:
    output = tmp_path / f"out.{fmt}"
    result = run_cli("explain", "--url", live_url, *RANGE, "--format", fmt, "--output", str(output))
    assert result.returncode == 0, result.stderr
    assert result.stdout == "" and f"3 report(s) written to {output}" in result.stderr
    text = output.read_text() if fmt != "parquet" else ""
    if fmt == "json":
        assert [NeuronReport.model_validate(item) for item in json.loads(text)] == expected
    elif fmt == "jsonl":
        assert [NeuronReport.model_validate_json(line) for line in text.splitlines()] == expected
    elif fmt in ("csv", "ndjson", "parquet"):  # the API's table of the finished job
        rows = _table_rows(output, fmt)
        assert [int(row["neuron"]) for row in rows] == [200, 201, 202]
        assert [row["neuron_type"] for row in rows] == [report.neuron_type for report in expected]
        assert [row["explanation"] for row in rows] == [report.explanation.text for report in expected]
        scores = [float(row["correlation"]) if row["correlation"] not in ("", None) else None for row in rows]
        assert scores == [report.simulation.correlation for report in expected]
    else:
        lines = [line.split("\t") for line in text.splitlines()]
        assert [(fields[1], fields[2], fields[4]) for fields in lines] == [
            (f"N{r.neuron}", r.neuron_type, r.explanation.text) for r in expected
        ]


def _table_rows(path: Path, fmt: str) -> list[dict[str, Any]]:
    if fmt == "csv":
        return list(csv.DictReader(io.StringIO(path.read_text())))
    if fmt == "ndjson":
        return [json.loads(line) for line in path.read_text().splitlines()]
    rows: list[dict[str, Any]] = pq.read_table(path).to_pylist()
    return rows


def test_export_writes_a_job_or_a_layer_as_the_api_does(
    live_url: str, expected: list[NeuronReport], tmp_path: Path
) -> None:
    with Client(live_url) as client:
        answer = client.submit(MODEL, LAYER, range(200, 203))
        via_sdk = client.export(answer.job_id, format="csv")
        layer_table = client.export_layer(MODEL, LAYER, format="ndjson", fields="full")
    job = run_cli("export", answer.job_id, "--url", live_url, "--format", "csv")
    assert job.returncode == 0, job.stderr
    assert job.stdout == via_sdk.decode() and job.stdout.startswith("model,layer,neuron,hook,neuron_type,")
    full = [NeuronReport.model_validate_json(line) for line in layer_table.splitlines()]
    assert [r for r in full if r.neuron in (200, 201, 202)] == expected

    output = tmp_path / "layer.parquet"
    layer = run_cli(
        "export", "--url", live_url, "--model", MODEL, "--layer", str(LAYER), "--format", "parquet",
        "--output", str(output),
    )  # fmt: skip
    assert layer.returncode == 0, layer.stderr
    assert {200, 201, 202} <= {row["neuron"] for row in _table_rows(output, "parquet")}
    no_file = run_cli("export", answer.job_id, "--url", live_url, "--format", "parquet")
    assert no_file.returncode == 2 and "give --output FILE" in no_file.stderr
    unknown = run_cli("export", "exp-000000000000000000000000", "--url", live_url)
    assert unknown.returncode == 2 and "not found" in unknown.stderr


def test_a_range_is_always_an_array_and_one_neuron_an_object(live_url: str) -> None:
    base = ["explain", "--url", live_url, "--model", MODEL, "--layer", str(LAYER), "--quiet"]
    one_range = run_cli(*base, "--range", "200:201")
    one_neuron = run_cli(*base, "--neuron", "200")
    two_neurons = run_cli(*base, "--neuron", "200", "--neuron", "201")
    assert one_range.returncode == one_neuron.returncode == two_neurons.returncode == 0
    assert [item["neuron"] for item in json.loads(one_range.stdout)] == [200]
    assert json.loads(one_neuron.stdout)["neuron"] == 200
    assert [item["neuron"] for item in json.loads(two_neurons.stdout)] == [200, 201]


def test_options_pass_through_typed(live_url: str) -> None:
    result = run_cli(
        "explain", "--url", live_url, "--model", MODEL, "--layer", str(LAYER), "--neuron", "200",
        "--option", "text_threshold=2.5", "--option", "n_exemplars=5", "--quiet",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    report = NeuronReport.model_validate_json(result.stdout)
    assert len(report.exemplars) == 5
    with Client(live_url) as client:
        same = client.explain(MODEL, LAYER, [200], options={"text_threshold": 2.5, "n_exemplars": 5})
        default = client.report(MODEL, LAYER, 200)
    assert same == [report], "the options reached the API typed (same report variant as the SDK's)"
    assert report.type_evidence.p_text >= default.type_evidence.p_text, "a lower threshold admits more"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--neuron", "42", "--range", "0:2"], "argument --range: not allowed with argument --neuron"),
        (["--neuron", "42", "--option", "seeed=1"], "--option seeed: unknown option; choose one of n_top"),
        (["--neuron", "42", "--option", "seed=one"], "--option seed: Input should be a valid integer"),
        (["--neuron", "42", "--option", "text_threshold=11"], "--option text_threshold: Input should be"),
        (["--neuron", "42", "--option", "n_explain=50"], "n_explain + n_holdout (50 + 10) must not exceed"),
        (["--neuron", "42", "--option", "seed"], "write NAME=VALUE"),
        (["--neuron", "42", "--format", "xml"], "argument --format: invalid choice: 'xml'"),
        (["--neurons", "some"], "argument --neurons: invalid choice: 'some'"),
        (["--neurons", "all", "--layers", "0,2"], "argument --layers: not allowed with argument --layer"),
        (["--neurons", "all", "--layers", "0,x"], "'0,x' is not a layer list: write all, or e.g. 0,2,5"),
    ],
)
def test_conflicting_flags_and_bad_options_exit_2(args: list[str], message: str) -> None:
    url = "http://127.0.0.1:9"  # never reached: the command line is checked first
    result = run_cli("explain", "--url", url, "--model", MODEL, "--layer", str(LAYER), *args)
    assert result.returncode == 2
    assert message in result.stderr
    assert result.stdout == "" and "Traceback" not in result.stderr


def test_a_job_nobody_runs_is_flagged(idle_api: IdleApi) -> None:
    result = run_cli(
        "explain", "--url", idle_api.url, "--model", MODEL, "--layer", str(LAYER), "--neuron", "9",
        "--timeout", "2",
    )  # fmt: skip
    assert result.returncode == 1
    assert "queued but no worker listens on its queue" in result.stderr
    assert result.stderr.count("no worker listens") == 1, "warned once"
    assert "stopped waiting" in result.stderr


def test_models_lists_the_served_models(live_url: str) -> None:
    table = run_cli("models", "--url", live_url)
    as_json = run_cli("models", "--url", live_url, "--format", "json")
    assert table.returncode == as_json.returncode == 0
    with Client(live_url) as client:
        served = client.models()
    assert [item["id"] for item in json.loads(as_json.stdout)] == [model.id for model in served]
    rows = [line.split("\t") for line in table.stdout.splitlines()[1:]]
    assert [(row[0], int(row[2]), int(row[3])) for row in rows] == [
        (model.id, model.layers, model.neurons_per_layer) for model in served
    ]


def test_a_whole_model_audit_with_a_moving_progress_bar(processes: Processes, tmp_path: Path) -> None:
    """`neuronlens explain --layers all`: one request, its bar moving over the scan's samples (512 samples,
    two per batch, progress written after each) and then over neurons; a report per (layer, neuron). Also
    `--layers 0,2` and the SDK with `layers="all"` give the same reports."""
    env = process_env(
        NEURONLENS_REGISTRY_PATH=str(probe_registry(tmp_path / "registry.json", 512, MODEL)),
        NEURONLENS_ARTIFACT_URL=str(tmp_path / "artifacts"),
        NEURONLENS_SCAN_BATCH_SIZE="2",
        NEURONLENS_PROGRESS_INTERVAL_S="0",
    )
    with running_up(processes, env, workers=1) as url:
        output = tmp_path / "audit.tsv"
        result = run_cli(
            "explain", "--url", url, "--model", MODEL, "--layers", "all", "--range", "0:2",
            "--format", "summary", "--output", str(output), timeout_s=600,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        rows = [line.split("\t")[:2] for line in output.read_text().splitlines()]
        assert rows == [[f"L{layer}", f"N{n}"] for layer in range(6) for n in range(2)]
        scanned = [
            tuple(map(int, match.groups()))
            for match in re.finditer(r"^scanning +\[[#.]+\] (\d+)/(\d+) samples", result.stderr, re.M)
        ]
        moving = {done for done, total in scanned if 0 < done < total == 512}
        assert len(moving) >= 2, f"the bar did not move during the scan:\n{result.stderr}"
        assert re.search(r"^finished +\[#+\] 12/12 neurons", result.stderr, re.M), result.stderr

        some = run_cli(
            "explain", "--url", url, "--model", MODEL, "--layers", "0,2", "--range", "0:2", "--quiet",
            "--format", "jsonl",
        )  # fmt: skip
        assert some.returncode == 0, some.stderr
        layers = [
            (r.layer, r.neuron) for r in map(NeuronReport.model_validate_json, some.stdout.splitlines())
        ]
        assert layers == [(0, 0), (0, 1), (2, 0), (2, 1)]
        with Client(url) as client:
            reports = client.explain(MODEL, "all", range(0, 2))
        assert [(r.layer, r.neuron) for r in reports] == [(layer, n) for layer in range(6) for n in range(2)]


def test_a_dry_run_of_several_layers_prints_the_estimate_and_runs_nothing(live_url: str) -> None:
    """`--layers … --dry-run`: the estimate for every layer, exit 0, and no job (the same request later
    is still a fresh 202, not a finished one)."""
    base = ["explain", "--url", live_url, "--model", MODEL, "--layers", "0,5", "--range", "300:302"]
    dry = run_cli(*base, "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "layers 0, 5: 4 neurons to explain (0 of 4 already stored)" in dry.stdout, dry.stdout
    assert "LLM calls: 0" in dry.stdout
    with Client(live_url) as client:
        assert isinstance(client.submit(MODEL, [0, 5], range(300, 302)), ExplanationAccepted)
