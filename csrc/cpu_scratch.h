// Per-thread scratch memory of the fused CPU blocks.
#pragma once

#include <cstdint>

namespace wdsr_fast {
namespace cpu {

// A 64-byte aligned buffer of at least `floats` floats owned by the calling thread and reused
// by its next calls (contents are not kept). slot picks one of a few independent buffers.
float* thread_scratch(int slot, int64_t floats);

}  // namespace cpu
}  // namespace wdsr_fast
