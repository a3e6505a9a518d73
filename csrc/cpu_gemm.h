// Single-threaded float32 matrix products for the fused CPU blocks, from oneDNN's batch-reduce
// GEMM micro-kernel (at::native::cpublas::brgemm), which falls back to the BLAS PyTorch links.
//
//   C[i][j] (+)= sum_k A[i][k] * B[k][j],   0 <= i < m, 0 <= j < n, 0 <= k < kdim
//
// All matrices row-major; lda, ldb, ldc are the elements between consecutive rows. The blocks
// call it from their own worker threads, one product at a time, on tiles that stay in cache.
#pragma once

#include <cstdint>

namespace wdsr_fast {
namespace cpu {

// C = A B (accumulate false) or C += A B (accumulate true).
void gemm(int64_t m, int64_t n, int64_t kdim, const float* a, int64_t lda, const float* b,
          int64_t ldb, float* c, int64_t ldc, bool accumulate);

// Whether gemm runs on the calling thread alone (oneDNN's micro-kernel), so that several threads
// may each run their own products. Otherwise the library behind it may start threads of its own.
bool gemm_is_serial();

// Whether gemm is fast and exact with overlapping rows of A (lda < kdim): a 3x3 convolution
// then reads the three horizontal taps of a padded row as one product of depth 3 * channels.
// Checked once per process on a small product; false means one product per tap.
bool overlapping_rows_ok();

// A 3x3 convolution of one row of pixels, as products: for p < pixels, o < cout,
//   out[p * ldo + o] = sum_{dy, dx < 3, c < cin}
//                        rows[dy][(p + dx) * cin + c] * w[((dy * 3 + dx) * cin + c) * cout + o]
// rows[dy]: the input rows above, at and below, zero-padded by one pixel on the left (pixel p
// of the output reads pixels p, p+1, p+2 of each row); w: (3, 3, cin, cout) contiguous.
void conv3x3_row(float* out, int64_t ldo, const float* const rows[3], int64_t pixels,
                 int64_t cin, int64_t cout, const float* w);

}  // namespace cpu
}  // namespace wdsr_fast
