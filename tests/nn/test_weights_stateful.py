"""A stateful property test: forwards in every grad mode, interleaved with every way of
updating the parameters, always see the current weights.

Hypothesis runs sequences of steps on one model: forwards (autograd, no_grad, inference_mode;
train or eval mode), parameter updates (fused and foreach Adam, SGD, ``p.data`` writes, writes
through numpy views, EMA steps, ``copy_``, ``load_state_dict``, swapping ``p.data``) each
followed by a forward, and training steps; every output, and every training step's
gradients, must equal those of a freshly built float64 reference model holding the current
weights. Budgets and the derandomised profile: tests/helpers/hypothesis_profiles.py.
"""

from __future__ import annotations

import pytest

pytest.importorskip("hypothesis", reason="hypothesis is in the test extras")

import torch  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from hypothesis.stateful import (  # noqa: E402
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from wdsr_fast import WDSRA, WDSRB  # noqa: E402

from helpers import hypothesis_profiles  # noqa: E402
from helpers.updates import (  # noqa: E402
    MODES,
    UPDATES,
    assert_matches_reference,
    forward,
    reference_of,
)

hypothesis_profiles.load()


class WeightsFollowUpdates(RuleBasedStateMachine):
    """One small model, its fixed input, and the steps that must keep it consistent."""

    def __init__(self) -> None:
        super().__init__()
        self.model: WDSRA | WDSRB | None = None

    @initialize(
        kind=st.sampled_from(["A", "B"]),
        backend=st.sampled_from(["torch", "auto", "triton"]),
        seed=st.integers(0, 2**16),
    )
    def build(self, kind: str, backend: str, seed: int) -> None:
        torch.manual_seed(seed)
        if kind == "A":
            self.model = WDSRA(n_resblocks=1, n_feats=4, block_feats=8, backend=backend)
        else:
            self.model = WDSRB(n_resblocks=1, n_feats=4, res_scale=0.5, backend=backend)
        with torch.no_grad():
            for name, p in self.model.named_parameters():
                if name.endswith("weight_g"):
                    p.uniform_(0.5, 1.5)
        self.x = torch.rand(1, 3, 4, 5) * 255

    @precondition(lambda self: self.model is not None)
    @rule(mode=st.sampled_from(MODES), training=st.booleans())
    def forward_sees_current_weights(self, mode: str, training: bool) -> None:
        self.model.train(training)
        assert_matches_reference(self.model, self.x, forward(self.model, self.x, mode))

    @precondition(lambda self: self.model is not None)
    @rule(update=st.sampled_from(sorted(UPDATES)), mode=st.sampled_from(MODES))
    def update_then_forward(self, update: str, mode: str) -> None:
        UPDATES[update](self.model, self.x)
        assert_matches_reference(self.model, self.x, forward(self.model, self.x, mode))

    @precondition(lambda self: self.model is not None)
    @rule()
    def training_step_has_reference_gradients(self) -> None:
        self.model.train().zero_grad(set_to_none=True)
        (self.model(self.x) - 128.0).abs().mean().backward()
        reference = reference_of(self.model)
        (reference(self.x.double()) - 128.0).abs().mean().backward()
        expected = dict(reference.named_parameters())
        for name, p in self.model.named_parameters():
            want = expected[name].grad
            err = (p.grad.double() - want).abs().max().item()
            assert err <= 1e-3 * want.abs().max().item() + 1e-7, f"{name}: gradient error {err}"
        self.model.zero_grad(set_to_none=True)

    @invariant()
    def parameters_stay_finite(self) -> None:
        if self.model is not None:
            assert all(torch.isfinite(p).all() for p in self.model.parameters())


WeightsFollowUpdates.TestCase.settings = hypothesis_profiles.budget(8, stateful_step_count=8)
TestWeightsFollowUpdates = WeightsFollowUpdates.TestCase
