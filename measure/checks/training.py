"""float64 references for the training half (phase2 backward, phase3 train steps, drift).

Every figure reuses measure/checks/bounds.py: the same error figures, the same bounds from dtype
and K.
- phase2: grad_X = grad_Y W_eff has K = N_out; c roundings from the backward's collective
  (2R-1 for an all-reduce of R partials, 1 for an all-gather or none).
- phase3: the reference trains the method's effective (global) weight in float64 with the same
  rule (same loss, same torch.optim class on a float64 copy, same masks, T2's frozen forward),
  and carries alongside an elementwise bound E_k on |W_run - W_ref| after k steps, first order
  in the unit roundoffs, from the classical worst-case bounds of measure/checks/bounds.py:
    W_c = dtype(master * M):   |dW_c| <= u |W_eff| + E_k M              (T2: 0, W_0 is exact)
    forward Y = X W_c^T:       |dY| <= phi_f |X||W_eff|^T + |X| |dW_c|^T  phi_f = c u + N_in ua
    grad_Y = dtype((Y-T)/B):   |dgY| <= (|dY| + u |Y - T|) / B
    G = dtype(gY^T X), K = B:  |dG| <= |dgY|^T |X| + phi_w |gY|^T |X|   phi_w = u + B ua
    SGD:   |dU| <= lr |dG|;  AdamW: the interval of lr m^/(sqrt(v^)+eps) over m^ +- dm^,
           v^ +- dv^ (dm, dv carried like m and v), capped by the update's own Cauchy-Schwarz
           bound lr C_t; plus the fp32 optimizer arithmetic (2 or 10 operations of ua each)
    E_{k+1} = (1 - lr wd) E_k + |dU|
  E grows at least linearly in k (one |dU| per step) and, through the |X| E^T term of the
  next forward, up to geometrically at rate about 1 + lr (|X|^T|X|/B) row sums: a worst case,
  loose by about sqrt(K) per GEMM for bf16, tight enough that a step whose forward missed the
  re-compression is off by far more. The loss bound is sum(|Y - T||dY| + dY^2/2)/B plus the
  fp32 sum's B N_out ua L.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

from common.dtypes import UNIT_ROUNDOFF
from common.errors import CorrectnessError
from common.schema.checks import ErrorFigures
from common.schema.phase_figures import DriftFigures, TrainFigures
from kernels.methods import Method
from kernels.training import ADAMW_DEFAULTS, TrainConfig, make_optimizer
from measure.checks import bounds as checks


def grad_output(batch: int, n_out: int, dtype: torch.dtype, device, seed: int) -> torch.Tensor:
    """A fresh random grad_Y (B x N_out), identical on every rank built from one seed."""
    g = torch.Generator(device=device)
    g.manual_seed(seed + 2)
    return torch.randn(batch, n_out, generator=g, device=device).to(dtype)


@dataclasses.dataclass
class BackwardCheck:
    """grad_X against float64, and which path computed it (a masked-dense fallback says so)."""

    errors: ErrorFigures
    backward_backend: str


def check_backward(
    layer: Method, w_eff: torch.Tensor, grad_y: torch.Tensor, world_size: int
) -> BackwardCheck:
    """Poison grad_X, run this rank's backward, compare with float64 grad_Y W_eff.

    `w_eff` is the method's effective weight (`type(layer).effective_weight(args)`), `grad_y`
    the full B x N_out; returns the error figures (assert with checks.assert_correct) and the
    backward backend, so a masked-dense backward is never silent.
    """
    for buffer in layer.backward_buffers():
        buffer.fill_(float("nan"))
    gx = layer.backward_input(layer.local_grad_output(grad_y))
    if gx.is_cuda:
        torch.cuda.synchronize(gx.device)
    ref, absref = checks.reference(grad_y, w_eff.t(), None)
    cols = layer.backward_columns()
    if cols is not None:
        ref, absref = ref[:, cols], absref[:, cols]
    bound = checks.bounds(grad_y.dtype, w_eff.shape[0], layer.backward_collective, world_size)
    return BackwardCheck(checks.error_figures(gx, ref, absref, bound), layer.backward_backend)


def effective_mask(layer_type, args, masks=None, rows: slice | None = None) -> torch.Tensor:
    """The method's effective weight of an all-ones W (float64): 1 where the method computes.

    `masks` replaces the cell's pair (T1m's re-chosen masks); `rows` takes those rows only (every
    method's effective weight is elementwise or by columns, so rows can be taken one chunk at a
    time)."""
    rows = slice(None) if rows is None else rows
    shape = args.weight[rows].shape
    ones = torch.ones(shape, dtype=torch.float64, device=args.weight.device)
    pair = args.masks if masks is None else masks
    if pair is not None:
        pair = tuple(m[rows].to(args.weight.device) for m in pair)
    return layer_type.effective_weight(dataclasses.replace(args, weight=ones, masks=pair))


# One float64 chunk of rows of W: 128 MiB. A step holds about twenty such temporaries, so the
# reference at N = 32768 needs a few GiB, not the several hundred GiB of whole-W copies.
REFERENCE_CHUNK_ELEMENTS = 1 << 24


@dataclass
class TrainReference:
    """The float64 trajectory's loss at each step and each loss's bound. The final weights and
    their bounds E_k go, chunk of rows by chunk, to the `visit` of `reference_training`."""

    losses: list[float]
    loss_bounds: list[float]


def learning_rate(optimizer: str, x: torch.Tensor, w: torch.Tensor) -> float:
    """SGD: 0.5 / lambda_max(X^T X / B), so a step contracts and the loss falls fast; AdamW
    (a per-element step size): a tenth of W's rms. Both from the cell's own X and W."""
    x64 = x.double()
    if optimizer == "sgd":
        lam = torch.linalg.eigvalsh(x64 @ x64.t() / x.shape[0]).max().item()
        return 0.5 / lam
    rows = max(1, REFERENCE_CHUNK_ELEMENTS // w.shape[1])  # no whole-W float64 copy
    square_sum = sum(chunk.double().pow(2).sum().item() for chunk in w.split(rows))
    return 0.1 * math.sqrt(square_sum / w.numel())


MaskOfStep = Callable[[int, slice], torch.Tensor]
GradMask = Callable[[slice], "torch.Tensor | None"]
Visit = Callable[[slice, torch.Tensor, torch.Tensor], None]


def reference_training(
    x: torch.Tensor,
    w0: torch.Tensor,
    target: torch.Tensor,
    cfg: TrainConfig,
    steps: int,
    step_mask: MaskOfStep | None,
    grad_mask: GradMask,
    collective: str | None,
    world_size: int,
    visit: Visit,
    chunk_rows: int | None = None,
) -> TrainReference:
    """Train the global effective weight in float64 for `steps` steps, with the bounds.

    Under the loss 0.5 ||X W^T - T||^2 / B each row of W trains on its own (row i's gradient is
    grad_Y[:, i]^T X; SGD and AdamW are elementwise), so the reference trains `chunk_rows` rows
    at a time and hands each chunk's final weights and bounds to `visit(rows, w, bound)`; the
    losses and their bounds are sums over rows. `step_mask(i, rows)` is the effective mask of
    step i's forward on those rows (T1m's re-chosen ones; None: the gradient's mask at every
    step, made once a chunk); `grad_mask(rows)` masks the gradient (None: T1m's full
    grad_Y^T X); the master starts as W_0 * grad_mask.
    """
    n_out, n_in = w0.shape
    chunk_rows = chunk_rows or max(1, REFERENCE_CHUNK_ELEMENTS // n_in)
    ctx = _StepContext.of(x, target, cfg, collective, world_size)
    losses, partial_bounds = [0.0] * steps, [0.0] * steps
    for start in range(0, n_out, chunk_rows):
        rows = slice(start, min(n_out, start + chunk_rows))
        w, bound = _train_rows(
            ctx, w0[rows], rows, steps, step_mask, grad_mask(rows), losses, partial_bounds
        )
        visit(rows, w, bound)
    ua = checks.ACCUMULATOR_ROUNDOFF
    loss_bounds = [
        pb + x.shape[0] * n_out * ua * loss for pb, loss in zip(partial_bounds, losses, strict=True)
    ]
    return TrainReference(losses, loss_bounds)


@dataclass
class _StepContext:
    """What every chunk of rows shares: X and T in float64, the step's rule and roundoffs."""

    x64: torch.Tensor
    ax: torch.Tensor
    t64: torch.Tensor
    cfg: TrainConfig
    u: float
    phi_f: float
    phi_w: float

    @classmethod
    def of(cls, x, target, cfg, collective, world_size):
        dtype = x.dtype
        n_in, b = x.shape[1], x.shape[0]
        phi_f = checks.bounds(dtype, n_in, collective, world_size)["elementwise_factor"]
        phi_w = checks.bounds(dtype, b, None, 1)["elementwise_factor"]
        x64 = x.double()
        return cls(x64, x64.abs(), target.double(), cfg, UNIT_ROUNDOFF[dtype], phi_f, phi_w)


