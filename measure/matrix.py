"""benchmarks.json, the cell matrix: loaded, validated and expanded into CellSpecs.

One file is the source of truth for the pytest cells and the asv suite alike. Every rule is
checked when the file is loaded, so a typo fails collection with a message that names the file,
the key, the bad value and the allowed ones, before any process group or GPU is touched.
"""

from __future__ import annotations

import itertools
import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

from common.dtypes import DTYPE_NAMES
from common.errors import MatrixError, closest

DEFAULT_PATH = Path(__file__).resolve().parent.parent / "benchmarks.json"
SCHEMA_VERSION = 1

# Each method's fixed world size (None: any size that divides the split dimension) and whether
# it takes a mask. The kernels registry asserts it implements exactly these names.
METHOD_RULES: dict[str, dict] = {
    "dense_single": {"world_size": 1, "mask": False},
    "dense_tp_row": {"world_size": None, "mask": False},
    "dense_tp_col": {"world_size": None, "mask": False},
    "dense_tp_interleaved": {"world_size": 2, "mask": "periodic"},
    "masked_split_dense": {"world_size": 2, "mask": True},
    "block_shock": {"world_size": 2, "mask": True},
    "dense_half": {"world_size": 1, "mask": False},
    "block_shock_half": {"world_size": 1, "mask": True},
}
PERIODIC_MASKS = ("complement_1100_0011", "complement_1010_0101", "complement_1001_0110")
AXES = ("phase", "method", "N", "N_out", "B", "dtype", "mask", "workload", "world_size", "bias")
LIST_AXES = ("phase", "method", "dtype", "mask", "workload", "bias")
INT_AXES = ("N", "N_out", "B", "world_size")
BLOCK_DEFAULTS = {"dtype": ["bf16"], "workload": ["gaussian"], "bias": [False], "N_out": [None]}
# The timing policy where neither the suite nor an option sets one (nvbench's defaults).
TIMING_DEFAULTS = {
    "min_samples": 10,
    "min_time_s": 0.5,
    "max_time_s": 15.0,
    "max_noise": 0.005,
    "sample_s": 0.01,
    "warmup_s": 1.0,
    "max_duty": 1.0,
    "energy_window_s": 1.0,
    "idle_s": 0.5,
}
TIMING_KEYS = {
    "min_samples": int,
    "min_time_s": float,
    "max_time_s": float,
    "max_noise": float,
    "sample_s": float,
    "warmup_s": float,
    "max_duty": float,
    "energy_window_s": float,
    "idle_s": float,
}

ZERO_OK = {"warmup_s"}  # no warm-up beyond one call is a valid (if unwise) policy


def timing_value_problem(key: str, v) -> str | None:
    """What is wrong with a timing value (from benchmarks.json or an option), or None."""
    number = isinstance(v, (int, float)) and not isinstance(v, bool)
    if not number or not math.isfinite(v) or v < 0 or (v == 0 and key not in ZERO_OK):
        return f"must be a finite positive number, got {v!r}"
    if key == "max_duty" and v > 1:
        return f"is a fraction of the time, at most 1; got {v!r}"
    return None


@dataclass(frozen=True)
class CellSpec:
    """One point of the matrix: what a parametrized pytest cell runs."""

    phase: str
    method: str
    N: int
    N_out: int
    B: int
    dtype: str
    mask: str | None
    workload: str
    world_size: int
    bias: bool

    @property
    def id(self) -> str:
        """Readable pytest id, e.g. block_shock-N256-B64-bf16-random_2of4-gaussian-ws2."""
        n = f"N{self.N}" if self.N_out == self.N else f"N{self.N}x{self.N_out}"
        parts = [self.method, n, f"B{self.B}", self.dtype]
        if self.mask:
            parts.append(self.mask)
        parts += [self.workload, f"ws{self.world_size}"]
        if self.bias:
            parts.append("bias")
        return "-".join(parts)

    @property
    def name(self) -> str:
        return f"{self.phase}[{self.id}]"

    def as_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> CellSpec:
        return cls(**{k: d[k] for k in AXES})


@dataclass(frozen=True)
class Suite:
    name: str
    description: str
    cells: tuple[CellSpec, ...]
    timing: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Matrix:
    path: Path
    axes: dict
    suites: dict[str, Suite]

    def suite(self, name: str) -> Suite:
        if name not in self.suites:
            raise MatrixError(
                f"{self.path}: no suite {name!r}{closest(name, self.suites)}; "
                f"suites: {sorted(self.suites)}"
            )
        return self.suites[name]


def _fail(path, where, msg):
    raise MatrixError(f"{path}: {where}: {msg}")


def _check_keys(path, where, got, allowed):
    for k in got:
        if k not in allowed:
            _fail(
                path, where, f"unknown key {k!r}{closest(k, allowed)}; allowed: {sorted(allowed)}"
            )


