// Block-Shock bench: the plain C++ seam between the torch binding and the CUTLASS sm90 2:4 GEMMs.
//
// Why a seam: the binding (torch headers, host compiler) and each GEMM instantiation (CUTLASS
// headers, nvcc) never see each other's headers, so every kernel file compiles on its own (in
// parallel, and without torch on a CPU-only machine for the SASS check), and only C types cross
// between them (no std::string across two compilers' ABI flags).
//
// The product computed: out = x @ W^T (+ bias), with W (N_out x N_in) 2:4 along its input
// columns. In CUTLASS's terms D = A B with A = W (M = N_out, the sparse operand), B = x^T
// (N = tokens), K = N_in, and D^T stored as `out` (tokens x N_out, row-major), i.e. D column-major.
#pragma once

#include <cstddef>
#include <cstdint>

namespace bs_sm90 {

enum class Dtype : int { bf16 = 0, fp16 = 1 };

// How a stream-K-capable GEMM divides its work (CUTLASS's DecompositionMode); GEMMs on the
// persistent data-parallel scheduler take only data_parallel.
enum class Mode : int { heuristic = 0, data_parallel = 1, split_k = 2, stream_k = 3 };

struct GemmArgs {
  const void* values = nullptr;  // compressed A: M x K/2 row-major (the kept pairs, in order)
  const void* meta = nullptr;    // E in CUTLASS's sm90 metadata layout, M * K / 8 bytes
  const void* x = nullptr;       // B^T: N x K row-major, row stride ldx (elements)
  int64_t ldx = 0;
  const void* bias = nullptr;  // M elements, or nullptr
  void* out = nullptr;         // D^T: N x M row-major, row stride ldo (elements)
  int64_t ldo = 0;
  int m = 0, n = 0, k = 0;
  Mode mode = Mode::data_parallel;
  int splits = 1;
  int device = 0;
  int sm_count = 0;
  void* workspace = nullptr;  // workspace_bytes(args) bytes, 16-byte aligned
  void* stream = nullptr;     // cudaStream_t
};

// Every function returns 0 on success, else writes a reason into err (errlen bytes) and returns
// nonzero.
struct Entry {
  const char* name;  // the configuration, e.g. "coop_m128_n32_k128_c1"
  Dtype dtype;
  int tile_m, tile_n, tile_k, cluster_m, cluster_n;
  int stages;      // shared-memory pipeline stages the builder chose
  int smem_bytes;  // dynamic shared memory per CTA
  int threads;     // per CTA
  bool stream_k;   // takes Mode::split_k / stream_k / heuristic at run time
  int e_atom_k;    // K extent of the metadata layout atom (the E layout depends on it)
  size_t (*workspace_bytes)(const GemmArgs& args);
  int (*check)(const GemmArgs& args, char* err, size_t errlen);
  // Raises the kernel's dynamic shared-memory limit: once per process, outside graph capture.
  int (*prepare)(char* err, size_t errlen);
  // Launches on args.stream: host-side parameter setup (TMA descriptors), the stream-K barrier
  // reset as a memset on the stream where the mode needs one, then the kernel. No allocation,
  // no synchronization: safe inside CUDA graph capture once prepare() has run.
  int (*run)(const GemmArgs& args, char* err, size_t errlen);
};

// CUTLASS's own sm90 device compressor (cutlass/transform/kernel/sm90_sparse_gemm_compressor.hpp)
// for a dense row-major M x K weight (row stride ld elements) into values (M x K/2) and E: the
// GPU check compares the project's converter against it bit for bit. Synchronizes.
int cutlass_compress(Dtype dtype, const void* dense, int64_t ld, int m, int k, void* values,
                     void* meta, int device, void* stream, char* err, size_t errlen);

}  // namespace bs_sm90
