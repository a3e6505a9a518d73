"""WDSRA / WDSRB against the reference rendition: keys, counts, outputs, gradients, bad input."""

from __future__ import annotations

import pytest
import torch

from wdsr_fast import WDSRA, WDSRB
from wdsr_fast.testing import reference
from wdsr_fast.torch_impl import pointwise_chain_chunked

from helpers.accuracy import assert_within_rule

PARAMETER_COUNTS = {
    ("B", 2): 303_604,
    ("B", 3): 309_109,
    ("B", 4): 316_816,
    ("A", 2): 1_190_100,
    ("A", 3): 1_195_605,
    ("A", 4): 1_203_312,
}


def make_pair(kind: str, dtype: torch.dtype = torch.float64, **kwargs):
    """A reference model and a wdsr_fast model (torch backend) holding the same weights."""
    args = reference.make_args(**kwargs)
    ref = (reference.ReferenceWDSRA if kind == "A" else reference.ReferenceWDSRB)(args)
    fast = (WDSRA if kind == "A" else WDSRB).from_args(args, backend="torch")
    # Perturb g so that weight norm is not the identity on its initial values.
    with torch.no_grad():
        for name, p in ref.named_parameters():
            if name.endswith("weight_g"):
                p.mul_(torch.empty_like(p).uniform_(0.5, 1.5))
    fast.load_state_dict(ref.state_dict())
    return ref.to(dtype), fast.to(dtype)


def rgb_input(shape, dtype=torch.float64) -> torch.Tensor:
    return (torch.rand(shape, dtype=torch.float64) * 255).to(dtype)


@pytest.mark.parametrize("kind", ["A", "B"])
@pytest.mark.parametrize("scale", [2, 3, 4])
def test_state_dict_and_parameter_count_match_reference(kind, scale):
    ref, fast = make_pair(kind, scale=scale, n_resblocks=16)
    ref_sd, fast_sd = ref.state_dict(), fast.state_dict()
    assert list(fast_sd) == list(ref_sd)
    for key in ref_sd:
        assert fast_sd[key].shape == ref_sd[key].shape, key
    assert sum(p.numel() for p in fast.parameters()) == PARAMETER_COUNTS[(kind, scale)]
    assert [n for n, _ in fast.named_parameters()] == [n for n, _ in ref.named_parameters()]


def test_paper_size_wdsr_b():
    assert sum(p.numel() for p in WDSRB(n_feats=64, n_resblocks=8).parameters()) == 605_988


@pytest.mark.parametrize("kind", ["A", "B"])
@pytest.mark.parametrize(
    "shape, n_feats, res_scale, layout",
    [
        ((2, 3, 7, 13), 32, 1.0, "nchw"),
        ((1, 3, 1, 1), 32, 1.0, "nchw"),
        ((3, 3, 13, 7), 24, 0.1, "channels_last"),
        ((2, 3, 1, 13), 16, 0.5, "noncontiguous"),
    ],
)
def test_forward_and_gradients_match_reference(kind, shape, n_feats, res_scale, layout):
    ref64, fast64 = make_pair(kind, n_feats=n_feats, n_resblocks=2, res_scale=res_scale)
    _, fast32 = make_pair(kind, torch.float32, n_feats=n_feats, n_resblocks=2, res_scale=res_scale)
    fast32.load_state_dict(ref64.state_dict())
    ref32 = type(ref64)(ref64.args).float()
    ref32.load_state_dict(ref64.state_dict())

    x64 = rgb_input(shape)
    if layout == "channels_last":
        x64 = x64.contiguous(memory_format=torch.channels_last)
    elif layout == "noncontiguous":
        x64 = rgb_input(shape[:3] + (shape[3] * 2,))[..., ::2]
        assert not x64.is_contiguous()

    def run(model, dtype):
        # x keeps its layout (a clone would make the non-contiguous case contiguous).
        x = x64.to(dtype).detach().requires_grad_(True)
        out = model(x)
        grad_out = torch.linspace(-1, 1, out.numel(), dtype=torch.float64).view(out.shape)
        out.backward(grad_out.to(dtype))
        grads = {n: p.grad for n, p in model.named_parameters()}
        model.zero_grad()
        return {"output": out.detach(), "input": x.grad, **grads}

    exact = run(ref64, torch.float64)
    assert_within_rule(run(fast64, torch.float64), exact, exact, rel_atol=1e-12)
    assert_within_rule(run(fast32, torch.float32), run(ref32, torch.float32), exact, rel_atol=1e-5)


