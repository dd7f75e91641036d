"""`neuronlens up` as a real process: it starts Redis, the API and workers, and leaves nothing behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from service.commands.embedded_redis import free_port
from tests.e2e.helpers import (
    Processes,
    child_pids,
    command_line,
    launch_up,
    pid_alive,
    process_env,
    wait_for,
    wait_ready,
)


def start_up(processes: Processes, tmp_path: Path, workers: int) -> tuple[subprocess.Popen[bytes], str]:
    """`neuronlens up` with its own embedded Redis on a free port; returns once /readyz answers."""
    env = process_env(NEURONLENS_ARTIFACT_URL=str(tmp_path / "artifacts"))
    up, url = launch_up(processes, env, "--workers", str(workers), "--grace", "5")
    wait_ready(processes, up, url)
    return up, url


def classify_children(pid: int) -> dict[str, list[int]]:
    kinds: dict[str, list[int]] = {"redis": [], "api": [], "worker": [], "other": []}
    for child in child_pids(pid):
        cmd = command_line(child)
        kind = (
            "redis" if "redis-server" in cmd
            else "api" if "uvicorn" in cmd
            else "worker" if "workers.process.worker" in cmd
            else "other"
        )  # fmt: skip
        kinds[kind].append(child)
    return kinds


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_stops_every_process_it_started(
    processes: Processes, tmp_path: Path, stop_signal: signal.Signals
) -> None:
    up, url = start_up(processes, tmp_path, workers=2)
    children = classify_children(up.pid)
    assert len(children["redis"]) == 1 and len(children["api"]) == 1 and len(children["worker"]) == 2, (
        children
    )
    wait_for(
        lambda: "NeuronLens API on " + url in processes.log(up), 30, "`up` to print where the API listens"
    )

    up.send_signal(stop_signal)
    assert up.wait(timeout=60) == 0, processes.log(up)
    started = [pid for pids in children.values() for pid in pids]
    assert [pid for pid in started if pid_alive(pid)] == [], "processes outlived `neuronlens up`"


def test_a_taken_port_is_a_clear_error(processes: Processes, tmp_path: Path) -> None:
    up, url = start_up(processes, tmp_path, workers=0)
    port = url.rsplit(":", 1)[1]
    env = process_env()
    second = subprocess.run(
        [sys.executable, "-m", "service.commands.main", "up", "--port", port, "--workers", "0"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert second.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}" in second.stderr
    assert "choose another --port" in second.stderr


def test_a_signal_while_starting_stops_cleanly(processes: Processes, tmp_path: Path) -> None:
    port = free_port()
    env = process_env(NEURONLENS_ARTIFACT_URL=str(tmp_path / "artifacts"))
    up = processes.start(
        [
            sys.executable,
            "-m",
            "service.commands.main",
            "up",
            "--port",
            str(port),
            "--data-dir",
            str(tmp_path / "data"),
        ],
        env,
        "up",
    )
    children = wait_for(
        lambda: len(child_pids(up.pid)) >= 2 and child_pids(up.pid), 30, "`up` to start children"
    )
    assert isinstance(children, list)
    up.send_signal(signal.SIGINT)  # before the API is ready: Ctrl-C right after typing the command

    assert up.wait(timeout=60) == 0, processes.log(up)
    assert [pid for pid in children if pid_alive(pid)] == []
    worker_names = [
        pid
        for pid in map(int, filter(str.isdigit, os.listdir("/proc")))
        if f".{up.pid}.1" in command_line(pid)
    ]
    assert worker_names == [], "a worker started while stopping outlived `neuronlens up`"


def test_children_do_not_outlive_a_killed_up(processes: Processes, tmp_path: Path) -> None:
    """Even SIGKILL (no chance to clean up): the kernel signals every child when `up` dies."""
    up, _ = start_up(processes, tmp_path, workers=1)
    children = [pid for pids in classify_children(up.pid).values() for pid in pids]
    assert len(children) == 3
    up.send_signal(signal.SIGKILL)
    up.wait(timeout=10)
    wait_for(lambda: not [pid for pid in children if pid_alive(pid)], 30, "the orphaned children to exit")


def _store_seen_by(env: dict[str, str]) -> str:
    """The artifact store an API or worker started with ``env`` uses (its settings, read in a child)."""
    read = "from service.settings import load_settings; print(load_settings().artifact_url)"
    result = subprocess.run(
        [sys.executable, "-c", read], env=env, capture_output=True, text=True, timeout=60, check=True
    )
    return result.stdout.strip()


@pytest.mark.parametrize("xdg", [True, False])
def test_demo_and_up_share_one_default_artifact_store(tmp_path: Path, xdg: bool) -> None:
    """`neuronlens demo` and `neuronlens up` (no --data-dir) hand their API and workers the same store, so
    a scan one made is reused by the other; `up --data-dir D` and NEURONLENS_ARTIFACT_URL choose another."""
    from service.commands.main import build_parser, demo_stack, up_stack

    home = {"XDG_DATA_HOME": str(tmp_path / "xdg")} if xdg else {"HOME": str(tmp_path / "home")}
    base = tmp_path / "xdg" if xdg else tmp_path / "home" / ".local" / "share"
    env = process_env(NEURONLENS_REDIS_URL="redis://127.0.0.1:9/0", **home)  # never contacted
    if xdg:
        env.pop("HOME", None)  # XDG_DATA_HOME alone decides
    parser = build_parser()
    stopping = threading.Event()

    up = up_stack(parser.parse_args(["up"]), env, stopping)
    demo = demo_stack(parser.parse_args(["demo"]), env, subprocess.DEVNULL, stopping)  # type: ignore[arg-type]
    shared = str(base / "neuronlens" / "artifacts")
    assert up.data_dir == base / "neuronlens"
    assert _store_seen_by(up.child_env()) == _store_seen_by(demo.child_env()) == shared

    own = up_stack(parser.parse_args(["up", "--data-dir", str(tmp_path / "own")]), env, stopping)
    assert own.data_dir == tmp_path / "own"  # the Redis append-only file goes there, and the store too
    assert _store_seen_by(own.child_env()) == str(tmp_path / "own" / "artifacts")

    env["NEURONLENS_ARTIFACT_URL"] = "s3://bucket/neuronlens"
    chosen = [
        up_stack(parser.parse_args(["up"]), env, stopping),
        demo_stack(parser.parse_args(["demo"]), env, subprocess.DEVNULL, stopping),
    ]  # type: ignore[arg-type]
    assert [_store_seen_by(stack.child_env()) for stack in chosen] == ["s3://bucket/neuronlens"] * 2
