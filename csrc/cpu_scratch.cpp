// Per-thread scratch memory of the fused CPU blocks (cpu_scratch.h).
#include "cpu_scratch.h"

#include <c10/util/Exception.h>

#include <array>
#include <cstdlib>
#include <memory>

namespace wdsr_fast {
namespace cpu {
namespace {

struct AlignedFree {
  void operator()(float* p) const { std::free(p); }
};

struct Scratch {
  std::unique_ptr<float, AlignedFree> data;
  int64_t floats = 0;
};

}  // namespace

float* thread_scratch(int slot, int64_t floats) {
  thread_local std::array<Scratch, 4> buffers;
  TORCH_CHECK(slot >= 0 && slot < static_cast<int>(buffers.size()), "scratch slot ", slot);
  Scratch& s = buffers[slot];
  if (s.floats < floats) {
    const size_t bytes = (floats * sizeof(float) + 63) / 64 * 64;
    float* p = static_cast<float*>(std::aligned_alloc(64, bytes));
    TORCH_CHECK(p != nullptr, "wdsr_fast: out of memory for a ", bytes, "-byte CPU buffer");
    s.data.reset(p);
    s.floats = floats;
  }
  return s.data.get();
}

}  // namespace cpu
}  // namespace wdsr_fast