def _train_rows(ctx, w0_rows, rows, steps, step_mask, grad_mask, losses, partial_bounds):
    """`steps` float64 steps of rows `rows` of W; adds their share of each step's loss and loss
    bound (all but the fp32 sum's term) in place; returns the final weights and bounds E_k."""
    cfg, u, ua = ctx.cfg, ctx.u, checks.ACCUMULATOR_ROUNDOFF
    x64, ax, b = ctx.x64, ctx.ax, ctx.x64.shape[0]
    t64 = ctx.t64[:, rows]
    w = w0_rows.double() * (grad_mask if grad_mask is not None else 1.0)
    frozen = w.clone() if cfg.variant == "T2" else None
    master = torch.nn.Parameter(w, requires_grad=False)
    opt = make_optimizer(cfg.optimizer, [master], cfg.lr)
    bound = torch.zeros_like(w)
    dm, dv = torch.zeros_like(w), torch.zeros_like(w)
    for i in range(steps):
        m = grad_mask if step_mask is None else step_mask(i, rows)
        if frozen is not None:
            w_eff, dw_c = frozen * m, torch.zeros_like(w)
        else:
            w_eff = master.detach() * m
            dw_c = u * w_eff.abs() + bound * m
        r = x64 @ w_eff.t() - t64
        dy = ctx.phi_f * (ax @ w_eff.abs().t()) + ax @ dw_c.t()
        losses[i] += 0.5 * r.pow(2).sum().item() / b
        partial_bounds[i] += ((r.abs() * dy).sum() + 0.5 * dy.pow(2).sum()).item() / b
        gy = r / b
        dgy = (dy + u * r.abs()) / b
        g = gy.t() @ x64
        dg = dgy.t() @ ax + ctx.phi_w * (gy.abs().t() @ ax)
        if grad_mask is not None:
            g, dg = g * grad_mask, dg * grad_mask
        w_before = master.detach().clone()
        master.grad = g
        opt.step()
        if cfg.optimizer == "sgd":
            du = cfg.lr * dg + 2 * ua * (master.detach().abs() + cfg.lr * g.abs())
        else:
            du, dm, dv = _adamw_update_bound(opt, master, g.abs(), dg, dm, dv, cfg.lr, w_before)
            bound = bound * (1 - cfg.lr * ADAMW_DEFAULTS["weight_decay"])
        bound = bound + du
    return master.detach(), bound


