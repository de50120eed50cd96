"""An exact correctness probe: inputs on which every method must equal float64, bit for bit.

The float check (measure/checks/bounds.py) cannot see one wrong weight at large K: its error is
about 1/sqrt(K) of an output element, below the storage dtype's unit roundoff. This probe can,
because it removes rounding altogether, as GEMM libraries test with small integers:

- W' has entries +-1 on the cell's real mask pair (so masks, compression and metadata are what
  is tested). In every 4-column group, each half's two kept weights have opposite signs (for a
  maskless cell the "halves" are columns 0,1 and 2,3 of the group); bias entries are +-1.
- Each probe row covers whole 2:4 groups (4 input columns), disjoint within the row; a covered
  group holds a random signed permutation of {1, 2, 3, 4}; the rest of the row is 0.
- A row covers at most g groups, g = floor((2^p - 1 - |b|) / 10), 2^p = 1/u of the output dtype.
  Then every product, and every partial sum in any order, any subset of terms (one rank's share,
  a split-K slice), is an integer of magnitude at most 2^p - 1, exact in the output dtype. So
  any accumulator at least as precise as the output (fp32, or even the output dtype itself),
  any summation order, and any all-reduce or all-gather of partials give exactly the float64
  reference. The rule is equality; NaN fails.
- Probes of the cell's B rows run until every group of K is covered at least once (rows past
  the cover draw fresh random groups). g and the probe count at B=16: bf16 g=25, K=4096 3 probes,
  K=81920 52 probes; fp16 g=204, K=81920 7 probes; fp32 covers all of K in every row, 1 probe.

Which wrong results it is certain to see, wherever the wrong weight's group is covered (an
integer change d of an output element stays visible: |v| <= 2^p - 1 and v + d rounds to v + d or
to a magnitude >= 2^p):
- any single weight changed by an integer, a sign flip, a doubled weight with its group
  neighbour dropped (|x| are distinct in a group, so w_d x_d != w_n x_n);
- a kept weight applied to another column of its group (the x of a group are distinct);
- the two kept weights of one half swapped (their signs differ by construction).
Others (two equal weights swapped outside one half's pair, several errors that cancel in one
row) are seen with a probability that grows with the rows covering the group. A weight wrong by
less than the output's spacing (a rounding-sized error) can hide in the rounding: the float
error figures are what bound those.

Memory: the probe holds W' and its own method at once (call it after the cell's own method is
freed where memory is tight); W' is generated in row chunks.
"""

from __future__ import annotations

import math

import torch

from common.dtypes import UNIT_ROUNDOFF
from common.errors import CorrectnessError
from common.schema.checks import ExactFigures, Mismatch
from kernels.methods import BuildArgs, Method
from kernels.registry import spec

GROUP_VALUES = (1.0, 2.0, 3.0, 4.0)  # magnitudes in a covered group; sum 10 = a group's budget
CHUNK_ELEMENTS = 1 << 24  # W' and the reference are built in row chunks of this size
_ADJACENT_PAIRS = torch.tensor([True, True, False, False])  # maskless cells' two "halves"


def _pair_sign_table() -> torch.Tensor:
    """16 x 4 int8: for a group's keep bits (code = sum of bit j << j), +1 at the first column of
    each half (kept, not kept) and -1 at the second."""
    table = torch.empty(16, 4, dtype=torch.int8)
    for code in range(16):
        seen = [0, 0]
        for j in range(4):
            half = code >> j & 1
            table[code, j] = 1 if seen[half] == 0 else -1
            seen[half] += 1
    return table


_PAIR_SIGNS = _pair_sign_table()
_BITS = torch.tensor([1, 2, 4, 8], dtype=torch.uint8)


def exact_limit(dtype: torch.dtype) -> int:
    """2^p - 1: every integer up to it is exact in dtype, and one past it rounds away from it."""
    return round(1 / UNIT_ROUNDOFF[dtype]) - 1


