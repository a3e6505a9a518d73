// CPU kernels of the pixel-shuffle ops.
//
// The output is walked row by row (a row is a run of consecutive memory, see
// pixel_shuffle_index.h), rows in parallel. Along a row the source offsets repeat with a short
// period and a constant stride, so each row needs the index mapping only for its first period;
// the inner loops are then strided copies the compiler vectorises.
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <vector>

#include "pixel_shuffle_index.h"
#include "pixel_shuffle_ops.h"

namespace wdsr_fast {
namespace {

// Elements per parallel task: enough to amortise the row setup and the thread hand-off.
constexpr int64_t kGrainElements = 1 << 15;

template <typename scalar_t, Layout L, bool kToHighres, bool kAffine, int kR>
void shuffle_rows(const ShufflePlan& plan, double scale) {
  using opmath_t = at::opmath_type<scalar_t>;
  ShuffleShape<int64_t> shape = plan.shape;
  if (kR > 0) shape.r = kR;  // a compile-time factor lets the compiler fold the index math
  const int64_t r = shape.r;
  const Planes<int64_t> out_planes = kToHighres ? shape.highres() : shape.lowres();
  const Planes<int64_t> src_planes = kToHighres ? shape.lowres() : shape.highres();
  const int64_t length = row_length<L>(out_planes);
  const int64_t rows = plan.out.numel() / length;
  const int64_t period = row_period<L, kToHighres>(shape);
  const int64_t stride = source_stride<L, kToHighres>(shape);
  const int64_t periods = length / period;

  const scalar_t* a = plan.a.const_data_ptr<scalar_t>();
  const scalar_t* b = kAffine ? plan.b.const_data_ptr<scalar_t>() : nullptr;
  const opmath_t* shift = kAffine ? plan.shift.const_data_ptr<opmath_t>() : nullptr;
  const opmath_t scale_ = static_cast<opmath_t>(scale);
  scalar_t* out = plan.out.mutable_data_ptr<scalar_t>();

  const int64_t grain = std::max<int64_t>(1, kGrainElements / length);
  at::parallel_for(0, rows, grain, [&](int64_t begin, int64_t end) {
    std::vector<int64_t> source(period);  // source offset of each column of the first period
    std::vector<int64_t> channel(period);  // output channel of each column
    for (int64_t row = begin; row < end; ++row) {
      for (int64_t q = 0; q < period; ++q) {
        const Coord<int64_t> p = coord_of_row<L>(row, q, out_planes);
        source[q] = offset_of<L>(source_of<kToHighres>(p, r), src_planes);
        channel[q] = p.c;
      }
      scalar_t* __restrict__ dst_row = out + row * length;
      for (int64_t q = 0; q < period; ++q) {
        const scalar_t* __restrict__ src_a = a + source[q];
        scalar_t* __restrict__ dst = dst_row + q;
        if constexpr (kAffine) {
          const scalar_t* __restrict__ src_b = b + source[q];
          const opmath_t add = shift[channel[q]];
          for (int64_t k = 0; k < periods; ++k) {
            const opmath_t sum = static_cast<opmath_t>(src_a[k * stride]) +
                                 static_cast<opmath_t>(src_b[k * stride]);
            dst[k * period] = static_cast<scalar_t>(sum * scale_ + add);
          }
        } else {
          for (int64_t k = 0; k < periods; ++k) dst[k * period] = src_a[k * stride];
        }
      }
    }
  });
}

template <typename scalar_t, Layout L, bool kToHighres, bool kAffine>
void shuffle_rows_for_factor(const ShufflePlan& plan, double scale) {
  switch (plan.shape.r) {
    case 2: return shuffle_rows<scalar_t, L, kToHighres, kAffine, 2>(plan, scale);
    case 3: return shuffle_rows<scalar_t, L, kToHighres, kAffine, 3>(plan, scale);
    case 4: return shuffle_rows<scalar_t, L, kToHighres, kAffine, 4>(plan, scale);
    default: return shuffle_rows<scalar_t, L, kToHighres, kAffine, 0>(plan, scale);
  }
}

template <typename scalar_t, Layout L>
void run_for_layout(const ShufflePlan& plan, ShuffleKind kind, double scale) {
  switch (kind) {
    case ShuffleKind::kShuffle:
      return shuffle_rows_for_factor<scalar_t, L, true, false>(plan, scale);
    case ShuffleKind::kUnshuffle:
      return shuffle_rows_for_factor<scalar_t, L, false, false>(plan, scale);
    case ShuffleKind::kShuffleAddAffine:
      return shuffle_rows_for_factor<scalar_t, L, true, true>(plan, scale);
  }
}

void run_cpu(const ShufflePlan& plan, ShuffleKind kind, double scale) {
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, plan.a.scalar_type(), "wdsr_fast_shuffle_cpu", [&] {
    if (plan.layout == Layout::kNHWC) {
      run_for_layout<scalar_t, Layout::kNHWC>(plan, kind, scale);
    } else {
      run_for_layout<scalar_t, Layout::kNCHW>(plan, kind, scale);
    }
  });
}

}  // namespace

TORCH_LIBRARY_IMPL(wdsr_fast, CPU, m) { register_pixel_shuffle_ops<run_cpu>(m); }

}  // namespace wdsr_fast