def validate_cell(cell: CellSpec, where: str = "") -> None:
    """Rules that hold on every machine; a broken one raises MatrixError naming the cell."""
    name = where or cell.name
    rule = METHOD_RULES[cell.method]
    for axis in INT_AXES:
        v = getattr(cell, axis)
        if not isinstance(v, int) or isinstance(v, bool) or v <= 0:
            raise MatrixError(f"{name}: {axis} must be a positive integer, got {v!r}")
    ws = rule["world_size"]
    if ws is not None and cell.world_size != ws:
        raise MatrixError(
            f"{name}: {cell.method} runs with world_size {ws} only, got {cell.world_size}"
        )
    if cell.method == "dense_tp_row" and cell.N % cell.world_size:
        raise MatrixError(f"{name}: dense_tp_row splits N={cell.N} over {cell.world_size} ranks")
    if cell.method == "dense_tp_col" and cell.N_out % cell.world_size:
        raise MatrixError(
            f"{name}: dense_tp_col splits N_out={cell.N_out} over {cell.world_size} ranks"
        )
    if rule["mask"]:
        if cell.mask is None:
            raise MatrixError(f"{name}: {cell.method} needs a mask")
        if rule["mask"] == "periodic" and cell.mask not in PERIODIC_MASKS:
            raise MatrixError(
                f"{name}: {cell.method} needs a periodic mask {PERIODIC_MASKS}, got {cell.mask!r}"
            )
        if cell.N % 4:
            raise MatrixError(f"{name}: a 2:4 mask needs N (input features) a multiple of 4")
    elif cell.mask is not None:
        raise MatrixError(f"{name}: {cell.method} takes no mask, got {cell.mask!r}")


def _expand_block(path, where, block, axes) -> list[CellSpec]:
    _check_keys(path, where, block, AXES)
    for req in ("phase", "method", "N", "B", "world_size"):
        if req not in block:
            _fail(path, where, f"missing key {req!r}")
    values = {**BLOCK_DEFAULTS, **block}
    for axis, vals in values.items():
        if not isinstance(vals, list) or not vals:
            _fail(path, f"{where}.{axis}", f"must be a non-empty list, got {vals!r}")
        if axis in LIST_AXES:
            for v in vals:
                if v not in axes[axis]:
                    _fail(
                        path,
                        f"{where}.{axis}",
                        f"unknown value {v!r}{closest(v, axes[axis])}; allowed: {axes[axis]}",
                    )
        else:
            for v in vals:
                if v is not None and (not isinstance(v, int) or isinstance(v, bool) or v <= 0):
                    _fail(path, f"{where}.{axis}", f"must be positive integers, got {v!r}")
    for method in values["method"]:
        fixed = METHOD_RULES[method]["world_size"]
        if fixed and fixed not in values["world_size"]:
            _fail(
                path,
                f"{where}.world_size",
                f"{method} runs with world_size {fixed} only, "
                f"and this block has {values['world_size']}",
            )
    cells = []
    masks = values.get("mask", [None])
    for phase, method, n, n_out, b, dt, mask, wl, ws, bias in itertools.product(
        values["phase"],
        values["method"],
        values["N"],
        values["N_out"],
        values["B"],
        values["dtype"],
        masks,
        values["workload"],
        values["world_size"],
        values["bias"],
    ):
        if ws != METHOD_RULES[method]["world_size"] and METHOD_RULES[method]["world_size"]:
            continue  # a block may mix world sizes; each method keeps the ones it runs at
        mask = mask if METHOD_RULES[method]["mask"] else None
        cell = CellSpec(phase, method, n, n_out or n, b, dt, mask, wl, ws, bias)
        validate_cell(cell, f"{path}: {where}: {cell.name}")
        cells.append(cell)
    return cells


def load_matrix(path: str | Path = DEFAULT_PATH) -> Matrix:
    """Read and validate benchmarks.json; raise MatrixError naming file, key and value."""
    path = Path(path)
    try:
        doc = json.loads(path.read_text())
    except FileNotFoundError:
        raise MatrixError(f"{path}: file not found") from None
    except json.JSONDecodeError as e:
        raise MatrixError(f"{path}: not valid JSON: {e}") from None
    _check_keys(path, "top level", doc, {"schema_version", "axes", "suites"})
    if doc.get("schema_version") != SCHEMA_VERSION:
        _fail(
            path, "schema_version", f"expected {SCHEMA_VERSION}, got {doc.get('schema_version')!r}"
        )
    axes = doc.get("axes", {})
    _check_keys(path, "axes", axes, LIST_AXES)
    known = {"method": METHOD_RULES, "dtype": DTYPE_NAMES, "phase": ("phase0", "phase1")}
    for axis, implemented in known.items():
        for v in axes.get(axis, []):
            if v not in implemented:
                _fail(
                    path,
                    f"axes.{axis}",
                    f"{v!r} is not implemented; implemented: {list(implemented)}",
                )
    for axis in LIST_AXES:
        if axis not in axes:
            _fail(path, "axes", f"missing axis {axis!r}")
    suites = {}
    for sname, sdoc in doc.get("suites", {}).items():
        where = f"suites.{sname}"
        _check_keys(path, where, sdoc, {"description", "timing", "blocks"})
        timing = sdoc.get("timing", {})
        _check_keys(path, f"{where}.timing", timing, TIMING_KEYS)
        for k, v in timing.items():
            problem = timing_value_problem(k, v)
            if problem:
                _fail(path, f"{where}.timing.{k}", problem)
        cells: list[CellSpec] = []
        for i, block in enumerate(sdoc.get("blocks", [])):
            cells += _expand_block(path, f"{where}.blocks[{i}]", block, axes)
        if not cells:
            _fail(path, where, "expands to no cells")
        dupes = {c.name for c in cells if cells.count(c) > 1}
        if dupes:
            _fail(path, where, f"cells listed twice: {sorted(dupes)[:3]}")
        suites[sname] = Suite(
            sname,
            sdoc.get("description", ""),
            tuple(cells),
            {k: TIMING_KEYS[k](v) for k, v in timing.items()},
        )
    return Matrix(path, axes, suites)
