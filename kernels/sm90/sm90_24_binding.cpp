// Block-Shock bench: the torch binding of the sm90 2:4 GEMMs (kernels/sm90_24.py builds it).
//
// It only checks tensors and forwards pointers: no allocation, no synchronization in gemm(), so
// a CUDA graph can capture it once prepare() has run for the configuration. The configurations
// come from the generated sm90_24_configs.inc (one BS_SM90_CONFIG(fn) line per configuration and
// dtype, each fn defined in its own generated kernel file).
#include <c10/cuda/CUDAStream.h>
#include <c10/cuda/CUDAGuard.h>
#include <pybind11/stl.h>
#include <torch/extension.h>

#include <string>
#include <vector>

#include "sm90_24.h"

#define BS_SM90_CONFIG(fn) \
  namespace bs_sm90 {      \
  Entry fn();              \
  }
#include "sm90_24_configs.inc"
#undef BS_SM90_CONFIG

namespace {

using bs_sm90::Dtype;
using bs_sm90::Entry;
using bs_sm90::GemmArgs;
using bs_sm90::Mode;

const std::vector<Entry>& registry() {
  static const std::vector<Entry> entries = {
#define BS_SM90_CONFIG(fn) bs_sm90::fn(),
#include "sm90_24_configs.inc"
#undef BS_SM90_CONFIG
  };
  return entries;
}

const Entry& entry(int64_t index) {
  const auto& r = registry();
  TORCH_CHECK(index >= 0 && index < static_cast<int64_t>(r.size()), "sm90_24: no configuration ",
              index, " (", r.size(), " built)");
  return r[index];
}

Dtype dtype_of(const at::Tensor& t) {
  if (t.scalar_type() == at::kBFloat16) return Dtype::bf16;
  TORCH_CHECK(t.scalar_type() == at::kHalf, "sm90_24: bf16 or fp16 only, got ", t.scalar_type());
  return Dtype::fp16;
}

const char* dtype_name(Dtype d) { return d == Dtype::bf16 ? "bf16" : "fp16"; }

void raise_if(int rc, const char* what, const char* err) {
  TORCH_CHECK(rc == 0, "sm90_24 ", what, ": ", err);
}

// The GEMM's arguments from tensors, every shape, dtype, device and stride rule checked here
// (host-side only) so a kernel never reads past a buffer.
GemmArgs make_args(const Entry& e, const at::Tensor& values, const at::Tensor& meta,
                   const at::Tensor& x, const c10::optional<at::Tensor>& bias,
                   const at::Tensor& out, const c10::optional<at::Tensor>& workspace,
                   int64_t mode, int64_t splits, int64_t sm_count) {
  TORCH_CHECK(values.dim() == 2 && x.dim() == 2 && out.dim() == 2,
              "sm90_24: values, x and out must be 2-D");
  const int64_t m = values.size(0), k = values.size(1) * 2, n = x.size(0);
  TORCH_CHECK(dtype_of(values) == e.dtype, "sm90_24: configuration ", e.name, " is built for ",
              dtype_name(e.dtype), ", weight is ", values.scalar_type());
  TORCH_CHECK(x.scalar_type() == values.scalar_type() && out.scalar_type() == values.scalar_type(),
              "sm90_24: x, out and the weight must share one dtype");
  TORCH_CHECK(values.is_cuda() && meta.is_cuda() && x.is_cuda() && out.is_cuda(),
              "sm90_24: every tensor must be on the GPU");
  TORCH_CHECK(values.is_contiguous(), "sm90_24: values must be contiguous (N_out x N_in/2)");
  TORCH_CHECK(meta.scalar_type() == at::kByte && meta.is_contiguous() &&
                  meta.numel() == m * k / 8,
              "sm90_24: meta must be ", m * k / 8, " contiguous bytes (CUTLASS's E layout)");
  TORCH_CHECK(x.size(1) == k && x.stride(1) == 1, "sm90_24: x must be B x ", k,
              " with unit column stride, got ", x.sizes(), " strides ", x.strides());
  TORCH_CHECK(out.size(0) == n && out.size(1) == m && out.stride(1) == 1,
              "sm90_24: out must be ", n, " x ", m, " with unit column stride");
  TORCH_CHECK(n >= 1 && n <= INT32_MAX && m <= INT32_MAX && k <= INT32_MAX,
              "sm90_24: sizes out of range");
  TORCH_CHECK(m % 64 == 0 && k % 128 == 0,
              "sm90_24: needs N_out % 64 == 0 and N_in % 128 == 0, got ", m, " x ", k);
  GemmArgs a;
  a.values = values.data_ptr();
  a.meta = meta.data_ptr();
  a.x = x.data_ptr();
  a.ldx = x.size(0) > 1 ? x.stride(0) : k;
  a.out = out.data_ptr();
  a.ldo = out.size(0) > 1 ? out.stride(0) : m;
  if (bias.has_value()) {
    const auto& b = *bias;
    TORCH_CHECK(b.is_cuda() && b.dim() == 1 && b.size(0) == m && b.is_contiguous() &&
                    b.scalar_type() == values.scalar_type(),
                "sm90_24: bias must be a contiguous vector of N_out elements in the weight dtype");
    a.bias = b.data_ptr();
  }
  a.m = static_cast<int>(m);
  a.n = static_cast<int>(n);
  a.k = static_cast<int>(k);
  TORCH_CHECK(mode >= 0 && mode <= 3, "sm90_24: mode 0..3 (heuristic, dp, split-k, stream-k)");
  a.mode = static_cast<Mode>(mode);
  a.splits = static_cast<int>(splits);
  a.device = values.get_device();
  a.sm_count = static_cast<int>(sm_count);
  if (workspace.has_value()) {
    TORCH_CHECK(workspace->is_cuda() && workspace->is_contiguous(),
                "sm90_24: workspace must be a contiguous GPU tensor");
    a.workspace = workspace->data_ptr();
  }
  size_t need = e.workspace_bytes(a);
  size_t have = workspace.has_value() ? workspace->numel() * workspace->element_size() : 0;
  TORCH_CHECK(need <= have, "sm90_24: configuration ", e.name, " needs ", need,
              " workspace bytes, got ", have);
  // TMA reads and writes 16-byte units: a misaligned buffer would fault, not just run slowly.
  TORCH_CHECK(a.ldx % 8 == 0 && a.ldo % 8 == 0, "sm90_24: x and out row strides must be ",
              "multiples of 8 elements (16 bytes)");
  for (const void* p : {a.values, a.meta, a.x, static_cast<const void*>(a.out), a.bias,
                        static_cast<const void*>(a.workspace)}) {
    TORCH_CHECK(reinterpret_cast<uintptr_t>(p) % 16 == 0,
                "sm90_24: every buffer must start on a 16-byte boundary");
  }
  a.stream = c10::cuda::getCurrentCUDAStream(a.device).stream();
  return a;
}

std::vector<py::dict> configs() {
  std::vector<py::dict> out;
  int index = 0;
  for (const auto& e : registry()) {
    py::dict d;
    d["index"] = index++;
    d["name"] = e.name;
    d["dtype"] = dtype_name(e.dtype);
    d["tile_m"] = e.tile_m;
    d["tile_n"] = e.tile_n;
    d["tile_k"] = e.tile_k;
    d["cluster_m"] = e.cluster_m;
    d["cluster_n"] = e.cluster_n;
    d["stages"] = e.stages;
    d["smem_bytes"] = e.smem_bytes;
    d["threads"] = e.threads;
    d["stream_k"] = e.stream_k;
    d["e_atom_k"] = e.e_atom_k;
    out.push_back(d);
  }
  return out;
}

int64_t workspace_bytes(int64_t index, int64_t m, int64_t n, int64_t k, int64_t mode,
                        int64_t splits, int64_t sm_count) {
  GemmArgs a;
  a.m = static_cast<int>(m);
  a.n = static_cast<int>(n);
  a.k = static_cast<int>(k);
  a.ldx = k;
  a.ldo = m;
  a.mode = static_cast<Mode>(mode);
  a.splits = static_cast<int>(splits);
  a.sm_count = static_cast<int>(sm_count);
  return static_cast<int64_t>(entry(index).workspace_bytes(a));
}

std::string check(int64_t index, const at::Tensor& values, const at::Tensor& meta,
                  const at::Tensor& x, const c10::optional<at::Tensor>& bias,
                  const at::Tensor& out, const c10::optional<at::Tensor>& workspace,
                  int64_t mode, int64_t splits, int64_t sm_count) {
  const Entry& e = entry(index);
  GemmArgs a;
  try {
    a = make_args(e, values, meta, x, bias, out, workspace, mode, splits, sm_count);
  } catch (const c10::Error& err) {
    return err.what_without_backtrace();
  }
  char err[512] = {0};
  return e.check(a, err, sizeof(err)) == 0 ? std::string() : std::string(err);
}

void prepare(int64_t index) {
  char err[512] = {0};
  raise_if(entry(index).prepare(err, sizeof(err)), "prepare", err);
}

at::Tensor gemm(int64_t index, const at::Tensor& values, const at::Tensor& meta,
                const at::Tensor& x, const c10::optional<at::Tensor>& bias,
                const at::Tensor& out, const c10::optional<at::Tensor>& workspace, int64_t mode,
                int64_t splits, int64_t sm_count) {
  const Entry& e = entry(index);
  const c10::cuda::CUDAGuard guard(values.device());
  GemmArgs a = make_args(e, values, meta, x, bias, out, workspace, mode, splits, sm_count);
  char err[512] = {0};
  raise_if(e.run(a, err, sizeof(err)), e.name, err);
  return out;
}

std::vector<at::Tensor> cutlass_compress(const at::Tensor& dense) {
  TORCH_CHECK(dense.is_cuda() && dense.dim() == 2 && dense.stride(1) == 1,
              "sm90_24: cutlass_compress takes a 2-D GPU tensor with unit column stride");
  const int64_t m = dense.size(0), k = dense.size(1);
  TORCH_CHECK(m % 64 == 0 && k % 128 == 0, "sm90_24: cutlass_compress needs M % 64, K % 128");
  const c10::cuda::CUDAGuard guard(dense.device());
  auto values = at::zeros({m, k / 2}, dense.options());
  auto meta = at::zeros({m * k / 8}, dense.options().dtype(at::kByte));
  char err[512] = {0};
  const int64_t ld = m > 1 ? dense.stride(0) : k;
  int rc = bs_sm90::cutlass_compress(dtype_of(dense), dense.data_ptr(), ld, static_cast<int>(m),
                                     static_cast<int>(k), values.data_ptr(), meta.data_ptr(),
                                     dense.get_device(),
                                     c10::cuda::getCurrentCUDAStream(dense.get_device()).stream(),
                                     err, sizeof(err));
  raise_if(rc, "cutlass_compress", err);
  return {values, meta};
}

}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.doc() = "Block-Shock bench: CUTLASS sm90 2:4 sparse GEMMs (wgmma.sp) for small batches";
  m.def("configs", &configs, "the built configurations, one dict each");
  m.def("workspace_bytes", &workspace_bytes, "workspace a configuration needs for a problem");
  m.def("check", &check, "'' if the configuration can run these tensors, else why not");
  m.def("prepare", &prepare, "raise the kernel's shared-memory limit (outside graph capture)");
  m.def("gemm", &gemm, "out = x @ W^T (+ bias) on the current stream; no allocation or sync");
  m.def("cutlass_compress", &cutlass_compress, "CUTLASS's own sm90 compressor: (values, E)");
}
