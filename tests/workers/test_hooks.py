"""The hook context manager on a real (tiny, seeded) transformers BERT."""

from __future__ import annotations

import pytest
import torch
from transformers import BertConfig, BertModel

from service.contract import HookPoint
from workers.errors import InvalidRequest
from workers.models.hooks import capture_activations, run_forward

ACT = HookPoint(
    id="mlp_act", module="encoder.layer.{layer}.intermediate", capture="output", description="GELU"
)
DOWN_IN = HookPoint(
    id="down_in", module="encoder.layer.{layer}.output.dense", capture="input", description="in"
)


@pytest.fixture(scope="module")
def tiny_bert() -> BertModel:
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=50, hidden_size=16, num_hidden_layers=3, num_attention_heads=2, intermediate_size=24
    )
    return BertModel(config).eval()


def _inputs() -> dict[str, torch.Tensor]:
    ids = torch.tensor([[1, 5, 9, 2, 0], [1, 7, 3, 4, 2]])
    return {"input_ids": ids, "attention_mask": (ids != 0).long()}


def _hook_count(model: torch.nn.Module) -> int:
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules())


def test_captured_values_match_the_module_outputs(tiny_bert: BertModel) -> None:
    expected: dict[int, torch.Tensor] = {}
    handles = [
        tiny_bert.encoder.layer[i].intermediate.register_forward_hook(
            lambda _m, _a, out, i=i: expected.__setitem__(i, out.clone())
        )
        for i in range(3)
    ]
    with torch.inference_mode():
        tiny_bert(**_inputs())
    for handle in handles:
        handle.remove()
    with torch.inference_mode(), capture_activations(tiny_bert, ACT, [0, 2]) as captured:
        run_forward(lambda: tiny_bert(**_inputs()))
    assert sorted(captured) == [0, 2]
    for layer in (0, 2):
        assert torch.equal(captured[layer], expected[layer])
        assert not captured[layer].requires_grad
    # The input of the down projection is the same tensor as the intermediate output.
    with torch.inference_mode(), capture_activations(tiny_bert, DOWN_IN, [1]) as down:
        run_forward(lambda: tiny_bert(**_inputs()))
    assert torch.equal(down[1], expected[1])
    assert _hook_count(tiny_bert) == 0


def test_stopping_after_the_last_layer_changes_no_value(tiny_bert: BertModel) -> None:
    with torch.inference_mode(), capture_activations(tiny_bert, ACT, [0, 1]) as full:
        run_forward(lambda: tiny_bert(**_inputs()))
    with torch.inference_mode(), capture_activations(tiny_bert, ACT, [0, 1], stop_after_last=True) as cut:
        run_forward(lambda: tiny_bert(**_inputs()))
    for layer in (0, 1):
        assert torch.equal(full[layer], cut[layer])


def test_hooks_are_removed_even_when_the_forward_fails(tiny_bert: BertModel) -> None:
    with pytest.raises(IndexError), torch.inference_mode(), capture_activations(tiny_bert, ACT, [0, 1, 2]):
        assert _hook_count(tiny_bert) == 3
        tiny_bert(input_ids=torch.tensor([[1, 99]]))  # id 99 is outside the 50-token vocabulary
    assert _hook_count(tiny_bert) == 0


def test_unknown_module_is_a_named_error(tiny_bert: BertModel) -> None:
    bad = HookPoint(id="x", module="encoder.layer.{layer}.nope", capture="output", description="")
    with pytest.raises(InvalidRequest, match=r"module 'encoder.layer.0.nope' does not exist"):
        with capture_activations(tiny_bert, bad, [0]):
            pass
    assert _hook_count(tiny_bert) == 0


def test_a_sink_receives_each_layer_inside_the_forward(tiny_bert: BertModel) -> None:
    with torch.inference_mode(), capture_activations(tiny_bert, ACT, [0, 2]) as stored:
        run_forward(lambda: tiny_bert(**_inputs()))
    sunk: list[tuple[int, torch.Tensor]] = []
    with (
        torch.inference_mode(),
        capture_activations(tiny_bert, ACT, [0, 2], True, lambda layer, t: sunk.append((layer, t))) as unused,
    ):
        run_forward(lambda: tiny_bert(**_inputs()))
    assert unused == {}
    assert [layer for layer, _ in sunk] == [0, 2]  # forward order
    for layer, tensor in sunk:
        assert torch.equal(tensor, stored[layer])
    assert _hook_count(tiny_bert) == 0