def groups_per_row(dtype: torch.dtype, n_in: int, bias: bool) -> int:
    """Groups one probe row may cover: 10 per group (sum of |x|, |w| = 1), 1 for the bias."""
    return min(n_in // 4, (exact_limit(dtype) - int(bias)) // int(sum(GROUP_VALUES)))


def probe_count(dtype: torch.dtype, n_in: int, batch: int, bias: bool) -> int:
    rows = math.ceil((n_in // 4) / groups_per_row(dtype, n_in, bias))
    return math.ceil(rows / batch)


def probe_weight(
    n_out: int, n_in: int, masks, dtype: torch.dtype, device, gen: torch.Generator
) -> torch.Tensor:
    """W' (n_out x n_in) of +-1: in each group, each half's two columns have opposite signs."""
    w = torch.empty(n_out, n_in, dtype=dtype, device=device)
    table, bits = _PAIR_SIGNS.to(device), _BITS.to(device)
    rows = max(1, CHUNK_ELEMENTS // n_in)
    for i in range(0, n_out, rows):
        r = min(rows, n_out - i)
        if masks is None:
            keep = _ADJACENT_PAIRS.to(device).repeat(r, n_in // 4).view(r, -1, 4)
        else:
            keep = masks[0][i : i + r].reshape(r, -1, 4)
        code = (keep.to(torch.uint8) * bits).sum(-1, dtype=torch.uint8).long()
        signs = torch.randint(0, 2, (2, r, n_in // 4, 1), generator=gen, device=device)
        signs = signs.to(torch.int8) * 2 - 1
        w[i : i + r] = (table[code] * torch.where(keep, signs[0], signs[1])).view(r, n_in)
    return w


def probe_input(row_groups: torch.Tensor, n_in: int, dtype, gen: torch.Generator) -> torch.Tensor:
    """Rows covering the groups in row_groups (rows x g, -1 = none): a signed permutation of
    GROUP_VALUES in each covered group, 0 elsewhere."""
    rows, g = row_groups.shape
    dev = row_groups.device
    values = torch.tensor(GROUP_VALUES, device=dev)
    order = torch.rand(rows, g, 4, generator=gen, device=dev).argsort(-1)
    signs = torch.randint(0, 2, (rows, g, 4), generator=gen, device=dev) * 2 - 1
    x = torch.zeros(rows, n_in // 4 + 1, 4, device=dev)  # group n_in//4 absorbs the -1 slots
    slot = torch.where(row_groups < 0, n_in // 4, row_groups)
    x.scatter_(1, slot[..., None].expand(-1, -1, 4), values[order] * signs)
    return x[:, :-1].reshape(rows, n_in).to(dtype)


def _row_groups(n_groups: int, g: int, batch: int, probes: int, gen, device) -> torch.Tensor:
    """(probes*batch) x g group indices: one random cover of all groups, then fresh draws."""
    perm = torch.randperm(n_groups, generator=gen, device=device)
    cover_rows = math.ceil(n_groups / g)
    pad = torch.full((cover_rows * g - n_groups,), -1, dtype=perm.dtype, device=device)
    rows = [torch.cat([perm, pad]).view(cover_rows, g)]
    rows += [
        torch.randperm(n_groups, generator=gen, device=device)[:g]
        for _ in range(probes * batch - cover_rows)
    ]
    return torch.cat([r.view(-1, g) for r in rows])


def _reference(x: torch.Tensor, w_eff: torch.Tensor, b: torch.Tensor | None) -> torch.Tensor:
    """float64 X W_eff^T + b over the columns X covers, chunked over output rows."""
    cols = x.ne(0).any(0).nonzero().flatten()
    xc = x[:, cols].double()
    ref = torch.empty(x.shape[0], w_eff.shape[0], dtype=torch.float64, device=x.device)
    rows = max(1, CHUNK_ELEMENTS // max(1, len(cols)))
    for i in range(0, w_eff.shape[0], rows):
        torch.mm(xc, w_eff[i : i + rows, cols].double().t(), out=ref[:, i : i + rows])
    return ref if b is None else ref + b.double()


def poisoned_forward(layer: Method, x: torch.Tensor) -> torch.Tensor:
    """One forward of `layer` on the full input x, its output buffers NaN-filled first."""
    for buffer in layer.forward_buffers():
        buffer.fill_(float("nan"))
    return layer.forward(layer.local_input(x))


def exact_probe(
    ctx,
    method: str | type[Method],
    n_in: int,
    n_out: int,
    batch: int,
    dtype: torch.dtype,
    bias: bool,
    masks: tuple[torch.Tensor, torch.Tensor] | None,
    mask_name: str | None,
    backend: str | None,
    seed: int,
) -> ExactFigures:
    """Build `method` (a registered name, or a class: tests plant faults that way) from W' and run
    every probe through it. Call it on every rank of the group together: all draw the same
    inputs from `seed` and run the same number of forwards (collectives inside)."""
    cls: type[Method] = spec(method).cls if isinstance(method, str) else method
    dev = ctx.device
    gen = torch.Generator(device=dev)
    gen.manual_seed(seed)
    w = probe_weight(n_out, n_in, masks, dtype, dev, gen)
    b = None
    if bias:
        b = (torch.randint(0, 2, (n_out,), generator=gen, device=dev) * 2 - 1).to(dtype)
    args = BuildArgs(w, b, masks, mask_name, batch, ctx.group, backend)
    layer = cls(args)
    w_eff = cls.effective_weight(args)
    n_groups, g = n_in // 4, groups_per_row(dtype, n_in, bias)
    probes = probe_count(dtype, n_in, batch, bias)
    row_groups = _row_groups(n_groups, g, batch, probes, gen, dev)
    covered = torch.zeros(n_groups, dtype=torch.bool, device=dev)
    mismatches = nonfinite = 0
    max_abs: float = 0.0
    first: Mismatch | None = None
    for p in range(probes):
        x = probe_input(row_groups[p * batch : (p + 1) * batch], n_in, dtype, gen)
        covered |= x.view(batch, -1, 4).ne(0).any(-1).any(0)
        got = poisoned_forward(layer, x).double()
        want = _reference(x, w_eff, b)
        wrong = got != want
        finite = torch.isfinite(got)
        mismatches += int(wrong.sum())
        nonfinite += int((~finite).sum())
        max_abs = max(max_abs, float(torch.where(finite, got - want, 0.0).abs().max()))
        if first is None and wrong.any():
            r, c = wrong.nonzero()[0].tolist()
            first = Mismatch(probe=p, row=r, col=c, got=got[r, c].item(), want=want[r, c].item())
    return ExactFigures(
        dtype=str(dtype).removeprefix("torch."),
        exact_limit=exact_limit(dtype),
        groups=n_groups,
        groups_per_row=g,
        probes=probes,
        covered_groups=int(covered.sum()),
        elements=probes * batch * n_out,
        mismatches=mismatches,
        nonfinite=nonfinite,
        max_abs_diff=max_abs,
        first_mismatch=first,
    )


def assert_exact(fig: ExactFigures, cell: str, rank: int | None = None) -> None:
    """Raise CorrectnessError naming the cell, the rank and the broken rule."""
    who = f"{cell}" + (f" rank {rank}" if rank is not None else "")
    if fig.covered_groups != fig.groups:
        raise CorrectnessError(
            f"{who}: exact probe covered {fig.covered_groups} of {fig.groups} input groups; "
            f"the rule is every group at least once"
        )
    if fig.mismatches:
        f = fig.first_mismatch
        first = "" if f is None else f"; first at probe {f.probe} row {f.row} column {f.col}"
        got = "" if f is None else f": got {f.got}, want {f.want}"
        raise CorrectnessError(
            f"{who}: exact probe: {fig.mismatches} of {fig.elements} output elements differ from "
            f"float64 ({fig.nonfinite} NaN/inf{first}{got}); on these inputs every "
            f"partial sum is an integer <= {fig.exact_limit}, exact in {fig.dtype}: the rule is "
            f"equality"
        )
