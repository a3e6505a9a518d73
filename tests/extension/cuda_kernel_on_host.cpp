// Runs the pixel-shuffle CUDA kernels' per-thread code (csrc/pixel_shuffle_vector.h) on the
// host, for every thread of the grid the CUDA launcher uses, with the launcher's choice of
// specialisations, so a machine without a GPU tests the code a GPU runs.
//
// usage: cuda_kernel_on_host KIND LAYOUT DTYPE INDEX_BITS N C H W R SCALE DIR
//   KIND shuffle | unshuffle | affine; LAYOUT nchw | nhwc; DTYPE float32 | float64;
//   INDEX_BITS 32 | 64; C the high-resolution channels, H x W the low-resolution size.
//   Reads DIR/a.bin (and for affine DIR/b.bin, DIR/shift.bin), raw in the layout's memory
//   order; writes DIR/out.bin.
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "pixel_shuffle_vector.h"

namespace {

using wdsr_fast::Layout;
using wdsr_fast::ShuffleKind;

template <typename T>
std::vector<T> read_file(const std::string& path, size_t count) {
  std::vector<T> data(count);
  FILE* f = std::fopen(path.c_str(), "rb");
  if (f == nullptr || std::fread(data.data(), sizeof(T), count, f) != count) {
    std::fprintf(stderr, "cannot read %zu values from %s\n", count, path.c_str());
    std::exit(2);
  }
  std::fclose(f);
  return data;
}

template <typename scalar_t, typename index_t>
void run(ShuffleKind kind, Layout layout, const wdsr_fast::ShuffleShape<int64_t>& s, double scale,
         const std::string& dir) {
  constexpr int64_t kVec = wdsr_fast::Vector16<scalar_t>::kSize;
  const int64_t numel = s.batch * s.channels * s.r * s.r * s.height * s.width;
  const bool affine = kind == ShuffleKind::kShuffleAddAffine;
  const auto a = read_file<scalar_t>(dir + "/a.bin", numel);
  const auto b = affine ? read_file<scalar_t>(dir + "/b.bin", numel) : std::vector<scalar_t>();
  const auto shift =
      affine ? read_file<scalar_t>(dir + "/shift.bin", s.channels) : std::vector<scalar_t>();
  const size_t bytes = ((numel * sizeof(scalar_t) + 63) / 64) * 64 + 64;
  auto* out = static_cast<scalar_t*>(std::aligned_alloc(64, bytes));
  const wdsr_fast::ShuffleArgs<scalar_t, scalar_t, index_t> args{
      a.data(),
      b.data(),
      shift.data(),
      static_cast<scalar_t>(scale),
      out,
      {static_cast<index_t>(s.batch), static_cast<index_t>(s.channels),
       static_cast<index_t>(s.height), static_cast<index_t>(s.width), static_cast<index_t>(s.r)},
      static_cast<index_t>(numel)};
  const int64_t blocks = (numel + wdsr_fast::kThreadsPerBlock * kVec - 1) /
                         (wdsr_fast::kThreadsPerBlock * kVec);
  wdsr_fast::dispatch_shuffle<sizeof(index_t) == 4>(
      layout, kind, s.r,
      [&](auto layout_tag, auto to_highres, auto affine_tag, auto factor) {
        for (int64_t block = 0; block < blocks; ++block) {
          for (int64_t thread = 0; thread < wdsr_fast::kThreadsPerBlock; ++thread) {
            const index_t first =
                static_cast<index_t>((block * wdsr_fast::kThreadsPerBlock + thread) * kVec);
            if (first < args.numel) {
              wdsr_fast::shuffle_vector<scalar_t, scalar_t, index_t, decltype(layout_tag)::value,
                                        decltype(to_highres)::value, decltype(affine_tag)::value,
                                        decltype(factor)::value>(args, first);
            }
          }
        }
      });
  FILE* f = std::fopen((dir + "/out.bin").c_str(), "wb");
  std::fwrite(out, sizeof(scalar_t), numel, f);
  std::fclose(f);
  std::free(out);
}

template <typename scalar_t>
void run_with_index(int bits, ShuffleKind kind, Layout layout,
                    const wdsr_fast::ShuffleShape<int64_t>& s, double scale,
                    const std::string& dir) {
  if (bits == 32) {
    run<scalar_t, int32_t>(kind, layout, s, scale, dir);
  } else {
    run<scalar_t, int64_t>(kind, layout, s, scale, dir);
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 12) {
    std::fprintf(stderr, "usage: %s KIND LAYOUT DTYPE INDEX_BITS N C H W R SCALE DIR\n", argv[0]);
    return 2;
  }
  const std::string kind_name = argv[1];
  const ShuffleKind kind = kind_name == "shuffle"     ? ShuffleKind::kShuffle
                           : kind_name == "unshuffle" ? ShuffleKind::kUnshuffle
                                                      : ShuffleKind::kShuffleAddAffine;
  const Layout layout = std::strcmp(argv[2], "nhwc") == 0 ? Layout::kNHWC : Layout::kNCHW;
  const std::string dtype = argv[3];
  const int bits = std::atoi(argv[4]);
  const wdsr_fast::ShuffleShape<int64_t> shape{std::atoll(argv[5]), std::atoll(argv[6]),
                                               std::atoll(argv[7]), std::atoll(argv[8]),
                                               std::atoll(argv[9])};
  const double scale = std::atof(argv[10]);
  if (dtype == "float32") {
    run_with_index<float>(bits, kind, layout, shape, scale, argv[11]);
  } else {
    run_with_index<double>(bits, kind, layout, shape, scale, argv[11]);
  }
  return 0;
}