@pytest.mark.parametrize("kind", ["A", "B"])
def test_inference_matches_training_path_and_leaves_input_alone(kind):
    ref, fast = make_pair(kind, torch.float32, n_resblocks=2)
    x = rgb_input((2, 3, 17, 9), torch.float32)
    before = x.clone()
    with torch.no_grad():
        expected = ref(x)
    trained = fast(x)  # grad mode: autograd path
    assert torch.equal(x, before)
    fast.eval()
    with torch.inference_mode():
        inferred = fast(x)  # cached weights, chunked CPU path for WDSR-B
    assert torch.equal(x, before)
    torch.testing.assert_close(trained.detach(), expected, rtol=1e-5, atol=2e-3)
    torch.testing.assert_close(inferred, expected, rtol=1e-5, atol=2e-3)


def test_chunked_pointwise_chain_equals_convolutions(monkeypatch):
    import wdsr_fast.torch_impl as torch_impl

    # Several chunks and a ragged last one.
    monkeypatch.setattr(torch_impl, "CPU_CHUNK_PIXELS_PER_THREAD", 16)
    x = torch.randn(2, 16, 9, 11, dtype=torch.float64).contiguous(memory_format=torch.channels_last)
    w1, b1 = torch.randn(96, 16, 1, 1, dtype=torch.float64), torch.randn(96, dtype=torch.float64)
    w2, b2 = torch.randn(12, 96, 1, 1, dtype=torch.float64), torch.randn(12, dtype=torch.float64)
    expected = torch.nn.functional.conv2d(torch.relu(torch.nn.functional.conv2d(x, w1, b1)), w2, b2)
    torch.testing.assert_close(pointwise_chain_chunked(x, w1, b1, w2, b2), expected)
    torch.testing.assert_close(pointwise_chain_chunked(x.contiguous(), w1, b1, w2, b2), expected)


def test_cached_weights_follow_parameter_updates():
    ref, fast = make_pair("B", torch.float32, n_resblocks=1)
    fast.eval()
    x = rgb_input((1, 3, 8, 8), torch.float32)
    with torch.no_grad():
        first = fast(x)
        fast.body[0].body[0].weight_g.mul_(2.0)  # in-place update, as an optimizer step does
        second = fast(x)
        ref.body[0].body[0].weight_g.mul_(2.0)
        expected = ref(x)
    assert not torch.allclose(first, second)
    torch.testing.assert_close(second, expected, rtol=1e-5, atol=2e-3)
    fast.load_state_dict(ref.state_dict())
    with torch.no_grad():
        torch.testing.assert_close(fast(x), expected, rtol=1e-5, atol=2e-3)


def test_parametrization_style_keys_load():
    ref, fast = make_pair("B", torch.float32, n_resblocks=2)
    renamed = {}
    for key, value in ref.state_dict().items():
        key = key.replace("weight_g", "parametrizations.weight.original0")
        renamed[key.replace("weight_v", "parametrizations.weight.original1")] = value
    other = WDSRB(n_resblocks=2, backend="torch")
    other.load_state_dict(renamed)
    for key, value in fast.state_dict().items():
        assert torch.equal(other.state_dict()[key], value), key


