// Block-Shock bench: one CUTLASS 3 sm90 2:4 sparse GEMM configuration behind the plain Entry of
// sm90_24.h. Each generated kernel file (kernels/sm90_24.py writes them) instantiates one
// configuration for one dtype with BS_SM90_ENTRY, so the files compile in parallel.
//
// Shape for small batches: the compressed weight is the sparse operand A (M = N_out, K-major:
// the kept pairs of each row, in order, exactly the project's Compressed24 values), the tokens
// are the MMA's N (tile N 16..256, wgmma.sp takes N from 8 to 256), x is B (N x K, K
// contiguous), and out = D^T (D column-major). fp32 accumulation, output in the input dtype, an
// optional per-row (per output feature) bias fused into the epilogue: a null pointer reads as
// zero, so one instantiation serves both.
//
// Every configuration has tile K >= 128, so CUTLASS's metadata layout atom (its K extent is
// min(tile K, 128)) is the same for all of them: one E buffer serves every configuration.
#pragma once

#include <cstdio>

#include "cute/tensor.hpp"
#include "cutlass/cutlass.h"
#include "cutlass/epilogue/collective/collective_builder.hpp"
#include "cutlass/epilogue/fusion/operations.hpp"
#include "cutlass/gemm/collective/collective_builder.hpp"
#include "cutlass/gemm/device/gemm_universal_adapter.h"
#include "cutlass/gemm/dispatch_policy.hpp"
#include "cutlass/gemm/kernel/gemm_universal.hpp"
#include "cutlass/gemm/kernel/tile_scheduler.hpp"
#include "sm90_24.h"

#if !defined(CUTLASS_ARCH_MMA_SPARSE_SM90_SUPPORTED)
#error "CUTLASS reports no sm90 sparse MMA for this toolkit (CUDA >= 12.2 needed)"
#endif

namespace bs_sm90 {

// Cooperative: two consumer warpgroups on one 128-row (or taller) tile, persistent, on the
// stream-K scheduler, so data-parallel, split-K and stream-K are run-time choices of one kernel.
struct Coop {
  using KernelSchedule = cutlass::gemm::KernelTmaWarpSpecializedCooperative;
  using EpilogueSchedule = cutlass::epilogue::TmaWarpSpecializedCooperative;
  using Scheduler = cutlass::gemm::StreamKScheduler;
  static constexpr bool kStreamK = true;
};

// Ping-pong: two consumer warpgroups on alternate 64-row tiles, persistent data-parallel only
// (CUTLASS's ping-pong kernel does not take the stream-K scheduler).
struct Pingpong {
  using KernelSchedule = cutlass::gemm::KernelTmaWarpSpecializedPingpong;
  using EpilogueSchedule = cutlass::epilogue::TmaWarpSpecialized;
  using Scheduler = cutlass::gemm::PersistentScheduler;
  static constexpr bool kStreamK = false;
};

template <class Element_, int TM, int TN, int TK, int CM, int CN, class Schedule>
struct SparseGemm {
  using Element = Element_;
  using TileShape = cute::Shape<cute::Int<TM>, cute::Int<TN>, cute::Int<TK>>;
  using ClusterShape = cute::Shape<cute::Int<CM>, cute::Int<CN>, cute::_1>;
  static constexpr int kAlign = 128 / cutlass::sizeof_bits<Element>::value;  // 16-byte TMA
  using LayoutD = cutlass::layout::ColumnMajor;  // D^T is `out`, tokens x N_out row-major

  using Fusion =
      cutlass::epilogue::fusion::LinCombPerRowBias<Element, float, Element, Element, float>;
  using CollectiveEpilogue = typename cutlass::epilogue::collective::CollectiveBuilder<
      cutlass::arch::Sm90, cutlass::arch::OpClassSparseTensorOp, TileShape, ClusterShape,
      cutlass::epilogue::collective::EpilogueTileAuto, float, float, void, LayoutD, kAlign,
      Element, LayoutD, kAlign, typename Schedule::EpilogueSchedule, Fusion>::CollectiveOp;

  using CollectiveMainloop = typename cutlass::gemm::collective::CollectiveBuilder<
      cutlass::arch::Sm90, cutlass::arch::OpClassSparseTensorOp, Element,
      cutlass::layout::RowMajor, kAlign, Element, cutlass::layout::ColumnMajor, kAlign, float,
      TileShape, ClusterShape,
      cutlass::gemm::collective::StageCountAutoCarveout<static_cast<int>(
          sizeof(typename CollectiveEpilogue::SharedStorage))>,
      typename Schedule::KernelSchedule>::CollectiveOp;

  using Kernel = cutlass::gemm::kernel::GemmUniversal<cute::Shape<int, int, int, int>,
                                                      CollectiveMainloop, CollectiveEpilogue,
                                                      typename Schedule::Scheduler>;
  using Gemm = cutlass::gemm::device::GemmUniversalAdapter<Kernel>;
  using SparseConfig = typename CollectiveMainloop::SparseConfig;
  using ElementE = typename CollectiveMainloop::ElementE;
  static constexpr int kEAtomK = typename SparseConfig::TensorEAtomK{};
  static_assert(TK >= 128, "tile K >= 128 keeps one metadata layout for every configuration");
  static_assert(kEAtomK == 128, "the converter in kernels/sm90_24.py assumes a 128-wide E atom");
  static_assert(cute::is_same_v<ElementE, uint8_t>, "E is read and written as bytes");

