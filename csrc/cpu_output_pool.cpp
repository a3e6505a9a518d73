// The reusing allocator of the fused CPU blocks' outputs (cpu_output_pool.h).
#include "cpu_output_pool.h"

#include <ATen/EmptyTensor.h>
#include <c10/core/Allocator.h>

#include <cstdlib>
#include <deque>
#include <mutex>

namespace wdsr_fast {
namespace cpu {
namespace {

struct Buffer {
  void* data;
  size_t bytes;
};

// Idle buffers, most recently freed last. Never destroyed: tensors may be freed after static
// destructors have run at exit.
struct IdleBuffers {
  std::mutex mutex;
  std::deque<Buffer> buffers;

  static IdleBuffers& get() {
    static auto* idle = new IdleBuffers();
    return *idle;
  }

  void* take(size_t bytes) {
    std::lock_guard<std::mutex> lock(mutex);
    for (auto it = buffers.rbegin(); it != buffers.rend(); ++it) {
      if (it->bytes == bytes) {
        void* data = it->data;
        buffers.erase(std::next(it).base());
        return data;
      }
    }
    return nullptr;
  }

  void give(Buffer buffer) {
    Buffer evicted{nullptr, 0};
    {
      std::lock_guard<std::mutex> lock(mutex);
      buffers.push_back(buffer);
      if (buffers.size() > kMaxIdleBuffers) {
        evicted = buffers.front();
        buffers.pop_front();
      }
    }
    std::free(evicted.data);
  }
};

void release(void* context) {
  auto* buffer = static_cast<Buffer*>(context);
  if (buffer->bytes >= kMinPooledBytes) {
    IdleBuffers::get().give(*buffer);
  } else {
    std::free(buffer->data);
  }
  delete buffer;
}

class ReusingAllocator final : public c10::Allocator {
 public:
  c10::DataPtr allocate(size_t nbytes) override {
    const c10::Device cpu(c10::DeviceType::CPU);
    if (nbytes == 0) return {nullptr, nullptr, nullptr, cpu};
    const size_t bytes = (nbytes + 63) / 64 * 64;
    void* data = bytes >= kMinPooledBytes ? IdleBuffers::get().take(bytes) : nullptr;
    if (data == nullptr) data = std::aligned_alloc(64, bytes);
    TORCH_CHECK(data != nullptr, "wdsr_fast: out of memory for a ", bytes, "-byte CPU tensor");
    return {data, new Buffer{data, bytes}, &release, cpu};
  }

  void copy_data(void* dest, const void* src, std::size_t count) const override {
    default_copy_data(dest, src, count);
  }
};

}  // namespace

at::Tensor empty_reusing(at::IntArrayRef sizes, at::MemoryFormat format) {
  static ReusingAllocator allocator;
  return at::detail::empty_generic(sizes, &allocator, c10::DispatchKeySet(c10::DispatchKey::CPU),
                                   at::kFloat, format);
}

}  // namespace cpu
}  // namespace wdsr_fast
