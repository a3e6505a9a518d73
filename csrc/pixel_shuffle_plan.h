// Argument checks and output allocation of the pixel-shuffle ops, shared by the CPU and CUDA
// implementations: a plan names the dense inputs, the output and the shuffle's sizes; the
// backends only run kernels on it.
//
// Output dtype: the input's (a's for shuffle_add_affine). Output memory format: channels_last
// when the input (a) is a 4-D tensor in channels_last memory format and not also contiguous,
// else contiguous. Inputs in another layout are copied to that one first.
#pragma once

#include <ATen/ATen.h>

#include "pixel_shuffle_index.h"

namespace wdsr_fast {

struct ShufflePlan {
  at::Tensor a;      // the (first) input, dense in `layout`
  at::Tensor b;      // shuffle_add_affine's second input, same layout; undefined otherwise
  at::Tensor shift;  // shuffle_add_affine's shift, contiguous, in the compute dtype
  at::Tensor out;    // the output, dense in `layout`
  Layout layout;
  ShuffleShape<int64_t> shape;
};

// x: (*, C*r*r, H, W) -> out: (*, C, H*r, W*r).
ShufflePlan plan_pixel_shuffle(const at::Tensor& x, int64_t r);

// x: (*, C, H*r, W*r) -> out: (*, C*r*r, H, W).
ShufflePlan plan_pixel_unshuffle(const at::Tensor& x, int64_t r);

// a, b: (*, C*r*r, H, W), shift: (C,) -> out: (*, C, H*r, W*r).
ShufflePlan plan_shuffle_add_affine(
    const at::Tensor& a, const at::Tensor& b, int64_t r, const at::Tensor& shift);

// The dtype kernels compute in: float for float16/bfloat16/float32, double for float64.
at::ScalarType compute_dtype(at::ScalarType dtype);

}  // namespace wdsr_fast
