// CPU kernels of the pixel-shuffle ops.
//
// The output is walked row by row (a row is a run of consecutive memory, see
// pixel_shuffle_index.h), rows in parallel. Along a row the source offsets repeat with a short
// period and a constant stride, so each row needs the index mapping only for its first period.
// In NCHW the inner loops are then strided copies along a plane, which the compiler vectorises;
// in NHWC a period spans whole pixels and the row is walked in memory order.
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
    std::vector<opmath_t> add(period);     // shift of each column's output channel
    for (int64_t row = begin; row < end; ++row) {
      for (int64_t q = 0; q < period; ++q) {
        const Coord<int64_t> p = coord_of_row<L>(row, q, out_planes);
        source[q] = offset_of<L>(source_of<kToHighres>(p, r), src_planes);
        if constexpr (kAffine) add[q] = shift[p.c];
      }
      const int64_t* __restrict__ src = source.data();
      const opmath_t* __restrict__ add_of = add.data();
      // Output element at column k*period + q of this row, from source offset src[q] + k*stride.
      auto value = [&](int64_t q, int64_t k) -> scalar_t {
        const int64_t offset = src[q] + k * stride;
        if constexpr (kAffine) {
          const opmath_t sum = static_cast<opmath_t>(a[offset]) + static_cast<opmath_t>(b[offset]);
          return static_cast<scalar_t>(sum * scale_ + add_of[q]);
        } else {
          return a[offset];
        }
      };
      scalar_t* __restrict__ dst = out + row * length;
      if constexpr (L == Layout::kNCHW) {
        // Short period (r or 1) over long planes: one strided pass per column of the period.
        for (int64_t q = 0; q < period; ++q) {
          for (int64_t k = 0; k < periods; ++k) dst[k * period + q] = value(q, k);
        }
      } else {
        // A period spans whole pixels: walk the row in memory order.
        for (int64_t k = 0; k < periods; ++k) {
          for (int64_t q = 0; q < period; ++q) dst[k * period + q] = value(q, k);
        }
      }
    }
  });
}

void run_cpu(const ShufflePlan& plan, ShuffleKind kind, double scale) {
  AT_DISPATCH_FLOATING_TYPES_AND2(
      at::kHalf, at::kBFloat16, plan.a.scalar_type(), "wdsr_fast_shuffle_cpu", [&] {
        dispatch_shuffle</*kSpecialiseFactor=*/true>(plan.layout, kind, plan.shape.r,
                         [&](auto layout, auto to_highres, auto affine, auto factor) {
                           shuffle_rows<scalar_t, decltype(layout)::value,
                                        decltype(to_highres)::value, decltype(affine)::value,
                                        decltype(factor)::value>(plan, scale);
                         });
      });
}

}  // namespace

TORCH_LIBRARY_IMPL(wdsr_fast, CPU, m) { register_pixel_shuffle_ops<run_cpu>(m); }

}  // namespace wdsr_fast
