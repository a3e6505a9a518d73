// Argument checks and output allocation of the pixel-shuffle ops (see pixel_shuffle_plan.h).
#include "pixel_shuffle_plan.h"

#include <ATen/OpMathType.h>
#include <c10/util/safe_numerics.h>

#include <vector>

namespace wdsr_fast {
namespace {

void check_factor(const char* op, int64_t r) {
  TORCH_CHECK(r >= 1, op, ": r must be >= 1, got ", r);
  int64_t r_squared = 0;
  TORCH_CHECK(!c10::mul_overflows(r, r, &r_squared), op, ": r = ", r, " is too large");
}

void check_input(const char* op, const char* name, const at::Tensor& x) {
  TORCH_CHECK(x.layout() == at::kStrided, op, ": ", name, " must be a strided (dense) tensor, got ",
              x.layout());
  TORCH_CHECK(x.dim() >= 3, op, ": ", name, " must have at least 3 dimensions (*, C, H, W), got shape ",
              x.sizes());
  const auto dtype = x.scalar_type();
  TORCH_CHECK(dtype == at::kHalf || dtype == at::kBFloat16 || dtype == at::kFloat || dtype == at::kDouble,
              op, ": ", name, " must be float16, bfloat16, float32 or float64, got ", dtype);
}

int64_t checked_product(const char* op, const char* what, int64_t size, int64_t r) {
  int64_t product = 0;
  TORCH_CHECK(!c10::mul_overflows(size, r, &product), op, ": ", what, " ", size, " times r = ", r,
              " overflows");
  return product;
}

// The memory format of the output and of the dense inputs the kernels read.
at::MemoryFormat memory_format_of(const at::Tensor& x) {
  const bool channels_last =
      x.dim() == 4 && !x.is_contiguous() && x.is_contiguous(at::MemoryFormat::ChannelsLast);
  return channels_last ? at::MemoryFormat::ChannelsLast : at::MemoryFormat::Contiguous;
}

Layout layout_of(at::MemoryFormat format) {
  return format == at::MemoryFormat::ChannelsLast ? Layout::kNHWC : Layout::kNCHW;
}

at::MemoryFormat memory_format_of(Layout layout) {
  return layout == Layout::kNHWC ? at::MemoryFormat::ChannelsLast : at::MemoryFormat::Contiguous;
}

int64_t leading_numel(const at::Tensor& x) {
  int64_t n = 1;
  for (int64_t d = 0; d < x.dim() - 3; ++d) n *= x.size(d);
  return n;
}

// x's sizes with the last three replaced by (channels, height, width).
std::vector<int64_t> sizes_with_planes(const at::Tensor& x, int64_t channels, int64_t height,
                                       int64_t width) {
  std::vector<int64_t> sizes(x.sizes().begin(), x.sizes().end() - 3);
  sizes.insert(sizes.end(), {channels, height, width});
  return sizes;
}

// The lowres-side checks of pixel_shuffle and shuffle_add_affine, and the plan's sizes.
ShufflePlan plan_from_lowres(const char* op, const char* name, const at::Tensor& x, int64_t r) {
  check_factor(op, r);
  check_input(op, name, x);
  const int64_t channels = x.size(-3);
  TORCH_CHECK(channels % (r * r) == 0, op, ": ", name, "'s channel dimension (dim -3) has size ",
              channels, ", which is not divisible by r*r = ", r * r, " (shape ", x.sizes(), ")");
  const auto format = memory_format_of(x);
  ShufflePlan plan;
  plan.layout = layout_of(format);
  plan.shape = {leading_numel(x), channels / (r * r), x.size(-2), x.size(-1), r};
  plan.a = x.contiguous(format);
  const auto sizes = sizes_with_planes(x, plan.shape.channels,
                                       checked_product(op, "height", x.size(-2), r),
                                       checked_product(op, "width", x.size(-1), r));
  plan.out = at::empty(sizes, x.options().memory_format(format));
  return plan;
}

}  // namespace

at::ScalarType compute_dtype(at::ScalarType dtype) { return at::toOpMathType(dtype); }

ShufflePlan plan_pixel_shuffle(const at::Tensor& x, int64_t r) {
  return plan_from_lowres("wdsr_fast::pixel_shuffle", "x", x, r);
}

ShufflePlan plan_pixel_unshuffle(const at::Tensor& x, int64_t r) {
  const char* op = "wdsr_fast::pixel_unshuffle";
  check_factor(op, r);
  check_input(op, "x", x);
  const int64_t height = x.size(-2);
  const int64_t width = x.size(-1);
  TORCH_CHECK(height % r == 0 && width % r == 0, op, ": x's height and width (dims -2, -1) must be ",
              "divisible by r = ", r, ", got shape ", x.sizes());
  const auto format = memory_format_of(x);
  ShufflePlan plan;
  plan.layout = layout_of(format);
  plan.shape = {leading_numel(x), x.size(-3), height / r, width / r, r};
  plan.a = x.contiguous(format);
  const auto sizes = sizes_with_planes(x, x.size(-3) * r * r, height / r, width / r);
  plan.out = at::empty(sizes, x.options().memory_format(format));
  return plan;
}

ShufflePlan plan_shuffle_add_affine(
    const at::Tensor& a, const at::Tensor& b, int64_t r, const at::Tensor& shift) {
  const char* op = "wdsr_fast::shuffle_add_affine";
  ShufflePlan plan = plan_from_lowres(op, "a", a, r);
  TORCH_CHECK(b.sizes() == a.sizes(), op, ": b must have a's shape ", a.sizes(), ", got ",
              b.sizes());
  TORCH_CHECK(b.device() == a.device(), op, ": b must be on a's device ", a.device(), ", got ",
              b.device());
  TORCH_CHECK(b.scalar_type() == a.scalar_type(), op, ": b must have a's dtype ", a.scalar_type(),
              ", got ", b.scalar_type());
  TORCH_CHECK(b.layout() == at::kStrided, op, ": b must be a strided (dense) tensor, got ",
              b.layout());
  TORCH_CHECK(shift.device() == a.device(), op, ": shift must be on a's device ", a.device(),
              ", got ", shift.device());
  TORCH_CHECK(shift.dim() == 1 && shift.size(0) == plan.shape.channels, op,
              ": shift must have shape (C,) = (", plan.shape.channels, ",) for a of shape ",
              a.sizes(), " and r = ", r, ", got shape ", shift.sizes());
  TORCH_CHECK(at::isFloatingType(shift.scalar_type()), op, ": shift must be floating point, got ",
              shift.scalar_type());
  plan.b = b.contiguous(memory_format_of(plan.layout));
  plan.shift = shift.to(compute_dtype(a.scalar_type())).contiguous();
  return plan;
}

}  // namespace wdsr_fast
