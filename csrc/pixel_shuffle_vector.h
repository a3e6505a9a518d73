// One CUDA thread's work in the pixel-shuffle kernels: 16 consecutive bytes of the output.
//
// The thread decomposes its first output position into coordinates once, then steps along
// memory order, gathering each element's source through the index mapping
// (pixel_shuffle_index.h) and writing the 16 bytes with one vector store (a partial vector at
// the end of the tensor is written element by element). Host-callable too, so the tests run
// exactly this code on the CPU where no GPU is present.
#pragma once

#include <cstdint>

#include "pixel_shuffle_index.h"

#if defined(__CUDACC__)
#define WDSR_UNROLL _Pragma("unroll")
#else
#define WDSR_UNROLL
#endif

namespace wdsr_fast {

constexpr int kThreadsPerBlock = 256;

template <typename scalar_t>
struct alignas(16) Vector16 {
  static constexpr int kSize = 16 / sizeof(scalar_t);
  scalar_t v[kSize];
};

// Pointers and sizes of one kernel launch. `out` must be 16-byte aligned.
template <typename scalar_t, typename opmath_t, typename index_t>
struct ShuffleArgs {
  const scalar_t* __restrict__ a;
  const scalar_t* __restrict__ b;       // shuffle_add_affine only
  const opmath_t* __restrict__ shift;   // shuffle_add_affine only, (C,)
  opmath_t scale;                       // shuffle_add_affine only
  scalar_t* __restrict__ out;
  ShuffleShape<index_t> shape;
  index_t numel;                        // of the output (the same as of the input)
};

// Writes out[first, first + 16 bytes) clipped to numel; `first` is a multiple of the vector
// size. kToHighres: pixel_shuffle direction; kAffine: (a + b) * scale + shift[c];
// kR > 0: r known at compile time (must equal shape.r).
template <typename scalar_t, typename opmath_t, typename index_t, Layout L, bool kToHighres,
          bool kAffine, int kR>
WDSR_HOST_DEVICE void shuffle_vector(const ShuffleArgs<scalar_t, opmath_t, index_t>& args,
                                     index_t first) {
  using Vector = Vector16<scalar_t>;
  constexpr int kVec = Vector::kSize;
  ShuffleShape<index_t> shape = args.shape;
  if (kR > 0) shape.r = kR;  // lets the compiler turn divisions by r into shifts
  const index_t r = shape.r;
  const Planes<index_t> out_planes = kToHighres ? shape.highres() : shape.lowres();
  const Planes<index_t> src_planes = kToHighres ? shape.lowres() : shape.highres();

  const index_t count = args.numel - first < kVec ? args.numel - first : kVec;
  Coord<index_t> p = coord_of<L>(first, out_planes);
  Vector result;
  WDSR_UNROLL
  for (int v = 0; v < kVec; ++v) {
    if (v < count) {
      const index_t src = offset_of<L>(source_of<kToHighres>(p, r), src_planes);
      if constexpr (kAffine) {
        const opmath_t sum =
            static_cast<opmath_t>(args.a[src]) + static_cast<opmath_t>(args.b[src]);
        result.v[v] = static_cast<scalar_t>(sum * args.scale + args.shift[p.c]);
      } else {
        result.v[v] = args.a[src];
      }
      step<L>(p, out_planes);
    }
  }
  if (count == kVec) {
    *reinterpret_cast<Vector*>(args.out + first) = result;
  } else {
    for (int v = 0; v < count; ++v) args.out[first + v] = result.v[v];
  }
}

// Whether a launch over `numel` output elements of `scalar_t` can use 32-bit indices: every
// offset, and every thread's first element, must fit.
template <typename scalar_t>
bool fits_32bit_indices(int64_t numel) {
  return numel + int64_t{kThreadsPerBlock} * Vector16<scalar_t>::kSize <= INT32_MAX;
}

}  // namespace wdsr_fast
