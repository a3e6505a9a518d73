// Python entry point of wdsr_fast._C: build information. The ops themselves are registered
// with TORCH_LIBRARY in their own files and reached through torch.ops.wdsr_fast.
#include <torch/extension.h>
#include <torch/version.h>

#include <string>
#include <vector>

namespace {

pybind11::dict build_info() {
  pybind11::dict info;
#ifdef WDSR_FAST_WITH_CUDA
  info["cuda"] = true;
  std::vector<std::string> archs;
  std::string list = WDSR_FAST_CUDA_ARCHS;
  size_t start = 0;
  while (start <= list.size()) {
    size_t end = list.find(';', start);
    if (end == std::string::npos) end = list.size();
    if (end > start) archs.push_back("sm_" + list.substr(start, end - start));
    start = end + 1;
  }
  info["cuda_archs"] = archs;
#else
  info["cuda"] = false;
  info["cuda_archs"] = std::vector<std::string>{};
#endif
  // The torch release whose headers this was compiled against: another torch needs a rebuild.
  info["torch"] = TORCH_VERSION;
  // Why CUDA kernels are missing and how to get them (setup_cuda.py), or None.
#ifdef WDSR_FAST_CUDA_NOTE
  info["cuda_note"] = WDSR_FAST_CUDA_NOTE;
#else
  info["cuda_note"] = pybind11::none();
#endif
  return info;
}

}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.doc() = "wdsr_fast C++/CUDA extension";
  m.def("build_info", &build_info,
        "How this extension was built: CUDA kernels and their archs, torch release, CUDA note.");
}