def _adamw_update_bound(opt, master, g, dg, dm, dv, lr, w_before):
    """|dU| for one AdamW step from |g| and the gradient's bound dg (see the module docstring)."""
    b1, b2 = ADAMW_DEFAULTS["betas"]
    eps, wd = ADAMW_DEFAULTS["eps"], ADAMW_DEFAULTS["weight_decay"]
    state = opt.state[master]
    t = int(state["step"])
    m, v = state["exp_avg"], state["exp_avg_sq"]
    dm = b1 * dm + (1 - b1) * dg
    dv = b2 * dv + (1 - b2) * (2 * g * dg + dg.pow(2))
    c1, c2 = 1 - b1**t, 1 - b2**t
    mh, vh, dmh, dvh = m / c1, v / c2, dm / c1, dv / c2
    u_ref = mh / (vh.sqrt() + eps)
    spread = torch.zeros_like(u_ref)  # the largest move over the four corners, one at a time
    for sm in (-1, 1):  # (a stack of four N x N float64 corners ran an H100 out of memory)
        for sv in (-1, 1):
            corner = (mh + sm * dmh) / ((vh + sv * dvh).clamp_min(0).sqrt() + eps)
            spread = torch.maximum(spread, corner.sub_(u_ref).abs_())
    ratio = sum((b1 * b1 / b2) ** j for j in range(t))
    cap_t = (1 - b1) * math.sqrt(c2) / (c1 * math.sqrt(1 - b2)) * math.sqrt(ratio)
    du = lr * torch.minimum(spread, cap_t + u_ref.abs())
    ua = checks.ACCUMULATOR_ROUNDOFF
    du = du + 10 * ua * (w_before.abs() * (1 - lr * wd) + lr * u_ref.abs())
    return du, dm, dv


