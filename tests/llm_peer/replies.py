"""The test peer's HTTP answers: chat completions (choices, logprobs, usage) built from its rules, and
OpenAI-style error bodies."""

from __future__ import annotations

import json
import re
import time
from typing import Any

from tests.llm_peer import rules


def usage_of(payload: bytes) -> tuple[int, int]:
    try:
        usage = json.loads(payload)["usage"]
        return int(usage["prompt_tokens"]), int(usage["completion_tokens"])
    except (ValueError, KeyError, TypeError):
        return 0, 0


def error(status: int, message: str, kind: str) -> tuple[int, dict[str, str], bytes]:
    payload = {"error": {"message": message, "type": kind, "param": None, "code": None}}
    return status, {"Content-Type": "application/json"}, json.dumps(payload).encode()


def _choice_text(prompt: rules.Prompt, role: str, choice: int, fault: str | None) -> tuple[str, list[str]]:
    """The reply text of one choice and its tokens (for logprobs)."""
    if role == "explainer":
        text = "" if fault == "malformed" else " " + rules.explain(prompt, choice)
        return text, re.findall(r"\s*\S+", text)
    if fault == "malformed":
        return "Sure! The activations are high on the first token.", ["Sure!"]
    if "Patch grid:" in prompt.text:
        grid = rules.simulate_patches(prompt)
        if fault == "wrong_length":
            grid = grid[:-1]
        return rules.reply_json("patches", grid), rules.json_tokens("patches", grid)
    scorer = rules.scorer_of(prompt)  # batched simulation, detection, fuzzing (issue 10)
    if scorer == "records":
        lists = rules.simulate_batched(prompt)
        return rules.reply_json("records", lists), rules.json_tokens("records", lists)
    if scorer is not None:
        answers = rules.judge(prompt, scorer)
        return rules.reply_json(scorer, answers), rules.json_tokens(scorer, answers)
    values = rules.simulate_text(prompt)
    if fault == "wrong_length":
        values = values + [0]
    return rules.reply_json("activations", values), rules.json_tokens("activations", values)


def _logprobs(tokens: list[str], top_n: int) -> dict[str, Any]:
    content = []
    for token in tokens:
        alternatives = rules.value_alternatives(int(token)) if token.isdecimal() else [(token, 0.0)]
        content.append(
            {
                "token": token,
                "logprob": alternatives[0][1],
                "bytes": list(token.encode()),
                "top_logprobs": [
                    {"token": alt, "logprob": lp, "bytes": list(alt.encode())}
                    for alt, lp in alternatives[:top_n]
                ],
            }
        )
    return {"content": content, "refusal": None}


def completion(body: dict[str, Any], prompt: rules.Prompt, role: str, fault: str | None) -> dict[str, Any]:
    n = int(body.get("n") or 1)
    choices = []
    completion_tokens = 0
    for index in range(n):
        text, tokens = _choice_text(prompt, role, index, fault)
        completion_tokens += max(1, len(text) // 4)
        choice: dict[str, Any] = {
            "index": index,
            "message": {"role": "assistant", "content": text},
            "finish_reason": "stop",
            "logprobs": None,
        }
        if body.get("logprobs"):
            choice["logprobs"] = _logprobs(tokens, int(body.get("top_logprobs") or 1))
        choices.append(choice)
    prompt_tokens = (len(prompt.system) + len(prompt.text)) // 4 + 85 * len(prompt.images)
    return {
        "id": f"chatcmpl-peer-{time.monotonic_ns()}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": str(body.get("model", "")),
        "choices": choices,
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
    }
