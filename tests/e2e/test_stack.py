"""The whole stack as a user runs it: `neuronlens up`, HTTP requests, the `neuronlens` CLI.

Reports are checked against the scan artifacts the worker stored (read through workers.process.scan_job), and
the neuron type is recomputed from those stored activations with the rule of docs/method.md#neuron-types.
"""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from collections.abc import Iterator
from html import escape
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from service.commands.embedded_redis import free_port
from service.contract import BUNDLED_REGISTRY, NeuronReport, PipelineOptions, load_registry
from service.settings import load_settings
from tests.e2e.helpers import Processes, process_env, run_cli, running_up, wait_for
from workers.analysis.assemble import ReportContext
from workers.process.scan_job import open_context
from workers.process.worker import build_runtime

LAYER = 3
MODEL = "minilm-l6"


MISSING_MODEL = "bert-missing"


def registry_with_missing_weights(folder: Path) -> Path:
    """The bundled registry plus a copy of minilm-l6 whose checkpoint path does not exist."""
    registry = json.loads(BUNDLED_REGISTRY.read_text())
    missing = copy.deepcopy(registry["models"][0])
    missing.update(
        id=MISSING_MODEL, source={"kind": "hub-or-path", "path": str(folder / "no-such-checkpoint")}
    )
    registry["models"].append(missing)
    path = folder / "registry.json"
    path.write_text(json.dumps(registry))
    return path


class RunningStack:
    def __init__(self, url: str, artifact_dir: Path, processes: Processes):
        self.url = url
        self.artifact_dir = artifact_dir
        self.processes = processes


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, shared_artifact_dir: Path) -> Iterator[RunningStack]:
    """`neuronlens up` with its own embedded Redis and one worker; artifacts in the session's store."""
    processes = Processes(tmp_path_factory.mktemp("stack-logs"))
    env = process_env(
        NEURONLENS_ARTIFACT_URL=str(shared_artifact_dir),
        NEURONLENS_REGISTRY_PATH=str(registry_with_missing_weights(tmp_path_factory.mktemp("registry"))),
    )
    with running_up(processes, env, workers=1) as url:
        yield RunningStack(url, shared_artifact_dir, processes)


def scan_context(artifact_dir: Path) -> ReportContext:
    """The stored scan of MODEL layer LAYER (default hook, dataset and options), as the worker wrote it."""
    runtime = build_runtime(load_settings(artifact_url=str(artifact_dir)))
    registry = load_registry()
    model = registry.model(MODEL)
    dataset = registry.dataset(model.datasets[0])
    return open_context(runtime, model, dataset, model.default_hook, LAYER, PipelineOptions())


def assert_report_matches_scan(raw: dict[str, Any], context: ReportContext) -> None:
    report = NeuronReport.model_validate(raw)
    neuron, options = report.neuron, PipelineOptions()
    scan, probe = context.scan, context.probe
    assert (report.model, report.layer, report.hook) == (MODEL, LAYER, "mlp_act")
    assert report.max_activation == pytest.approx(float(scan.global_max[neuron]), rel=1e-6)
    top_ids, top_acts = scan.top_ids[neuron], scan.top_acts(neuron)
    assert [ex.rank for ex in report.exemplars] == list(range(options.n_exemplars))
    for exemplar in report.exemplars:
        assert exemplar.sample_id == int(top_ids[exemplar.rank])
        assert exemplar.tokens == list(probe.tokens[exemplar.sample_id])
        stored = top_acts[exemplar.rank, : len(exemplar.tokens)]
        np.testing.assert_allclose(exemplar.activations, stored, rtol=1e-6, atol=1e-6)

    # docs/method.md#neuron-types from the stored activations, with the text-model rule: the 0-10 scale's
    # 10 is the 0.999 quantile of the probe set's per-sample maxima (numpy's, over the top-N maxima padded
    # with their smallest: the quantile only reads the top order statistics), and a sample is
    # text-activated when >= 1 token exceeds 3 on that scale.
    maxima = top_acts.max(axis=1)
    padded = np.concatenate([maxima, np.full(probe.n_samples - len(maxima), maxima.min())])
    scale = float(np.quantile(padded, options.scale_quantile))
    # The scan keeps per-sample maxima in float32, per-token activations in float16: equal to fp16 precision.
    assert report.normalisation is not None and report.normalisation.scale == pytest.approx(scale, rel=1e-3)
    normalised = np.clip(10 * top_acts / report.normalisation.scale, 0, 10)
    text_active = (normalised > options.text_threshold).sum(axis=1) >= options.text_model_min_tokens
    p_text = float(text_active.mean())
    assert report.type_evidence.p_text == pytest.approx(p_text)
    assert report.type_evidence.p_unknown == pytest.approx(1 - p_text)
    assert report.type_evidence.p_visual == report.type_evidence.p_multimodal == 0
    assert report.neuron_type == ("text" if p_text >= 0.5 else "unknown")
    assert report.explanation.backend == "baseline" and report.explanation.text


