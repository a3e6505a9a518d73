// Work split and per-thread scratch of the fused CPU blocks (cpu_windows.h).
#include "cpu_windows.h"

#include <ATen/Parallel.h>
#include <c10/util/Exception.h>
#include <c10/util/ParallelGuard.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <condition_variable>
#include <cstdlib>
#include <exception>
#include <memory>
#include <mutex>

#include "cpu_gemm.h"

namespace wdsr_fast {
namespace cpu {

namespace {

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// Windows a thread aims at, so that the last ones even out threads of unequal speed.
constexpr int64_t kWindowsPerThread = 4;

struct AlignedFree {
  void operator()(float* p) const { std::free(p); }
};

struct Scratch {
  std::unique_ptr<float, AlignedFree> data;
  int64_t floats = 0;
};

}  // namespace

std::vector<Window> plan_windows(int64_t images, int64_t height, int64_t width, int64_t threads) {
  const int64_t col_parts = ceil_div(width, kMaxWindowWidth);
  int64_t row_parts = 1;
  if (threads > 1) {
    const int64_t wanted = ceil_div(kWindowsPerThread * threads, images * col_parts);
    row_parts = std::clamp<int64_t>(wanted, 1, std::max<int64_t>(1, height / kMinBandRows));
  }
  std::vector<Window> windows;
  windows.reserve(images * row_parts * col_parts);
  for (int64_t n = 0; n < images; ++n) {
    for (int64_t i = 0; i < row_parts; ++i) {
      for (int64_t j = 0; j < col_parts; ++j) {
        windows.push_back({n, height * i / row_parts, height * (i + 1) / row_parts,
                           width * j / col_parts, width * (j + 1) / col_parts});
      }
    }
  }
  return windows;
}

namespace {

// What the threads of one run_windows call share. A pool task that starts after the last window
// was taken only reads `next` and leaves, so it holds the state (shared_ptr) but never the
// caller's windows or body, which live until the caller has seen every window done.
struct WindowQueue {
  const std::vector<Window>* windows;
  const std::function<void(const Window&)>* body;
  int64_t count;
  std::atomic<int64_t> next{0};
  std::mutex mutex;
  std::condition_variable all_done;
  int64_t done = 0;                // guarded by mutex
  std::exception_ptr first_error;  // guarded by mutex

  void work() {
    c10::ParallelGuard in_parallel(true);  // PyTorch ops inside run single-threaded
    for (int64_t i = next.fetch_add(1); i < count; i = next.fetch_add(1)) {
      std::exception_ptr error;
      try {
        (*body)((*windows)[i]);
      } catch (...) {
        error = std::current_exception();
      }
      std::lock_guard<std::mutex> lock(mutex);
      if (error && !first_error) first_error = error;
      if (++done == count) all_done.notify_all();
    }
  }
};

}  // namespace

int64_t window_threads() {
  if (at::in_parallel_region() || !gemm_is_serial()) return 1;
  return at::get_num_threads();
}

void run_windows(const std::vector<Window>& windows,
                 const std::function<void(const Window&)>& body) {
  const int64_t count = static_cast<int64_t>(windows.size());
  if (count == 0) return;
  const int64_t threads = std::min<int64_t>(window_threads(), count);
  auto queue = std::make_shared<WindowQueue>();
  queue->windows = &windows;
  queue->body = &body;
  queue->count = count;
  for (int64_t t = 1; t < threads; ++t) at::launch([queue] { queue->work(); });
  queue->work();
  std::unique_lock<std::mutex> lock(queue->mutex);
  queue->all_done.wait(lock, [&] { return queue->done == count; });
  if (queue->first_error) std::rethrow_exception(queue->first_error);
}

float* thread_scratch(int slot, int64_t floats) {
  thread_local std::array<Scratch, 4> buffers;
  TORCH_CHECK(slot >= 0 && slot < static_cast<int>(buffers.size()), "scratch slot ", slot);
  Scratch& s = buffers[slot];
  if (s.floats < floats) {
    const size_t bytes = ceil_div(floats * sizeof(float), 64) * 64;
    float* p = static_cast<float*>(std::aligned_alloc(64, bytes));
    TORCH_CHECK(p != nullptr, "wdsr_fast: out of memory for a ", bytes, "-byte CPU buffer");
    s.data.reset(p);
    s.floats = floats;
  }
  return s.data.get();
}

}  // namespace cpu
}  // namespace wdsr_fast
