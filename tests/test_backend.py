"""Backend resolution: names, the environment variable, and where triton may run."""

import pytest
import torch

from wdsr_fast import WDSRB
from wdsr_fast.backend import ENV_VAR, resolve_backend

CPU = torch.device("cpu")


def test_auto_is_torch_on_cpu(monkeypatch):
    monkeypatch.delenv(ENV_VAR, raising=False)
    assert resolve_backend("auto", CPU) == "torch"


def test_environment_variable_replaces_auto_only(monkeypatch):
    monkeypatch.setenv(ENV_VAR, "triton")
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    assert resolve_backend("auto", CPU) == "triton"
    assert resolve_backend("torch", CPU) == "torch"


def test_bad_names_are_rejected(monkeypatch):
    with pytest.raises(ValueError, match="backend must be one of"):
        resolve_backend("fast", CPU)
    monkeypatch.setenv(ENV_VAR, "gpu")
    with pytest.raises(ValueError, match=ENV_VAR):
        resolve_backend("auto", CPU)


def test_triton_on_cpu_needs_the_interpreter(monkeypatch):
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    with pytest.raises(RuntimeError, match="TRITON_INTERPRET"):
        resolve_backend("triton", CPU)


def test_model_backend_property_switches_every_block():
    model = WDSRB(n_resblocks=3)
    assert model.backend == "auto"
    model.backend = "torch"
    assert {block.backend for block in model.body} == {"torch"}
    with pytest.raises(ValueError):
        model.backend = "nope"