def test_explanations_over_http_match_the_stored_scan(stack: RunningStack) -> None:
    """The job path: nothing is stored for these neurons (the stack's Redis is its own, and no other test
    explains them), so the request is a 202 and a job produces the reports; the repeat is then a 200."""
    neurons = [0, 41, 777, 1535]
    with httpx.Client(base_url=stack.url, timeout=10) as client:
        for neuron in neurons:
            absent = client.get(f"/v1/neurons/{MODEL}/{LAYER}/{neuron}")
            assert absent.status_code == 404, f"neuron {neuron} already has a report: {absent.text[:200]}"
        posted = client.post("/v1/explanations", json={"model": MODEL, "layer": LAYER, "neurons": neurons})
        assert posted.status_code == 202, posted.text
        status_url = posted.json()["status_url"]
        seen: set[str] = set()

        def finished() -> dict[str, Any] | None:
            status = client.get(status_url).json()
            seen.add(status["status"])
            assert status["status"] != "failed", status
            return status if status["status"] == "finished" else None

        status = wait_for(finished, 150, "the explanation job to finish", interval_s=0.2)
        assert isinstance(status, dict)
        assert seen <= {"queued", "scanning", "explaining", "simulating", "finished"}, seen
        assert status["progress"] == {"done": len(neurons), "total": len(neurons)}
        reports = status["reports"]
        assert sorted(report["neuron"] for report in reports) == neurons
        context = scan_context(stack.artifact_dir)
        for report in reports:
            assert_report_matches_scan(report, context)

        # Each report is stored for direct lookup, and a repeat is answered at once.
        stored = client.get(f"/v1/neurons/{MODEL}/{LAYER}/41")
        assert stored.status_code == 200 and stored.json() == next(r for r in reports if r["neuron"] == 41)
        again = client.post("/v1/explanations", json={"model": MODEL, "layer": LAYER, "neurons": neurons})
        assert again.status_code == 200 and len(again.json()["reports"]) == len(neurons)


def test_cli_explain_prints_the_report(stack: RunningStack) -> None:
    neuron = 5  # not explained by another test: the CLI follows a real job
    result = run_cli(
        "explain", "--url", stack.url, "--model", MODEL, "--layer", str(LAYER), "--neuron", str(neuron)
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["neuron"] == neuron and report["layer"] == LAYER
    assert_report_matches_scan(report, scan_context(stack.artifact_dir))
    assert "finished" in result.stderr and "1/1" in result.stderr, "progress goes to stderr"


def test_cli_explain_range_prints_an_array(stack: RunningStack) -> None:
    result = run_cli(
        "explain", "--url", stack.url, "--model", MODEL, "--layer", str(LAYER), "--range", "10:13"
    )
    assert result.returncode == 0, result.stderr
    assert [report["neuron"] for report in json.loads(result.stdout)] == [10, 11, 12]


@pytest.mark.parametrize(
    ("args", "problem"),
    [
        (
            ["--model", MODEL, "--layer", "40", "--neuron", "1"],
            "layer 40 is out of range: minilm-l6 has layers 0–5",
        ),
        (["--model", "gpt-9", "--layer", "1", "--neuron", "1"], "model 'gpt-9' is not served: choose one of"),
        (["--model", MODEL, "--layer", "1", "--neuron", "1536"], "neuron 1536 is out of range"),
        (["--model", MODEL, "--layer", "1", "--range", "9:3"], "stop (3) must be greater than start (9)"),
    ],
)
def test_cli_explain_rejects_bad_input_with_the_problem(
    stack: RunningStack, args: list[str], problem: str
) -> None:
    result = run_cli("explain", "--url", stack.url, *args)
    assert result.returncode == 2
    assert problem in result.stderr
    assert result.stdout == ""


def test_cli_explain_reports_a_failed_job(stack: RunningStack) -> None:
    result = run_cli("explain", "--url", stack.url, "--model", MISSING_MODEL, "--layer", "0", "--neuron", "1")
    assert result.returncode == 1
    assert "failed: ModelWeightsMissing: " in result.stderr and "no-such-checkpoint" in result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""


def test_cli_explain_without_an_api_says_so() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    # One retry: the default six ride out a 15 s restart, which this test need not wait for.
    result = run_cli(
        "explain", "--url", url, "--model", MODEL, "--layer", "1", "--neuron", "1", "--retries", "1"
    )
    assert result.returncode == 1
    assert f"cannot reach the NeuronLens API at {url}" in result.stderr


def test_demo_explains_and_stops(stack: RunningStack, tmp_path: Path) -> None:
    """`neuronlens demo` with the scan already stored (the artifact store the stack above filled): a short
    summary on stdout, the report as JSON in the file it names."""
    result = subprocess.run(
        [sys.executable, "-m", "service.commands.main", "demo", "--quiet"],
        env=process_env(NEURONLENS_ARTIFACT_URL=str(stack.artifact_dir)),
        capture_output=True,
        text=True,
        timeout=150,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    output = tmp_path / "neuronlens-demo-report.json"
    report = json.loads(output.read_text())
    assert (report["model"], report["layer"], report["neuron"]) == (MODEL, LAYER, 42)
    assert_report_matches_scan(report, scan_context(stack.artifact_dir))
    summary = result.stdout
    assert len(summary.splitlines()) < 12, "a summary, not the report"
    assert f"{MODEL} layer {LAYER} neuron 42" in summary
    assert f"type:        {report['neuron_type']} (" in summary
    assert f"explanation: {report['explanation']['text']}" in summary
    correlation = report["simulation"]["correlation"]
    assert f"score:       {correlation:.3f} (95% CI " in summary
    chance = report["simulation"]["chance"]
    verdict = "beyond chance" if chance["beyond_chance"] else "not beyond chance"
    assert f"chance:      {verdict} (p {chance['p_value']:.2g} against {chance['k']} explanations" in summary
    assert f"/v1/neurons/{MODEL}/{LAYER}/42/page" in summary
    assert f"report JSON: {output}" in summary
    # The stack is gone after the demo: the page URL it prints is the neuron's page saved as a file.
    page = tmp_path / "neuronlens-demo-report.html"
    assert f"page:        {page.as_uri()}" in summary
    html = page.read_text()
    assert html.startswith("<!doctype html>") and escape(report["explanation"]["text"]) in html
