// Index mapping of pixel shuffle, shared by the CPU and the CUDA kernels.
//
// Pixel shuffle by a factor r moves a low-resolution tensor of K = C*r*r channels and H x W
// pixels to a high-resolution tensor of C channels and (H*r) x (W*r) pixels:
//
//   high[n, c, h*r + i, w*r + j] = low[n, (c*r + i)*r + j, h, w],    0 <= i, j < r,
//
// and pixel unshuffle is its inverse. Tensors are dense, either NCHW (contiguous) or NHWC
// (channels_last); n runs over all leading dimensions flattened.
//
// Everything here is plain arithmetic on coordinates and offsets, usable from host and device
// code alike, so the CPU kernels exercise exactly the mapping the CUDA kernels use.
#pragma once

#include <cstdint>
#include <type_traits>

#if defined(__CUDACC__)
#define WDSR_HOST_DEVICE __host__ __device__ __forceinline__
#else
#define WDSR_HOST_DEVICE inline
#endif

namespace wdsr_fast {

// Memory layout of a dense 4-D (N, C, H, W) tensor.
enum class Layout { kNCHW, kNHWC };

enum class ShuffleKind {
  kShuffle,           // out = pixel_shuffle(a)
  kUnshuffle,         // out = pixel_unshuffle(a)
  kShuffleAddAffine,  // out = (pixel_shuffle(a) + pixel_shuffle(b)) * scale + shift[c]
};

// Coordinates (n, c, y, x) of one element of an (N, C, H, W) tensor.
template <typename index_t>
struct Coord {
  index_t n, c, y, x;
};

// Channels, height and width of one side of the shuffle (the batch is shared by both sides).
template <typename index_t>
struct Planes {
  index_t channels, height, width;
};

// Sizes of one pixel shuffle: batch N, high-resolution channels C, low-resolution H x W, r.
template <typename index_t>
struct ShuffleShape {
  index_t batch, channels, height, width, r;

