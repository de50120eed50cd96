"""An exact training probe: one optimizer step after which every copy of the weights must equal the
float64 reference, rounded to the dtype, bit for bit.

The float checks of a train step (measure/checks/train_steps.py) hold every copy within a
worst-case bound that compounds over the GEMMs and steps; a step wrong in a few elements can
hide under it (the record's measured error / bound says how much room there is). phase0's exact
probe (measure/checks/probe.py) removes rounding from the forward; this one removes it from a
train step, so a single wrong kept value, a swapped in-group index, or a stale or missing
re-compression of either copy fails the cell at any N. It is part of every phase3 cell's check.

Construction (a fresh build of the cell's method, on its own mask pair and backend):
- W' is phase0's probe weight: +-1 on the mask pair, each half's two kept weights of a group of
  opposite signs (so a swapped pair is a changed value).
- X covers every group of 4 input columns exactly once: the groups are spread over
  min(B, groups) rows, a covered group holding a signed permutation of {1, 2, 3, 4} (phase0's
  rows); rows past the groups are zero. So every column of X has one nonzero, and
  g = grad_Y^T X has a single term per element: g_ij = gY_b(j)i x_b(j)j.
- grad_Y is +-D everywhere (random signs d), which makes every g_ij = +-D x nonzero: the step
  moves every weight the method trains. The target is T = Y_ref - B D d (fp32), so that
  grad_Y = dtype((Y - T) / B) = D d:
  - exactly, with D = 1, where each row covers few enough groups that every partial sum of the
    forward is an integer within the dtype's exact range (phase0's rule, 10 per group): Y is
    exact, and so are Y - T and its division by B;
  - else by a rounding margin: with the forward's derived elementwise bound e (the forward
    check's, measure/checks/bounds.py), fp32 (Y - T) / B is within (e + ua |Y|) / B + 3 ua D
    of D d, and D is the power of two that makes this less than half of the dtype's spacing
    below D (twice over), so it rounds to D d. 16-bit dtypes only (fp32's rows always fit the
    exact range).
- SGD: lr = 2^-3 / D, so each weight moves by x / 8, 1/8 to 1/2: +-1 - x/8 has four significant
  bits, exact in every dtype, and the master, every copy and the float64 reference agree
  exactly ("exact").
- AdamW cannot be exact: torch's AdamW scales by 1 - lr * 0.01 and bias-corrects by 1 - 0.9^t
  and 1 - 0.999^t, none of them a power of two, so its fp32 master carries rounding. Its copies
  in a 16-bit dtype can still be exact: with lr = 2^-6 a weight moves to about
  +-1 -+ 2^-6 - 1.6e-4, and every reference value must lie further from a rounding boundary of
  the dtype than the fp32 step's own error bound (measure/checks/training.adamw_arithmetic_bound):
  then the rounded copy is determined, and must equal the reference's ("rounding margin"; the
  smallest margin / bound is recorded, and a probe whose margin fails is refused as a probe
  error, never blamed on the method). In an fp32 cell the copy is the master itself, so there
  the probe takes an SGD step, and says so (`why_optimizer`): the copies, grad_W's kept values,
  select/place and the re-compression are what it tests, and they do not depend on the
  optimizer.
- After the one step (T2: no re-compression, so the copies must still be W' exactly; T1m: the
  mask the run re-chose, as the float check takes it) each copy is read back through its own
  kernel (`Method.copies`) and compared with the reference element by element: the rule is
  equality; NaN fails. grad_X is not part of it: with every grad_Y nonzero (so every weight
  moves) it sums N_out terms, which no 16-bit dtype holds exactly; the float check of every
  step bounds it.

Memory: the probe's method, the two copies read back dense, and a float64 chunk of rows; call it
after the cell's own training state is freed where memory is tight.
"""

from __future__ import annotations

import math

import torch

from common.cell import CellSpec
from common.dtypes import DTYPES, UNIT_ROUNDOFF
from common.errors import CellSpecError, CorrectnessError
from common.schema.phase_figures import CopyMismatch, TrainProbeFigures
from kernels.methods import BuildArgs, Method
from kernels.training import TrainConfig, TrainState, make_optimizer
from measure.checks import bounds as checks
from measure.checks.probe import groups_per_row, probe_input, probe_weight
from measure.checks.training import (
    REFERENCE_CHUNK_ELEMENTS,
    adamw_arithmetic_bound,
    effective_mask,
)

SGD_SHIFT = 3  # lr = 2^-SGD_SHIFT / D: each weight moves by x / 8
ADAMW_LR = 2.0**-6  # each weight moves by about 2^-6, a whole number of 16-bit spacings
GRAD_SCALE_MARGIN = 2.0  # the rounding of grad_Y is held to half the margin it has


