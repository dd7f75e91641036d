"""The Redis container's start script from deploy/k8s, run for real against a redis-server binary.

The script is taken from the rendered StatefulSet; only its two mount paths (/run/redis, /data) are moved
into a temporary folder and a loopback port is appended, so what runs is what the pod runs.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import redis

from service.commands.embedded_redis import find_redis_server, free_port
from tests.deploy.k8s_checks import render
from tests.e2e.helpers import wait_for

K8S = Path(__file__).resolve().parents[2] / "deploy" / "k8s"
PASSWORD = "0123abcd" * 4


def _script(tmp_path: Path, port: int) -> str:
    statefulset = next(
        o for o in render(K8S) if o["kind"] == "StatefulSet" and o["metadata"]["name"] == "redis"
    )
    command = statefulset["spec"]["template"]["spec"]["containers"][0]["command"]
    assert command[:2] == ["sh", "-c"]
    script: str = command[2]
    for mount in ("/run/redis", "/data"):
        assert mount in script
        (tmp_path / mount.strip("/")).mkdir(parents=True)
        script = script.replace(mount, str(tmp_path / mount.strip("/")))
    return script.rstrip() + f" --port {port} --bind 127.0.0.1"


def _start(tmp_path: Path, password: str, port: int) -> subprocess.Popen[str]:
    binary = Path(find_redis_server())
    env = {"PATH": f"{binary.parent}:/usr/bin:/bin", "REDIS_PASSWORD": password}
    if binary.name != "redis-server":  # the script calls it by name
        (tmp_path / "bin").mkdir()
        (tmp_path / "bin" / "redis-server").symlink_to(binary)
        env["PATH"] = f"{tmp_path / 'bin'}:{env['PATH']}"
    return subprocess.Popen(
        ["sh", "-c", _script(tmp_path, port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.mark.parametrize("password", ["REPLACE_ME", "", "has space", "p@ss"])
def test_redis_refuses_to_start_with_a_placeholder_or_unsafe_password(tmp_path: Path, password: str) -> None:
    process = _start(tmp_path, password, free_port())
    try:
        _, err = process.communicate(timeout=30)
    finally:
        process.kill()
    assert process.returncode == 1
    assert "set redis-password in the Secret neuronlens-secrets" in err


def test_redis_starts_with_the_secret_password_and_requires_it(tmp_path: Path) -> None:
    port = free_port()
    process = _start(tmp_path, PASSWORD, port)
    try:
        authed = redis.Redis(port=port, password=PASSWORD)
        wait_for(lambda: _pings(authed), 30, "redis to answer")
        with pytest.raises(redis.AuthenticationError):
            redis.Redis(port=port).ping()
        with pytest.raises(redis.AuthenticationError):
            redis.Redis(port=port, password="wrong").ping()
        assert authed.config_get("appendonly") == {"appendonly": "yes"}
        assert oct((tmp_path / "run" / "redis" / "auth.conf").stat().st_mode & 0o777) == "0o600"
    finally:
        process.terminate()
        process.wait(timeout=30)


def _pings(client: redis.Redis) -> bool:
    try:
        return bool(client.ping())
    except redis.ConnectionError:
        return False
