// Block-Shock bench: CUTLASS's sm90 2:4 compression computed on the host, for a bit-for-bit check
// of the project's converter without a GPU (tests/test_sm90_24.py builds and runs it).
//
// It repeats the steps of CUTLASS's device compressor
// (cutlass/transform/kernel/sm90_sparse_gemm_compressor.hpp, structure_sparse_compress) on
// host memory with the same CuTe expressions: the global tensors from the GEMMs' own
// SparseConfig (fill_layoutA / fill_layoutE, sparse_elem recasts), one 64 x 128 atom tile per
// "CTA", each row's chunks scanned for nonzeros with the compressor's rules (negative zero is
// zero; one nonzero keeps index 3 as the partner), the 4-bit chunk codes packed through a uint4_t
// recast of the row-major staging tile, and the tile copied out by coordinates. Only the thread
// and block indexing differs: loops here. The GPU check compares the project's converter
// against the device compressor itself as well.
//
// usage: sm90_24_host_reference bf16|fp16 M K dense.bin values.bin meta.bin
//   dense.bin: M x K 16-bit words, row-major; writes M x K/2 words and M*K/8 bytes.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "cutlass/transform/kernel/sparse_gemm_compressor.hpp"
#include "sm90_24_gemm.cuh"

using namespace cute;

template <class Element>
int compress_on_host(int M, int K, const uint16_t* dense, uint16_t* values, uint8_t* meta) {
  using G = bs_sm90::SparseGemm<Element, 128, 64, 128, 1, 1, bs_sm90::Coop>;
  using SparseConfig = typename G::SparseConfig;
  using ProblemShape = cute::Shape<int, int, int, int>;
  using C = cutlass::transform::kernel::SM90StructuredSparseCompressor<
      ProblemShape, Element, cutlass::layout::RowMajor, SparseConfig>;
  using ElementAUint = typename C::ElementAUint;
  using ElementAMmaRawUnit = typename C::ElementAMmaRawUnit;
  using ElementAUintCompressed = typename C::ElementAUintCompressed;
  using ElementEMma = typename C::ElementEMma;
  using ElementEMmaRaw = typename C::ElementEMmaRaw;
  using ElementEChunk = typename C::ElementEChunk;
  using TensorEAtomM = typename C::TensorEAtomM;
  using TensorEAtomK = typename C::TensorEAtomK;
  using ElementASparsity = typename C::ElementASparsity;
  using ElementEMmaSparsity = typename SparseConfig::ElementEMmaSparsity;
  constexpr int kChunk = C::LogicalElemsAMmaRawPerChunk;  // 4 logical elements
  static_assert(kChunk == 4 && C::PhysicalElemsAMmaRawPerChunk == 2, "2:4 on 16-bit data");

  ProblemShape problem{M, 1, K, 1};
  const auto layout_gA =
      make_layout(make_shape(M, K, 1), make_stride(int64_t(K), _1{}, int64_t(0)));
  const auto layout_gAC = SparseConfig::fill_layoutA(problem);
  const auto layout_gE = SparseConfig::fill_layoutE(problem);

  const Tensor gA = make_tensor(recast_ptr<ElementAUint>(dense), layout_gA);
  Tensor gAC_sparse = make_tensor(recast_ptr<ElementAUintCompressed>(values), layout_gAC);
  Tensor gAC = recast<ElementAUint>(gAC_sparse);
  Tensor gE_sparse = make_tensor(recast_ptr<ElementEMma>(meta), layout_gE);
  Tensor gE = recast<ElementEMmaRaw>(gE_sparse);

  using cAsA_layout =
      decltype(make_layout(make_shape(TensorEAtomM{}, TensorEAtomK{}), LayoutRight{}));
  using cACsAC_layout = decltype(make_layout(
      make_shape(TensorEAtomM{}, TensorEAtomK{} / ElementASparsity{}), LayoutRight{}));
  using cEsE_layout = decltype(make_layout(
      make_shape(TensorEAtomM{}, TensorEAtomK{} / ElementEMmaSparsity{}), LayoutRight{}));

  std::vector<ElementAUint> sA(cosize(cAsA_layout{}));
  std::vector<ElementAUint> sAC(cosize(cACsAC_layout{}));
  std::vector<ElementEMmaRaw> sE(cosize(cEsE_layout{}));

  const uint16_t sign_mask = 0x7fff;  // the compressor's negative-zero mask for 16-bit types
  for (int bx = 0; bx < M / TensorEAtomM{}; ++bx) {
    for (int by = 0; by < K / TensorEAtomK{}; ++by) {
      const auto cta = make_coord(bx, by, 0);
      Tensor cAgA = local_tile(gA, shape(cAsA_layout{}), cta);
      Tensor cACgAC = local_tile(gAC, shape(cACsAC_layout{}), cta);
      Tensor cEgE = local_tile(gE, shape(cEsE_layout{}), cta);
      Tensor cAsA = make_tensor(sA.data(), cAsA_layout{});
      Tensor cACsAC = make_tensor(sAC.data(), cACsAC_layout{});
      Tensor cEsE = make_tensor(sE.data(), cEsE_layout{});
      Tensor cEsE_chunk = recast<ElementEChunk>(cEsE);
      std::fill(sAC.begin(), sAC.end(), ElementAUint(0));
      std::fill(sE.begin(), sE.end(), ElementEMmaRaw(0));
      copy(cAgA, cAsA);

      Tensor cAsA_chunk = logical_divide(cAsA, make_shape(_, Int<kChunk>{}));
      Tensor cACsAC_chunk = logical_divide(cACsAC, make_shape(_, Int<2>{}));
      Tensor cEsE_log_chunk = logical_divide(cEsE_chunk, make_shape(_, _1{}));
      for (int row = 0; row < TensorEAtomM{}; ++row) {
        for (int c = 0; c < TensorEAtomK{} / kChunk; ++c) {
          Tensor tA = cAsA_chunk(row, make_coord(_, c));
          Tensor tAC = cACsAC_chunk(row, make_coord(_, c));
          Tensor tE = cEsE_log_chunk(row, make_coord(_, c));
          int count = 0;
          int idx[2] = {0, 0};
          for (int e = 0; e < kChunk; ++e) {
            ElementAMmaRawUnit v = tA[e];
            if ((v & sign_mask) != 0) {
              if (count == 2) {
                std::fprintf(stderr, "row %d chunk %d keeps more than 2 of 4\n",
                             bx * int(TensorEAtomM{}) + row, by * int(TensorEAtomK{}) / 4 + c);
                return 2;
              }
              idx[count] = e;
              tAC[count] = v;
              ++count;
            }
          }
          if (count == 1 && idx[0] == 3) {  // [0 0 0 x] -> [(0) 0 0 x]
            tAC[1] = tAC[0];
            tAC[0] = ElementAUint(0);
            idx[0] = 0;
            idx[1] = 3;
          } else if (count == 1) {  // [x 0 0 0] -> [x 0 0 (0)]
            tAC[1] = ElementAUint(0);
            idx[1] = 3;
          }
          uint8_t code = uint8_t(idx[0] | (idx[1] << 2));  // MetadataOneChunk2to4
          tE[0] = ElementEChunk{code};
        }
      }
      copy(cEsE, cEgE);
      copy(cACsAC, cACgAC);
    }
  }
  return 0;
}

