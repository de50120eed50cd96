"""The dtypes a cell can name, in one table: the name benchmarks.json uses, the torch dtype,
and the unit roundoff of its storage format (what the correctness bounds are derived from)."""

from __future__ import annotations

import torch

DTYPES: dict[str, torch.dtype] = {
    "bf16": torch.bfloat16,
    "fp16": torch.float16,
    "fp32": torch.float32,
}
DTYPE_NAMES = tuple(DTYPES)
UNIT_ROUNDOFF: dict[torch.dtype, float] = {
    torch.bfloat16: 2.0**-8,
    torch.float16: 2.0**-11,
    torch.float32: 2.0**-24,
}
