// CUDA kernels of the pixel-shuffle ops.
//
// Each thread writes 16 consecutive bytes of the output with one vector store (the output is
// a fresh allocation, so aligned) and gathers their sources with scalar loads
// (pixel_shuffle_vector.h): consecutive threads write consecutive vectors, and their loads
// fall on neighbouring addresses of the few source rows their output rows come from, so both
// sides coalesce. 32-bit indices whenever the tensors allow.
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

#include <cstdint>
#include <limits>

#include "../pixel_shuffle_index.h"
#include "../pixel_shuffle_ops.h"
#include "../pixel_shuffle_vector.h"

namespace wdsr_fast {
namespace {

template <typename scalar_t, typename opmath_t, typename index_t, Layout L, bool kToHighres,
          bool kAffine, int kR>
__global__ void __launch_bounds__(kThreadsPerBlock)
    shuffle_kernel(const ShuffleArgs<scalar_t, opmath_t, index_t> args) {
  const index_t first = (static_cast<index_t>(blockIdx.x) * kThreadsPerBlock + threadIdx.x) *
                        Vector16<scalar_t>::kSize;
  if (first < args.numel) {
    shuffle_vector<scalar_t, opmath_t, index_t, L, kToHighres, kAffine, kR>(args, first);
  }
}

template <typename scalar_t, typename index_t>
void launch(const ShufflePlan& plan, ShuffleKind kind, double scale) {
  using opmath_t = at::opmath_type<scalar_t>;
  constexpr int64_t kPerBlock = int64_t{kThreadsPerBlock} * Vector16<scalar_t>::kSize;
  const int64_t numel = plan.out.numel();
  const int64_t blocks = (numel + kPerBlock - 1) / kPerBlock;
  TORCH_CHECK(blocks <= std::numeric_limits<int32_t>::max(), "wdsr_fast: tensor too large");
  const auto& s = plan.shape;
  const ShuffleArgs<scalar_t, opmath_t, index_t> args{
      plan.a.const_data_ptr<scalar_t>(),
      plan.b.defined() ? plan.b.const_data_ptr<scalar_t>() : nullptr,
      plan.shift.defined() ? plan.shift.const_data_ptr<opmath_t>() : nullptr,
      static_cast<opmath_t>(scale),
      plan.out.mutable_data_ptr<scalar_t>(),
      {static_cast<index_t>(s.batch), static_cast<index_t>(s.channels),
       static_cast<index_t>(s.height), static_cast<index_t>(s.width), static_cast<index_t>(s.r)},
      static_cast<index_t>(numel)};
  // r is specialised (2, 3, 4) for 32-bit indices only, which bounds the instantiations.
  dispatch_shuffle<sizeof(index_t) == 4>(plan.layout, kind, s.r,
                   [&](auto layout, auto to_highres, auto affine, auto factor) {
                     shuffle_kernel<scalar_t, opmath_t, index_t, decltype(layout)::value,
                                    decltype(to_highres)::value, decltype(affine)::value,
                                    decltype(factor)::value>
                         <<<static_cast<unsigned>(blocks), kThreadsPerBlock, 0,
                            c10::cuda::getCurrentCUDAStream()>>>(args);
                     C10_CUDA_KERNEL_LAUNCH_CHECK();
                   });
}

void run_cuda(const ShufflePlan& plan, ShuffleKind kind, double scale) {
  const c10::cuda::CUDAGuard device_guard(plan.out.device());
  AT_DISPATCH_FLOATING_TYPES_AND2(
      at::kHalf, at::kBFloat16, plan.a.scalar_type(), "wdsr_fast_shuffle_cuda", [&] {
        if (fits_32bit_indices<scalar_t>(plan.out.numel())) {
          launch<scalar_t, int32_t>(plan, kind, scale);
        } else {
          launch<scalar_t, int64_t>(plan, kind, scale);
        }
      });
}

}  // namespace

TORCH_LIBRARY_IMPL(wdsr_fast, CUDA, m) { register_pixel_shuffle_ops<run_cuda>(m); }

}  // namespace wdsr_fast