def test_from_args_reads_the_reference_namespace():
    args = reference.make_args(scale=3, n_resblocks=4, n_feats=24, block_feats=40, res_scale=0.2)
    args.r_mean, args.g_mean, args.b_mean = 0.5, 0.4, 0.3
    b, a = WDSRB.from_args(args), WDSRA.from_args(args)
    assert (b.scale, len(b.body), b.n_feats, b.res_scale) == (3, 4, 24, 0.2)
    assert a.block_feats == 40 and a.body[0].body[0].out_channels == 40
    assert torch.allclose(b.rgb_mean.flatten(), torch.tensor([0.5, 0.4, 0.3]))
    assert b.body[0].body[2].out_channels == int(24 * 0.8)


@pytest.mark.parametrize(
    "make_x, error, match",
    [
        (lambda: torch.rand(1, 4, 8, 8), ValueError, "n_colors=3 channels"),
        (lambda: torch.rand(3, 8, 8), ValueError, "4-D"),
        (lambda: torch.randint(0, 255, (1, 3, 8, 8)), TypeError, "floating-point"),
        (lambda: torch.rand(0, 3, 8, 8), ValueError, "empty"),
        (lambda: torch.rand(1, 3, 0, 8), ValueError, "empty"),
        (lambda: [[1.0]], TypeError, "torch.Tensor"),
    ],
)
def test_bad_input_raises_clear_error(make_x, error, match):
    model = WDSRB(n_resblocks=1)
    with pytest.raises(error, match=match):
        model(make_x())


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"scale": 0}, "scale"),
        ({"n_feats": 2.5}, "n_feats"),
        ({"n_resblocks": -1}, "n_resblocks"),
        ({"rgb_mean": (0.5, 0.5)}, "rgb_mean"),
        ({"backend": "cuda"}, "backend"),
        ({"linear": 0.01}, "linear"),
        ({"linear": float("nan")}, "linear"),
        ({"n_feats": 0}, "^n_feats must be a positive integer"),
        ({"rgb_range": float("inf")}, "^rgb_range must be a finite positive number"),
        ({"rgb_range": float("nan")}, "^rgb_range must be a finite positive number"),
        ({"rgb_range": 0.0}, "^rgb_range"),
        ({"rgb_std": float("inf")}, "^rgb_std"),
        ({"rgb_mean": (0.5, float("nan"), 0.5)}, "^rgb_mean must be a finite"),
        ({"res_scale": float("nan")}, "^res_scale must be a finite"),
        ({"res_scale": "1"}, "^res_scale must be a real number"),
    ],
)
def test_bad_constructor_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        WDSRB(**kwargs)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"n_feats": 0}, "^n_feats"),
        ({"block_feats": 0}, "^block_feats"),
        ({"rgb_range": float("inf")}, "^rgb_range"),
        ({"rgb_std": float("nan")}, "^rgb_std"),
        ({"res_scale": float("inf")}, "^res_scale"),
    ],
)
def test_bad_wdsr_a_constructor_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        WDSRA(**kwargs)


def test_nan_and_inf_propagate():
    model = WDSRB(n_resblocks=1, backend="torch").eval()
    x = rgb_input((1, 3, 6, 6), torch.float32)
    x[0, 0, 2, 2] = float("nan")
    x[0, 1, 4, 4] = float("inf")
    with torch.no_grad():
        out = model(x)
    assert not torch.isfinite(out).all()


@pytest.mark.parametrize("name", ["head.0.weight_v", "body.0.body.0.bias", "tail.0.weight_g"])
def test_parameter_on_another_device_is_a_clear_error(name):
    """A parameter left on the meta device (a meta-device initialisation that missed it) made
    conv2d return an uninitialised CPU tensor."""
    model = WDSRB(n_resblocks=1, n_feats=8)
    module_name, attribute = name.rsplit(".", 1)
    module = model.get_submodule(module_name)
    setattr(module, attribute, torch.nn.Parameter(getattr(module, attribute).to("meta")))
    for grad in (False, True):
        with torch.set_grad_enabled(grad), pytest.raises(ValueError, match="expected device cpu"):
            model(rgb_input((1, 3, 4, 4), torch.float32))
