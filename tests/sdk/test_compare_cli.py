"""`Client.compare`, `AsyncClient.compare` and `neuronlens compare` against a live stack (`neuronlens up`:
API, RQ worker, embedded Redis) whose registry holds the planted BERT and its changed checkpoint: the
verdicts, the table sorted by score drop, the formats, the dry run and the exit codes."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import re
from collections.abc import Iterator
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from neuronlens import AsyncClient, Client, ComparisonStatus, JobNotFinished
from tests.e2e.helpers import Processes, process_env, run_cli, running_up
from tests.service.comparisons_helpers import BASE, CHANGES, TARGET, comparison_registry
from workers.models.changed_checkpoint import DIGIT_NEURON

pytestmark = pytest.mark.timeout(600)
NEURONS = 128


@pytest.fixture(scope="module")
def compare_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`neuronlens up` (one worker) on a registry with the planted BERT and its changed checkpoint."""
    folder = tmp_path_factory.mktemp("compare-stack")
    registry = comparison_registry(folder / "checkpoints")
    processes = Processes(folder)
    env = process_env(
        NEURONLENS_REGISTRY_PATH=str(registry),
        NEURONLENS_ARTIFACT_URL=str(folder / "artifacts"),
        NEURONLENS_DEVICE="cpu",
    )
    with running_up(processes, env, workers=1) as url:
        yield url


@pytest.fixture(scope="module")
def compared(compare_url: str) -> ComparisonStatus:
    progress: list[ComparisonStatus] = []
    with Client(compare_url, poll_interval_s=0.2) as client:
        estimate = client.estimate_comparison(BASE, TARGET, layers=0, neurons="all")
        assert estimate.neurons == NEURONS and estimate.llm_calls_max == 0, estimate
        status = client.compare(BASE, TARGET, layers=[0], neurons="all", progress=progress.append)
    assert progress and progress[-1].status == "finished"
    return status


def test_the_sdk_returns_every_neuron_with_its_verdict(compare_url: str, compared: ComparisonStatus) -> None:
    assert compared.status == "finished" and compared.comparisons is not None
    assert [item.neuron for item in compared.comparisons] == list(range(NEURONS))
    assert compared.comparisons_total == NEURONS == sum(compared.verdicts.values())
    found = {item.neuron: item.verdict for item in compared.comparisons}
    assert {found[n] for n in CHANGES.dead} == {"dead"}
    assert {found[n] for n in CHANGES.rescaled} == {"rescaled"}
    assert found[DIGIT_NEURON] == "changed"
    with Client(compare_url, poll_interval_s=0.2) as client:
        page = client.comparison(compared.comparison_id, offset=10, limit=5)
        assert page.comparisons == compared.comparisons[10:15]
        table = client.export_comparison(compared.comparison_id, format="csv")
        accepted = client.compare(BASE, TARGET, layers=[0], neurons="all", wait=False)
    assert accepted.comparison_id == compared.comparison_id  # the same request joins the same comparison
    rows = list(csv.DictReader(io.StringIO(table.decode())))
    assert [row["verdict"] for row in rows] == [item.verdict for item in compared.comparisons]

    async def twin() -> ComparisonStatus:
        async with AsyncClient(compare_url, poll_interval_s=0.2) as client:
            assert (await client.estimate_comparison(BASE, TARGET, [0], "all")).neurons == NEURONS
            status = await client.compare(BASE, TARGET, layers=[0], neurons="all")
            exported = await client.export_comparison(status.comparison_id, "ndjson")
            assert [json.loads(line)["neuron"] for line in exported.splitlines()] == list(range(NEURONS))
            return status

    assert asyncio.run(twin()) == compared


def test_an_unfinished_comparison_cannot_be_exported(compare_url: str) -> None:
    with Client(compare_url) as client:
        accepted = client.compare(BASE, TARGET, layers=[1], neurons=[0, 1], wait=False)
        with pytest.raises(JobNotFinished, match="not finished"):
            client.export_comparison(accepted.comparison_id, "csv")
        assert client.wait_comparison(accepted.comparison_id).comparisons_total == 2