def reference_for(
    state,
    args,
    x: torch.Tensor,
    target: torch.Tensor,
    steps: int,
    world_size,
    chunk_rows: int | None = None,
) -> tuple[TrainReference, WeightComparison]:
    """The float64 reference of a TrainState's run (its method, variant, masks, optimizer), and
    the run's master weights compared with it."""
    kind = type(state.layer)
    step_mask: MaskOfStep | None  # the forward's mask at step i (T1m), else None
    grad_mask: GradMask
    if state.full_master:
        history = state.m0_history
        if history is None or len(history) < steps:
            raise ValueError("T1m's check needs the TrainState built with record_masks=True")

        def step_mask(i, rows):
            return effective_mask(kind, args, (history[i], ~history[i]), rows)

        def grad_mask(rows):
            return None
    else:

        def grad_mask(rows):
            return effective_mask(kind, args, rows=rows)

        step_mask = None  # the gradient's mask at every step

    comparison = WeightComparison(state)
    ref = reference_training(
        x,
        args.weight,
        target,
        state.cfg,
        steps,
        step_mask,
        grad_mask,
        state.layer.collective,
        world_size,
        comparison.add,
        chunk_rows,
    )
    return ref, comparison


class WeightComparison:
    """This rank's master weights against the reference's final ones, a chunk of rows at a
    time: what the rank holds of each chunk (`Method.shard_rows`; all of it for T1m's
    replicated master), the differences' and the bounds' squared norms and the largest
    |difference| / bound."""

    def __init__(self, state):
        self.master = state.master.detach()
        self.shard_rows = (
            (lambda w, rows: (w, rows)) if state.full_master else state.layer.shard_rows
        )
        self.nonfinite = int((~torch.isfinite(self.master)).sum())
        self.diff_sq = self.ref_sq = self.bound_sq = self.max_over_bound = 0.0

    def add(self, rows: slice, w_ref: torch.Tensor, bound: torch.Tensor) -> None:
        held = self.shard_rows(w_ref, rows)
        if held is None:
            return
        w_ref, local = held
        bound, _ = self.shard_rows(bound, rows)
        w = self.master[local].double()
        diff = torch.where(torch.isfinite(w), w - w_ref, torch.zeros_like(w_ref))
        self.diff_sq += diff.pow(2).sum().item()
        self.ref_sq += w_ref.pow(2).sum().item()
        self.bound_sq += bound.pow(2).sum().item()
        ratio = (diff.abs() / (bound + 1e-300)).max().item()
        self.max_over_bound = max(self.max_over_bound, ratio)


def training_figures(
    comparison: WeightComparison, ref: TrainReference, losses: list[float]
) -> TrainFigures:
    """The weights' figures from the comparison and every step's loss against the reference
    loss, each over its bound; NaN/inf counted."""
    loss_err = [abs(a - b) for a, b in zip(losses, ref.losses, strict=True)]
    ref_norm = math.sqrt(comparison.ref_sq)
    return TrainFigures(
        steps=len(losses),
        nonfinite=comparison.nonfinite + sum(not math.isfinite(v) for v in losses),
        weight_rel_fro=math.sqrt(comparison.diff_sq) / ref_norm,
        weight_rel_fro_bound=math.sqrt(comparison.bound_sq) / ref_norm,
        weight_max_abs_over_bound=comparison.max_over_bound,
        losses=list(losses),
        reference_losses=list(ref.losses),
        loss_error_over_bound=max(
            (e / b if b > 0 else math.inf) for e, b in zip(loss_err, ref.loss_bounds, strict=True)
        ),
    )


