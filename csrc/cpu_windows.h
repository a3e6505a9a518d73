// How the fused CPU blocks split an image batch among threads.
//
// The (N, H, W) pixels are cut into windows: a band of rows of one image, across a range of
// columns at most kMaxWindowWidth wide. A window is one thread's work from start to end: it
// computes the block's intermediate activations on its rows and columns plus a one-pixel halo,
// row by row, in buffers that stay in that thread's cache, and runs every matrix product
// single-threaded. One parallel region per block call, with no barrier inside: threads take
// windows from a shared counter until none is left, so a thread slowed by a busy core takes
// fewer windows and the others take more, instead of all of them waiting for it.
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

namespace wdsr_fast {
namespace cpu {

struct Window {
  int64_t image;      // index in the batch
  int64_t row_begin;  // rows [row_begin, row_end) of the output
  int64_t row_end;
  int64_t col_begin;  // columns [col_begin, col_end) of the output
  int64_t col_end;
};

// Widest window: the wide activation of one row of it (258 pixels x 208 floats for WDSR-B's
// 192 channels) stays within a core's L2 cache next to the rest of the window's rows.
constexpr int64_t kMaxWindowWidth = 256;

// Fewest rows in a window when an image is cut into bands: each band computes two rows of
// intermediate activations beyond its own (its halo), so short bands repeat work.
constexpr int64_t kMinBandRows = 16;

// Windows covering a batch of `images` images of height x width pixels, for `threads` threads:
// columns in ceil(width / kMaxWindowWidth) equal ranges; rows in one band per image for one
// thread, else in enough bands of at least kMinBandRows rows for about four windows a thread.
std::vector<Window> plan_windows(int64_t images, int64_t height, int64_t width, int64_t threads);

// The threads run_windows uses: at::get_num_threads(), or 1 inside another parallel region or
// when the products are not single-threaded (gemm_is_serial() in cpu_gemm.h).
int64_t window_threads();

// Runs body(window) for every window, on the calling thread and up to window_threads() - 1
// threads of PyTorch's inter-op pool (at::launch), each taking the next window from a shared
// counter; returns when every window is done and rethrows the first error of a window. The
// caller works too, so the call finishes even when the pool is busy (or is the caller).
void run_windows(const std::vector<Window>& windows,
                 const std::function<void(const Window&)>& body);

// A 64-byte aligned buffer of at least `floats` floats owned by the calling thread and reused
// by its next calls (contents are not kept). slot picks one of a few independent buffers.
float* thread_scratch(int slot, int64_t floats);

}  // namespace cpu
}  // namespace wdsr_fast