  static typename Kernel::Arguments arguments(const GemmArgs& a) {
    using namespace cute;
    auto problem = make_shape(a.m, a.n, a.k, 1);
    auto layout_a = SparseConfig::fill_layoutA(problem);
    auto layout_e = SparseConfig::fill_layoutE(problem);
    typename Kernel::StrideB stride_b = make_stride(int64_t(a.ldx), _1{}, int64_t(0));
    typename Kernel::StrideD stride_d = make_stride(_1{}, int64_t(a.ldo), int64_t(0));
    typename Kernel::StrideC stride_c = stride_d;
    typename Kernel::Arguments args{
        cutlass::gemm::GemmUniversalMode::kGemm,
        {a.m, a.n, a.k, 1},
        {static_cast<Element const*>(a.values), layout_a, static_cast<Element const*>(a.x),
         stride_b, static_cast<ElementE const*>(a.meta), layout_e},
        {{}, nullptr, stride_c, static_cast<Element*>(a.out), stride_d}};
    auto& fusion = args.epilogue.thread;
    fusion.alpha = 1.0f;
    fusion.beta = 0.0f;
    fusion.bias_ptr = static_cast<Element const*>(a.bias);
    args.hw_info.device_id = a.device;
    args.hw_info.sm_count = a.sm_count;
    if constexpr (Schedule::kStreamK) {
      using Decomposition = typename Kernel::TileScheduler::DecompositionMode;
      using Reduction = typename Kernel::TileScheduler::ReductionMode;
      Decomposition modes[] = {Decomposition::Heuristic, Decomposition::DataParallel,
                               Decomposition::SplitK, Decomposition::StreamK};
      args.scheduler.decomposition_mode = modes[static_cast<int>(a.mode)];
      args.scheduler.splits = a.mode == Mode::split_k ? a.splits : 1;
      // Fixed order of the partial sums: the same bits on every run.
      args.scheduler.reduction_mode = Reduction::Deterministic;
    }
    return args;
  }

  static size_t workspace_bytes(const GemmArgs& a) {
    return Gemm::get_workspace_size(arguments(a));
  }

  static int fail(char* err, size_t errlen, const char* what) {
    std::snprintf(err, errlen, "%s", what);
    return 1;
  }

  static int check(const GemmArgs& a, char* err, size_t errlen) {
    if (!Schedule::kStreamK && a.mode != Mode::data_parallel) {
      return fail(err, errlen, "this configuration runs data-parallel only (ping-pong kernel)");
    }
    if (a.m % 64 || a.k % kEAtomK) {
      return fail(err, errlen, "needs M (N_out) a multiple of 64 and K (N_in) of 128");
    }
    if (a.ldx % kAlign || a.ldo % kAlign) {
      return fail(err, errlen, "x and out row strides must be multiples of 16 bytes");
    }
    auto misaligned = [](const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 != 0; };
    if (misaligned(a.values) || misaligned(a.meta) || misaligned(a.x) || misaligned(a.out) ||
        misaligned(a.bias) || misaligned(a.workspace)) {
      return fail(err, errlen, "every buffer must start on a 16-byte boundary");
    }
    cutlass::Status status = Gemm::can_implement(arguments(a));
    if (status != cutlass::Status::kSuccess) {
      std::snprintf(err, errlen, "CUTLASS can_implement: %s", cutlassGetStatusString(status));
      return 1;
    }
    return 0;
  }

  static int prepare(char* err, size_t errlen) {
    int smem = Kernel::SharedStorageSize;
    if (smem >= (48 << 10)) {
      cudaError_t e = cudaFuncSetAttribute(cutlass::device_kernel<Kernel>,
                                           cudaFuncAttributeMaxDynamicSharedMemorySize, smem);
      if (e != cudaSuccess) {
        std::snprintf(err, errlen, "cudaFuncSetAttribute: %s", cudaGetErrorString(e));
        return 1;
      }
    }
    return 0;
  }

  static int run(const GemmArgs& a, char* err, size_t errlen) {
    auto args = arguments(a);
    auto stream = static_cast<cudaStream_t>(a.stream);
    // Zeroes the stream-K barrier flags (a memset on the stream) where the mode has them.
    cutlass::Status status = Kernel::initialize_workspace(args, a.workspace, stream, nullptr);
    if (status == cutlass::Status::kSuccess) {
      auto params = Kernel::to_underlying_arguments(args, a.workspace);
      status = Gemm::run(params, stream);
    }
    if (status != cutlass::Status::kSuccess) {
      cudaError_t e = cudaGetLastError();
      std::snprintf(err, errlen, "CUTLASS run: %s (%s)", cutlassGetStatusString(status),
                    cudaGetErrorString(e));
      return 1;
    }
    return 0;
  }

  static Entry entry(const char* name, Dtype dtype) {
    return Entry{name,
                 dtype,
                 TM,
                 TN,
                 TK,
                 CM,
                 CN,
                 CollectiveMainloop::DispatchPolicy::Stages,
                 static_cast<int>(Kernel::SharedStorageSize),
                 static_cast<int>(Kernel::MaxThreadsPerBlock),
                 Schedule::kStreamK,
                 kEAtomK,
                 &workspace_bytes,
                 &check,
                 &prepare,
                 &run};
  }
};

template <Dtype D>
struct ElementOf;
template <>
struct ElementOf<Dtype::bf16> {
  using type = cutlass::bfloat16_t;
};
template <>
struct ElementOf<Dtype::fp16> {
  using type = cutlass::half_t;
};

}  // namespace bs_sm90

// One configuration for one dtype; FN is the function the binding's generated registry calls.
#define BS_SM90_ENTRY(FN, NAME, DTYPE, SCHEDULE, TM, TN, TK, CM, CN)                         \
  namespace bs_sm90 {                                                                         \
  Entry FN() {                                                                                \
    using G = SparseGemm<ElementOf<Dtype::DTYPE>::type, TM, TN, TK, CM, CN, SCHEDULE>;        \
    return G::entry(NAME, Dtype::DTYPE);                                                      \
  }                                                                                           \
  }
