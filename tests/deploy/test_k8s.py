"""deploy/k8s rendered by kustomize and checked as a cluster would, without one.

Strict schemas (built-in kinds and the KEDA / Prometheus-operator CRDs), the Pod Security "restricted"
level, secrets kept out of the ConfigMap, KEDA watching the RQ lists the code fills, the network policy
letting only the API and the workers reach Redis, pinned images, and every setting either set or
deliberately left at its default.
"""

from __future__ import annotations

import copy
import tomllib
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jsonschema
import pytest
import redis
from rq import Queue

from service.settings import Settings
from tests.deploy.k8s_checks import (
    pod_templates,
    render,
    restricted_violations,
    validate_strict,
    without,
)
from workers.process.worker import _parser, parse_queue_names

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"

DEFAULTED = {
    "NEURONLENS_REGISTRY_PATH": "the registry bundled in the package is the one the images serve",
    "NEURONLENS_RESULT_TTL_S": "a week of finished job records is the documented default",
    "NEURONLENS_FAILURE_TTL_S": "a week of failed job records is the documented default",
    "NEURONLENS_SCAN_BATCH_SIZE": "depends on the model and the GPU memory: tune it on scan-worker",
    "NEURONLENS_PROGRESS_INTERVAL_S": "4 progress writes a second per job is the documented default",
    "NEURONLENS_SCAN_MEMORY_BYTES": "derived from the GPU's free memory on each scan worker unless set",
    "NEURONLENS_LLM_BASE_URL": "deploy/ names its endpoints in NEURONLENS_LLM_ENDPOINTS (the Secret)",
    "NEURONLENS_EXPLAINER_MODEL": "as NEURONLENS_LLM_BASE_URL: the flat default endpoint stays off",
    "NEURONLENS_SIMULATOR_MODEL": "as NEURONLENS_LLM_BASE_URL: the flat default endpoint stays off",
    "NEURONLENS_LLM_TIMEOUT_S": "client tuning; the default is documented in docs/configuration.md",
    "NEURONLENS_LLM_MAX_RETRIES": "client tuning; the default is documented in docs/configuration.md",
    "NEURONLENS_LLM_BACKOFF_S": "client tuning; the default is documented in docs/configuration.md",
    "NEURONLENS_LLM_RETRY_AFTER_MAX_S": "client tuning; the default is documented in docs/configuration.md",
    "NEURONLENS_LLM_CONCURRENCY": "client tuning; the default is documented in docs/configuration.md",
    "NEURONLENS_LLM_CANDIDATES": "requests choose their own `candidates`",
    "NEURONLENS_KEY_RATE_PER_MINUTE": "per key, set by `neuronlens keys create --rate-per-minute`",
    "NEURONLENS_KEY_LLM_CALLS_PER_DAY": "per key quota; unset means no cap for keys without their own",
    "NEURONLENS_KEY_SCAN_PASSES_PER_DAY": "per key quota; unset means no cap for keys without their own",
    "NEURONLENS_CORS_ORIGINS": "CORS stays off: the API is called by pipelines, not browsers",
    "NEURONLENS_LOG_FORMAT": "JSON log lines are the default",
    "NEURONLENS_SCAN_SHARDS": "requests choose their own `shards` (as many as scan workers are up)",
    "NEURONLENS_EXPLAIN_CHUNK_NEURONS": "256 neurons per explain job is the documented default",
    "NEURONLENS_LLM_PROMPT_USD_PER_MTOK": "prices go with each endpoint in NEURONLENS_LLM_ENDPOINTS",
    "NEURONLENS_LLM_COMPLETION_USD_PER_MTOK": "prices go with each endpoint in NEURONLENS_LLM_ENDPOINTS",
    "NEURONLENS_REQUEST_BODY_TIMEOUT_S": "10 s for a request body to arrive is the documented default",
    "NEURONLENS_SCAN_CHECKPOINT_S": "a scan checkpoint every 30 s is the documented default",
    "NEURONLENS_WEBHOOK_SECRET": "webhooks stay off until an operator adds a secret and allowed hosts",
    "NEURONLENS_WEBHOOK_ALLOWED_HOSTS": "as NEURONLENS_WEBHOOK_SECRET: no host is allowed by default",
    "NEURONLENS_WEBHOOK_ALLOW_LOOPBACK": "loopback receivers are for tests; refused in deployments",
    "NEURONLENS_WEBHOOK_RETRIES": "delivery tuning; the default is documented in docs/configuration.md",
    "NEURONLENS_WEBHOOK_BACKOFF_S": "delivery tuning; the default is documented in docs/configuration.md",
    "NEURONLENS_WEBHOOK_TIMEOUT_S": "delivery tuning; the default is documented in docs/configuration.md",
    "NEURONLENS_OTEL_EXPORTER": "tracing stays off until an operator picks an exporter",
}
"""Settings deploy/ deliberately leaves at their defaults, with the reason."""


