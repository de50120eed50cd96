"""Input generators: activations X (B x N_in) with the statistics of real layers' inputs.

Every generator draws from the torch.Generator it is given (on the cell's device), so all ranks
built from one seed hold bit-identical X and W without a broadcast, and every run draws fresh
values unless the seed is pinned. None of them returns zeros-only data.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from common.errors import CellSpecError, closest

FIXED_SEED = 1234


def _gaussian(b, n, g, dev):
    """i.i.d. N(0, 1): the plain baseline."""
    return torch.randn(b, n, generator=g, device=dev)


def _attention_like(b, n, g, dev):
    """Attention outputs: softmax(QK^T/sqrt(d)) V, rows are convex mixes of shared value rows."""
    v = torch.randn(b, n, generator=g, device=dev)
    scores = torch.randn(b, b, generator=g, device=dev) * 3.0
    return torch.softmax(scores, dim=-1) @ v * math.sqrt(b) / 4


def _transformer_mlp_like(b, n, g, dev):
    """LayerNorm'd hidden states with a few outlier channels (about 0.5% at 20x), as in LLMs."""
    x = F.layer_norm(torch.randn(b, n, generator=g, device=dev), (n,))
    k = max(1, n // 200)
    idx = torch.randperm(n, generator=g, device=dev)[:k]
    x[:, idx] *= 20.0
    return x


def _activation_like(b, n, g, dev):
    """Post-GELU MLP activations: skewed, mostly small, a heavy positive tail."""
    return F.gelu(torch.randn(b, n, generator=g, device=dev) * 2.0)


def _vision_conv(b, n, g, dev):
    """im2col rows of a spatially smooth image: neighbouring features strongly correlated."""
    noise = torch.randn(b, 1, n + 8, generator=g, device=dev)
    kernel = torch.ones(1, 1, 9, device=dev) / 3.0
    return F.conv1d(noise, kernel).reshape(b, n)


WORKLOADS = {
    "gaussian": _gaussian,
    "fixed_seed": _gaussian,  # same law, but drawn from FIXED_SEED on every run
    "attention_like": _attention_like,
    "transformer_mlp_like": _transformer_mlp_like,
    "activation_like": _activation_like,
    "vision_conv": _vision_conv,
}


def describe(name: str) -> str:
    """One line on what a workload's activations look like."""
    if name == "fixed_seed":
        return f"i.i.d. N(0, 1) drawn from seed {FIXED_SEED} on every run (reproducible inputs)."
    return (WORKLOADS[name].__doc__ or "").strip()


def make_inputs(
    workload: str, batch: int, n_in: int, n_out: int, bias: bool, dtype, device, seed: int
):
    """Return (X, W, b) for a cell; W ~ N(0, 1/N_in) so outputs stay O(1) at any N."""
    if workload not in WORKLOADS:
        raise CellSpecError(
            f"unknown workload {workload!r}{closest(workload, WORKLOADS)}; "
            f"workloads: {list(WORKLOADS)}"
        )
    g = torch.Generator(device=device)
    g.manual_seed(FIXED_SEED if workload == "fixed_seed" else seed)
    x = WORKLOADS[workload](batch, n_in, g, device).to(dtype)
    w = (torch.randn(n_out, n_in, generator=g, device=device) / math.sqrt(n_in)).to(dtype)
    b = torch.randn(n_out, generator=g, device=device).to(dtype) if bias else None
    return x, w, b
