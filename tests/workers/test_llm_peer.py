"""The OpenAI-compatible test peer: its answers for both roles, its faults, and its command line."""

from __future__ import annotations

import io
import socket
import subprocess
import sys
from pathlib import Path

import openai
import pytest
from PIL import Image

from tests.llm_peer import Fault, LLMPeer, parse_fault
from workers.explain.bills import RawRecord
from workers.explain.bills import build_bills_messages as build_text_explainer_messages
from workers.explain.prompts import (
    PromptRecord,
    build_visual_explainer_messages,
    parse_explanation,
)
from workers.simulate.prompts import (
    build_text_simulator_messages,
    build_visual_simulator_messages,
    parse_activations,
    parse_patches,
)

pytestmark = pytest.mark.timeout(60)

REPO_ROOT = Path(__file__).resolve().parents[2]


def _client(base_url: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=base_url, api_key="k", max_retries=0, timeout=10)


def _faded_square(colour: tuple[int, int, int], size: int = 32) -> bytes:
    """White image with a saturated square in the top-left quarter (what a shaded exemplar looks like)."""
    image = Image.new("RGB", (size, size), (255, 255, 255))
    image.paste(colour, (0, 0, size // 2, size // 2))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def _ask(peer: LLMPeer, messages: list[dict[str, object]], **kwargs: object) -> list[str]:
    completion = _client(peer.base_url).chat.completions.create(
        model="peer",
        messages=messages,
        **kwargs,  # type: ignore[arg-type]
    )
    return [choice.message.content or "" for choice in completion.choices]


def test_models_list() -> None:
    with LLMPeer() as peer:
        assert [model.id for model in _client(peer.base_url).models.list()] == ["neuronlens-peer"]


def test_text_explainer_names_the_most_active_tokens() -> None:
    records = [
        RawRecord(["the", "red", "car", "is", "fast"], [0, 10, 1, 0, 4]),
        RawRecord(["blue", "##ish", "sky"], [9, 0, 2]),
        RawRecord(["Red", "wine"], [8, 0]),
    ]
    with LLMPeer() as peer:
        texts = _ask(peer, build_text_explainer_messages(records), n=3)
    assert [parse_explanation(text) for text in texts] == [
        'the tokens "red", "blue" and "fast".',
        'the tokens "red".',
        'the tokens "red", "blue", "fast", "sky" and "car".',
    ]


def test_text_simulator_predicts_quoted_tokens() -> None:
    messages = build_text_simulator_messages('the tokens "red" and "blue".', ["a", "Red", "car", "##blue"])
    with LLMPeer() as peer:
        (text,) = _ask(peer, messages, response_format={"type": "json_object"})
    assert parse_activations(text, 4) == [0, 10, 0, 10]


def test_visual_roles_read_the_images() -> None:
    red, blue = _faded_square((220, 20, 20)), _faded_square((20, 40, 230))
    explainer = build_visual_explainer_messages(
        [
            PromptRecord(["a", "red", "box"], [0, 7, 0], red),
            PromptRecord([], [], red),
            PromptRecord([], [], blue),
        ]
    )
    with LLMPeer() as peer:
        (explanation,) = _ask(peer, explainer)
        assert parse_explanation(explanation) == 'the colour "red" in the image and the tokens "red".'
        (patches,) = _ask(peer, build_visual_simulator_messages('the colour "red"', red, 2, 2))
        assert parse_patches(patches, 2, 2) == [10, 0, 0, 0]
        (patches,) = _ask(peer, build_visual_simulator_messages('the colour "red"', blue, 2, 2))
        assert parse_patches(patches, 2, 2) == [0, 0, 0, 0]


def test_malformed_and_wrong_length_faults_hit_their_role_only() -> None:
    simulate = build_text_simulator_messages('the tokens "red".', ["red", "car"])
    explain = build_text_explainer_messages([RawRecord(["red"], [10])])
    faults = [Fault("malformed", 1, role="simulator"), Fault("wrong_length", 1, role="simulator")]
    with LLMPeer(faults=faults) as peer:
        assert parse_explanation(_ask(peer, explain)[0]) == 'the tokens "red".'
        assert parse_activations(_ask(peer, simulate)[0], 2) is None
        assert _ask(peer, simulate)[0] == '{"activations": [10, 0, 0]}'
        assert parse_activations(_ask(peer, simulate)[0], 2) == [10, 0]
        assert [r.role for r in peer.requests] == ["explainer", "simulator", "simulator", "simulator"]
        assert [r.fault for r in peer.requests] == [None, "malformed", "wrong_length", None]


def test_parse_fault_flag() -> None:
    fault = parse_fault("wrong_length:2:simulator")
    assert (fault.kind, fault.times, fault.role) == ("wrong_length", 2, "simulator")
    with pytest.raises(Exception, match="unknown fault 'boom': choose one of rate_limit"):
        parse_fault("boom")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_runs_as_a_module_with_faults_from_flags() -> None:
    port = _free_port()
    command = [sys.executable, "-m", "tests.llm_peer", "--port", str(port), "--latency-ms", "1"]
    process = subprocess.Popen(
        [*command, "--fault", "server_error:1"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=REPO_ROOT,
    )
    try:
        assert process.stdout is not None
        assert process.stdout.readline().strip() == f"LLM peer listening on http://127.0.0.1:{port}/v1"
        client = _client(f"http://127.0.0.1:{port}/v1")
        messages = build_text_simulator_messages('the tokens "red".', ["red"])
        with pytest.raises(openai.InternalServerError):
            client.chat.completions.create(model="peer", messages=messages)  # type: ignore[arg-type]
        completion = client.chat.completions.create(model="peer", messages=messages)  # type: ignore[arg-type]
        assert completion.choices[0].message.content == '{"activations": [10]}'
        assert completion.usage is not None and completion.usage.prompt_tokens > 0
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
