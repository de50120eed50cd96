"""Complementary 2:4 masks over the input features of a weight W (N_out x N_in).

Each mask pair (M0, M1) keeps, in every group of 4 consecutive input columns of every row,
two entries for rank 0 and the other two for rank 1, so W*M0 and W*M1 are each valid 2:4
sparse and M0 + M1 = 1. Periodic masks repeat one pattern everywhere (then a compressed half
is just a dense matrix of interleaved columns); random and magnitude masks differ from group to
group, which is where the 2:4 kernel has to earn its keep.

Transposable pairs (`TRANSPOSABLE_MASKS`) keep 2 of 4 in every row AND every column of each 4x4
tile, so W_g^T is 2:4 as well and Block-Shock's backward (grad_X = grad_Y W_g) can run on the
2:4 kernel with W_g^T as the sparse operand. There are 90 such tiles, and the complement of one
is one too, so the pair is (tile, complement) everywhere:
- transposable_random: a seeded uniform choice among the 90 tiles, per tile;
- transposable_magnitude: per tile, the one of the 90 patterns whose kept |W| sum is largest
  (exhaustive, so the optimum, not Hubara et al.'s greedy 2-approximation); rank 0 keeps it;
- transposable_periodic: one fixed tile (rows 1100/0110/0011/1001, a circulant) everywhere.
"""

from __future__ import annotations

import functools
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
# Every 4x4 0/1 tile with two ones in each row and each column (90 of them), flattened.
_TILES = torch.tensor(
    [
        [v for row in rows for v in row]
        for rows in itertools.product(_TWO_OF_FOUR.int().tolist(), repeat=4)
        if all(sum(col) == 2 for col in zip(*rows, strict=True))
    ],
    dtype=torch.bool,
)
_PERIODIC_TILE = torch.tensor(
    [[1, 1, 0, 0], [0, 1, 1, 0], [0, 0, 1, 1], [1, 0, 0, 1]], dtype=torch.bool
).flatten()
TRANSPOSABLE_MASKS = ("transposable_random", "transposable_magnitude", "transposable_periodic")
PERIODIC_MASKS = tuple(_PATTERNS)
MASKS = (*PERIODIC_MASKS, "random_2of4", "magnitude_2of4", *TRANSPOSABLE_MASKS)


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
    if name in TRANSPOSABLE_MASKS:
        m0 = _transposable_m0(name, weight, generator)
        validate_transposable_pair(m0, ~m0, name)
        return m0, ~m0
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


def _tiles_to_matrix(tiles: torch.Tensor, n_out: int, n_in: int) -> torch.Tensor:
    """(n_out/4 * n_in/4, 16) tiles, row-major over the tile grid, back to n_out x n_in."""
    return tiles.reshape(n_out // 4, n_in // 4, 4, 4).permute(0, 2, 1, 3).reshape(n_out, n_in)


def _check_tile_shape(name: str, shape) -> tuple[int, int]:
    n_out, n_in = shape
    if n_out % 4 or n_in % 4:
        raise MaskError(
            f"mask {name!r}: a transposable mask tiles W in 4x4 blocks, so N_out and N_in must "
            f"both be multiples of 4; got N_out={n_out}, N_in={n_in}"
        )
    return n_out, n_in


def transposable_magnitude_m0(weight: torch.Tensor) -> torch.Tensor:
    """Rank 0's transposable mask: per 4x4 tile the pattern (of 90) keeping the largest |W| sum.

    The T1m training variant calls this after every optimizer step, so it is its own function
    (the prune time the harness measures). Ties go to the first pattern in `_TILES`' order.
    """
    n_out, n_in = _check_tile_shape("transposable_magnitude", weight.shape)
    mag = weight.detach().abs().float().reshape(n_out // 4, 4, n_in // 4, 4)
    mag = mag.permute(0, 2, 1, 3).reshape(-1, 16)
    tiles = _tiles_on(weight.device)
    best = (mag @ tiles.float().t()).argmax(dim=1)
    return _tiles_to_matrix(tiles[best], n_out, n_in)


@functools.cache
def _tiles_on(device: torch.device) -> torch.Tensor:
    """The 90 tiles on `device`, copied there once: T1m re-chooses its mask every train step,
    and a host-to-device copy inside a CUDA graph capture of that step is not allowed."""
    return _TILES.to(device)


def _transposable_m0(name, weight, generator):
    n_out, n_in = _check_tile_shape(name, weight.shape)
    count = (n_out // 4) * (n_in // 4)
    if name == "transposable_magnitude":
        return transposable_magnitude_m0(weight)
    if name == "transposable_periodic":
        return _tiles_to_matrix(_PERIODIC_TILE.to(weight.device).expand(count, 16), n_out, n_in)
    dev = generator.device if generator is not None else weight.device
    choice = torch.randint(0, len(_TILES), (count,), generator=generator, device=dev)
    return _tiles_to_matrix(_TILES.to(dev)[choice], n_out, n_in).to(weight.device)


def is_transposable(m: torch.Tensor) -> bool:
    """True if every 4x4 tile of `m` keeps 2 of 4 in each row and each column."""
    n_out, n_in = m.shape
    if n_out % 4 or n_in % 4:
        return False
    t = m.reshape(n_out // 4, 4, n_in // 4, 4).int()
    return bool((t.sum(3) == 2).all() and (t.sum(1) == 2).all())


def validate_transposable_pair(m0: torch.Tensor, m1: torch.Tensor, name: str = "mask") -> None:
    """Raise MaskError unless (M0, M1) is complementary and each is 2:4 along rows and columns
    of every 4x4 tile; the message names the mask, the row or column and the tile."""
    _check_tile_shape(name, m0.shape)
    validate_pair(m0, m1, name)
    n_out, n_in = m0.shape
    for i, m in enumerate((m0, m1)):
        per_col = m.reshape(n_out // 4, 4, n_in // 4, 4).int().sum(1)  # tile row, tile col, col
        bad = (per_col != 2).nonzero()
        if len(bad):
            tr, tc, c = bad[0].tolist()
            raise MaskError(
                f"{name}: M{i} is not transposable: column {4 * tc + c} keeps "
                f"{per_col[tr, tc, c].item()} of 4 in tile ({tr}, {tc}) (rows {4 * tr}-"
                f"{4 * tr + 3}); a 2:4 backward needs W_g^T 2:4 ({len(bad)} bad tile columns)"
            )
