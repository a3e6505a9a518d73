// Elementwise passes of the fused CPU blocks (cpu_rows.h).
//
// The extension is compiled for the baseline instruction set; on x86-64 with GCC each pass is
// also compiled for AVX2 and AVX-512 (target_clones) and the loader picks the widest the CPU
// has, so the inner loops over channels run 8 or 16 floats at a time.
#include "cpu_rows.h"

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__)
#define WDSR_FAST_VECTOR_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define WDSR_FAST_VECTOR_CLONES
#endif

namespace wdsr_fast {
namespace cpu {

WDSR_FAST_VECTOR_CLONES
void bias_relu_rows(float* v, int64_t pixels, int64_t channels, int64_t ld, const float* bias) {
  const float* __restrict__ b = bias;
  for (int64_t p = 0; p < pixels; ++p) {
    float* __restrict__ row = v + p * ld;
    for (int64_t j = 0; j < channels; ++j) {
      const float t = row[j] + b[j];
      row[j] = t < 0.0f ? 0.0f : t;  // NaN is not < 0: kept
    }
  }
}

WDSR_FAST_VECTOR_CLONES
void residual_rows(float* out, const float* x, int64_t pixels, int64_t channels,
                   const float* bias, float scale) {
  float* __restrict__ o = out;
  const float* __restrict__ in = x;
  const float* __restrict__ b = bias;
  for (int64_t p = 0; p < pixels; ++p) {
    for (int64_t j = 0; j < channels; ++j) {
      o[p * channels + j] = in[p * channels + j] + scale * (o[p * channels + j] + b[j]);
    }
  }
}

}  // namespace cpu
}  // namespace wdsr_fast
