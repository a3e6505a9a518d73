// Argument checks of the fused CPU block ops: errors that name the op and the argument.
#pragma once

#include <ATen/ATen.h>

namespace wdsr_fast {
namespace cpu {

// x: a 4-D (N, C, H, W) float32 CPU tensor.
void check_block_input(const char* op, const at::Tensor& x);

// t (argument `name`): a float32 CPU tensor of `shape`.
void check_block_weight(const char* op, const at::Tensor& t, const char* name,
                        at::IntArrayRef shape);

}  // namespace cpu
}  // namespace wdsr_fast
