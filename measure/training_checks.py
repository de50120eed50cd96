"""float64 references for the training half (phase2 backward, phase3 train steps, drift).

Every figure reuses measure/checks.py: the same error figures, the same bounds from dtype and K.
- phase2: grad_X = grad_Y W_eff has K = N_out; c roundings from the backward's collective
  (2R-1 for an all-reduce of R partials, 1 for an all-gather or none).
"""

from __future__ import annotations

import torch

from measure import checks


def grad_output(batch: int, n_out: int, dtype: torch.dtype, device, seed: int) -> torch.Tensor:
    """A fresh random grad_Y (B x N_out), identical on every rank built from one seed."""
    g = torch.Generator(device=device)
    g.manual_seed(seed + 2)
    return torch.randn(batch, n_out, generator=g, device=device).to(dtype)


def check_backward(layer, w_eff: torch.Tensor, grad_y: torch.Tensor, world_size: int) -> dict:
    """Poison grad_X, run this rank's backward, compare with float64 grad_Y W_eff.

    `w_eff` is the method's effective weight (`type(layer).effective_weight(args)`), `grad_y`
    the full B x N_out; returns checks.error_figures (assert with checks.assert_correct) plus
    the backward backend, so a masked-dense backward is never silent.
    """
    for name in ("grad_x", "grad_local"):
        if hasattr(layer, name):
            getattr(layer, name).fill_(float("nan"))
    gx = layer.backward_input(layer.local_grad_output(grad_y))
    if gx.is_cuda:
        torch.cuda.synchronize(gx.device)
    ref, absref = checks.reference(grad_y, w_eff.t(), None)
    cols = layer.backward_columns()
    if cols is not None:
        ref, absref = ref[:, cols], absref[:, cols]
    bound = checks.bounds(grad_y.dtype, w_eff.shape[0], layer.backward_collective, world_size)
    return {
        **checks.error_figures(gx, ref, absref, bound),
        "backward_backend": layer.backward_backend,
    }
