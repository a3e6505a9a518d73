// Schemas of the wdsr_fast operators, defined once. The CPU and CUDA kernels are registered
// with TORCH_LIBRARY_IMPL next to them; fake (meta) implementations and autograd formulas are
// registered from Python, in the module named by set_python_module.
#include <torch/library.h>
#include <torch/version.h>

TORCH_LIBRARY(wdsr_fast, m) {
  // Older torch names set_python_module impl_abstract_pystub (still an alias in newer ones).
#if TORCH_VERSION_MAJOR > 2 || TORCH_VERSION_MINOR >= 8
  m.set_python_module("wdsr_fast.ops.pixel_shuffle");
#else
  m.impl_abstract_pystub("wdsr_fast.ops.pixel_shuffle");
#endif
  // x: (*, C*r*r, H, W) -> (*, C, H*r, W*r); bit-identical to torch.nn.functional.pixel_shuffle.
  m.def("pixel_shuffle(Tensor x, int r) -> Tensor", {at::Tag::pt2_compliant_tag});
  // x: (*, C, H*r, W*r) -> (*, C*r*r, H, W); bit-identical to torch.nn.functional.pixel_unshuffle.
  m.def("pixel_unshuffle(Tensor x, int r) -> Tensor", {at::Tag::pt2_compliant_tag});
  // out[n, c, h*r+i, w*r+j] = (a[n, c*r*r + i*r + j, h, w] + b[same]) * scale + shift[c].
  m.def("shuffle_add_affine(Tensor a, Tensor b, int r, float scale, Tensor shift) -> Tensor",
        {at::Tag::pt2_compliant_tag});
}

// The fused residual blocks for float32 CPU inference (no backward; channels_last output), whose
// fake implementations live in their own Python module.
TORCH_LIBRARY_FRAGMENT(wdsr_fast, m) {
#if TORCH_VERSION_MAJOR > 2 || TORCH_VERSION_MINOR >= 8
  m.set_python_module("wdsr_fast.ops.cpu_blocks");
#else
  m.impl_abstract_pystub("wdsr_fast.ops.cpu_blocks");
#endif
  // x + res_scale * (conv3x3(W2 relu(W1 x + b1) + b2, W3) + b3), 1x1 W1 and W2.
  m.def(
      "wdsr_b_block_cpu(Tensor x, Tensor w1, Tensor b1, Tensor w2, Tensor b2, Tensor w3, "
      "Tensor b3, float res_scale) -> Tensor",
      {at::Tag::pt2_compliant_tag});
  // x + res_scale * (conv3x3(relu(conv3x3(x, W1) + b1), W2) + b2).
  m.def(
      "wdsr_a_block_cpu(Tensor x, Tensor w1, Tensor b1, Tensor w2, Tensor b2, float res_scale) "
      "-> Tensor",
      {at::Tag::pt2_compliant_tag});
}
