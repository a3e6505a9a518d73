// Output memory of the fused CPU blocks, reused from one block to the next.
//
// A chain of blocks allocates one output the size of its input per block. Above glibc's mmap
// threshold (32 MiB at most) each such allocation is a fresh mapping whose pages the kernel
// faults in and zeroes on the first write: for a 540x960 image of 32 channels, about 20 ms
// per block, a tenth of the block's time. The blocks therefore take their outputs from an
// allocator that keeps the last few freed buffers of at least kMinPooledBytes (kMaxIdleBuffers
// of them) and hands one out again for a request of the same size; in a chain, the input of
// block i is freed while block i + 1 runs and becomes the output of block i + 2.
#pragma once

#include <ATen/ATen.h>

#include <cstddef>

namespace wdsr_fast {
namespace cpu {

constexpr size_t kMinPooledBytes = size_t{4} << 20;
constexpr size_t kMaxIdleBuffers = 2;

// An uninitialised float32 CPU tensor of `sizes` in `format`, backed by reused memory when a
// freed buffer of the same size is idle.
at::Tensor empty_reusing(at::IntArrayRef sizes, at::MemoryFormat format);

}  // namespace cpu
}  // namespace wdsr_fast
