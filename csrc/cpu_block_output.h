// The last phase of both fused CPU blocks: the output rows of a band, each the 3x3 convolution
// of three rows of a ring (the block's inner activation) plus bias, scaled and added to x.
#pragma once

#include <cstdint>

#include "cpu_gemm.h"
#include "cpu_row_ring.h"
#include "cpu_rows.h"
#include "cpu_strips.h"

namespace wdsr_fast {
namespace cpu {

// For each row r the band hands out:
//   out[r] = x[r] + res_scale * (conv3x3(ring rows r-1, r, r+1; w) + bias)
// over the strip's columns. x and out are channels_last (N, H, W, c) of `height` x `width`;
// the ring's rows are the strip's columns and one more on each side, `k` floats per pixel,
// filled by fill(row, destination); w is (3, 3, k, c), taps first; bias is (c,).
template <typename Fill>
void residual_conv3x3_rows(Band& band, RowRing& ring, Fill&& fill, const float* x, float* out,
                           int64_t height, int64_t width, int64_t k, int64_t c, const float* w,
                           const float* bias, float res_scale) {
  const Strip& strip = band.strip();
  const int64_t cols = strip.col_end - strip.col_begin;
  for (int64_t r = band.take_row(); r >= 0; r = band.take_row()) {
    const float* rows[3];
    for (int64_t dy = 0; dy < 3; ++dy) rows[dy] = ring.get(r - 1 + dy, fill);
    const int64_t offset = ((strip.image * height + r) * width + strip.col_begin) * c;
    conv3x3_row(out + offset, c, rows, cols, k, c, w);
    residual_rows(out + offset, x + offset, cols, c, bias, res_scale);
  }
}

}  // namespace cpu
}  // namespace wdsr_fast
