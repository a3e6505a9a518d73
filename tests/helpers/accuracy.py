"""The correctness rule of docs/design.md section 5, shared by the tests."""

from __future__ import annotations

import torch
from torch import nn


def outputs_and_grads(model: nn.Module, x: torch.Tensor) -> dict[str, torch.Tensor]:
    """Copies of the output and of the gradients of the input and every parameter, of a fixed
    weighted sum of the output; the parameters' earlier gradients are cleared first."""
    module = getattr(model, "_orig_mod", model)  # a torch.compile wrapper names it so
    module.zero_grad(set_to_none=True)
    x = x.clone().requires_grad_(True)
    out = model(x)
    weights = torch.linspace(-1, 1, out.numel(), dtype=out.dtype, device=out.device)
    (out * weights.view_as(out)).sum().backward()
    grads = {name: p.grad.clone() for name, p in module.named_parameters()}
    return {"output": out.detach().clone(), "input": x.grad, **grads}


def assert_within_rule(fast: dict, plain: dict, exact: dict, rel_atol: float) -> None:
    """docs/design.md section 5: ``|fast - exact| <= 2 |plain - exact| + atol`` for every entry.

    ``exact`` is the float64 run, ``plain`` the float32 run of the original model; atol is
    ``rel_atol`` times the entry's largest magnitude.
    """
    assert fast.keys() == exact.keys() == plain.keys()
    for name, reference in exact.items():
        fast_err = (fast[name].double() - reference).abs().max().item()
        plain_err = (plain[name].double() - reference).abs().max().item()
        atol = rel_atol * reference.abs().max().item()
        assert fast_err <= 2 * plain_err + atol, f"{name}: error {fast_err}, plain {plain_err}"
