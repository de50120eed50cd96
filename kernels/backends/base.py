"""The one protocol every 2:4 backend follows, and what a record says of the half it built.

A backend (one module under kernels/backends/, named in kernels/registry.py) says whether it
can run on a device and why not, refuses a shape it cannot take before anything runs, and
builds a half: one rank's compressed W_g = W * M_g ready to multiply. A half multiplies
(`mm_into` allocates nothing and never synchronizes, so a CUDA graph can capture it), re-compresses
new values of the same shape from any strides (a train step's refresh; W_g^T for the 2:4 backward
is compressed from a transposed view), says how many bytes it keeps, and carries its `HalfRecord`
(the record's kernel fields). The methods (kernels/methods.py) use halves through this protocol
only, so no method or phase names a backend.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Protocol

import torch

from common.errors import CellSpecError


@dataclass(frozen=True)
class HalfRecord:
    """What a cell's record says of the kernel that ran its GEMM.

    backend: the backend's registered name (kernels.registry.DENSE_KERNEL for a dense method).
    alg_id: the algorithm or configuration the backend chose for this shape (cuSPARSELt's alg
        id, the Triton configuration's name), None where it has no choice.
    alg_source: where that choice came from ("search", "tuned", "cache <path>", "default").
    search_error: why the search was not run, where it was skipped.
    padded_batch: the batch the kernel runs at, where B is padded up.
    """

    backend: str
    alg_id: int | str | None = None
    alg_source: str | None = None
    search_error: str | None = None
    padded_batch: int | None = None


class Half(Protocol):
    """One rank's 2:4 half W_g; products are x @ W_g^T (+ bias), B x N_out."""

    record: HalfRecord
    stored_bytes: int  # what the half keeps for its weight (values, metadata, as stored)

    def mm(self, x: torch.Tensor) -> torch.Tensor:
        """The product as a new tensor."""
        ...

    def mm_into(self, x: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
        """The product written into `out`, which is returned (graph-capturable)."""
        ...

    def recompress(self, w_masked: torch.Tensor) -> None:
        """Compress new values of the built shape and dtype, any strides, keeping the choice
        made at build (no search or tuning inside a timed step)."""
        ...


class Backend(ABC):
    """A 2:4 kernel path; the registry makes one per process, named as registered."""

    def __init__(self, name: str):
        self.name = name

    @abstractmethod
    def available(self, device: torch.device) -> str | None:
        """Why this backend cannot run on `device`, or None where it can. Never raises."""

    @abstractmethod
    def check_shape(
        self, n_out: int, n_in: int, batch: int, dtype: torch.dtype, where: str
    ) -> None:
        """Raise CellSpecError naming `where` (the cell) and the rule before anything runs."""

    @abstractmethod
    def build(
        self,
        w_masked: torch.Tensor,
        bias: torch.Tensor | None,
        x_example: torch.Tensor,
        where: str,
    ) -> Half:
        """A half of `w_masked` (N_out x N_in, 2:4 along input columns) with `bias` (or None),
        its choices made for x_example's batch, outside any timed region."""


def needs_cuda(name: str, device: torch.device) -> str | None:
    """The reason a GPU-only backend gives on another device."""
    if device.type == "cuda":
        return None
    return f"the {name} 2:4 backend needs a CUDA GPU; this run is on {device.type}"


GPU_DIM_MULTIPLE = 64  # torch's semi-structured kernels' weight dims: the loosest GPU 2:4 rule


def check_gpu_dims(name: str, n_out: int, n_in: int, where: str) -> None:
    """Both weight dims multiples of GPU_DIM_MULTIPLE: what cuSPARSELt and CUTLASS need, and the
    least every GPU 2:4 kernel here needs (Triton and sm90 want more), so a shape that fails it
    runs on no GPU."""
    if n_out % GPU_DIM_MULTIPLE or n_in % GPU_DIM_MULTIPLE:
        raise CellSpecError(
            f"{where}: 2:4 kernels ({name}) need both weight dims multiples of "
            f"{GPU_DIM_MULTIPLE}, got {n_out} x {n_in}"
        )


def check_semi_structured(name: str, n_out: int, n_in: int, dtype: torch.dtype, where: str) -> None:
    """torch's semi-structured kernels (cuSPARSELt, CUTLASS): 16-bit values, dims of 64."""
    if dtype not in (torch.bfloat16, torch.float16):
        raise CellSpecError(f"{where}: 2:4 kernels ({name}) need bf16 or fp16, got {dtype}")
    check_gpu_dims(name, n_out, n_in, where)


class SemiStructured(Backend):
    """A backend on torch's semi-structured kernels (cuSPARSELt, CUTLASS through F.linear): a
    CUDA GPU, 16-bit values, weight dims multiples of 64. Said once here for all of them."""

    def available(self, device: torch.device) -> str | None:
        return needs_cuda(self.name, device)

    def check_shape(
        self, n_out: int, n_in: int, batch: int, dtype: torch.dtype, where: str
    ) -> None:
        check_semi_structured(self.name, n_out, n_in, dtype, where)


def tensor_bytes(t: torch.Tensor) -> int:
    return t.numel() * t.element_size()