def test_the_command_prints_the_verdicts_by_score_drop(compare_url: str, compared: ComparisonStatus) -> None:
    result = run_cli("compare", BASE, TARGET, "--layers", "0", "--neurons", "all", "--url", compare_url)
    assert result.returncode == 0, result.stderr
    assert f"comparison {compared.comparison_id}; viewer: {compare_url}/view/comparisons/" in result.stderr
    assert re.search(rf"^finished +\[#+\] {NEURONS}/{NEURONS} neurons", result.stderr, re.M), result.stderr
    header, columns, *lines = result.stdout.splitlines()
    assert header.startswith(f"{compared.comparison_id}: {BASE} -> {TARGET}, layers 0: unchanged ")
    assert f"dead {len(CHANGES.dead)}" in header
    assert columns.split("\t")[:3] == ["layer", "neuron", "verdict"]
    assert len(lines) == NEURONS
    drops = [float(line.split("\t")[8]) for line in lines if line.split("\t")[8] != "-"]
    assert drops == sorted(drops, reverse=True) and drops, "sorted by score drop, largest first"
    by_neuron = {int(line.split("\t")[1][1:]): line.split("\t")[2] for line in lines}
    assert by_neuron == {item.neuron: item.verdict for item in compared.comparisons or []}
    verdicts = [line.split("\t")[2] for line in lines]
    assert verdicts[0] == "changed", lines[:3]
    digits = next(i for i, line in enumerate(lines) if line.startswith(f"L0\tN{DIGIT_NEURON}\t"))
    assert "unchanged" not in verdicts[:digits], "the re-planted neuron comes before any unchanged one"


@pytest.mark.parametrize("fmt", ["json", "csv", "ndjson", "parquet"])
def test_every_format_agrees_with_the_sdk(
    compare_url: str, compared: ComparisonStatus, fmt: str, tmp_path: Path
) -> None:
    output = tmp_path / f"out.{fmt}"
    args = ["--layers", "0", "--neurons", "0:128", "--format", fmt, "--output", str(output), "--quiet"]
    result = run_cli("compare", BASE, TARGET, *args, "--url", compare_url)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "" and f"{NEURONS} neuron(s) written to {output}" in result.stderr
    expected = [(item.neuron, item.verdict) for item in compared.comparisons or []]
    if fmt == "json":
        status = ComparisonStatus.model_validate_json(output.read_text())
        rows = [{"neuron": item.neuron, "verdict": item.verdict} for item in status.comparisons or []]
    elif fmt == "csv":
        rows = list(csv.DictReader(io.StringIO(output.read_text())))
    elif fmt == "ndjson":
        rows = [json.loads(line) for line in output.read_text().splitlines()]
    else:
        rows = pq.read_table(output).to_pylist()
    assert [(int(row["neuron"]), row["verdict"]) for row in rows] == expected


def test_a_dry_run_and_the_exit_codes(compare_url: str) -> None:
    base = ["compare", BASE, TARGET, "--url", compare_url]
    dry = run_cli(*base, "--layers", "0,1", "--neurons", "1,5,9", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert dry.stdout.startswith("6 neurons compared; base tiny-bert-planted:"), dry.stdout
    assert "LLM calls: at most 0" in dry.stdout
    no_file = run_cli(*base, "--layers", "0", "--neurons", "all", "--format", "parquet")
    assert no_file.returncode == 2 and "give --output FILE" in no_file.stderr
    bad = run_cli(*base, "--layers", "0", "--neurons", "some")
    assert bad.returncode == 2 and "'some' is not a neuron choice" in bad.stderr
    unlike = run_cli(
        "compare", "minilm-l6", "tiny-llama", "--layers", "0", "--neurons", "1", "--url", compare_url
    )
    assert unlike.returncode == 2 and "tokenizer" in unlike.stderr, unlike.stderr
    assert "Traceback" not in unlike.stderr + bad.stderr + no_file.stderr
