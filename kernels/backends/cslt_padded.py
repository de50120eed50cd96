"""cuSPARSELt with B padded up: its small-batch kernels are slower than its B=256 ones on Hopper,
so the half is timed at B rounded up to 8 and at each of 64, 128 and 256 not below B when it is
built, and runs at the fastest (cached per machine and shape). Rows B.. of the padded input stay
zero; their outputs are never read. The record's `padded_batch` says which B runs.
"""

from __future__ import annotations

import torch

from kernels import alg_cache
from kernels.backends.base import Backend, check_semi_structured, needs_cuda
from kernels.backends.cslt import CsltHalf, safe_alg

PAD_BATCHES = (64, 128, 256)


class PaddedCsltHalf(CsltHalf):
    x_padded: torch.Tensor

    def pad_to(self, padded: int, x: torch.Tensor, w: torch.Tensor) -> None:
        """Run at `padded` rows from now on, with the alg chosen for that batch."""
        self.x_padded = torch.zeros(padded, x.shape[1], dtype=x.dtype, device=x.device)
        self.x_padded[: x.shape[0]] = x
        self.use_alg(safe_alg(self.packed, w, self.x_padded), padded)

    def product(self, x: torch.Tensor) -> torch.Tensor:
        self.x_padded[: x.shape[0]].copy_(x)
        return super().product(self.x_padded)[: x.shape[0]]


class CsltPadded(Backend):
    def available(self, device: torch.device) -> str | None:
        return needs_cuda(self.name, device)

    def check_shape(
        self, n_out: int, n_in: int, batch: int, dtype: torch.dtype, where: str
    ) -> None:
        check_semi_structured(self.name, n_out, n_in, dtype, where)

    def build(
        self,
        w_masked: torch.Tensor,
        bias: torch.Tensor | None,
        x_example: torch.Tensor,
        where: str,
    ) -> PaddedCsltHalf:
        """Time cuSPARSELt at B and each larger padded batch; keep the fastest (cached)."""
        from kernels.tune24 import median_ms

        half = PaddedCsltHalf(self.name, w_masked, bias)
        x, w = x_example, w_masked
        batch = x.shape[0]
        path = alg_cache.cache_path()
        name = torch.cuda.get_device_name(w.device)
        k = alg_cache.key(name, w.dtype, w.shape[0], w.shape[1], batch, library="cslt padded B")
        padded = alg_cache.lookup(path, k) if path is not None else None
        options = {-(-batch // 8) * 8, *(b for b in PAD_BATCHES if b >= batch)}
        if padded not in options:
            times = {}
            for b in sorted(options):
                half.pad_to(b, x, w)
                times[b] = median_ms(lambda: half.product(x))
            padded = min(times, key=lambda b: times[b])
            if path is not None:
                alg_cache.store(path, k, padded)
        half.pad_to(padded, x, w)
        return half
