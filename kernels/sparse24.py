"""A 2:4 half W_g = W*M_g ready to multiply, on the backend the machine offers.

- "cslt": torch._cslt_compress once, then torch._cslt_sparse_mm with the algorithm id that
  torch._cslt_sparse_mm_search picked (searched outside any timed region, once per machine and
  shape: see kernels/alg_cache.py): no per-call descriptor or dispatch cost beyond one op.
- "flinear": torch.sparse.to_sparse_semi_structured and F.linear, the path most users write;
  kept selectable so its per-call host cost is measured beside "cslt", not asserted.
- "triton": this project's compressed format (kernels/compressed24.py) and Triton kernel
  (kernels/triton24.py), its configuration tuned per GPU and shape (kernels/tune24.py); `alg_id`
  holds the configuration's name.
- "cslt_padded": "cslt" with B padded up to the batch size (B rounded up to 8, or 64, 128, 256)
  that ran fastest when the half was built: cuSPARSELt's small-batch kernels are slower than
  its B=256 ones on Hopper. `padded_batch` records the B that runs.
- "emulated": masked dense math on the CPU (no semi-structured kernels exist there). Every
  record of a cell that used it says so.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from common.errors import CellSpecError
from kernels import alg_cache

BACKENDS = ("cslt", "flinear", "triton", "cslt_padded", "emulated")
PAD_BATCHES = (64, 128, 256)


def default_backend(device: torch.device) -> str:
    return "cslt" if device.type == "cuda" else "emulated"


DIM_MULTIPLE = 64  # cuSPARSELt's (and so every GPU 2:4 kernel's) weight dims: the loosest


def check_dims(n_out: int, n_in: int, backend: str, where: str) -> None:
    """Raise CellSpecError unless both weight dims are multiples of DIM_MULTIPLE. Every GPU 2:4
    kernel here needs that much (Triton more), so a shape that fails it runs on no GPU: the
    emulated path refuses it too, as its result would stand for no GPU run."""
    if n_out % DIM_MULTIPLE or n_in % DIM_MULTIPLE:
        raise CellSpecError(
            f"{where}: 2:4 kernels ({backend}) need both weight dims multiples of "
            f"{DIM_MULTIPLE}, got {n_out} x {n_in}"
        )


def check_shape(n_out: int, n_in: int, batch: int, dtype: torch.dtype, backend: str, where: str):
    """Raise CellSpecError before anything runs if the semi-structured kernel cannot take it."""
    if backend == "emulated":
        return
    if backend == "triton":
        from kernels.triton24 import check_shape as check_triton

        return check_triton(n_out, n_in, batch, dtype, where)
    if dtype not in (torch.bfloat16, torch.float16):
        raise CellSpecError(f"{where}: 2:4 kernels ({backend}) need bf16 or fp16, got {dtype}")
    check_dims(n_out, n_in, backend, where)
    if backend == "cslt" and batch % 8:
        raise CellSpecError(f"{where}: cuSPARSELt needs B a multiple of 8, got {batch}")


FP16_SEARCH_BROKEN = (
    "alg search skipped: cuSPARSELt 0.8.0's search raises an internal error for fp16 on an "
    "H100 and leaves the CUDA context unusable (illegal instruction); alg 0 is used"
)


def search_is_safe(dtype: torch.dtype) -> bool:
    """False where the alg search is known to break the context (seen 2026-11-24, H100)."""
    version = torch.backends.cusparselt.version() or 0
    return not (dtype == torch.float16 and version <= 800)


class SemiStructuredHalf:
    """One rank's 2:4 half; `mm(x)` returns x @ W_g^T (+ bias) of shape B x N_out."""

    def __init__(
        self,
        w_masked: torch.Tensor,
        bias: torch.Tensor | None,
        backend: str,
        x_example: torch.Tensor,
    ):
        if backend not in BACKENDS:
            raise CellSpecError(f"unknown 2:4 backend {backend!r}; backends: {BACKENDS}")
        self.backend = backend
        self.bias = bias
        self.alg_id: int | None = None
        self.alg_source: str | None = None
        self.search_error: str | None = None
        self.padded_batch: int | None = None
        if backend == "emulated":
            self.weight = w_masked.contiguous()
            self.stored_bytes = self.weight.numel() * self.weight.element_size()
        elif backend == "flinear":
            from torch.sparse import SparseSemiStructuredTensor, to_sparse_semi_structured

            SparseSemiStructuredTensor._FORCE_CUTLASS = False
            self.weight = to_sparse_semi_structured(w_masked)
            self.stored_bytes = _tensor_bytes(self.weight.packed)
        elif backend == "triton":
            self._build_triton(w_masked, x_example)
        else:
            self.packed = torch._cslt_compress(w_masked)
            self.stored_bytes = _tensor_bytes(self.packed)
            if backend == "cslt_padded":
                self._choose_padding(w_masked, x_example)
            else:
                self.alg_id, self.alg_source = self._safe_alg(w_masked, x_example)

    def _safe_alg(self, w: torch.Tensor, x: torch.Tensor) -> tuple[int, str]:
        """The searched alg where the search is safe, else alg 0 with the reason recorded."""
        if search_is_safe(w.dtype):
            return self._choose_alg(w, x)
        self.search_error = FP16_SEARCH_BROKEN
        return 0, "default"

    def _build_triton(self, w: torch.Tensor, x: torch.Tensor) -> None:
        from kernels import triton24, tune24
        from kernels.compressed24 import compress

        where = f"SemiStructuredHalf {tuple(w.shape)} B={x.shape[0]}"
        self.compressed = compress(w, where)
        config, self.alg_source, _ = tune24.choose(self.compressed, self.bias, x, where)
        self.alg_id = config.name
        batch = x.shape[0]
        self._triton = triton24.Sparse24Matmul(self.compressed, self.bias, batch, config, where)
        self.stored_bytes = self.compressed.nbytes

    def _choose_padding(self, w: torch.Tensor, x: torch.Tensor) -> None:
        """Time cuSPARSELt at B and each larger padded batch; keep the fastest (cached)."""
        from kernels.tune24 import median_ms

        batch = x.shape[0]
        path = alg_cache.cache_path()
        name = torch.cuda.get_device_name(w.device)
        k = alg_cache.key(name, w.dtype, w.shape[0], w.shape[1], batch, library="cslt padded B")
        padded = alg_cache.lookup(path, k) if path is not None else None
        options = {-(-batch // 8) * 8, *(b for b in PAD_BATCHES if b >= batch)}
        if padded not in options:
            times = {}
            for b in sorted(options):
                self._pad_to(b, x, w)
                times[b] = median_ms(lambda: self.mm(x))
            padded = min(times, key=times.get)
            if path is not None:
                alg_cache.store(path, k, padded)
        self._pad_to(padded, x, w)

    def _pad_to(self, padded: int, x: torch.Tensor, w: torch.Tensor) -> None:
        """Rows B.. of the padded input stay zero; their outputs are never read."""
        self.padded_batch = padded
        self.x_padded = torch.zeros(padded, x.shape[1], dtype=x.dtype, device=x.device)
        self.x_padded[: x.shape[0]] = x
        self.alg_id, self.alg_source = self._safe_alg(w, self.x_padded)

    def _choose_alg(self, w: torch.Tensor, x: torch.Tensor) -> tuple[int, str]:
        """The cached alg id for this machine and shape, else the search's (then cached)."""
        path = alg_cache.cache_path()
        name = torch.cuda.get_device_name(w.device)
        k = alg_cache.key(name, w.dtype, w.shape[0], w.shape[1], x.shape[0])
        if path is not None:
            alg = alg_cache.lookup(path, k)
            if alg is not None:
                return alg, f"cache {path}"
        found = torch._cslt_sparse_mm_search(self.packed, x.t(), transpose_result=True)
        alg = int(found[0] if isinstance(found, tuple) else found)
        if path is not None:
            alg_cache.store(path, k, alg)
        return alg, "search"

    def recompress(self, w_masked: torch.Tensor) -> None:
        """Compress new values of the same shape and dtype, any strides (a train step's
        re-compression; the triton backend reads a transposed view without a copy);
        the alg id found for the shape is kept, so no search runs inside a timed step. cslt
        and triton copy into the same buffers, so a CUDA graph captured on them stays valid (the
        copy, 9/16 of W_g's bytes, is part of the compress time); flinear makes a new tensor."""
        if self.backend == "emulated":
            self.weight.copy_(w_masked)
        elif self.backend == "flinear":
            from torch.sparse import to_sparse_semi_structured

            self.weight = to_sparse_semi_structured(w_masked.contiguous())
        elif self.backend == "triton":
            from kernels.compressed24 import compress_into

            # into the kernel's own buffers (its descriptors stay valid), from any strides
            compress_into(w_masked, self.compressed, "SemiStructuredHalf.recompress")
        else:
            self.packed.copy_(torch._cslt_compress(w_masked.contiguous()))

    def mm(self, x: torch.Tensor) -> torch.Tensor:
        if self.backend == "triton":
            out = torch.empty(x.shape[0], self.compressed.shape[0], dtype=x.dtype, device=x.device)
            return self._triton(x, out)
        if self.backend == "cslt_padded":
            self.x_padded[: x.shape[0]].copy_(x)
            y = torch._cslt_sparse_mm(
                self.packed, self.x_padded.t(), transpose_result=True, alg_id=self.alg_id
            )
            return y[: x.shape[0]]
        if self.backend == "cslt":
            # The bias is not fused here (see `mm_into`): it was unfused after an fp16 bias cell
            # failed in the search on an H100, before fp16 search itself was found to be the
            # cause; a fused bias on a transposed result has not been tried since.
            return torch._cslt_sparse_mm(
                self.packed, x.t(), transpose_result=True, alg_id=self.alg_id
            )
        return F.linear(x, self.weight, self.bias)

    def mm_into(self, x: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
        """x @ W_g^T (+ bias) written into `out`; the cslt bias rides on the copy into `out`,
        the triton kernel writes `out` itself with the bias fused."""
        if self.backend == "triton":
            return self._triton(x, out)
        y = self.mm(x)
        if self.backend in ("cslt", "cslt_padded") and self.bias is not None:
            return torch.add(y, self.bias, out=out)
        return out.copy_(y)


def _tensor_bytes(t: torch.Tensor) -> int:
    return t.numel() * t.element_size()
