// The matrix products of the fused CPU blocks (cpu_gemm.h).
//
// PyTorch 2.7 and later export oneDNN's brgemm micro-kernel as at::native::cpublas::brgemm: a
// JIT-generated, register-blocked product for small row-major matrices, cached per shape and
// thread, that runs on the calling thread (it falls back to BLAS sgemm where oneDNN cannot
// run). Older releases lack the float32 variant; there the product goes through at::mm_out on
// views of the same memory, which also runs single-threaded inside a parallel region.
#include "cpu_gemm.h"

#include <ATen/ATen.h>
#include <ATen/Context.h>
#include <ATen/native/CPUBlas.h>

#include <cmath>

namespace wdsr_fast {
namespace cpu {

void gemm(int64_t m, int64_t n, int64_t kdim, const float* a, int64_t lda, const float* b,
          int64_t ldb, float* c, int64_t ldc, bool accumulate) {
#ifdef CPUBLAS_BRGEMM_F32F32F32
  at::native::cpublas::brgemm(m, n, kdim, lda, ldb, ldc, accumulate, a, b, c);
#else
  const auto options = at::TensorOptions().dtype(at::kFloat);
  const auto a_view = at::from_blob(const_cast<float*>(a), {m, kdim}, {lda, 1}, options);
  const auto b_view = at::from_blob(const_cast<float*>(b), {kdim, n}, {ldb, 1}, options);
  auto c_view = at::from_blob(c, {m, n}, {ldc, 1}, options);
  if (accumulate) {
    c_view.addmm_(a_view, b_view);
  } else {
    at::mm_out(c_view, a_view, b_view);
  }
#endif
}

namespace {

// A 4x3 product of depth 6 whose rows of A overlap (lda = 2), against a plain loop.
bool overlapping_product_is_exact() {
  constexpr int64_t m = 4, n = 3, kdim = 6, lda = 2;
  float a[(m - 1) * lda + kdim], b[kdim * n], c[m * n];
  for (int64_t i = 0; i < (m - 1) * lda + kdim; ++i) a[i] = static_cast<float>(i % 5) - 2.0f;
  for (int64_t i = 0; i < kdim * n; ++i) b[i] = static_cast<float>(i % 7) - 3.0f;
  gemm(m, n, kdim, a, lda, b, n, c, n, false);
  for (int64_t i = 0; i < m; ++i) {
    for (int64_t j = 0; j < n; ++j) {
      float expected = 0.0f;  // small integers: exact in any summation order
      for (int64_t k = 0; k < kdim; ++k) expected += a[i * lda + k] * b[k * n + j];
      if (c[i * n + j] != expected) return false;
    }
  }
  return true;
}

}  // namespace

bool gemm_is_serial() {
#ifdef CPUBLAS_BRGEMM_F32F32F32
  return at::globalContext().userEnabledMkldnn();
#else
  return false;
#endif
}

bool overlapping_rows_ok() {
#ifdef CPUBLAS_BRGEMM_F32F32F32
  // Without oneDNN (disabled by the user) brgemm falls back to sgemm, which refuses lda < kdim
  // and leaves it to a slow generic loop.
  if (!at::globalContext().userEnabledMkldnn()) return false;
  static const bool ok = [] {
    try {
      return overlapping_product_is_exact();
    } catch (...) {
      return false;
    }
  }();
  return ok;
#else
  return false;  // at::mm_out would copy the overlapping rows out first
#endif
}

void conv3x3_row(float* out, int64_t ldo, const float* const rows[3], int64_t pixels,
                 int64_t cin, int64_t cout, const float* w) {
  if (overlapping_rows_ok()) {
    // Taps dx = 0, 1, 2 of pixel p are the 3 * cin consecutive floats from pixel p on.
    for (int64_t dy = 0; dy < 3; ++dy) {
      gemm(pixels, cout, 3 * cin, rows[dy], cin, w + dy * 3 * cin * cout, cout, out, ldo, dy > 0);
    }
    return;
  }
  for (int64_t tap = 0; tap < 9; ++tap) {
    const float* a = rows[tap / 3] + (tap % 3) * cin;
    gemm(pixels, cout, cin, a, cin, w + tap * cin * cout, cout, out, ldo, tap > 0);
  }
}

}  // namespace cpu
}  // namespace wdsr_fast
