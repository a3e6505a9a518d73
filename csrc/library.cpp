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
