"""`neuronlens check` and `neuronlens pin` as a CI pipeline runs them (the command in a subprocess) against a
real API, with the project's RQ worker running the jobs: the digit pin passes on the planted BERT (exit 0)
and fails on the checkpoint whose digit neuron was re-planted (exit 1), the JUnit XML says so with the
numbers, pins written from a finished job round-trip, and bad pin files exit 2 with a clear message."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis
import yaml

from neuronlens import (
    AsyncClient,
    CheckAccepted,
    CheckEstimate,
    CheckStatus,
    Client,
    PinFile,
    RequestRejected,
)
from service.http.app import create_app
from service.settings import Settings
from tests.service.checks_helpers import BASE, DIGIT_PIN, TARGET, planted_registry
from tests.service.helpers import run_workers, serve

pytestmark = pytest.mark.timeout(300)
PLAY_PIN = {"layer": 0, "neuron": 20, "explanation": 'words starting with "play"', "min_score": 0.6}


@pytest.fixture(scope="module")
def registry_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return planted_registry(tmp_path_factory.mktemp("planted"))


@pytest.fixture()
def api(
    registry_path: Path, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[str, Settings]]:
    for name, value in {
        "NEURONLENS_REGISTRY_PATH": str(registry_path),
        "NEURONLENS_ARTIFACT_URL": settings.artifact_url,
        "NEURONLENS_DEVICE": "cpu",
        "HF_HUB_OFFLINE": "1",
    }.items():
        monkeypatch.setenv(name, value)
    settings = settings.model_copy(update={"registry_path": registry_path})
    with serve(create_app(settings)) as url:
        yield url, settings


def neuronlens(
    conn: redis.Redis, settings: Settings, *args: str, cwd: Path
) -> subprocess.CompletedProcess[str]:
    """Run the client's `neuronlens` command while this process's worker runs whatever it enqueues."""
    command = [sys.executable, "-m", "neuronlens.cli.main", *args]
    process = subprocess.Popen(command, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 240
    while process.poll() is None and time.monotonic() < deadline:
        run_workers(conn, settings)
        time.sleep(0.1)
    stdout, stderr = process.communicate(timeout=30)
    return subprocess.CompletedProcess(command, process.returncode, stdout, stderr)


def _junit(path: Path) -> dict[str, ET.Element]:
    root = ET.parse(path).getroot()
    assert root.tag == "testsuites"
    (suite,) = root.findall("testsuite")
    cases = {case.get("name", ""): case for case in suite.findall("testcase")}
    assert suite.get("tests") == str(len(cases))
    return cases


def test_check_exits_0_on_the_base_and_1_on_the_re_planted_target_with_junit(
    api: tuple[str, Settings], redis_conn: redis.Redis, tmp_path: Path
) -> None:
    url, settings = api
    pins = tmp_path / "pins.yaml"
    pins.write_text(yaml.safe_dump({"model": BASE, "pins": [DIGIT_PIN, PLAY_PIN]}))

    base = neuronlens(
        redis_conn, settings, "check", str(pins), "--url", url, "--junit", "base.xml", cwd=tmp_path
    )
    assert base.returncode == 0, base.stdout + base.stderr
    assert f"PASS\t{BASE} L0 N10\t" in base.stdout and "2/2 pins held: passed" in base.stdout
    cases = _junit(tmp_path / "base.xml")
    assert set(cases) == {f"{BASE} L0 N10", f"{BASE} L0 N20"}
    assert all(case.find("failure") is None for case in cases.values())

    target = neuronlens(
        redis_conn, settings, "check", str(pins), "--model", TARGET, "--url", url, "--junit", "target.xml",
        cwd=tmp_path,
    )  # fmt: skip
    assert target.returncode == 1, target.stdout + target.stderr
    assert f"FAIL\t{TARGET} L0 N10\t" in target.stdout and "1/2 pins held: FAILED" in target.stdout
    cases = _junit(tmp_path / "target.xml")
    failure = cases[f"{TARGET} L0 N10"].find("failure")
    assert failure is not None and "below the minimum 0.6" in failure.get("message", ""), failure
    numbers = dict(line.split(": ", 1) for line in (failure.text or "").strip().splitlines())
    assert float(numbers["score"]) < 0.3 and numbers["min_score"] == "0.6" and numbers["neuron"] == "10"
    assert cases[f"{TARGET} L0 N20"].find("failure") is None

    as_json = neuronlens(
        redis_conn, settings, "check", str(pins), "--model", TARGET, "--url", url, "--format", "json",
        cwd=tmp_path,
    )  # fmt: skip
    assert as_json.returncode == 1 and json.loads(as_json.stdout)["passed"] is False


def test_pins_written_from_a_job_round_trip(
    api: tuple[str, Settings], redis_conn: redis.Redis, tmp_path: Path
) -> None:
    url, settings = api
    request = {
        "model": BASE,
        "layer": 0,
        "neurons": [10, 20],
        "explainer": "baseline",
        "simulator": "baseline",
    }
    job_id = httpx.post(f"{url}/v1/explanations", json=request, timeout=30).json()["job_id"]
    run_workers(redis_conn, settings)
    written = neuronlens(
        redis_conn, settings, "pin", "--from-job", job_id, "--min-score", "0.6", "--max-score-drop", "0.2",
        "--output", "audit.yaml", "--url", url, cwd=tmp_path,
    )  # fmt: skip
    assert written.returncode == 0, written.stdout + written.stderr
    pin_file = yaml.safe_load((tmp_path / "audit.yaml").read_text())
    assert pin_file["model"] == BASE and pin_file["version"] == 1
    assert [(p["layer"], p["neuron"]) for p in pin_file["pins"]] == [(0, 10), (0, 20)]
    digits = pin_file["pins"][0]
    assert digits["type"] == "text" and digits["base_score"] > 0.8 and digits["max_score_drop"] == 0.2
    assert "digit" in digits["explanation"] or "number" in digits["explanation"], digits

    passed = neuronlens(redis_conn, settings, "check", "audit.yaml", "--url", url, "--quiet", cwd=tmp_path)
    assert passed.returncode == 0, passed.stdout + passed.stderr
    moved = neuronlens(
        redis_conn, settings, "check", "audit.yaml", "--model", TARGET, "--url", url, "--quiet", cwd=tmp_path
    )
    assert moved.returncode == 1, moved.stdout + moved.stderr


@pytest.mark.parametrize(
    ("name", "text", "words"),
    [
        ("broken.yaml", "pins:\n  - layer: 0\n    neuron: [10\n", "not valid YAML: line"),
        (
            "drop.yaml",
            "pins:\n  - {layer: 0, neuron: 10, explanation: x, max_score_drop: 0.1}\n",
            "needs base_score",
        ),
        ("range.json", json.dumps({"pins": [dict(DIGIT_PIN, neuron=99_999)]}), "pins.0.neuron"),
        ("empty.yaml", "pins: []\n", "pins: List should have at least 1 item"),
        ("list.yaml", "- layer: 0\n", "must hold a mapping"),
    ],
)
def test_bad_pin_files_exit_2_with_a_clear_error(
    api: tuple[str, Settings], redis_conn: redis.Redis, tmp_path: Path, name: str, text: str, words: str
) -> None:
    url, settings = api
    (tmp_path / name).write_text(text)
    result = neuronlens(redis_conn, settings, "check", name, "--model", BASE, "--url", url, cwd=tmp_path)
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stderr.startswith("neuronlens check: ") and words in result.stderr, result.stderr
    assert not (tmp_path / "junit.xml").exists()


def test_the_sdk_checks_pins_sync_and_async(api: tuple[str, Settings], redis_conn: redis.Redis) -> None:
    url, settings = api
    pins = PinFile.model_validate({"pins": [DIGIT_PIN]})
    with Client(url) as client:
        estimate = client.submit_check(pins, model=TARGET, dry_run=True)
        assert isinstance(estimate, CheckEstimate) and estimate.llm_calls == 0 and estimate.pins == 1
        accepted = client.submit_check(pins, model=TARGET)
        assert isinstance(accepted, CheckAccepted)
        assert client.check_status(accepted.check_id).status in ("queued", "scanning")
        run_workers(redis_conn, settings)
        status = client.check(pins, model=TARGET, timeout_s=30)  # joins the finished check
        assert status.check_id == accepted.check_id and status.passed is False
        with pytest.raises(RequestRejected, match="no model to check"):
            client.check(pins)

    async def check_async() -> CheckStatus:
        async with AsyncClient(url) as client:
            return await client.check([DIGIT_PIN], model=TARGET, timeout_s=30)

    again = asyncio.run(check_async())
    assert again.check_id == status.check_id and again.results == status.results
