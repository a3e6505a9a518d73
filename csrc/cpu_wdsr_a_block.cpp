// wdsr_fast::wdsr_a_block_cpu: the whole WDSR-A residual block in one pass over the image, for
// float32 inference on the CPU.
//
//   out = x + res_scale * (conv3x3(h, W2) + b2),   h = relu(conv3x3(x, W1) + b1)
//
// x: (N, C, H, W); w1: (F, C, 3, 3), b1: (F,); w2: (C, F, 3, 3), b2: (C,). Returns
// (N, C, H, W) in channels_last memory format.
//
// A thread walks the rows of a band of a strip top to bottom (cpu_strips.h). Output row r needs h
// on rows r-1, r, r+1 over the strip's columns and one more on each side; a row of h needs x on
// three rows over two more columns on each side. Both are kept as rings of three zero-padded
// rows (cpu_row_ring.h): x rows copied from the input, h rows computed by the 3x3 convolution
// of the x ring (cpu_gemm.h, conv3x3_row) followed by relu(h + b1), zero outside the image (the
// second convolution's padding). An output row is the 3x3 convolution of the h ring into the
// output followed by out = x + res_scale * (out + b2) (cpu_block_output.h). The F-wide h never
// leaves the thread's cache.
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
struct BlockA {
  int64_t c, f;    // channels of x and of the wide activation h
  at::Tensor w1;   // (3, 3, C, F): taps first
  at::Tensor b1;   // (F,)
  at::Tensor w2;   // (3, 3, F, C)
  at::Tensor b2;   // (C,)
  float res_scale;
};

// Copies row `row` of x over columns [col_begin - 2, col_end + 2) of `strip` into `dst`
// ((width + 4) x C floats), zero outside the image.
void input_row(const BlockA& blk, const float* x, int64_t height, int64_t width,
               const Strip& strip, int64_t row, float* dst) {
  const int64_t first = std::max<int64_t>(strip.col_begin - 2, 0);
  const int64_t last = std::min<int64_t>(strip.col_end + 2, width);
  const int64_t offset = first - (strip.col_begin - 2);
  const int64_t padded = strip.col_end - strip.col_begin + 4;
  const float* src = x + ((strip.image * height + row) * width + first) * blk.c;
  std::fill(dst, dst + offset * blk.c, 0.0f);
  std::memcpy(dst + offset * blk.c, src, (last - first) * blk.c * sizeof(float));
  std::fill(dst + (offset + last - first) * blk.c, dst + padded * blk.c, 0.0f);
}

// Row `row` of h over columns [col_begin - 1, col_end + 1) of `strip` into `dst`
// ((width + 2) x F floats), zero outside the image; `x_rows` holds the padded x rows.
template <typename XRows>
void wide_row(const BlockA& blk, int64_t width, const Strip& strip, int64_t row, XRows& x_rows,
              float* dst) {
  const int64_t first = std::max<int64_t>(strip.col_begin - 1, 0);
  const int64_t last = std::min<int64_t>(strip.col_end + 1, width);
  const int64_t pixels = last - first;
  const int64_t offset = first - (strip.col_begin - 1);  // also the x column of `first`'s left tap
  const int64_t padded = strip.col_end - strip.col_begin + 2;
  const float* rows[3];
  for (int64_t dy = 0; dy < 3; ++dy) rows[dy] = x_rows(row - 1 + dy) + offset * blk.c;
  float* h = dst + offset * blk.f;
  cpu::conv3x3_row(h, blk.f, rows, pixels, blk.c, blk.f, blk.w1.const_data_ptr<float>());
  cpu::bias_relu_rows(h, pixels, blk.f, blk.f, blk.b1.const_data_ptr<float>());
  std::fill(dst, dst + offset * blk.f, 0.0f);
  std::fill(dst + (offset + pixels) * blk.f, dst + padded * blk.f, 0.0f);
}

void run_band(const BlockA& blk, const float* x, float* out, int64_t height, int64_t width,
              Band& band) {
  const Strip& strip = band.strip();
  const int64_t cols = strip.col_end - strip.col_begin;
  const int64_t x_floats = (cols + 4) * blk.c;
  const int64_t h_floats = (cols + 2) * blk.f;
  float* x_storage = cpu::thread_scratch(0, 4 * x_floats);
  float* h_storage = cpu::thread_scratch(1, 4 * h_floats);
  std::fill(x_storage + 3 * x_floats, x_storage + 4 * x_floats, 0.0f);
  std::fill(h_storage + 3 * h_floats, h_storage + 4 * h_floats, 0.0f);
  cpu::RowRing x_ring(x_storage, x_floats, x_storage + 3 * x_floats, height);
  cpu::RowRing h_ring(h_storage, h_floats, h_storage + 3 * h_floats, height);

  auto x_rows = [&](int64_t row) {
    return x_ring.get(row, [&](int64_t j, float* dst) {
      input_row(blk, x, height, width, strip, j, dst);
    });
  };
  auto fill_h = [&](int64_t row, float* dst) { wide_row(blk, width, strip, row, x_rows, dst); };
  cpu::residual_conv3x3_rows(band, h_ring, fill_h, x, out, height, width, blk.f, blk.c,
                             blk.w2.const_data_ptr<float>(), blk.b2.const_data_ptr<float>(),
                             blk.res_scale);
}

constexpr const char* kOp = "wdsr_a_block_cpu";

at::Tensor wdsr_a_block_cpu(const at::Tensor& x, const at::Tensor& w1, const at::Tensor& b1,
                            const at::Tensor& w2, const at::Tensor& b2, double res_scale) {
  cpu::check_block_input(kOp, x);
  TORCH_CHECK(w1.dim() == 4, kOp, ": w1 must be 4-D");
  const int64_t n = x.size(0), c = x.size(1), h = x.size(2), w = x.size(3);
  const int64_t f = w1.size(0);
  cpu::check_block_weight(kOp, w1, "w1", {f, c, 3, 3});
  cpu::check_block_weight(kOp, b1, "b1", {f});
  cpu::check_block_weight(kOp, w2, "w2", {c, f, 3, 3});
  cpu::check_block_weight(kOp, b2, "b2", {c});

  const at::Tensor xc = x.contiguous(at::MemoryFormat::ChannelsLast);
  at::Tensor out = cpu::empty_reusing(xc.sizes(), at::MemoryFormat::ChannelsLast);
  if (out.numel() == 0) return out;
  BlockA blk;
  blk.c = c;
  blk.f = f;
  blk.w1 = w1.permute({2, 3, 1, 0}).contiguous();
  blk.b1 = b1.contiguous();
  blk.w2 = w2.permute({2, 3, 1, 0}).contiguous();
  blk.b2 = b2.contiguous();
  blk.res_scale = static_cast<float>(res_scale);

  const float* x_data = xc.const_data_ptr<float>();
  float* out_data = out.mutable_data_ptr<float>();
  cpu::run_strips(cpu::plan_strips(n, w), h,
                  [&](Band& band) { run_band(blk, x_data, out_data, h, w, band); });
  return out;
}

}  // namespace

TORCH_LIBRARY_IMPL(wdsr_fast, CPU, m) {
  m.impl("wdsr_a_block_cpu", TORCH_FN(wdsr_a_block_cpu));
}

}  // namespace wdsr_fast
