// The pixel-shuffle ops of one backend: each checks its arguments and allocates its output
// (pixel_shuffle_plan.h), then hands the plan to the backend's kernel runner.
#pragma once

#include <torch/library.h>

#include "pixel_shuffle_plan.h"

namespace wdsr_fast {

// Runs the kernel of `kind` on a plan with a non-empty output.
using ShuffleRunner = void (*)(const ShufflePlan& plan, ShuffleKind kind, double scale);

template <ShuffleRunner run>
at::Tensor run_plan(const ShufflePlan& plan, ShuffleKind kind, double scale) {
  if (plan.out.numel() > 0) run(plan, kind, scale);
  return plan.out;
}

template <ShuffleRunner run>
at::Tensor pixel_shuffle_op(const at::Tensor& x, int64_t r) {
  return run_plan<run>(plan_pixel_shuffle(x, r), ShuffleKind::kShuffle, 1.0);
}

template <ShuffleRunner run>
at::Tensor pixel_unshuffle_op(const at::Tensor& x, int64_t r) {
  return run_plan<run>(plan_pixel_unshuffle(x, r), ShuffleKind::kUnshuffle, 1.0);
}

template <ShuffleRunner run>
at::Tensor shuffle_add_affine_op(
    const at::Tensor& a, const at::Tensor& b, int64_t r, double scale, const at::Tensor& shift) {
  return run_plan<run>(
      plan_shuffle_add_affine(a, b, r, shift), ShuffleKind::kShuffleAddAffine, scale);
}

// Registers the three ops for one dispatch key (inside TORCH_LIBRARY_IMPL).
template <ShuffleRunner run>
void register_pixel_shuffle_ops(torch::Library& m) {
  m.impl("pixel_shuffle", TORCH_FN(pixel_shuffle_op<run>));
  m.impl("pixel_unshuffle", TORCH_FN(pixel_unshuffle_op<run>));
  m.impl("shuffle_add_affine", TORCH_FN(shuffle_add_affine_op<run>));
}

}  // namespace wdsr_fast
