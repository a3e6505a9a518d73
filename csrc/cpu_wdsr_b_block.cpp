// wdsr_fast::wdsr_b_block_cpu: the whole WDSR-B residual block in one pass over the image, for
// float32 inference on the CPU.
//
//   out = x + res_scale * (conv3x3(l, W3) + b3),   l = W2 relu(W1 x + b1) + b2   (1x1 convs)
//
// x: (N, C, H, W); w1: (E, C, 1, 1), b1: (E,); w2: (L, E, 1, 1), b2: (L,); w3: (C, L, 3, 3),
// b3: (C,). Returns (N, C, H, W) in channels_last memory format.
//
// A thread walks the rows of a band of a strip top to bottom (cpu_strips.h). For output row r it
// needs l on rows r-1, r, r+1 over the strip's columns and one more on each side, zero outside
// the image (the 3x3 convolution's padding): a ring of three such rows (cpu_row_ring.h). A row
// of l is two matrix products over the row's pixels (x rows are channels_last, so pixels are
// rows of a matrix):
//   wide = x W1^T  (pixels x E), then relu(wide + b1) in place,
//   l    = [wide, 1] [W2^T; b2]  (pixels x L; the ones column adds b2),
// and an output row is the 3x3 convolution of the ring's rows into the output followed by
// out = x + res_scale * (out + b3) (cpu_block_output.h). The E-wide activation of one strip
// row and the low-rank ring stay in the thread's L2 cache; only x is read and out written.
#include <ATen/ATen.h>
#include <torch/library.h>

#include <algorithm>
#include <cstring>

#include "cpu_block_checks.h"
#include "cpu_block_output.h"
#include "cpu_gemm.h"
#include "cpu_output_pool.h"
#include "cpu_row_ring.h"
#include "cpu_rows.h"
#include "cpu_scratch.h"
#include "cpu_strips.h"

namespace wdsr_fast {
namespace {

using cpu::Band;
using cpu::Strip;

// The block's weights laid out for the products, and its sizes.
struct BlockB {
  int64_t c, e, l;      // channels of x, of the wide and of the low-rank activation
  int64_t wide_ld;      // floats per pixel of the wide buffer: e, the ones column, padding
  at::Tensor w1t;       // (C, E): W1^T
  at::Tensor b1;        // (E,)
  at::Tensor w2t_bias;  // (E + 1, L): W2^T with b2 as its last row
  at::Tensor w3;        // (3, 3, L, C): taps first
  at::Tensor b3;        // (C,)
  float res_scale;
};

// Row `row` of l over image columns [col_begin - 1, col_end + 1) of `strip`, zero outside
// the image, into `dst` ((width + 2) x L floats).
void low_rank_row(const BlockB& blk, const float* x, int64_t height, int64_t width,
                  const Strip& strip, int64_t row, float* wide, float* dst) {
  const int64_t first = std::max<int64_t>(strip.col_begin - 1, 0);
  const int64_t last = std::min<int64_t>(strip.col_end + 1, width);
  const int64_t pixels = last - first;
  const int64_t offset = first - (strip.col_begin - 1);  // 1 at the image's left edge, else 0
  const int64_t padded = strip.col_end - strip.col_begin + 2;
  const float* x_row = x + ((strip.image * height + row) * width + first) * blk.c;

  cpu::gemm(pixels, blk.e, blk.c, x_row, blk.c, blk.w1t.const_data_ptr<float>(), blk.e, wide,
            blk.wide_ld, false);
  cpu::bias_relu_rows(wide, pixels, blk.e, blk.wide_ld, blk.b1.const_data_ptr<float>());
  for (int64_t p = 0; p < pixels; ++p) wide[p * blk.wide_ld + blk.e] = 1.0f;
  cpu::gemm(pixels, blk.l, blk.e + 1, wide, blk.wide_ld, blk.w2t_bias.const_data_ptr<float>(),
            blk.l, dst + offset * blk.l, blk.l, false);
  std::fill(dst, dst + offset * blk.l, 0.0f);
  std::fill(dst + (offset + pixels) * blk.l, dst + padded * blk.l, 0.0f);
}

void run_band(const BlockB& blk, const float* x, float* out, int64_t height, int64_t width,
              Band& band) {
  const Strip& strip = band.strip();
  const int64_t cols = strip.col_end - strip.col_begin;
  const int64_t row_floats = (cols + 2) * blk.l;
  float* ring_storage = cpu::thread_scratch(0, 4 * row_floats);
  float* zero_row = ring_storage + 3 * row_floats;
  std::fill(zero_row, zero_row + row_floats, 0.0f);
  float* wide = cpu::thread_scratch(1, (cols + 2) * blk.wide_ld);
  cpu::RowRing ring(ring_storage, row_floats, zero_row, height);
  auto fill = [&](int64_t row, float* dst) {
    low_rank_row(blk, x, height, width, strip, row, wide, dst);
  };
  cpu::residual_conv3x3_rows(band, ring, fill, x, out, height, width, blk.l, blk.c,
                             blk.w3.const_data_ptr<float>(), blk.b3.const_data_ptr<float>(),
                             blk.res_scale);
}

constexpr const char* kOp = "wdsr_b_block_cpu";

at::Tensor wdsr_b_block_cpu(const at::Tensor& x, const at::Tensor& w1, const at::Tensor& b1,
                            const at::Tensor& w2, const at::Tensor& b2, const at::Tensor& w3,
                            const at::Tensor& b3, double res_scale) {
  cpu::check_block_input(kOp, x);
  TORCH_CHECK(w1.dim() == 4 && w2.dim() == 4, kOp, ": w1 and w2 must be 4-D");
  const int64_t n = x.size(0), c = x.size(1), h = x.size(2), w = x.size(3);
  const int64_t e = w1.size(0), l = w2.size(0);
  cpu::check_block_weight(kOp, w1, "w1", {e, c, 1, 1});
  cpu::check_block_weight(kOp, b1, "b1", {e});
  cpu::check_block_weight(kOp, w2, "w2", {l, e, 1, 1});
  cpu::check_block_weight(kOp, b2, "b2", {l});
  cpu::check_block_weight(kOp, w3, "w3", {c, l, 3, 3});
  cpu::check_block_weight(kOp, b3, "b3", {c});

  const at::Tensor xc = x.contiguous(at::MemoryFormat::ChannelsLast);
  at::Tensor out = cpu::empty_reusing(xc.sizes(), at::MemoryFormat::ChannelsLast);
  if (out.numel() == 0) return out;
  BlockB blk;
  blk.c = c;
  blk.e = e;
  blk.l = l;
  blk.wide_ld = (e + 1 + 15) / 16 * 16;
  blk.w1t = w1.reshape({e, c}).t().contiguous();
  blk.b1 = b1.contiguous();
  blk.w2t_bias = at::cat({w2.reshape({l, e}).t(), b2.reshape({1, l})}, 0).contiguous();
  blk.w3 = w3.permute({2, 3, 1, 0}).contiguous();
  blk.b3 = b3.contiguous();
  blk.res_scale = static_cast<float>(res_scale);

  const float* x_data = xc.const_data_ptr<float>();
  float* out_data = out.mutable_data_ptr<float>();
  cpu::run_strips(cpu::plan_strips(n, w), h,
                  [&](Band& band) { run_band(blk, x_data, out_data, h, w, band); });
  return out;
}

}  // namespace

TORCH_LIBRARY_IMPL(wdsr_fast, CPU, m) {
  m.impl("wdsr_b_block_cpu", TORCH_FN(wdsr_b_block_cpu));
}

}  // namespace wdsr_fast
