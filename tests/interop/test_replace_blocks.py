"""replace_blocks: swapping the residual blocks of live foreign models, keeping their Parameters."""

from __future__ import annotations

import argparse
import logging
import warnings
from collections.abc import Callable

import pytest
import torch
from torch import nn
from torch.nn.utils.parametrizations import weight_norm as parametrized_weight_norm

from wdsr_fast import WDSRABlock, WDSRBBlock, replace_blocks
from wdsr_fast.interop.replace import find_blocks
from wdsr_fast.nn.weight_norm import WeightNormConv2d
from wdsr_fast.testing.reference import ReferenceWDSRA, ReferenceWDSRB, make_args

from helpers.accuracy import assert_within_rule, outputs_and_grads
from helpers.ychfan import YchfanBlock, YchfanBlockB, YchfanWDSR

FUSED_OPS = {"A": "wdsr_fast.ops.wdsr_a_block", "B": "wdsr_fast.ops.wdsr_b_block"}
BLOCK_TYPES = {"A": WDSRABlock, "B": WDSRBBlock}
LR = 1e-2


def reference_model(kind: str, res_scale: float = 0.7, n_resblocks: int = 2) -> nn.Module:
    """The authors' model (hook-style weight norm), small, with random g and bias.

    Seeded, so that each call builds the same model (hook-style models cannot be deep-copied).
    """
    torch.manual_seed(1)
    args = make_args(n_resblocks=n_resblocks, n_feats=8, block_feats=16, res_scale=res_scale)
    model = (ReferenceWDSRA if kind == "A" else ReferenceWDSRB)(args)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if not name.endswith("weight_v"):
                p.uniform_(0.5, 1.5) if name.endswith("weight_g") else p.uniform_(-0.1, 0.1)
    return model


class ForeignBlock(nn.Module):
    """A residual block of someone else's code base: ``body(x) * res_scale + x``."""

    def __init__(self, kind: str, conv_form: str, n_feats: int = 8, res_scale: float = 0.5):
        super().__init__()
        self.res_scale = res_scale
        if kind == "B":
            shapes = [(n_feats, 6 * n_feats, 1), (6 * n_feats, 6, 1), (6, n_feats, 3)]
        else:
            shapes = [(n_feats, 16, 3), (16, n_feats, 3)]
        convs = [make_conv(conv_form, c_in, c_out, k) for c_in, c_out, k in shapes]
        self.body = nn.Sequential(convs[0], nn.ReLU(), *convs[1:])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x) * self.res_scale + x


