"""The next forward uses the current weights, whatever changed them and in every grad mode.

Each parameter-update path (fused and foreach Adam, SGD, ``p.data`` writes, writes through a
numpy view, an EMA step, ``copy_``, ``load_state_dict``, swapping ``p.data``) runs between two
forwards; the second forward must equal a freshly built float64 reference model holding the
updated weights. Fused Adam, ``p.data`` and numpy writes change a parameter without bumping its
version counter, which is how a cached weight-norm fold used to go stale. A model used under
``torch.inference_mode()`` must still train afterwards.
"""

from __future__ import annotations

import pytest
import torch

from wdsr_fast import WDSRA, WDSRB

from helpers.updates import MODES, UPDATES, assert_matches_reference, forward, grad_mode


def make_model(kind: str, backend: str, n_resblocks: int = 2) -> WDSRA | WDSRB:
    if kind == "A":
        return WDSRA(scale=2, n_resblocks=n_resblocks, n_feats=8, block_feats=16, backend=backend)
    return WDSRB(scale=2, n_resblocks=n_resblocks, n_feats=8, res_scale=0.5, backend=backend)


def rgb(*shape: int) -> torch.Tensor:
    return torch.rand(shape) * 255


def check_update(kind: str, backend: str, update: str, n_resblocks: int = 2) -> None:
    model = make_model(kind, backend, n_resblocks).eval()
    x = rgb(1, 3, 6, 7)
    for mode in MODES:
        before = forward(model, x, mode)  # whatever a forward keeps, it keeps it now
        UPDATES[update](model, x)
        after = forward(model, x, mode)
        assert not torch.allclose(before, after, atol=0.5), f"{update} changed nothing"
        assert_matches_reference(model, x, after)


@pytest.mark.parametrize("update", sorted(UPDATES))
@pytest.mark.parametrize("kind", ["A", "B"])
def test_forward_after_update_uses_the_new_weights(kind: str, update: str) -> None:
    check_update(kind, "torch", update)


@pytest.mark.parametrize("update", ["adam_fused", "data_mul", "numpy_view", "load_state_dict"])
def test_fused_blocks_use_the_new_weights(update: str) -> None:
    """The fused blocks (Triton; the interpreter on CPU) and the C++ tail too."""
    check_update("B", "triton", update, n_resblocks=1)


@pytest.mark.parametrize("kind", ["A", "B"])
def test_model_used_in_inference_mode_still_trains(kind: str) -> None:
    model = make_model(kind, "auto").eval()
    x = rgb(2, 3, 5, 6)
    forward(model, x, "inference_mode")
    forward(model, x, "no_grad")
    model.train()
    optimizer = torch.optim.Adam(model.parameters(), lr=5e-2)
    out = model(x)
    (out - 128.0).abs().mean().backward()  # "Inference tensors cannot be saved for backward"
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
    optimizer.step()
    after = forward(model, x, "inference_mode")
    assert not torch.allclose(out.detach(), after, atol=0.5)
    assert_matches_reference(model, x, after)


def test_modes_interleaved_with_fused_adam_steps() -> None:
    """Validation, fused-Adam training, validation again: the second validation sees the
    trained weights (a stale fold made it evaluate the old ones, 150 grey levels off)."""
    model = make_model("B", "auto")
    optimizer = torch.optim.Adam(model.parameters(), lr=5e-2, fused=True)
    x = rgb(1, 3, 6, 6)
    for _ in range(3):
        model.eval()
        for mode in ("no_grad", "inference_mode"):
            with grad_mode(mode):
                assert_matches_reference(model, x, model(x))
        model.train()
        optimizer.zero_grad()
        (model(x) - 128.0).abs().mean().backward()
        optimizer.step()
