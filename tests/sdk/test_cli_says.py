"""The CLI says what it did: the job id and its viewer page as soon as it submits, one prefix per error, a
notice before a request's options make it rescan a layer, and tables that mark reports made with
non-default options. The real command in a subprocess against a real stack."""

from __future__ import annotations

import csv
import io
import json
import queue
import re
import signal
import subprocess
import sys
import threading
from pathlib import Path

import httpx

from tests.e2e.helpers import Processes, probe_registry, process_env, run_cli, running_up
from tests.sdk.conftest import IdleApi

MODEL, LAYER = "minilm-l6", 3
JOB_LINE = re.compile(
    r"^neuronlens explain: job (exp-[0-9a-f]{24}); viewer: (http://\S+/view/jobs/\1)$", re.MULTILINE
)
NOTICE = (
    "neuronlens explain: option seed=1 changes the scan: layer 3 of minilm-l6 will be rescanned "
    "(no stored scan for these settings)"
)


def _lines(stream: io.BufferedReader, into: queue.Queue[str]) -> None:
    for raw in stream:
        into.put(raw.decode(errors="replace").rstrip("\n"))


def test_explain_prints_the_job_id_and_viewer_page_as_soon_as_it_submits(idle_api: IdleApi) -> None:
    """No worker runs the job, so it cannot finish: the line must come right after the submission."""
    cli = subprocess.Popen(
        [sys.executable, "-m", "service.commands.main", "explain", "--url", idle_api.url, "--model", MODEL,
         "--layer", str(LAYER), "--neuron", "1111"],
        env=process_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    lines: queue.Queue[str] = queue.Queue()
    assert cli.stderr is not None
    threading.Thread(target=_lines, args=(cli.stderr, lines), daemon=True).start()
    try:
        seen: list[str] = []
        while not any(JOB_LINE.match(line) for line in seen):
            seen.append(lines.get(timeout=60))  # queue.Empty fails the test after a minute
        match = next(m for m in map(JOB_LINE.match, seen) if m)
        job_id, viewer = match.groups()
        assert viewer == f"{idle_api.url}/view/jobs/{job_id}"
        status = httpx.get(f"{idle_api.url}/v1/jobs/{job_id}", timeout=10).json()
        assert status["status"] == "queued", "printed while the job waits, not once it finished"
        page = httpx.get(viewer, timeout=10)
        assert page.status_code == 200 and job_id in page.text
        assert cli.poll() is None, "the command still follows the job"
    finally:
        cli.send_signal(signal.SIGINT)
        assert cli.wait(timeout=60) == 130


def test_an_error_has_one_prefix() -> None:
    url = "http://127.0.0.1:9"  # never reached: the output is checked first
    export = run_cli("export", "exp-000000000000000000000000", "--url", url, "--format", "parquet")
    explain = run_cli(
        "explain", "--url", url, "--model", MODEL, "--layer", str(LAYER), "--neuron", "1",
        "--format", "parquet",
    )  # fmt: skip
    assert export.returncode == explain.returncode == 2
    assert export.stderr.count("neuronlens export:") == 1, export.stderr
    assert explain.stderr.count("neuronlens explain:") == 1, explain.stderr
    assert "neuronlens export: --format parquet writes a binary file: give --output FILE" in export.stderr


def _explain_csv(url: str, neuron: int, output: Path, *options: str) -> tuple[str, dict[str, str]]:
    """`neuronlens explain … --format csv` of one neuron: (stderr, its table row)."""
    result = run_cli(
        "explain", "--url", url, "--model", MODEL, "--layer", str(LAYER), "--neuron", str(neuron),
        "--format", "csv", "--output", str(output), "--quiet", *options, timeout_s=240,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    (row,) = csv.DictReader(io.StringIO(output.read_text()))
    return result.stderr, row


def test_an_option_that_changes_the_scan_says_so_and_its_reports_are_marked(
    processes: Processes, tmp_path: Path
) -> None:
    env = process_env(
        NEURONLENS_REGISTRY_PATH=str(probe_registry(tmp_path / "registry.json", 256, MODEL)),
        NEURONLENS_ARTIFACT_URL=str(tmp_path / "artifacts"),
    )
    with running_up(processes, env, workers=1) as url:
        default_err, default_row = _explain_csv(url, 5, tmp_path / "default.csv")
        assert "changes the scan" not in default_err, default_err
        assert default_row["non_default_options"] == ""

        seeded_err, seeded_row = _explain_csv(url, 5, tmp_path / "seeded.csv", "--option", "seed=1")
        assert NOTICE in seeded_err.splitlines(), seeded_err
        job_line = next(line for line in seeded_err.splitlines() if JOB_LINE.match(line))
        assert seeded_err.index(NOTICE) < seeded_err.index(job_line), "the notice comes before the job"
        assert seeded_row["non_default_options"] == "seed=1"

        # the seed's scan is stored now; an option that keeps the scan never says it changes it
        again_err, _ = _explain_csv(url, 6, tmp_path / "again.csv", "--option", "seed=1")
        assert "changes the scan" not in again_err, again_err
        both_err, both_row = _explain_csv(
            url, 6, tmp_path / "both.csv", "--option", "text_threshold=2.5", "--option", "seed=1"
        )
        assert "changes the scan" not in both_err, both_err
        assert both_row["non_default_options"] == "seed=1;text_threshold=2.5"

        # the JSON export says the same, as a list; the viewer page of the seeded report wears the mark
        seeded_job = JOB_LINE.search(seeded_err)
        assert seeded_job is not None
        rows = httpx.get(f"{url}/v1/jobs/{seeded_job.group(1)}/reports", timeout=30).text.splitlines()
        assert [json.loads(line)["non_default_options"] for line in rows] == [["seed=1"]]
        job_page = httpx.get(f"{url}/view/jobs/{seeded_job.group(1)}", timeout=30).text
        (neuron_href,) = re.findall(r'href="([^"]*/neurons/[^"]*/5/page\?[^"]*)"', job_page)
        marked = httpx.get(url + neuron_href.replace("&amp;", "&"), timeout=30)
        assert marked.status_code == 200, marked.text
        assert 'id="non-default-options"' in marked.text and "seed=1" in marked.text
        plain = httpx.get(f"{url}/v1/neurons/{MODEL}/{LAYER}/5/page", timeout=30)
        assert plain.status_code == 200 and 'id="non-default-options"' not in plain.text