def make_conv(conv_form: str, c_in: int, c_out: int, k: int) -> nn.Module:
    """A k x k conv (padding k // 2): weight-normalised in form ``"ours"``, ``"parametrize"`` or
    ``"hook"`` (torch.nn.utils.weight_norm), or ``"plain"``; random g."""
    if conv_form == "ours":
        conv = WeightNormConv2d(c_in, c_out, k, padding=k // 2)
    else:
        conv = nn.Conv2d(c_in, c_out, k, padding=k // 2)
        if conv_form == "parametrize":
            conv = parametrized_weight_norm(conv)
        elif conv_form == "hook":
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", FutureWarning)
                conv = torch.nn.utils.weight_norm(conv)
    with torch.no_grad():
        for name, p in conv.named_parameters():
            if name.endswith(("weight_g", "original0")):
                p.uniform_(0.5, 1.5)
    return conv


class ForeignNet(nn.Module):
    """Head conv, two foreign blocks, tail conv: a stand-in for other code bases' models."""

    def __init__(self, kind: str, conv_form: str):
        super().__init__()
        torch.manual_seed(2)
        self.head = nn.Conv2d(3, 8, 3, padding=1)
        self.blocks = nn.Sequential(ForeignBlock(kind, conv_form), ForeignBlock(kind, conv_form))
        self.tail = nn.Conv2d(8, 3, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.tail(self.blocks(self.head(x)))


def check_swap(
    make_model: Callable[[], nn.Module], x: torch.Tensor, backend: str = "torch"
) -> None:
    """Outputs and gradients of the swapped model against the original's (fp32 and fp64)."""
    exact = outputs_and_grads(make_model().double(), x.double())
    plain = outputs_and_grads(make_model(), x)
    fast = outputs_and_grads(replace_blocks(make_model(), backend=backend), x)
    assert_within_rule(fast, plain, exact, rel_atol=1e-6)


@pytest.mark.parametrize("kind", ["A", "B"])
def test_reference_model_same_outputs_and_gradients(kind: str) -> None:
    model = reference_model(kind)
    assert find_blocks(model) == ["body.0", "body.1"]
    replace_blocks(model, backend="torch")
    assert all(isinstance(block, BLOCK_TYPES[kind]) for block in model.body)
    assert [block.res_scale for block in model.body] == [0.7, 0.7]
    check_swap(lambda: reference_model(kind), torch.rand(2, 3, 7, 5) * 255)


@pytest.mark.parametrize("conv_form", ["hook", "parametrize", "ours"])
@pytest.mark.parametrize("kind", ["A", "B"])
def test_every_weight_norm_form_is_swapped(kind: str, conv_form: str) -> None:
    model = ForeignNet(kind, conv_form)
    keys = list(model.state_dict())
    replace_blocks(model, backend="torch")
    assert all(isinstance(block, BLOCK_TYPES[kind]) for block in model.blocks)
    assert list(model.state_dict()) == keys
    check_swap(lambda: ForeignNet(kind, conv_form), torch.randn(2, 3, 6, 7))


def test_same_parameter_objects_and_state_dict_keys() -> None:
    model = reference_model("B")
    params_before = dict(model.named_parameters())
    keys_before = list(model.state_dict())
    model.eval()
    assert replace_blocks(model, backend="torch") is model
    assert list(model.state_dict()) == keys_before
    params_after = dict(model.named_parameters())
    assert params_after.keys() == params_before.keys()
    assert all(params_after[name] is p for name, p in params_before.items())
    assert not any(block.training for block in model.body)


def adam_trajectory(
    model: nn.Module, xs: list[torch.Tensor], ys: list[torch.Tensor], swap: str | None
) -> dict:
    """Five Adam steps of L1 loss; the optimizer is made before the swap to ``swap`` backend."""
    optimizer = torch.optim.Adam(model.parameters(), lr=LR)
    if swap is not None:
        replace_blocks(model, backend=swap)
    for x, y in zip(xs, ys, strict=True):
        optimizer.zero_grad()
        nn.functional.l1_loss(model(x), y).backward()
        optimizer.step()
    return {name: p.detach().clone() for name, p in model.named_parameters()}


def assert_adam_matches(kind: str, backend: str, shape: tuple[int, int, int, int]) -> None:
    """The swapped model's parameters after five Adam steps, against the reference's.

    Rule of docs/design.md section 5: error against the float64 run at most twice the error of the
    float32 reference run, plus a small atol (Adam's steps are lr-sized, so atol = 1e-3 * lr).
    """
    start = {name: p.detach().clone() for name, p in reference_model(kind).named_parameters()}
    n, c, h, w = shape
    xs = [torch.rand(shape) * 255 for _ in range(5)]
    ys = [torch.rand(n, c, 2 * h, 2 * w) * 255 for _ in range(5)]
    as_double = [[t.double() for t in ts] for ts in (xs, ys)]
    exact = adam_trajectory(reference_model(kind).double(), *as_double, None)
    plain = adam_trajectory(reference_model(kind), xs, ys, None)
    fast = adam_trajectory(reference_model(kind), xs, ys, backend)
    for name, value in fast.items():
        assert not torch.equal(value, start[name]), f"{name} was not updated"
        fast_err = (value.double() - exact[name]).abs().max().item()
        plain_err = (plain[name].double() - exact[name]).abs().max().item()
        assert fast_err <= 2 * plain_err + 1e-3 * LR, f"{name}: {fast_err} vs plain {plain_err}"


@pytest.mark.parametrize("kind", ["A", "B"])
def test_five_adam_steps_torch_backend(kind: str) -> None:
    assert_adam_matches(kind, "torch", (2, 3, 6, 5))


@pytest.mark.parametrize("kind", ["A", "B"])
def test_five_adam_steps_triton_backend(kind: str) -> None:
    pytest.importorskip(
        FUSED_OPS[kind], reason=f"fused op module {FUSED_OPS[kind]} does not exist yet"
    )
    assert_adam_matches(kind, "triton", (1, 3, 3, 4))


def test_filter_fn_and_nested_models() -> None:
    wrapper = nn.Module()
    wrapper.model = reference_model("A", n_resblocks=3)
    only_middle = lambda module, name: name == "model.body.1"
    assert find_blocks(wrapper) == ["model.body.0", "model.body.1", "model.body.2"]
    assert find_blocks(wrapper, only_middle) == ["model.body.1"]
    replace_blocks(wrapper, backend="torch", filter_fn=only_middle)
    swapped = [isinstance(block, WDSRABlock) for block in wrapper.model.body]
    assert swapped == [False, True, False]


def test_shared_block_is_swapped_everywhere_once() -> None:
    block = ForeignBlock("B", "ours")
    model = nn.Sequential(block, block)
    replace_blocks(model, backend="torch")
    assert isinstance(model[0], WDSRBBlock) and model[0] is model[1]
    assert model[0].body is block.body


def test_model_that_is_a_block_returns_the_new_block() -> None:
    block = ForeignBlock("A", "parametrize")
    new = replace_blocks(block, backend="torch")
    assert isinstance(new, WDSRABlock) and new.body is block.body


def test_blocks_without_weight_norm_are_left_alone(caplog: pytest.LogCaptureFixture) -> None:
    model = ForeignNet("B", "plain")
    with caplog.at_level(logging.INFO, logger="wdsr_fast.interop.replace"):
        replace_blocks(model, backend="torch")
    assert [type(b) for b in model.blocks] == [ForeignBlock, ForeignBlock]
    assert "'blocks.0' is not swapped: its convs have no weight norm over dim 0" in caplog.text
    assert "swapped 0 block(s)" in caplog.text


def test_near_miss_structures_are_not_swapped() -> None:
    strided = ForeignBlock("A", "ours")
    strided.body[0] = WeightNormConv2d(8, 16, 3, padding=0)  # wrong padding
    no_relu = ForeignBlock("B", "ours")
    no_relu.body[1] = nn.GELU()
    no_res_scale = ForeignBlock("A", "ours")
    del no_res_scale.res_scale
    model = nn.Sequential(strided, no_relu, no_res_scale)
    assert find_blocks(model) == []


def test_already_fast_blocks_are_left_alone() -> None:
    block = WDSRBBlock(8, backend="torch")
    assert replace_blocks(nn.Sequential(block))[0] is block


def test_bad_arguments() -> None:
    model = reference_model("B")
    with pytest.raises(ValueError, match="backend must be one of"):
        replace_blocks(model, backend="cuda")
    with pytest.raises(TypeError, match="model must be a torch.nn.Module"):
        replace_blocks(model.state_dict())
    with pytest.raises(TypeError, match="filter_fn must be callable"):
        replace_blocks(model, filter_fn="body.0")
    assert find_blocks(model) == ["body.0", "body.1"], "a failed call must leave the model alone"


# ------------------------------------------------------------------- blocks without res_scale


def ychfan_block(kind: str) -> nn.Module:
    """A block shaped like the authors' later release (ychfan/wdsr): no ``res_scale``, a
    forward of ``x + body(x)``, random g."""
    block = YchfanBlockB(8, 4) if kind == "B" else YchfanBlock(8, 3, 4)
    with torch.no_grad():
        for name, p in block.named_parameters():
            if name.endswith("weight_g"):
                p.uniform_(0.5, 1.5)
    return block


class ScaledBlock(YchfanBlock):
    """No ``res_scale`` attribute, but a forward of ``x + 0.5 * body(x)``: not ``x + body(x)``."""

    def __init__(self, kind: str):
        super().__init__(8, 3, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + 0.5 * self.body(x)


class NoSkipBlock(ScaledBlock):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


class TwoArgumentBlock(ScaledBlock):
    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return x + self.body(x) * mask


def block_net(block_type: type[nn.Module], kind: str) -> nn.Module:
    torch.manual_seed(3)
    return nn.Sequential(
        make_conv("hook", 3, 8, 3), block_type(kind), block_type(kind), make_conv("hook", 8, 3, 3)
    )


@pytest.mark.parametrize("kind", ["A", "B"])
def test_blocks_without_res_scale_computing_x_plus_body_are_swapped(kind: str) -> None:
    model = block_net(ychfan_block, kind)
    assert find_blocks(model) == ["1", "2"]
    replace_blocks(model, backend="torch")
    assert all(isinstance(model[i], BLOCK_TYPES[kind]) for i in (1, 2))
    assert [model[i].res_scale for i in (1, 2)] == [1.0, 1.0]
    check_swap(lambda: block_net(ychfan_block, kind), torch.randn(2, 3, 6, 5))


class InputCopying(nn.Module):
    """Runs ``model`` on a copy of its input (the ychfan model subtracts its mean in place)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x.clone())


def ychfan_model() -> nn.Module:
    torch.manual_seed(4)
    params = argparse.Namespace(
        num_channels=3, scale=2, num_blocks=2, num_residual_units=8, width_multiplier=4,
        image_mean=0.5,
    )  # fmt: skip
    model = YchfanWDSR(params)
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.uniform_(0.5, 1.5) if name.endswith("weight_g") else None
    return InputCopying(model)


def test_ychfan_model_is_swapped_and_computes_the_same() -> None:
    assert find_blocks(ychfan_model()) == ["model.body.1", "model.body.2"]
    check_swap(ychfan_model, torch.rand(2, 3, 5, 6))


@pytest.mark.parametrize("block_type", [ScaledBlock, NoSkipBlock, TwoArgumentBlock])
def test_blocks_without_res_scale_computing_something_else_are_left_alone(block_type) -> None:
    model = block_net(block_type, "A")
    with torch.no_grad():  # a zero last g makes body(x) zero: the scale must still be seen
        for block in (model[1], model[2]):
            block.body[2].weight_g.zero_()
    before = {name: p.clone() for name, p in model.named_parameters()}
    assert find_blocks(model) == []
    replace_blocks(model, backend="torch")
    assert [type(model[i]) for i in (1, 2)] == [block_type, block_type]
    assert all(torch.equal(p, before[name]) for name, p in model.named_parameters())
    assert isinstance(model[1].body, nn.Sequential)  # the probe was taken out again


def test_swapping_nothing_in_a_weight_normalised_model_warns(caplog) -> None:
    model = block_net(ScaledBlock, "B")
    with caplog.at_level(logging.WARNING, logger="wdsr_fast.interop.replace"):
        replace_blocks(model, backend="torch")
    warnings_logged = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings_logged) == 1
    message = warnings_logged[0].getMessage()
    assert "swapped no block although the model has 6 weight-normalised conv(s)" in message


def test_filter_declining_every_block_warns_so(caplog) -> None:
    with caplog.at_level(logging.WARNING, logger="wdsr_fast.interop.replace"):
        replace_blocks(reference_model("B"), backend="torch", filter_fn=lambda m, n: False)
    assert "filter_fn declined all 2 recognised block(s)" in caplog.text


def test_no_warning_when_nothing_is_left_to_swap(caplog) -> None:
    model = reference_model("A")
    replace_blocks(model, backend="torch")
    with caplog.at_level(logging.WARNING, logger="wdsr_fast.interop.replace"):
        replace_blocks(model, backend="torch")  # already swapped: the head/tail convs remain
        replace_blocks(ForeignNet("B", "plain"), backend="torch")  # no weight norm at all
    assert "swapped no block" not in caplog.text
