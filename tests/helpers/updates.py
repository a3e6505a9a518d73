"""Every way a training program changes a model's parameters, the grad modes a forward runs in,
and a float64 reference model holding a model's current weights (the tests' yardstick for
"the next forward uses the current weights")."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import torch
from torch import Tensor, nn

from wdsr_fast import WDSRA, WDSRB
from wdsr_fast.testing.reference import ReferenceWDSRA, ReferenceWDSRB, make_args

MODES = ("grad", "no_grad", "inference_mode")
Update = Callable[[nn.Module, Tensor], None]


@contextlib.contextmanager
def grad_mode(mode: str) -> Iterator[None]:
    """``"grad"``: autograd on; ``"no_grad"``: torch.no_grad(); ``"inference_mode"``."""
    if mode == "inference_mode":
        with torch.inference_mode():
            yield
    else:
        with torch.set_grad_enabled(mode == "grad"):
            yield


def forward(model: nn.Module, x: Tensor, mode: str) -> Tensor:
    """``model(x)`` in ``mode``, as a plain tensor (detached, cloned out of inference mode)."""
    with grad_mode(mode):
        out = model(x)
    return out.detach().clone()


def reference_of(model: WDSRA | WDSRB) -> nn.Module:
    """A freshly built float64 reference model holding ``model``'s current weights."""
    args = make_args(
        scale=model.scale,
        n_resblocks=len(model.body),
        n_feats=model.n_feats,
        block_feats=getattr(model, "block_feats", 128),
        res_scale=model.res_scale,
        rgb_mean=tuple(model.rgb_mean.flatten().tolist()),
    )
    reference = (ReferenceWDSRA if isinstance(model, WDSRA) else ReferenceWDSRB)(args)
    reference.load_state_dict({k: v.detach().cpu() for k, v in model.state_dict().items()})
    return reference.double().eval()


def reference_output(model: WDSRA | WDSRB, x: Tensor) -> Tensor:
    with torch.no_grad():
        return reference_of(model)(x.detach().cpu().double())


def assert_matches_reference(model: WDSRA | WDSRB, x: Tensor, out: Tensor) -> None:
    """``out`` (the model's output on ``x``) equals the float64 reference's within float32
    rounding (outputs are on the 0-255 scale; stale weights differ by whole grey levels)."""
    expected = reference_output(model, x)
    torch.testing.assert_close(out.detach().cpu().double(), expected, rtol=1e-4, atol=1e-2)


def _loss(model: nn.Module, x: Tensor) -> Tensor:
    with torch.enable_grad():
        return (model(x) - 128.0).abs().mean()


def _optimizer_step(make: Callable[[list[nn.Parameter]], torch.optim.Optimizer]) -> Update:
    def update(model: nn.Module, x: Tensor) -> None:
        optimizer = make(list(model.parameters()))
        optimizer.zero_grad()
        _loss(model, x).backward()
        optimizer.step()

    return update


def _each_parameter(change: Callable[[nn.Parameter, int], None]) -> Update:
    def update(model: nn.Module, x: Tensor) -> None:
        for i, p in enumerate(model.parameters()):
            change(p, i)

    return update


def _other_weights(model: nn.Module) -> dict[str, Tensor]:
    """A state dict of ``model``'s keys and shapes with other values."""
    generator = torch.Generator().manual_seed(len(list(model.parameters())))
    return {
        k: (v * torch.empty_like(v).uniform_(0.6, 1.4, generator=generator)).detach().clone()
        for k, v in model.state_dict().items()
    }


def _numpy_write(p: nn.Parameter, i: int) -> None:
    p.detach().cpu().numpy()[...] *= 1.25  # writes through the shared memory (CPU parameters)


def _ema(model: nn.Module, x: Tensor) -> None:
    """An exponential moving average step towards other weights, as EMA code writes it."""
    target = _other_weights(model)
    for name, p in model.named_parameters():
        p.data.mul_(0.5).add_(target[name], alpha=0.5)


def _copy(model: nn.Module, x: Tensor) -> None:
    target = _other_weights(model)
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.copy_(target[name])


def _load_state_dict(model: nn.Module, x: Tensor) -> None:
    model.load_state_dict(_other_weights(model))


def _swap_data(model: nn.Module, x: Tensor) -> None:
    target = _other_weights(model)
    for name, p in model.named_parameters():
        p.data = target[name].to(p.device)


UPDATES: dict[str, Update] = {
    "adam_fused": _optimizer_step(lambda ps: torch.optim.Adam(ps, lr=5e-2, fused=True)),
    "adam_foreach": _optimizer_step(lambda ps: torch.optim.Adam(ps, lr=5e-2, foreach=True)),
    "sgd": _optimizer_step(lambda ps: torch.optim.SGD(ps, lr=1e-2)),
    "data_mul": _each_parameter(lambda p, i: p.data.mul_(1.0 + 0.05 * (i % 5 + 1))),
    "numpy_view": _each_parameter(_numpy_write),
    "ema": _ema,
    "copy_": _copy,
    "load_state_dict": _load_state_dict,
    "data_swap": _swap_data,
}
