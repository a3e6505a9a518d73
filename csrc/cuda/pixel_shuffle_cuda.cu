// CUDA kernels of the pixel-shuffle ops.
//
// Each thread writes 16 consecutive bytes of the output (one vector store; the output is a
// fresh allocation, so aligned) and gathers their sources with scalar loads: consecutive
// threads write consecutive vectors, and their loads fall on neighbouring addresses of the
// few source rows the output rows come from, so both sides coalesce. The output position is
// decomposed into coordinates once per thread and then stepped, so the index math is a few
// integer operations per element; 32-bit indices whenever the tensors allow.
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <c10/cuda/CUDAStream.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>

#include <cstdint>
#include <limits>

#include "../pixel_shuffle_index.h"
#include "../pixel_shuffle_ops.h"

namespace wdsr_fast {
namespace {

constexpr int kThreads = 256;

template <typename scalar_t>
struct alignas(16) Vector16 {
  static constexpr int kSize = 16 / sizeof(scalar_t);
  scalar_t v[kSize];
};

template <typename scalar_t, typename index_t, Layout L, bool kToHighres, bool kAffine, int kR>
__global__ void __launch_bounds__(kThreads) shuffle_kernel(
    const scalar_t* __restrict__ a, const scalar_t* __restrict__ b,
    const at::opmath_type<scalar_t>* __restrict__ shift, at::opmath_type<scalar_t> scale,
    scalar_t* __restrict__ out, ShuffleShape<index_t> shape, index_t numel) {
  using opmath_t = at::opmath_type<scalar_t>;
  using Vector = Vector16<scalar_t>;
  constexpr int kVec = Vector::kSize;
  if (kR > 0) shape.r = kR;  // a compile-time factor turns the divisions by r into shifts
  const index_t r = shape.r;
  const Planes<index_t> out_planes = kToHighres ? shape.highres() : shape.lowres();
  const Planes<index_t> src_planes = kToHighres ? shape.lowres() : shape.highres();

  const index_t first = (static_cast<index_t>(blockIdx.x) * kThreads + threadIdx.x) * kVec;
  if (first >= numel) return;
  const index_t count = numel - first < kVec ? numel - first : kVec;
  Coord<index_t> p = coord_of<L>(first, out_planes);
  Vector result;
#pragma unroll
  for (int v = 0; v < kVec; ++v) {
    if (v < count) {
      const index_t src = offset_of<L>(source_of<kToHighres>(p, r), src_planes);
      if constexpr (kAffine) {
        const opmath_t sum = static_cast<opmath_t>(a[src]) + static_cast<opmath_t>(b[src]);
        result.v[v] = static_cast<scalar_t>(sum * scale + shift[p.c]);
      } else {
        result.v[v] = a[src];
      }
      step<L>(p, out_planes);
    }
  }
  if (count == kVec) {
    *reinterpret_cast<Vector*>(out + first) = result;
  } else {
    for (int v = 0; v < count; ++v) out[first + v] = result.v[v];
  }
}

template <typename scalar_t, typename index_t, Layout L, bool kToHighres, bool kAffine, int kR>
void launch(const ShufflePlan& plan, double scale) {
  using opmath_t = at::opmath_type<scalar_t>;
  constexpr int64_t kVec = Vector16<scalar_t>::kSize;
  const int64_t numel = plan.out.numel();
  const int64_t blocks = (numel + kThreads * kVec - 1) / (kThreads * kVec);
  TORCH_CHECK(blocks <= std::numeric_limits<int32_t>::max(), "wdsr_fast: tensor too large");
  const auto& s = plan.shape;
  const ShuffleShape<index_t> shape{static_cast<index_t>(s.batch), static_cast<index_t>(s.channels),
                                    static_cast<index_t>(s.height), static_cast<index_t>(s.width),
                                    static_cast<index_t>(s.r)};
  shuffle_kernel<scalar_t, index_t, L, kToHighres, kAffine, kR>
      <<<static_cast<unsigned>(blocks), kThreads, 0, c10::cuda::getCurrentCUDAStream()>>>(
          plan.a.const_data_ptr<scalar_t>(),
          kAffine ? plan.b.const_data_ptr<scalar_t>() : nullptr,
          kAffine ? plan.shift.const_data_ptr<opmath_t>() : nullptr, static_cast<opmath_t>(scale),
          plan.out.mutable_data_ptr<scalar_t>(), shape, static_cast<index_t>(numel));
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

template <typename scalar_t, Layout L, bool kToHighres, bool kAffine>
void launch_for_size(const ShufflePlan& plan, double scale) {
  // 32-bit indices when every offset, and every thread's first element, fits.
  const int64_t slack = kThreads * Vector16<scalar_t>::kSize;
  if (plan.out.numel() + slack <= std::numeric_limits<int32_t>::max()) {
    switch (plan.shape.r) {
      case 2: return launch<scalar_t, int32_t, L, kToHighres, kAffine, 2>(plan, scale);
      case 3: return launch<scalar_t, int32_t, L, kToHighres, kAffine, 3>(plan, scale);
      case 4: return launch<scalar_t, int32_t, L, kToHighres, kAffine, 4>(plan, scale);
      default: return launch<scalar_t, int32_t, L, kToHighres, kAffine, 0>(plan, scale);
    }
  }
  launch<scalar_t, int64_t, L, kToHighres, kAffine, 0>(plan, scale);
}

template <typename scalar_t, Layout L>
void run_for_layout(const ShufflePlan& plan, ShuffleKind kind, double scale) {
  switch (kind) {
    case ShuffleKind::kShuffle:
      return launch_for_size<scalar_t, L, true, false>(plan, scale);
    case ShuffleKind::kUnshuffle:
      return launch_for_size<scalar_t, L, false, false>(plan, scale);
    case ShuffleKind::kShuffleAddAffine:
      return launch_for_size<scalar_t, L, true, true>(plan, scale);
  }
}

void run_cuda(const ShufflePlan& plan, ShuffleKind kind, double scale) {
  const c10::cuda::CUDAGuard device_guard(plan.out.device());
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, plan.a.scalar_type(), "wdsr_fast_shuffle_cuda", [&] {
    if (plan.layout == Layout::kNHWC) {
      run_for_layout<scalar_t, Layout::kNHWC>(plan, kind, scale);
    } else {
      run_for_layout<scalar_t, Layout::kNCHW>(plan, kind, scale);
    }
  });
}

}  // namespace

TORCH_LIBRARY_IMPL(wdsr_fast, CUDA, m) { register_pixel_shuffle_ops<run_cuda>(m); }

}  // namespace wdsr_fast
