// Block-Shock bench: CUTLASS's own sm90 2:4 compressor, kept beside the project's converter
// (kernels/sm90_24.py turns a Compressed24 into CUTLASS's values + E) so the GPU check can
// compare the two bit for bit. The GEMMs never need it: their A is Compressed24's values as
// they are, and E is a byte permutation of Compressed24's meta.
#include <cstdio>

#include "cutlass/transform/device/transform_universal_adapter.hpp"
#include "cutlass/transform/kernel/sparse_gemm_compressor.hpp"
#include "sm90_24_gemm.cuh"

namespace bs_sm90 {

template <class Element>
static int compress_impl(const void* dense, int64_t ld, int m, int k, void* values, void* meta,
                         int device, void* stream, char* err, size_t errlen) {
  // The SparseConfig of the GEMMs themselves (every configuration shares its E layout).
  using G = SparseGemm<Element, 128, 64, 128, 1, 1, Coop>;
  using ProblemShape = cute::Shape<int, int, int, int>;
  using CompressorKernel = cutlass::transform::kernel::StructuredSparseCompressor<
      ProblemShape, Element, cutlass::layout::RowMajor, typename G::SparseConfig,
      cutlass::arch::Sm90>;
  using Compressor = cutlass::transform::device::TransformUniversalAdapter<CompressorKernel>;

  ProblemShape problem{m, 1, k, 1};
  cutlass::KernelHardwareInfo hw_info;
  hw_info.device_id = device;
  hw_info.sm_count = cutlass::KernelHardwareInfo::query_device_multiprocessor_count(device);
  typename Compressor::Arguments args{
      problem,
      {dense, cute::make_stride(ld, cute::_1{}, int64_t(0)), values, meta},
      {hw_info}};
  Compressor op;
  cutlass::Status status = op.can_implement(args);
  void* workspace = nullptr;
  size_t bytes = Compressor::get_workspace_size(args);
  if (status == cutlass::Status::kSuccess && bytes > 0 &&
      cudaMalloc(&workspace, bytes) != cudaSuccess) {
    std::snprintf(err, errlen, "cudaMalloc of %zu workspace bytes failed", bytes);
    return 1;
  }
  auto s = static_cast<cudaStream_t>(stream);
  if (status == cutlass::Status::kSuccess) status = op.initialize(args, workspace, s);
  if (status == cutlass::Status::kSuccess) status = op.run(s);
  cudaError_t e = cudaStreamSynchronize(s);
  if (workspace != nullptr) cudaFree(workspace);
  if (status != cutlass::Status::kSuccess || e != cudaSuccess) {
    std::snprintf(err, errlen, "CUTLASS compressor: %s (%s)", cutlassGetStatusString(status),
                  cudaGetErrorString(e == cudaSuccess ? cudaGetLastError() : e));
    return 1;
  }
  return 0;
}

int cutlass_compress(Dtype dtype, const void* dense, int64_t ld, int m, int k, void* values,
                     void* meta, int device, void* stream, char* err, size_t errlen) {
  if (dtype == Dtype::bf16) {
    return compress_impl<cutlass::bfloat16_t>(dense, ld, m, k, values, meta, device, stream, err,
                                              errlen);
  }
  return compress_impl<cutlass::half_t>(dense, ld, m, k, values, meta, device, stream, err,
                                        errlen);
}

}  // namespace bs_sm90