def assert_trained(fig: TrainFigures, cell: str, rank: int | None = None) -> None:
    """Raise CorrectnessError naming the cell, the rank and the broken rule."""
    who = f"{cell}" + (f" rank {rank}" if rank is not None else "")
    if fig.nonfinite:
        raise CorrectnessError(f"{who}: {fig.nonfinite} weights or losses are NaN/inf")
    if not fig.loss_error_over_bound <= 1.0:
        raise CorrectnessError(
            f"{who}: a step's loss is {fig.loss_error_over_bound:.2f}x its bound from the "
            f"float64 reference (losses {fig.losses} vs {fig.reference_losses})"
        )
    if not fig.weight_max_abs_over_bound <= 1.0:
        raise CorrectnessError(
            f"{who}: after {fig.steps} steps a weight is {fig.weight_max_abs_over_bound:.2f}x"
            f" its error bound E_k from the float64 reference (rel. Frobenius error "
            f"{fig.weight_rel_fro:.2e}, bound {fig.weight_rel_fro_bound:.2e})"
        )


DRIFT_CAP = 1.0  # a relative error of 100%: the trajectory no longer carries information


def drift_figures(
    trajectory: list[torch.Tensor],
    x0: torch.Tensor,
    w_eff: torch.Tensor,
    collective: str | None,
    world_size: int,
) -> DriftFigures:
    """Per-step relative Frobenius error of a drift run against the float64 trajectory of the
    same block with the method's effective weight, and each step's bound.

    Bound: one step adds e = rel_fro_bound(dtype, N, c) + 2u (the layer, then tanh and the
    residual add rounded in the dtype); tanh is 1-Lipschitz, so an error grows by at most
    L = 1 + ||W_eff||_2 per step: bound_t = e (L^t - 1) / (L - 1), capped at DRIFT_CAP. The
    geometric term passes the cap within a few steps at L ~ 3, so past them the cell fails
    only on NaN/inf or an error of 100%."""
    dtype = x0.dtype
    e = checks.bounds(dtype, w_eff.shape[1], collective, world_size)["rel_fro_bound"]
    e += 2 * UNIT_ROUNDOFF[dtype]
    w64 = w_eff.double()
    lip = 1 + torch.linalg.matrix_norm(w64, ord=2).item()
    x64 = x0.double()
    errors, bounds_, nonfinite = [], [], 0
    for t, xt in enumerate(trajectory, start=1):
        x64 = x64 + torch.tanh(x64 @ w64.t())
        run = xt.double()
        bad = int((~torch.isfinite(run)).sum())
        nonfinite += bad
        errors.append(math.inf if bad else float((run - x64).norm() / x64.norm()))
        bounds_.append(min(DRIFT_CAP, e * (lip**t - 1) / (lip - 1)))
    return DriftFigures(errors=errors, bounds=bounds_, nonfinite=nonfinite, lipschitz=lip)


def assert_drift(fig: DriftFigures, cell: str, rank: int | None = None) -> None:
    """Raise CorrectnessError naming the cell, the rank, the step and the bound it broke."""
    who = f"{cell}" + (f" rank {rank}" if rank is not None else "")
    if fig.nonfinite:
        raise CorrectnessError(f"{who}: drift produced {fig.nonfinite} NaN/inf values")
    for t, (err, bound) in enumerate(zip(fig.errors, fig.bounds, strict=True), start=1):
        if not err <= bound:
            raise CorrectnessError(
                f"{who}: drift step {t}: relative error {err:.3e} exceeds its bound {bound:.3e} "
                f"(e (L^t - 1)/(L - 1), L = {fig.lipschitz:.2f}, capped at {DRIFT_CAP})"
            )
