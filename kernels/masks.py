"""Complementary 2:4 masks over the input features of a weight W (N_out x N_in).

Each mask pair (M0, M1) keeps, in every group of 4 consecutive input columns of every row,
two entries for rank 0 and the other two for rank 1, so W*M0 and W*M1 are each valid 2:4
sparse and M0 + M1 = 1. Periodic masks repeat one pattern everywhere (then a compressed half
is just a dense matrix of interleaved columns); random and magnitude masks differ from group to
group, which is where the 2:4 kernel has to earn its keep.
"""

from __future__ import annotations

import itertools

import torch

from common.errors import MaskError, closest

_PATTERNS = {
    "complement_1100_0011": (1, 1, 0, 0),
    "complement_1010_0101": (1, 0, 1, 0),
    "complement_1001_0110": (1, 0, 0, 1),
}
_TWO_OF_FOUR = torch.tensor(
    [[1 if i in c else 0 for i in range(4)] for c in itertools.combinations(range(4), 2)],
    dtype=torch.bool,
)
PERIODIC_MASKS = tuple(_PATTERNS)
MASKS = (*PERIODIC_MASKS, "random_2of4", "magnitude_2of4")


def periodic_columns(name: str, n_in: int, rank: int) -> torch.Tensor:
    """Input-column indices that rank `rank` keeps under a periodic mask (for interleaved TP)."""
    if name not in _PATTERNS:
        raise MaskError(f"{name!r} is not periodic; periodic masks: {list(_PATTERNS)}")
    pattern = torch.tensor(_PATTERNS[name], dtype=torch.bool)
    keep = pattern if rank == 0 else ~pattern
    return torch.nonzero(keep.repeat(n_in // 4)).flatten()


def make_mask_pair(
    name: str, weight: torch.Tensor, generator: torch.Generator | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Return boolean (M0, M1) shaped like `weight`, validated before they are returned."""
    n_out, n_in = weight.shape
    if n_in % 4:
        raise MaskError(f"mask {name!r}: N_in={n_in} is not a multiple of 4 (2:4 groups)")
    groups = (n_out, n_in // 4)
    if name in _PATTERNS:
        m0 = torch.tensor(_PATTERNS[name], dtype=torch.bool).repeat(*groups)
    elif name == "random_2of4":
        dev = generator.device if generator is not None else weight.device
        choice = torch.randint(0, len(_TWO_OF_FOUR), groups, generator=generator, device=dev)
        m0 = _TWO_OF_FOUR.to(dev)[choice].reshape(n_out, n_in)
    elif name == "magnitude_2of4":
        mag = weight.detach().abs().float().reshape(n_out, n_in // 4, 4)
        top2 = mag.topk(2, dim=-1).indices
        m0 = torch.zeros_like(mag, dtype=torch.bool).scatter_(-1, top2, True).reshape(n_out, n_in)
    else:
        raise MaskError(f"unknown mask {name!r}{closest(name, MASKS)}; masks: {list(MASKS)}")
    m0 = m0.to(weight.device)
    m1 = ~m0
    validate_pair(m0, m1, name)
    return m0, m1


def validate_pair(m0: torch.Tensor, m1: torch.Tensor, name: str = "mask") -> None:
    """Raise MaskError unless each mask is 2:4 in every group and M0 + M1 is all ones."""
    if m0.shape != m1.shape:
        raise MaskError(f"{name}: shapes differ {tuple(m0.shape)} vs {tuple(m1.shape)}")
    for i, m in enumerate((m0, m1)):
        per_group = m.reshape(m.shape[0], -1, 4).sum(-1)
        bad = (per_group != 2).nonzero()
        if len(bad):
            r, g = bad[0].tolist()
            raise MaskError(
                f"{name}: M{i} is not 2:4: row {r}, group {g} keeps {per_group[r, g].item()} of 4 "
                f"({len(bad)} bad groups)"
            )
    overlap = (m0.int() + m1.int()) != 1
    if overlap.any():
        r, c = overlap.nonzero()[0].tolist()
        raise MaskError(f"{name}: M0 + M1 is not all ones (first at row {r}, column {c})")
