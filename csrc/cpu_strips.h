// How the fused CPU blocks share an image batch among threads.
//
// The (N, H, W) pixels are cut into strips: one image across a range of at most kMaxStripWidth
// columns, all its rows. A thread walks rows of a strip from top to bottom, computing the
// block's intermediate activations on its columns plus a one-pixel halo in buffers that stay
// in its cache, and runs every matrix product single-threaded. Rows are handed out in bands:
// at first each thread gets a band of whole strips' rows (a strip is cut into as many bands as
// needed for one per thread); a thread that runs out takes a new band, and when none is left it
// takes the bottom half of the rows not yet started of the band with the most of them. A thread
// slowed by a busy core thus hands work over to the others down to a few rows, instead of all
// of them waiting for it, while a new band costs only its two halo rows. One parallel region
// per block call, on the threads PyTorch's own ops run on, with no barrier inside but its end.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <vector>

namespace wdsr_fast {
namespace cpu {

struct Strip {
  int64_t image;      // index in the batch
  int64_t col_begin;  // columns [col_begin, col_end) of the output
  int64_t col_end;
};

// Widest strip: the wide activation of one row of it (258 pixels x 208 floats for WDSR-B's
// 192 channels) stays within a core's L2 cache next to the rest of the strip's rows.
constexpr int64_t kMaxStripWidth = 256;

// Strips covering a batch of `images` images `width` pixels wide: ceil(width / kMaxStripWidth)
// equal column ranges per image.
std::vector<Strip> plan_strips(int64_t images, int64_t width);

// Rows [next, end) of one strip, handed out one at a time to the thread that owns the band;
// other threads may lower `end` to take the bottom part. Both live in one atomic word, so each
// row is handed out exactly once.
class Band {
 public:
  Band(const Strip* strip, int64_t begin, int64_t end) : strip_(strip), rows_(pack(begin, end)) {}

  const Strip& strip() const { return *strip_; }

  // The next row, or -1 when the band is exhausted.
  int64_t take_row();

  // Rows not yet handed out.
  int64_t remaining() const;

  // Hands out no more rows; returns how many were left.
  int64_t drain();

  // Cuts off the bottom half of the rows not yet handed out, if there are at least
  // 2 * min_rows of them: returns their range [begin, end), or {-1, -1}.
  std::pair<int64_t, int64_t> split(int64_t min_rows);

 private:
  static uint64_t pack(int64_t next, int64_t end) {
    return (static_cast<uint64_t>(next) << 32) | static_cast<uint64_t>(end);
  }

  const Strip* strip_;
  std::atomic<uint64_t> rows_;  // next row << 32 | end row
};

// The threads run_strips uses: at::get_num_threads(), or 1 inside another parallel region or
// when the products are not single-threaded (gemm_is_serial() in cpu_gemm.h).
int64_t strip_threads();

// Runs body(band) until every row of every strip of `height` rows has been handed out and
// computed; body takes rows with band.take_row() until it returns -1. Threads: one task per
// strip_threads() on PyTorch's intra-op pool (at::parallel_for; the OpenMP threads that the
// surrounding PyTorch ops use, awake and waiting for work, and the caller among them). A
// thread that starts late finds its band taken over and leaves at once. Rethrows the first
// error of a body (the rows left are then skipped).
void run_strips(const std::vector<Strip>& strips, int64_t height,
                const std::function<void(Band&)>& body);

}  // namespace cpu
}  // namespace wdsr_fast
