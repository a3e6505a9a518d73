// Strips, bands and the work sharing of the fused CPU blocks (cpu_strips.h).
#include "cpu_strips.h"

#include <ATen/Parallel.h>
#include <c10/util/ParallelGuard.h>

#include <algorithm>
#include <deque>
#include <exception>
#include <mutex>

#include "cpu_gemm.h"

namespace wdsr_fast {
namespace cpu {
namespace {

// Fewest rows a thread takes from another's band (besides the two halo rows it computes).
constexpr int64_t kMinStolenRows = 2;

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// What the threads of one run_strips call share.
struct Work {
  const std::function<void(Band&)>* body;
  std::atomic<size_t> next_band{0};
  std::vector<Band*> initial;  // the bands made before any thread starts
  std::deque<Band> bands;      // initial bands, then stolen ones; appended under `mutex`
  std::mutex mutex;
  std::exception_ptr first_error;  // guarded by mutex

  // An initial band nobody has started, else the bottom half of the rows not yet handed out
  // of the band with the most of them, else nullptr.
  Band* next() {
    const size_t i = next_band.fetch_add(1);
    if (i < initial.size()) return initial[i];
    std::lock_guard<std::mutex> lock(mutex);
    if (first_error) return nullptr;
    Band* victim = nullptr;
    for (Band& band : bands) {
      if (victim == nullptr || band.remaining() > victim->remaining()) victim = &band;
    }
    if (victim == nullptr) return nullptr;
    const auto [begin, end] = victim->split(kMinStolenRows);
    if (begin < 0) return nullptr;
    return &bands.emplace_back(&victim->strip(), begin, end);
  }

  // Keeps the first error and hands out no more rows.
  void failed(std::exception_ptr error) {
    std::lock_guard<std::mutex> lock(mutex);
    if (first_error) return;
    first_error = error;
    for (Band& band : bands) band.drain();
  }

  void work() {
    c10::ParallelGuard in_parallel(true);  // PyTorch ops inside run single-threaded
    for (Band* band = next(); band != nullptr; band = next()) {
      try {
        (*body)(*band);
      } catch (...) {
        failed(std::current_exception());
      }
    }
  }
};

}  // namespace

int64_t Band::take_row() {
  uint64_t rows = rows_.load();
  while (true) {
    const int64_t next = static_cast<int64_t>(rows >> 32);
    const int64_t end = static_cast<int64_t>(rows & 0xffffffffu);
    if (next >= end) return -1;
    if (rows_.compare_exchange_weak(rows, pack(next + 1, end))) return next;
  }
}

int64_t Band::remaining() const {
  const uint64_t rows = rows_.load();
  return std::max<int64_t>(0, static_cast<int64_t>(rows & 0xffffffffu) -
                                  static_cast<int64_t>(rows >> 32));
}

int64_t Band::drain() {
  uint64_t rows = rows_.load();
  while (true) {
    const int64_t next = static_cast<int64_t>(rows >> 32);
    const int64_t end = static_cast<int64_t>(rows & 0xffffffffu);
    if (next >= end) return 0;
    if (rows_.compare_exchange_weak(rows, pack(end, end))) return end - next;
  }
}

std::pair<int64_t, int64_t> Band::split(int64_t min_rows) {
  uint64_t rows = rows_.load();
  while (true) {
    const int64_t next = static_cast<int64_t>(rows >> 32);
    const int64_t end = static_cast<int64_t>(rows & 0xffffffffu);
    if (end - next < 2 * min_rows) return {-1, -1};
    const int64_t middle = end - (end - next) / 2;
    if (rows_.compare_exchange_weak(rows, pack(next, middle))) return {middle, end};
  }
}

std::vector<Strip> plan_strips(int64_t images, int64_t width) {
  const int64_t parts = ceil_div(width, kMaxStripWidth);
  std::vector<Strip> strips;
  strips.reserve(images * parts);
  for (int64_t n = 0; n < images; ++n) {
    for (int64_t j = 0; j < parts; ++j) {
      strips.push_back({n, width * j / parts, width * (j + 1) / parts});
    }
  }
  return strips;
}

int64_t strip_threads() {
  if (at::in_parallel_region() || !gemm_is_serial()) return 1;
  return at::get_num_threads();
}

void run_strips(const std::vector<Strip>& strips, int64_t height,
                const std::function<void(Band&)>& body) {
  const int64_t count = static_cast<int64_t>(strips.size());
  if (count == 0 || height == 0) return;
  const int64_t threads = strip_threads();
  const int64_t parts = std::min(ceil_div(threads, count), height);
  Work work;
  work.body = &body;
  for (const Strip& strip : strips) {
    for (int64_t i = 0; i < parts; ++i) {
      work.bands.emplace_back(&strip, height * i / parts, height * (i + 1) / parts);
    }
  }
  for (Band& band : work.bands) work.initial.push_back(&band);
  // One task per thread; each takes bands until none is left (grain 1: one task per chunk).
  at::parallel_for(0, threads, 1, [&](int64_t begin, int64_t end) {
    for (int64_t t = begin; t < end; ++t) work.work();
  });
  if (work.first_error) std::rethrow_exception(work.first_error);
}

}  // namespace cpu
}  // namespace wdsr_fast