def probe_rows(n_groups: int, batch: int, dtype, gen: torch.Generator, device) -> torch.Tensor:
    """B x n_in probe inputs covering every group exactly once, spread over min(B, groups) rows
    (the rest zero): each covered group a signed permutation of GROUP_VALUES."""
    rows = min(batch, n_groups)
    perm = torch.randperm(n_groups, generator=gen, device=device)
    width = math.ceil(n_groups / rows)
    slots = torch.full((batch, width), -1, dtype=perm.dtype, device=device)
    for r in range(rows):
        mine = perm[r::rows]
        slots[r, : len(mine)] = mine
    return probe_input(slots, 4 * n_groups, dtype, gen)


def grad_scale(
    x: torch.Tensor, y_ref: torch.Tensor, y_abs: torch.Tensor, dtype, phi_f: float, exact: bool
) -> float:
    """D: 1 where the forward is exact; else the power of two whose rounding margin holds the
    run's grad_Y to D d (see the module docstring)."""
    if exact:
        return 1.0
    u, ua = UNIT_ROUNDOFF[dtype], checks.ACCUMULATOR_ROUNDOFF
    room = u / 2 - 3 * ua
    if room <= 0:
        raise CellSpecError(
            f"exact training probe: {dtype} has no rounding margin for grad_Y; its rows must fit "
            "the exact range"
        )
    err = (phi_f * y_abs + ua * y_ref.abs()).max().item() / x.shape[0]
    return 2.0 ** max(0, math.ceil(math.log2(GRAD_SCALE_MARGIN * err / room)))


