"""Backend resolution: names, the environment variable, where the fused kernels may run, and
that the blocks and the tail of a model honour one backend."""

import pytest
import torch

import wdsr_fast.dispatch as dispatch
from wdsr_fast import WDSRB, BackendUnavailableError
from wdsr_fast.dispatch import ENV_VAR, TAIL_OP, resolve_backend

CPU = torch.device("cpu")
F32 = torch.float32


@pytest.fixture(autouse=True)
def _no_override(monkeypatch):
    monkeypatch.delenv(ENV_VAR, raising=False)


@pytest.mark.parametrize("op", ["wdsr_b_block", "wdsr_a_block"])
def test_auto_runs_blocks_on_torch_on_cpu(op):
    assert resolve_backend("auto", op, CPU, F32) == "torch"


def test_auto_runs_the_tail_on_the_extension_on_cpu():
    assert resolve_backend("auto", TAIL_OP, CPU, F32) == "triton"


def test_environment_variable_replaces_auto_only(monkeypatch):
    monkeypatch.setenv(ENV_VAR, "triton")
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    assert resolve_backend("auto", "wdsr_b_block", CPU, F32) == "triton"
    assert resolve_backend("torch", "wdsr_b_block", CPU, F32) == "torch"
    monkeypatch.setenv(ENV_VAR, "torch")
    assert resolve_backend("auto", TAIL_OP, CPU, F32) == "torch"


def test_bad_names_are_rejected(monkeypatch):
    with pytest.raises(ValueError, match="backend must be one of"):
        resolve_backend("fast", "wdsr_b_block", CPU, F32)
    with pytest.raises(ValueError, match="op must be one of"):
        resolve_backend("triton", "conv", CPU, F32)
    monkeypatch.setenv(ENV_VAR, "gpu")
    with pytest.raises(ValueError, match=ENV_VAR):
        resolve_backend("auto", "wdsr_b_block", CPU, F32)


def test_triton_on_cpu_needs_the_interpreter(monkeypatch):
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    with pytest.raises(BackendUnavailableError, match="TRITON_INTERPRET"):
        resolve_backend("triton", "wdsr_b_block", CPU, F32)


def test_fused_blocks_refuse_float64_with_the_reason(monkeypatch):
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    with pytest.raises(BackendUnavailableError, match="float64"):
        resolve_backend("triton", "wdsr_a_block", CPU, torch.float64)
    assert resolve_backend("auto", "wdsr_a_block", CPU, torch.float64) == "torch"


def test_fused_tail_without_the_extension_is_an_error_only_when_asked_for(monkeypatch):
    monkeypatch.setattr(dispatch, "extension_unavailable_reason", lambda device: "not built")
    with pytest.raises(BackendUnavailableError, match="not built"):
        resolve_backend("triton", TAIL_OP, CPU, F32)
    with pytest.warns(RuntimeWarning, match="not built"):
        assert resolve_backend("auto", TAIL_OP, CPU, F32) == "torch"


def test_model_backend_switches_every_block_and_the_tail(monkeypatch):
    model = WDSRB(n_resblocks=3)
    assert model.backend == "auto"
    model.backend = "torch"
    assert {block.backend for block in model.body} == {"torch"} and model.backend == "torch"
    with pytest.raises(ValueError):
        model.backend = "nope"
    monkeypatch.setattr(dispatch, "extension_unavailable_reason", lambda device: "not built")
    model.backend = "triton"
    model.body = torch.nn.Sequential()  # no blocks: only the tail asks for the fused kernel
    with pytest.raises(BackendUnavailableError, match="shuffle_add_affine"):
        model(torch.rand(1, 3, 4, 4) * 255)
