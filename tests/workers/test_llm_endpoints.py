"""LLM settings: NEURONLENS_* variables with OPENAI_* fallback, named endpoints, resolution by name only."""

from __future__ import annotations

import json

import pytest

from service.settings import Settings, llm_configured, load_settings
from workers.llm.endpoints import NO_KEY, OPENAI_BASE_URL, LLMEndpoint
from workers.llm.errors import UnknownLLMEndpoint
from workers.process.worker import llm_endpoints

LLM_VARIABLES = (
    "NEURONLENS_LLM_BASE_URL",
    "NEURONLENS_LLM_API_KEY",
    "NEURONLENS_EXPLAINER_MODEL",
    "NEURONLENS_SIMULATOR_MODEL",
    "NEURONLENS_LLM_ENDPOINTS",
    "NEURONLENS_LLM_CONCURRENCY",
    "OPENAI_BASE_URL",
    "OPENAI_API_KEY",
)


def resolve_endpoint(settings: Settings, name: str | None = None) -> LLMEndpoint:
    """The endpoint a worker configured by ``settings`` calls for ``name``."""
    return llm_endpoints(settings).resolve(name)


def endpoint_names(settings: Settings) -> list[str]:
    return llm_endpoints(settings).names()


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in LLM_VARIABLES:
        monkeypatch.delenv(name, raising=False)


def test_nothing_configured_means_baseline() -> None:
    settings = load_settings()
    assert not llm_configured(settings)
    assert endpoint_names(settings) == []
    with pytest.raises(
        UnknownLLMEndpoint, match="no LLM endpoint is configured: set NEURONLENS_LLM_BASE_URL"
    ):
        resolve_endpoint(settings)


def test_neuronlens_variables_configure_the_default_endpoint(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NEURONLENS_LLM_BASE_URL", "http://vllm.local:8000/v1/")
    monkeypatch.setenv("NEURONLENS_LLM_API_KEY", "sk-neuronlens")
    monkeypatch.setenv("NEURONLENS_EXPLAINER_MODEL", "big-model")
    monkeypatch.setenv("NEURONLENS_SIMULATOR_MODEL", "small-model")
    monkeypatch.setenv("NEURONLENS_LLM_CONCURRENCY", "5")
    settings = load_settings()
    assert llm_configured(settings)
    endpoint = resolve_endpoint(settings)
    assert endpoint.name == "default"
    assert endpoint.base_url == "http://vllm.local:8000/v1"
    assert endpoint.api_key == "sk-neuronlens"
    assert (endpoint.explainer_model, endpoint.simulator_model) == ("big-model", "small-model")
    assert endpoint.concurrency == 5
    assert "sk-neuronlens" not in repr(endpoint) and "sk-neuronlens" not in repr(settings)


def test_openai_variables_are_the_fallback(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", "http://openai-compatible/v1")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-openai")
    monkeypatch.setenv("NEURONLENS_EXPLAINER_MODEL", "gpt-4o")
    endpoint = resolve_endpoint(load_settings())
    assert (endpoint.base_url, endpoint.api_key) == ("http://openai-compatible/v1", "sk-openai")
    assert endpoint.simulator_model == "gpt-4o"  # unset simulator model: the explainer's
    monkeypatch.setenv("NEURONLENS_LLM_BASE_URL", "http://preferred/v1")
    monkeypatch.setenv("NEURONLENS_LLM_API_KEY", "sk-preferred")
    endpoint = resolve_endpoint(load_settings())
    assert (endpoint.base_url, endpoint.api_key) == ("http://preferred/v1", "sk-preferred")


def test_a_stray_openai_key_alone_configures_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-unrelated")
    assert not llm_configured(load_settings())
    monkeypatch.setenv("NEURONLENS_EXPLAINER_MODEL", "gpt-4o")
    endpoint = resolve_endpoint(load_settings())
    assert endpoint.base_url == OPENAI_BASE_URL


def test_named_endpoints_from_json(monkeypatch: pytest.MonkeyPatch) -> None:
    endpoints = {
        "ollama": {"base_url": "http://localhost:11434/v1", "explainer_model": "llava:13b"},
        "vllm": {
            "base_url": "http://gpu:8000/v1",
            "api_key": "token",
            "explainer_model": "qwen2-vl",
            "simulator_model": "llama-3-8b",
            "concurrency": 32,
        },
    }
    monkeypatch.setenv("NEURONLENS_LLM_ENDPOINTS", json.dumps(endpoints))
    settings = load_settings()
    assert endpoint_names(settings) == ["ollama", "vllm"]
    ollama = resolve_endpoint(settings)  # no `default`: the first named one
    assert (ollama.name, ollama.api_key, ollama.simulator_model) == ("ollama", NO_KEY, "llava:13b")
    vllm = resolve_endpoint(settings, "vllm")
    assert (vllm.simulator_model, vllm.concurrency) == ("llama-3-8b", 32)
    with pytest.raises(
        UnknownLLMEndpoint, match="LLM endpoint 'http://evil/v1' is not configured: choose one of"
    ):
        resolve_endpoint(settings, "http://evil/v1")


def test_settings_overrides_by_field_name() -> None:
    settings = load_settings(llm_base_url="http://x/v1", explainer_model="m", llm_timeout_s=3)
    endpoint = resolve_endpoint(settings, "default")
    assert (endpoint.base_url, endpoint.api_key, endpoint.timeout_s) == ("http://x/v1", NO_KEY, 3.0)