@pytest.fixture(scope="module")
def objects() -> list[dict[str, Any]]:
    return render(K8S)


def _get(objects: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    for obj in objects:
        if obj["kind"] == kind and obj["metadata"]["name"] == name:
            return obj
    raise AssertionError(f"no {kind} {name} in the rendered deploy/k8s")


def _container(objects: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    containers: list[dict[str, Any]] = _get(objects, kind, name)["spec"]["template"]["spec"]["containers"]
    return containers[0]


def _setting_env_names() -> dict[str, list[str]]:
    """Field → the environment variables that set it (its aliases, else NEURONLENS_<FIELD>)."""
    prefix = Settings.model_config.get("env_prefix", "")
    names: dict[str, list[str]] = {}
    for field, info in Settings.model_fields.items():
        alias = info.validation_alias
        choices = getattr(alias, "choices", None)
        if choices is not None:
            names[field] = [str(choice) for choice in choices]
        elif isinstance(alias, str):
            names[field] = [alias]
        else:
            names[field] = [f"{prefix}{field}".upper()]
    return names


def _env_set(objects: list[dict[str, Any]], container: dict[str, Any]) -> set[str]:
    """Variables a container gets: its env, and the data of the ConfigMaps it takes with envFrom."""
    names = {var["name"] for var in container.get("env") or []}
    for source in container.get("envFrom") or []:
        if "configMapRef" in source:
            names |= set(_get(objects, "ConfigMap", source["configMapRef"]["name"])["data"])
    return names


def test_every_object_passes_its_strict_schema(objects: list[dict[str, Any]]) -> None:
    kinds = {obj["kind"] for obj in objects}
    assert {"ScaledObject", "TriggerAuthentication", "ServiceMonitor", "PrometheusRule"} <= kinds
    assert {"PodDisruptionBudget", "NetworkPolicy", "Secret"} <= kinds
    for obj in objects:
        validate_strict(obj)


@pytest.mark.parametrize(
    ("kind", "name", "path"),
    [
        ("Deployment", "api", ("spec", "template", "spec", "containers", 0, "imagePullPolcy")),
        ("ScaledObject", "scan-worker", ("spec", "minReplicaCunt")),
        ("ServiceMonitor", "neuronlens-api", ("spec", "endpoints", 0, "pathh")),
    ],
)
def test_strict_validation_refuses_an_unknown_field(
    objects: list[dict[str, Any]], kind: str, name: str, path: tuple[str | int, ...]
) -> None:
    broken = copy.deepcopy(_get(objects, kind, name))
    node: Any = broken
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = 1
    with pytest.raises(jsonschema.ValidationError, match="unexpected|not allowed"):
        validate_strict(broken)


def test_every_pod_meets_the_restricted_pod_security_level(objects: list[dict[str, Any]]) -> None:
    pods = dict(pod_templates(objects))
    assert set(pods) == {
        "Deployment/api",
        "Deployment/scan-worker",
        "Deployment/explain-worker",
        "StatefulSet/redis",
    }
    for where, pod in pods.items():
        assert restricted_violations(pod) == [], where
        for container in pod["containers"]:
            assert container["securityContext"]["readOnlyRootFilesystem"] is True, where
    namespace = _get(objects, "Namespace", "neuronlens")
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"


def test_the_restricted_check_finds_a_broken_rule(objects: list[dict[str, Any]]) -> None:
    pod = dict(pod_templates(objects))["Deployment/api"]
    context = ("containers", 0, "securityContext")
    assert restricted_violations(without(pod, *context, "capabilities")) == [
        "api: capabilities.drop does not include ALL"
    ]
    assert restricted_violations(without(pod, "securityContext", "seccompProfile"))[0].startswith(
        "api: seccompProfile.type is None"
    )
    assert restricted_violations(without(pod, *context, "allowPrivilegeEscalation")) == [
        "api: allowPrivilegeEscalation is not false"
    ]
    broken = without(pod, "volumes", 0)
    broken["volumes"].append({"name": "host", "hostPath": {"path": "/"}})
    assert "volume host is of a disallowed type ['hostPath']" in restricted_violations(broken)


def test_every_setting_is_set_or_deliberately_defaulted(objects: list[dict[str, Any]]) -> None:
    workloads = ("api", "scan-worker", "explain-worker")
    set_anywhere = set().union(*(_env_set(objects, _container(objects, "Deployment", w)) for w in workloads))
    fields = _setting_env_names()
    known = {name for names in fields.values() for name in names}
    unknown = {name for name in set_anywhere if name.startswith("NEURONLENS_")} - known
    assert not unknown, f"deploy/k8s sets variables that are no setting: {sorted(unknown)}"
    missing = [names[0] for names in fields.values() if not set(names) & (set_anywhere | set(DEFAULTED))]
    assert not missing, (
        f"settings neither set in deploy/k8s nor listed in DEFAULTED (with a reason): {missing}"
    )
    both = set(DEFAULTED) & set_anywhere
    assert not both, f"listed in DEFAULTED but set in deploy/k8s: {sorted(both)}"
    stale = set(DEFAULTED) - known
    assert not stale, f"DEFAULTED names no setting: {sorted(stale)}"


def test_secrets_stay_out_of_the_configmap_and_come_from_the_secret(objects: list[dict[str, Any]]) -> None:
    config = _get(objects, "ConfigMap", "neuronlens-config")["data"]
    for name in ("NEURONLENS_REDIS_URL", "NEURONLENS_LLM_API_KEY", "NEURONLENS_LLM_ENDPOINTS"):
        assert name not in config, f"{name} carries a secret: it belongs in the Secret"
    assert config["NEURONLENS_AUTH"] == "keys", "deploy/ runs with API keys on"
    secret = _get(objects, "Secret", "neuronlens-secrets")
    data = secret["stringData"]
    assert data["redis-password"].startswith("REPLACE_ME"), "no real password in the repository"
    assert data["llm-api-key"] == "" and data["llm-endpoints"] == "{}"
    for workload in ("api", "scan-worker", "explain-worker"):
        env = _container(objects, "Deployment", workload)["env"]
        refs = {
            v["name"]: v["valueFrom"]["secretKeyRef"] for v in env if "secretKeyRef" in v.get("valueFrom", {})
        }
        assert all(ref["name"] == "neuronlens-secrets" and ref["key"] in data for ref in refs.values())
        names = [v["name"] for v in env]
        url = next(v["value"] for v in env if v["name"] == "NEURONLENS_REDIS_URL")
        # Kubernetes expands $(VAR) only from variables defined earlier in the list.
        assert "REDIS_PASSWORD" in refs and names.index("REDIS_PASSWORD") < names.index(
            "NEURONLENS_REDIS_URL"
        )
        assert urlsplit(url).password == "$(REDIS_PASSWORD)", workload
        assert urlsplit(url).hostname == "redis-0.redis"
    for workload in ("api", "explain-worker"):
        env = {v["name"]: v for v in _container(objects, "Deployment", workload)["env"]}
        for name in ("NEURONLENS_LLM_API_KEY", "NEURONLENS_LLM_ENDPOINTS"):
            assert env[name]["valueFrom"]["secretKeyRef"]["name"] == "neuronlens-secrets", (workload, name)
    redis = _container(objects, "StatefulSet", "redis")
    assert "requirepass" in redis["command"][-1] and "REPLACE_ME" in redis["command"][-1]


def test_keda_scales_each_worker_on_the_rq_list_it_serves(objects: list[dict[str, Any]]) -> None:
    config = _get(objects, "ConfigMap", "neuronlens-config")["data"]
    prefix = config["NEURONLENS_REDIS_PREFIX"]
    namespace = _get(objects, "Namespace", "neuronlens")["metadata"]["name"]
    auth = _get(objects, "TriggerAuthentication", "neuronlens-redis")["spec"]["secretTargetRef"]
    assert auth == [{"parameter": "password", "name": "neuronlens-secrets", "key": "redis-password"}]
    for workload in ("scan-worker", "explain-worker"):
        scaled = _get(objects, "ScaledObject", workload)["spec"]
        deployment = _get(objects, "Deployment", scaled["scaleTargetRef"]["name"])
        assert "replicas" not in deployment["spec"], "KEDA owns the replica count"
        command = deployment["spec"]["template"]["spec"]["containers"][0]["command"]
        queues = parse_queue_names(command[command.index("--queues") + 1])
        assert len(queues) == 1, f"{workload}: one queue per scaled worker"
        (trigger,) = scaled["triggers"]
        meta = trigger["metadata"]
        assert trigger["type"] == "redis" and trigger["authenticationRef"]["name"] == "neuronlens-redis"
        assert meta["listName"] == Queue(prefix + queues[0], connection=redis.Redis()).key  # no I/O
        assert meta["address"] == f"redis.{namespace}.svc:6379"
        url = next(
            v["value"]
            for v in _container(objects, "Deployment", workload)["env"]
            if v["name"].endswith("URL")
        )
        assert meta["databaseIndex"] == urlsplit(url).path.lstrip("/")
    scan = _get(objects, "ScaledObject", "scan-worker")["spec"]
    assert scan["minReplicaCount"] == 0, "GPU scan workers scale to zero"
    assert scan["cooldownPeriod"] >= int(config["NEURONLENS_SCAN_TIMEOUT_S"]), (
        "scale-to-zero never cuts a scan"
    )


def test_workers_liveness_is_the_heartbeat_check(objects: list[dict[str, Any]]) -> None:
    for workload in ("scan-worker", "explain-worker"):
        probe = _container(objects, "Deployment", workload)["livenessProbe"]["exec"]["command"]
        assert probe[0] == "neuronlens-worker" and _parser().parse_args(probe[1:]).check, workload


def test_gpu_scan_workers_and_cpu_explain_workers(objects: list[dict[str, Any]]) -> None:
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    scan_pod = _get(objects, "Deployment", "scan-worker")["spec"]["template"]["spec"]
    assert scan_pod["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in scan_pod["tolerations"]
    assert scan_pod["containers"][0]["image"] == f"neuronlens-worker-gpu:{version}"
    explain = _container(objects, "Deployment", "explain-worker")
    assert explain["image"] == f"neuronlens-worker-cpu:{version}"
    assert "nvidia.com/gpu" not in explain["resources"].get("limits", {})
    assert _container(objects, "Deployment", "api")["image"] == f"neuronlens-api:{version}"
    for where, pod in pod_templates(objects):
        for container in pod["containers"]:
            name, _, tag = container["image"].rpartition(":")
            assert name and tag and tag != "latest", f"{where}: image {container['image']} is not pinned"


def test_only_the_api_and_the_workers_reach_redis(objects: list[dict[str, Any]]) -> None:
    deny = _get(objects, "NetworkPolicy", "default-deny-ingress")["spec"]
    assert deny == {"podSelector": {}, "policyTypes": ["Ingress"]}
    policy = _get(objects, "NetworkPolicy", "redis")["spec"]
    redis_labels = _get(objects, "StatefulSet", "redis")["spec"]["template"]["metadata"]["labels"]
    assert policy["podSelector"]["matchLabels"].items() <= redis_labels.items()
    (rule,) = policy["ingress"]
    assert rule["ports"] == [{"port": 6379, "protocol": "TCP"}]
    same_namespace = [
        peer["podSelector"]["matchLabels"] for peer in rule["from"] if set(peer) == {"podSelector"}
    ]
    reaching = {
        obj["metadata"]["name"]
        for obj in objects
        if obj["kind"] in ("Deployment", "StatefulSet")
        for selector in same_namespace
        if selector.items() <= obj["spec"]["template"]["metadata"]["labels"].items()
    }
    assert reaching == {"api", "scan-worker", "explain-worker"}
    others = [peer for peer in rule["from"] if set(peer) != {"podSelector"}]
    assert others == [
        {
            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "keda"}},
            "podSelector": {"matchLabels": {"app": "keda-operator"}},
        }
    ], "besides the API and workers, only KEDA's operator (it reads the queue lengths)"


def test_the_api_has_a_disruption_budget(objects: list[dict[str, Any]]) -> None:
    budget = _get(objects, "PodDisruptionBudget", "api")["spec"]
    api = _get(objects, "Deployment", "api")["spec"]
    assert budget["selector"] == api["selector"]
    assert 1 <= budget["minAvailable"] < api["replicas"]
