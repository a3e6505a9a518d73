// Elementwise passes of the fused CPU blocks over rows of pixels (channels contiguous), run
// between and after the matrix products of cpu_gemm.h while the rows are in cache.
#pragma once

#include <cstdint>

namespace wdsr_fast {
namespace cpu {

// v[p][j] = relu(v[p][j] + bias[j]) for p < pixels, j < channels; rows of `ld` floats.
// relu keeps NaN, as torch.relu does.
void bias_relu_rows(float* v, int64_t pixels, int64_t channels, int64_t ld, const float* bias);

// out[p][j] = x[p][j] + scale * (out[p][j] + bias[j]) for p < pixels, j < channels; rows of
// `channels` floats in both (the residual add of a block).
void residual_rows(float* out, const float* x, int64_t pixels, int64_t channels,
                   const float* bias, float scale);

}  // namespace cpu
}  // namespace wdsr_fast
