"""What a method is, in one place: one MethodSpec per method.

A spec holds the rules a cell of that method must meet (world size, mask kind, the dimension
it splits over the ranks), its collective, its work model (the bytes and FLOPs one rank must
move per forward, which the floors read) and the class that runs it (kernels/methods.py).
Matrix validation, floors, the summary and the reports read the specs; adding a method, or a
method over a new 2:4 backend, is one class and one `register(MethodSpec(...))`.
"""

from __future__ import annotations

from dataclasses import dataclass

from common.errors import MatrixError, closest
from kernels import methods as m

COMPRESSED_FRACTION = 9 / 16  # a 2:4 half at 16-bit values: half the values + 2-bit indices


@dataclass(frozen=True)
class Share:
    """A fraction of a whole-layer quantity one rank handles; `per_rank` divides it by the
    world size too (a tensor-parallel shard)."""

    fraction: float = 1.0
    per_rank: bool = False

    def of(self, total: float, world_size: int) -> float:
        return total * self.fraction / (world_size if self.per_rank else 1)


FULL = Share()
SHARD = Share(per_rank=True)


@dataclass(frozen=True)
class WorkModel:
    """Per rank, per forward: shares of the full weight bytes, FLOPs, X bytes and Y bytes."""

    weight: Share = FULL
    flops: Share = FULL
    x: Share = FULL
    y: Share = FULL


@dataclass(frozen=True)
class Work:
    """What one rank must move and compute per forward (the floor's inputs)."""

    weight_bytes: float
    bytes: float
    flops: float
    collective: str | None
    collective_bytes: float


@dataclass(frozen=True)
class MethodSpec:
    """One method: its rules, its collective, its work model and the class that runs it.

    world_size: the one world size it runs at, or None for any that divides `split`.
    mask: "none" (takes no mask), "any" (any complementary 2:4 pair) or "periodic".
    split: the cell dimension divided over the ranks ("N" input features, "N_out" output
    features), or None.
    semi_structured: multiplies a compressed 2:4 half (so a 2:4 backend applies).
    """

    name: str
    cls: type
    world_size: int | None
    mask: str = "none"
    split: str | None = None
    collective: str | None = None
    backward_collective: str | None = None  # grad_X's collective (phase2, phase3)
    work_model: WorkModel = WorkModel()
    semi_structured: bool = False

    def work(self, n_in: int, n_out: int, batch: int, elem: int, ws: int) -> Work:
        """Bytes, FLOPs and collective bytes one rank moves per forward at this shape."""
        wm = self.work_model
        coll = self.collective if ws > 1 else None
        w = wm.weight.of(elem * n_in * n_out, ws)
        x = wm.x.of(elem * batch * n_in, ws)
        y = wm.y.of(elem * batch * n_out, ws)
        return Work(
            weight_bytes=w,
            bytes=w + x + y,
            flops=wm.flops.of(2.0 * batch * n_in * n_out, ws),
            collective=coll,
            collective_bytes=elem * batch * n_out if coll else 0,
        )


REGISTRY: dict[str, MethodSpec] = {}


def register(spec: MethodSpec) -> MethodSpec:
    """Add a method; its class learns its name, collective and 2:4-ness from the spec."""
    if spec.mask not in ("none", "any", "periodic"):
        raise MatrixError(f"method {spec.name!r}: mask rule {spec.mask!r} is not none/any/periodic")
    if spec.split not in (None, "N", "N_out"):
        raise MatrixError(f"method {spec.name!r}: split {spec.split!r} is not N, N_out or None")
    spec.cls.name = spec.name
    spec.cls.collective = spec.collective
    spec.cls.backward_collective = spec.backward_collective
    spec.cls.semi_structured = spec.semi_structured
    REGISTRY[spec.name] = spec
    return spec


def spec(name: str) -> MethodSpec:
    if name not in REGISTRY:
        raise MatrixError(
            f"unknown method {name!r}{closest(name, REGISTRY)}; methods: {sorted(REGISTRY)}"
        )
    return REGISTRY[name]


HALF = Share(fraction=0.5)
SPARSE_HALF = WorkModel(weight=Share(COMPRESSED_FRACTION), flops=HALF)

register(MethodSpec("dense_single", m.DenseSingle, world_size=1))
register(
    MethodSpec(
        "dense_tp_row",
        m.DenseTPRow,
        world_size=None,
        split="N",
        collective="all_reduce",
        backward_collective="all_gather",
        work_model=WorkModel(weight=SHARD, flops=SHARD, x=SHARD),
    )
)
register(
    MethodSpec(
        "dense_tp_col",
        m.DenseTPCol,
        world_size=None,
        split="N_out",
        collective="all_gather",
        backward_collective="all_reduce",
        work_model=WorkModel(weight=SHARD, flops=SHARD, y=SHARD),
    )
)
register(
    MethodSpec(
        "dense_tp_interleaved",
        m.DenseTPInterleaved,
        world_size=2,
        mask="periodic",
        collective="all_reduce",
        backward_collective="all_gather",
        work_model=WorkModel(weight=SHARD, flops=SHARD, x=SHARD),
    )
)
register(
    MethodSpec(
        "masked_split_dense",
        m.MaskedSplitDense,
        world_size=2,
        mask="any",
        collective="all_reduce",
        backward_collective="all_reduce",
    )
)
register(
    MethodSpec(
        "block_shock",
        m.BlockShock,
        world_size=2,
        mask="any",
        collective="all_reduce",
        backward_collective="all_reduce",
        work_model=SPARSE_HALF,
        semi_structured=True,
    )
)
register(
    MethodSpec("dense_half", m.DenseHalf, world_size=1, work_model=WorkModel(HALF, HALF, HALF))
)
register(
    MethodSpec(
        "block_shock_half",
        m.BlockShockHalf,
        world_size=1,
        mask="any",
        work_model=SPARSE_HALF,
        semi_structured=True,
    )
)

# The baselines every timed method is compared with in the end-of-run summary.
SUMMARY_BASELINES = ("dense_single", "dense_tp_row")
