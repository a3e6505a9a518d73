// The device check of shuffle_add_affine, made before a backend's kernel is picked.
//
// The dispatcher picks the kernel from the tensors' devices together: a CPU `a` with a meta `b`
// or `shift` would reach the meta (fake) kernel, which returns an uninitialised tensor on a's
// device. This BackendSelect kernel runs first in eager calls, checks that a, b and shift
// share one device, and hands the call on to the backend's kernel. Traced calls (FakeTensor,
// torch.compile, torch.export) are answered above BackendSelect and do not come here.
#include <ATen/core/dispatch/Dispatcher.h>
#include <torch/library.h>

namespace wdsr_fast {
namespace {

at::Tensor shuffle_add_affine_same_device(c10::DispatchKeySet keys, const at::Tensor& a,
                                          const at::Tensor& b, int64_t r, double scale,
                                          const at::Tensor& shift) {
  const char* op = "wdsr_fast::shuffle_add_affine";
  TORCH_CHECK(b.device() == a.device(), op, ": b must be on a's device ", a.device(), ", got ",
              b.device());
  TORCH_CHECK(shift.device() == a.device(), op, ": shift must be on a's device ", a.device(),
              ", got ", shift.device());
  static const auto next =
      c10::Dispatcher::singleton()
          .findSchemaOrThrow("wdsr_fast::shuffle_add_affine", "")
          .typed<at::Tensor(const at::Tensor&, const at::Tensor&, int64_t, double,
                            const at::Tensor&)>();
  const auto below = keys & c10::DispatchKeySet(c10::DispatchKeySet::FULL_AFTER,
                                                c10::DispatchKey::BackendSelect);
  return next.redispatch(below, a, b, r, scale, shift);
}

}  // namespace

TORCH_LIBRARY_IMPL(wdsr_fast, BackendSelect, m) {
  m.impl("shuffle_add_affine", TORCH_FN(shuffle_add_affine_same_device));
}

}  // namespace wdsr_fast
