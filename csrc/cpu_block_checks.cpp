#include "cpu_block_checks.h"

namespace wdsr_fast {
namespace cpu {

void check_block_input(const char* op, const at::Tensor& x) {
  TORCH_CHECK(x.dim() == 4, op, ": x must be 4-D (N, C, H, W), got ", x.sizes());
  TORCH_CHECK(x.device().is_cpu() && x.scalar_type() == at::kFloat, op,
              ": x must be a float32 CPU tensor, got ", x.scalar_type(), " on ", x.device());
}

void check_block_weight(const char* op, const at::Tensor& t, const char* name,
                        at::IntArrayRef shape) {
  TORCH_CHECK(t.device().is_cpu() && t.scalar_type() == at::kFloat, op, ": ", name,
              " must be a float32 CPU tensor, got ", t.scalar_type(), " on ", t.device());
  TORCH_CHECK(t.sizes() == shape, op, ": ", name, " must have shape ", shape, ", got ",
              t.sizes());
}

}  // namespace cpu
}  // namespace wdsr_fast
