"""The models under torch.autocast: every path runs, with and without grad, and is as accurate
as the reference model under the same autocast.

Output dtype under autocast: the residual blocks return the autocast dtype (their convolutions,
or the fused ops, run in it); the tail (pixel shuffles, skip add, de-normalisation) returns the
dtype of its input, which is then the autocast dtype too. Parameter gradients stay float32.
The CPU path of the WDSR-B block skips its chunked matrix products under autocast (they write
into preallocated outputs, which autocast does not cast).
"""

from __future__ import annotations

import pytest
import torch

from wdsr_fast import WDSRA, WDSRB

from helpers.devices import HAS_CUDA, requires_cuda
from helpers.updates import grad_mode, reference_of

# The Triton interpreter computes bfloat16 as NaN, so fused blocks take float16 on CPU.
CPU_CASES = [("torch", torch.bfloat16), ("torch", torch.float16), ("auto", torch.bfloat16)]
if not HAS_CUDA:
    CPU_CASES.append(("triton", torch.float16))


def make_model(kind: str, backend: str) -> WDSRA | WDSRB:
    torch.manual_seed(0)
    if kind == "A":
        return WDSRA(scale=2, n_resblocks=2, n_feats=8, block_feats=16, backend=backend)
    return WDSRB(scale=3, n_resblocks=2, n_feats=8, backend=backend)


def check_autocast(kind: str, backend: str, device: str, dtype: torch.dtype, mode: str) -> None:
    model = make_model(kind, backend).to(device)
    x = torch.rand(2, 3, 7, 6, device=device) * 255
    reference = reference_of(model)
    with torch.no_grad():
        exact = reference(x.double().cpu())
    with torch.autocast(device, dtype=dtype), torch.no_grad():
        plain = reference.float().to(device)(x.clone())
    with torch.autocast(device, dtype=dtype), grad_mode(mode):
        out = model(x)
        assert model.body[0](model.head(x)).dtype == dtype
    assert out.dtype == dtype and out.shape == (2, 3, 7 * model.scale, 6 * model.scale)
    err = (out.double().cpu() - exact).abs().max().item()
    plain_err = (plain.double().cpu() - exact).abs().max().item()
    assert err <= 2 * plain_err + 0.5, (err, plain_err)
    if mode == "grad":
        (out.float() - 128.0).abs().mean().backward()
        for name, p in model.named_parameters():
            assert p.grad is not None and p.grad.dtype == torch.float32, name
            assert torch.isfinite(p.grad).all(), name


@pytest.mark.parametrize("mode", ["grad", "no_grad", "inference_mode"])
@pytest.mark.parametrize(("backend", "dtype"), CPU_CASES, ids=lambda v: str(v).split(".")[-1])
@pytest.mark.parametrize("kind", ["A", "B"])
def test_cpu_autocast(kind: str, backend: str, dtype: torch.dtype, mode: str) -> None:
    check_autocast(kind, backend, "cpu", dtype, mode)


@requires_cuda
@pytest.mark.parametrize("mode", ["grad", "no_grad"])
@pytest.mark.parametrize("backend", ["auto", "torch"])
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=["float16", "bfloat16"])
@pytest.mark.parametrize("kind", ["A", "B"])
def test_cuda_autocast(kind: str, dtype: torch.dtype, backend: str, mode: str) -> None:
    check_autocast(kind, backend, "cuda", dtype, mode)
