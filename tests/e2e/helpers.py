"""Helpers for end-to-end tests: waiting, process environments, /proc inspection, process bookkeeping
(and its `processes` fixture), `neuronlens up`, the CLI in a subprocess."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from service.commands.embedded_redis import free_port
from service.contract import BUNDLED_REGISTRY

REPO_ROOT = Path(__file__).resolve().parents[2]


def wait_for(
    predicate: Callable[[], object], timeout_s: float, what: str, interval_s: float = 0.05
) -> object:
    """Poll ``predicate`` until it returns something truthy; fail the test naming ``what`` on timeout."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout_s}s waiting for {what}")
        time.sleep(interval_s)


def probe_registry(path: Path, samples: int, model: str = "minilm-l6") -> Path:
    """The bundled registry written to ``path`` with ``model``'s default probe set cut to its first
    ``samples`` (a scan of seconds, not of the whole set), for NEURONLENS_REGISTRY_PATH."""
    registry = json.loads(BUNDLED_REGISTRY.read_text())
    (spec,) = [entry for entry in registry["models"] if entry["id"] == model]
    (probe,) = [dataset for dataset in registry["datasets"] if dataset["id"] == spec["datasets"][0]]
    probe["n_samples"] = samples
    path.write_text(json.dumps(registry))
    return path


def process_env(**extra: str) -> dict[str, str]:
    """The test's environment plus offline model loading and ``extra`` (NEURONLENS_* settings)."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("NEURONLENS_")}
    env.pop("REDIS_URL", None)
    env["HF_HUB_OFFLINE"] = "1"
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


def pid_alive(pid: int) -> bool:
    """True while ``pid`` names a process that is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    state = stat.rsplit(")", 1)[1].split()[0]
    return state not in ("Z", "X")


def child_pids(pid: int) -> list[int]:
    """Direct children of ``pid`` (from /proc)."""
    children = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
        parent = int(stat.rsplit(")", 1)[1].split()[1])
        if parent == pid:
            children.append(int(entry.name))
    return children


def command_line(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except (FileNotFoundError, ProcessLookupError):
        return ""


class Processes:
    """Starts processes for one test and kills whatever is still running at the end."""

    def __init__(self, log_dir: Path):
        self.log_dir = log_dir
        self.started: list[subprocess.Popen[bytes]] = []

    def start(self, args: list[str], env: dict[str, str], name: str) -> subprocess.Popen[bytes]:
        log_path = self.log_dir / f"{name}.log"
        with log_path.open("ab") as log_file:
            process = subprocess.Popen(
                args, env=env, cwd=REPO_ROOT, stdout=log_file, stderr=subprocess.STDOUT
            )
        process.log_path = log_path  # type: ignore[attr-defined]
        self.started.append(process)
        return process

    def start_worker(self, env: dict[str, str], name: str, *extra: str) -> subprocess.Popen[bytes]:
        args = [
            sys.executable,
            "-m",
            "workers.process.worker",
            "--queues",
            "scan,explain",
            "--name",
            name,
            *extra,
        ]
        return self.start(args, env, name)

    def log(self, process: subprocess.Popen[bytes]) -> str:
        return Path(process.log_path).read_text(errors="replace")  # type: ignore[attr-defined]

    def stop_all(self) -> None:
        for process in self.started:
            if process.poll() is None:
                process.send_signal(signal.SIGKILL)
                process.wait(timeout=10)


@pytest.fixture(name="processes")
def processes_fixture(tmp_path: Path) -> Iterator[Processes]:
    """A test's `Processes`, every one still running killed at teardown (conftests import this fixture)."""
    running = Processes(tmp_path)
    try:
        yield running
    finally:
        running.stop_all()


def run_cli(*args: str, timeout_s: float = 150) -> subprocess.CompletedProcess[str]:
    """`python -m service.commands.main *args` in a subprocess, output captured as text."""
    return subprocess.run(
        [sys.executable, "-m", "service.commands.main", *args],
        env=process_env(),
        capture_output=True,
        text=True,
        timeout=timeout_s,
    )


def launch_up(
    processes: Processes, env: dict[str, str], *args: str, name: str = "up"
) -> tuple[subprocess.Popen[bytes], str]:
    """Start `neuronlens up` (its own embedded Redis) on a free port with ``args``; returns (process, URL)
    at once: `wait_ready` waits for it. Its data folder is the test's own unless ``args`` name one."""
    port = free_port()
    if "--data-dir" not in args:
        args = (*args, "--data-dir", str(processes.log_dir / f"{name}-data"))
    up = processes.start(
        [sys.executable, "-m", "service.commands.main", "up", "--port", str(port), *args], env, name
    )
    return up, f"http://127.0.0.1:{port}"


def wait_ready(
    processes: Processes,
    up: subprocess.Popen[bytes],
    url: str,
    what: str = "neuronlens up to answer /readyz",
) -> None:
    """Poll ``url``/readyz until it answers 200; fail at once with the log if `up` exits first."""

    def ready() -> bool:
        assert up.poll() is None, f"neuronlens up exited early:\n{processes.log(up)}"
        try:
            return httpx.get(f"{url}/readyz", timeout=2).status_code == 200
        except httpx.TransportError:
            return False

    wait_for(ready, 60, what, interval_s=0.2)


@contextmanager
def running_up(processes: Processes, env: dict[str, str], workers: int = 1) -> Iterator[str]:
    """`neuronlens up` with ``workers`` workers for a block (a module fixture's stack); yields its URL once
    ready. On exit SIGTERM lets it stop its children; whatever is still running is then killed."""
    up, url = launch_up(processes, env, "--workers", str(workers))
    try:
        wait_ready(processes, up, url)
        yield url
    finally:
        up.terminate()
        try:
            up.wait(timeout=30)
        finally:
            processes.stop_all()