int main(int argc, char** argv) {
  if (argc != 7) {
    std::fprintf(stderr, "usage: %s bf16|fp16 M K dense.bin values.bin meta.bin\n", argv[0]);
    return 1;
  }
  const bool bf16 = std::strcmp(argv[1], "bf16") == 0;
  const int M = std::atoi(argv[2]), K = std::atoi(argv[3]);
  if (M % 64 || K % 128 || M <= 0 || K <= 0) {
    std::fprintf(stderr, "M must be a multiple of 64 and K of 128\n");
    return 1;
  }
  std::vector<uint16_t> dense(size_t(M) * K), values(size_t(M) * K / 2);
  std::vector<uint8_t> meta(size_t(M) * K / 8);
  FILE* f = std::fopen(argv[4], "rb");
  if (!f || std::fread(dense.data(), 2, dense.size(), f) != dense.size()) {
    std::fprintf(stderr, "cannot read %zu words from %s\n", dense.size(), argv[4]);
    return 1;
  }
  std::fclose(f);
  int rc = bf16 ? compress_on_host<cutlass::bfloat16_t>(M, K, dense.data(), values.data(),
                                                         meta.data())
                : compress_on_host<cutlass::half_t>(M, K, dense.data(), values.data(), meta.data());
  if (rc) return rc;
  f = std::fopen(argv[5], "wb");
  std::fwrite(values.data(), 2, values.size(), f);
  std::fclose(f);
  f = std::fopen(argv[6], "wb");
  std::fwrite(meta.data(), 1, meta.size(), f);
  std::fclose(f);
  return 0;
}