  // (C, H*r, W*r): the pixel_shuffle output, the pixel_unshuffle input.
  WDSR_HOST_DEVICE Planes<index_t> highres() const {
    return {channels, height * r, width * r};
  }
  // (C*r*r, H, W): the pixel_shuffle input, the pixel_unshuffle output.
  WDSR_HOST_DEVICE Planes<index_t> lowres() const { return {channels * r * r, height, width}; }
};

// The low-resolution element that high-resolution element p comes from.
template <typename index_t>
WDSR_HOST_DEVICE Coord<index_t> lowres_source(const Coord<index_t>& p, index_t r) {
  const index_t i = p.y % r;
  const index_t j = p.x % r;
  return {p.n, (p.c * r + i) * r + j, p.y / r, p.x / r};
}

// The high-resolution element that low-resolution element p goes to (inverse of lowres_source).
template <typename index_t>
WDSR_HOST_DEVICE Coord<index_t> highres_target(const Coord<index_t>& p, index_t r) {
  const index_t j = p.c % r;
  const index_t i = (p.c / r) % r;
  return {p.n, p.c / (r * r), p.y * r + i, p.x * r + j};
}

// Memory offset of element p of a dense tensor with the given planes, in layout L.
template <Layout L, typename index_t>
WDSR_HOST_DEVICE index_t offset_of(const Coord<index_t>& p, const Planes<index_t>& s) {
  if (L == Layout::kNCHW) {
    return ((p.n * s.channels + p.c) * s.height + p.y) * s.width + p.x;
  }
  return ((p.n * s.height + p.y) * s.width + p.x) * s.channels + p.c;
}

// Coordinates of the element at memory offset e (inverse of offset_of).
template <Layout L, typename index_t>
WDSR_HOST_DEVICE Coord<index_t> coord_of(index_t e, const Planes<index_t>& s) {
  Coord<index_t> p;
  if (L == Layout::kNCHW) {
    p.x = e % s.width;
    e /= s.width;
    p.y = e % s.height;
    e /= s.height;
    p.c = e % s.channels;
    p.n = e / s.channels;
  } else {
    p.c = e % s.channels;
    e /= s.channels;
    p.x = e % s.width;
    e /= s.width;
    p.y = e % s.height;
    p.n = e / s.height;
  }
  return p;
}

// Moves p to the element at the next memory offset (carries like an odometer, no division).
template <Layout L, typename index_t>
WDSR_HOST_DEVICE void step(Coord<index_t>& p, const Planes<index_t>& s) {
  if (L == Layout::kNCHW) {
    if (++p.x < s.width) return;
    p.x = 0;
    if (++p.y < s.height) return;
    p.y = 0;
    if (++p.c < s.channels) return;
    p.c = 0;
  } else {
    if (++p.c < s.channels) return;
    p.c = 0;
    if (++p.x < s.width) return;
    p.x = 0;
    if (++p.y < s.height) return;
    p.y = 0;
  }
  ++p.n;
}

// Output rows, as the CPU kernels walk them. A row is a run of consecutive memory:
// (n, c, y) in NCHW (columns x), (n, y) in NHWC (columns x*C + c).
template <Layout L, typename index_t>
WDSR_HOST_DEVICE index_t row_length(const Planes<index_t>& s) {
  return L == Layout::kNCHW ? s.width : s.width * s.channels;
}

// Coordinates of column `col` of output row `row`.
template <Layout L, typename index_t>
WDSR_HOST_DEVICE Coord<index_t> coord_of_row(index_t row, index_t col, const Planes<index_t>& s) {
  return coord_of<L>(row * row_length<L>(s) + col, s);
}

// Along an output row, the source offsets repeat with this period in columns, moving by
// `source_stride` per period: pixel_shuffle NCHW r (stride 1), NHWC r*C (stride C*r*r);
// pixel_unshuffle NCHW 1 (stride r), NHWC C*r*r (stride C*r).
template <Layout L, bool kToHighres, typename index_t>
WDSR_HOST_DEVICE index_t row_period(const ShuffleShape<index_t>& shape) {
  if (L == Layout::kNCHW) return kToHighres ? shape.r : 1;
  return kToHighres ? shape.r * shape.channels : shape.channels * shape.r * shape.r;
}

template <Layout L, bool kToHighres, typename index_t>
WDSR_HOST_DEVICE index_t source_stride(const ShuffleShape<index_t>& shape) {
  if (L == Layout::kNCHW) return kToHighres ? 1 : shape.r;
  return kToHighres ? shape.channels * shape.r * shape.r : shape.channels * shape.r;
}

// Output element p of a shuffle in direction kToHighres (pixel_shuffle) or not
// (pixel_unshuffle): the element of the other side it is read from.
template <bool kToHighres, typename index_t>
WDSR_HOST_DEVICE Coord<index_t> source_of(const Coord<index_t>& p, index_t r) {
  return kToHighres ? lowres_source(p, r) : highres_target(p, r);
}

template <typename T, T kValue>
using Constant = std::integral_constant<T, kValue>;

// Calls fn(layout, to_highres, affine, factor), each a Constant, for the kernel
// specialisation of (layout, kind, r): factor is r when r is 2, 3 or 4 and kSpecialiseFactor
// is set, else 0 (r read at run time).
template <bool kSpecialiseFactor, class Fn>
void dispatch_shuffle(Layout layout, ShuffleKind kind, int64_t r, Fn&& fn) {
  auto with_factor = [&](auto... tags) {
    if constexpr (kSpecialiseFactor) {
      switch (r) {
        case 2: return fn(tags..., Constant<int, 2>{});
        case 3: return fn(tags..., Constant<int, 3>{});
        case 4: return fn(tags..., Constant<int, 4>{});
        default: break;
      }
    }
    fn(tags..., Constant<int, 0>{});
  };
  auto with_kind = [&](auto layout_tag) {
    switch (kind) {
      case ShuffleKind::kShuffle:
        return with_factor(layout_tag, Constant<bool, true>{}, Constant<bool, false>{});
      case ShuffleKind::kUnshuffle:
        return with_factor(layout_tag, Constant<bool, false>{}, Constant<bool, false>{});
      case ShuffleKind::kShuffleAddAffine:
        return with_factor(layout_tag, Constant<bool, true>{}, Constant<bool, true>{});
    }
  };
  if (layout == Layout::kNHWC) {
    with_kind(Constant<Layout, Layout::kNHWC>{});
  } else {
    with_kind(Constant<Layout, Layout::kNCHW>{});
  }
}

}  // namespace wdsr_fast