def rounding_margin(v: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """How far each float64 value may move and still round to the same value of `dtype` (round
    to nearest): its distance from the nearer midpoint to a neighbouring value."""
    bits = round(-math.log2(UNIT_ROUNDOFF[dtype]))  # significand bits, the implicit one counted
    r = v.to(dtype).double()
    a, ra = v.abs(), r.abs()
    m, e = torch.frexp(ra)
    above = torch.ldexp(torch.ones_like(ra), e - bits)  # spacing above |r|
    below = torch.where(m == 0.5, above / 2, above)  # below a power of two it halves
    off = a - ra
    return torch.minimum(above / 2 - off, below / 2 + off)


def _probe_optimizer(optimizer: str, dtype: torch.dtype) -> tuple[str, str | None]:
    if optimizer == "adamw" and dtype == torch.float32:
        return "sgd", (
            "AdamW's fp32 step is not exact (its 1 - lr wd and bias corrections are not powers "
            "of two) and an fp32 copy is the master itself: the probe takes an SGD step, which "
            "tests the same copies, grad_W and re-compression"
        )
    return optimizer, None


class _Expected:
    """The probe's one float64 step, chunk of rows by chunk, and the copies' comparison."""

    def __init__(self, state: TrainState, run_copies, pairs, dtype, optimizer, lr):
        self.state, self.layer = state, state.layer
        self.copies, self.pairs = run_copies, pairs
        self.dtype, self.optimizer, self.lr = dtype, optimizer, lr
        self.elements = self.moved = self.mismatches = self.nonfinite = 0
        self.margin_over_bound = math.inf
        self.first: CopyMismatch | None = None

    def visit(self, rows: slice, w0: torch.Tensor, g: torch.Tensor, grad_mask) -> None:
        """One step of rows `rows` (W' in float64, the exact gradient), then every copy's rows
        against the reference rounded to the dtype."""
        m = 1.0 if grad_mask is None else grad_mask
        master = torch.nn.Parameter(w0 * m, requires_grad=False)
        opt = make_optimizer(self.optimizer, [master], self.lr)
        master.grad = g * m
        opt.step()
        w1 = master.detach()
        if self.state.cfg.variant == "T2":  # compressed once: the copies keep W'
            w1 = w0 * m
        elif self.optimizer == "adamw":
            self._margin(w0 * m, w1, opt, master, rows)
        pair = self.pairs[1]
        held = self.layer.local_rows(w1, rows, pair)
        if held is None:
            return
        want, local = held
        want = want.to(self.dtype).double()  # the reference, rounded as the run's copy is
        start = self.layer.local_rows(w0, rows, self.pairs[0])
        assert start is not None
        before = start[0].to(self.dtype).double()
        self.moved += int((want != before).sum())
        for name, copy in self.copies.items():
            got = copy[local].double()
            wrong = got != want
            self.elements += got.numel()
            self.mismatches += int(wrong.sum())
            self.nonfinite += int((~torch.isfinite(got)).sum())
            if self.first is None and wrong.any():
                r, c = wrong.nonzero()[0].tolist()
                self.first = CopyMismatch(
                    copy=name,
                    row=local.start + r,
                    col=c,
                    got=got[r, c].item(),
                    want=want[r, c].item(),
                )

    def _margin(self, w0, w1, opt, master, rows) -> None:
        """AdamW: every value the copies round must sit further from a rounding boundary than
        the fp32 step's error bound (else the probe itself is not exact here)."""
        b1, b2 = opt.defaults["betas"]
        eps = opt.defaults["eps"]
        state = opt.state[master]
        u_ref = (state["exp_avg"] / (1 - b1)) / ((state["exp_avg_sq"] / (1 - b2)).sqrt() + eps)
        bound = adamw_arithmetic_bound(w0, u_ref, self.lr, 1)
        kept = w1 != 0
        if kept.any():
            ratio = rounding_margin(w1[kept], self.dtype) / bound[kept]
            self.margin_over_bound = min(self.margin_over_bound, ratio.min().item())


def train_probe(
    ctx,
    cls: type[Method],
    cell: CellSpec,
    masks: tuple[torch.Tensor, torch.Tensor] | None,
    backend: str | None,
    seed: int,
) -> TrainProbeFigures:
    """Build `cls` (a registered method's class, or a test's planted subclass) from W' on the
    cell's masks and backend, take the probe's step and compare every copy. Call it on every
    rank of the group together: all draw the same inputs from `seed` (collectives inside)."""
    dtype = DTYPES[cell.dtype]
    dev = ctx.device
    n_in, n_out, batch = cell.N, cell.N_out, cell.B
    gen = torch.Generator(device=dev)
    gen.manual_seed(seed)
    w = probe_weight(n_out, n_in, masks, dtype, dev, gen)
    args = BuildArgs(w, None, masks, cell.mask, batch, ctx.group, backend)
    layer = cls(args)
    w_eff = cls.effective_weight(args)
    n_groups = n_in // 4
    x = probe_rows(n_groups, batch, dtype, gen, dev)
    exact = math.ceil(n_groups / min(batch, n_groups)) <= groups_per_row(dtype, n_in, False)
    y_ref, y_abs = checks.reference(x, w_eff, None)
    phi_f = checks.bounds(dtype, n_in, layer.collective, ctx.world_size)["elementwise_factor"]
    scale = grad_scale(x, y_ref, y_abs, dtype, phi_f, exact)
    d = (torch.randint(0, 2, (batch, n_out), generator=gen, device=dev) * 2 - 1).double()
    target = (y_ref - batch * scale * d).float()
    optimizer, why = _probe_optimizer(cell.optimizer or "sgd", dtype)
    lr = ADAMW_LR if optimizer == "adamw" else 2.0**-SGD_SHIFT / scale
    state = TrainState(layer, args, TrainConfig(optimizer, lr, cell.variant), target, True)
    state.step(layer.local_input(x))
    copies = layer.copies()
    pairs: list = [masks, masks]  # the copies' mask pair before and after the step
    if state.full_master:  # T1m: the pair the run re-chose from its master
        assert state.m0_history is not None
        pairs = [(m0, ~m0) for m0 in state.m0_history]
    expected = _Expected(state, copies, pairs, dtype, optimizer, lr)
    x64 = x.double()
    chunk = max(1, REFERENCE_CHUNK_ELEMENTS // n_in)
    for start in range(0, n_out, chunk):
        rows = slice(start, min(n_out, start + chunk))
        g = scale * (d[:, rows].t() @ x64)  # exact: one nonzero term per element
        grad_mask = None if state.full_master else effective_mask(cls, args, rows=rows)
        expected.visit(rows, w[rows].double(), g, grad_mask)  # the master starts as W' * mask
    return TrainProbeFigures(
        optimizer=optimizer,
        why_optimizer=why,
        rule="rounding margin" if optimizer == "adamw" else "exact",
        lr=lr,
        grad_scale=scale,
        groups=n_groups,
        covered_groups=int(x.view(batch, -1, 4).ne(0).any(-1).any(0).sum()),
        elements=expected.elements,
        moved=expected.moved,
        mismatches=expected.mismatches,
        nonfinite=expected.nonfinite,
        margin_over_bound=expected.margin_over_bound if optimizer == "adamw" else None,
        first_mismatch=expected.first,
    )


def assert_probe_exact(fig: TrainProbeFigures, cell: str, rank: int | None = None) -> None:
    """Raise CorrectnessError naming the cell, the rank, the copy and the element; CellSpecError
    where the probe could not be made exact here (its margin), which is no fault of the method."""
    who = f"{cell}" + (f" rank {rank}" if rank is not None else "")
    if fig.margin_over_bound is not None and not fig.margin_over_bound > 1:
        raise CellSpecError(
            f"{who}: the exact training probe's AdamW step is not determined in this dtype "
            f"(a reference value lies {fig.margin_over_bound:.2f}x the fp32 step's error bound "
            "from a rounding boundary): a probe construction error, not the method's"
        )
    if fig.covered_groups != fig.groups:
        raise CorrectnessError(
            f"{who}: exact training probe covered {fig.covered_groups} of {fig.groups} groups"
        )
    if fig.mismatches:
        f = fig.first_mismatch
        where = ""
        if f is not None:
            where = (
                f"; first: the {f.copy} copy at row {f.row}, column {f.col}: got {f.got}, "
                f"want {f.want}"
            )
        raise CorrectnessError(
            f"{who}: exact training probe: {fig.mismatches} of {fig.elements} copy elements "
            f"differ from float64 after one {fig.optimizer} step ({fig.nonfinite} NaN/inf"
            f"{where}); {fig.moved} weights moved, every value exactly representable "
            f"({fig.rule}): the rule is equality"
        )
