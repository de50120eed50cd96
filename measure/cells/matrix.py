"""benchmarks.json, the cell matrix: loaded, validated and expanded into CellSpecs.

One file is the source of truth for the pytest cells and the asv suite alike. Every rule is
checked when the file is loaded, so a typo fails collection with a message that names the file,
the key, the bad value, the closest allowed one and all of them, before any process group or GPU
is touched: each axis's values against what is implemented (`implemented_values`), each
block's values against the axes.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from common.cell import AXES, OPTIONAL_AXES, CellSpec
from common.dtypes import DTYPE_NAMES
from common.errors import MatrixError, closest
from kernels import registry
from kernels.masks import MASKS, PERIODIC_MASKS, TRANSPOSABLE_MASKS
from kernels.training import OPTIMIZERS, VARIANTS
from measure.cells.workloads import WORKLOADS
from measure.phases import PHASES
from measure.timing.policy import TimingPolicy

DEFAULT_PATH = Path(__file__).resolve().parents[2] / "benchmarks.json"
SCHEMA_VERSION = 1

LIST_AXES = ("phase", "method", "dtype", "mask", "workload", "bias")
OPTIONAL_LIST_AXES = ("backend", "optimizer", "variant")  # benchmarks.json may omit their lists
INT_AXES = ("N", "N_out", "B", "world_size")
BLOCK_DEFAULTS = {
    "dtype": ["bf16"],
    "workload": ["gaussian"],
    "bias": [False],
    "N_out": [None],
    "mask": [None],
    **{axis: [None] for axis in OPTIONAL_AXES},
}


@dataclass(frozen=True)
class Suite:
    name: str
    description: str
    cells: tuple[CellSpec, ...]
    timing: TimingPolicy = field(default_factory=TimingPolicy)


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


def implemented_values() -> dict[str, tuple]:
    """Every value each listed axis can take, read from where it is implemented: a value of
    benchmarks.json's `axes` outside these fails loading (so a typo fails collection). Read
    per load, so methods a plugin registers count."""
    return {
        "phase": tuple(PHASES),
        "method": registry.method_names(),
        "dtype": DTYPE_NAMES,
        "mask": MASKS,
        "workload": tuple(WORKLOADS),
        "bias": (False, True),
        "backend": registry.backend_names(),
        "optimizer": OPTIMIZERS,
        "variant": VARIANTS,
    }


def _fail(path, where, msg):
    raise MatrixError(f"{path}: {where}: {msg}")


def _check_keys(path, where, got, allowed):
    for k in got:
        if k not in allowed:
            _fail(
                path, where, f"unknown key {k!r}{closest(k, allowed)}; allowed: {sorted(allowed)}"
            )


def validate_cell(cell: CellSpec, where: str = "") -> None:
    """Rules that hold on every machine, read from the method's spec; a broken one raises
    MatrixError naming the cell and the rule."""
    name = where or cell.name
    spec = registry.spec(cell.method)
    for axis in INT_AXES:
        v = getattr(cell, axis)
        if not isinstance(v, int) or isinstance(v, bool) or v <= 0:
            raise MatrixError(f"{name}: {axis} must be a positive integer, got {v!r}")
    if cell.steps is not None and (not isinstance(cell.steps, int) or cell.steps <= 0):
        raise MatrixError(f"{name}: steps must be a positive integer, got {cell.steps!r}")
    if spec.world_size is not None and cell.world_size != spec.world_size:
        raise MatrixError(
            f"{name}: {cell.method} runs with world_size {spec.world_size} only, "
            f"got {cell.world_size}"
        )
    if spec.split and getattr(cell, spec.split) % cell.world_size:
        raise MatrixError(
            f"{name}: {cell.method} splits {spec.split}={getattr(cell, spec.split)} over "
            f"{cell.world_size} ranks"
        )
    if spec.mask != "none":
        if cell.mask is None:
            raise MatrixError(f"{name}: {cell.method} needs a mask")
        if spec.mask == "periodic" and cell.mask not in PERIODIC_MASKS:
            raise MatrixError(
                f"{name}: {cell.method} needs a periodic mask {PERIODIC_MASKS}, got {cell.mask!r}"
            )
        if cell.N % 4:
            raise MatrixError(f"{name}: a 2:4 mask needs N (input features) a multiple of 4")
    elif cell.mask is not None:
        raise MatrixError(f"{name}: {cell.method} takes no mask, got {cell.mask!r}")
    if cell.backend is not None and not spec.semi_structured:
        raise MatrixError(f"{name}: {cell.method} has no 2:4 kernel, so takes no backend")
    if not spec.runs(cell.phase):
        raise MatrixError(f"{name}: {cell.method} runs {spec.phases} only, not {cell.phase}")
    _training_rules(cell, name)
    phase = PHASES[cell.phase]
    for axis in ("optimizer", "variant", "steps"):
        wanted = axis in phase.axes and (axis != "variant" or spec.semi_structured)
        value = getattr(cell, axis)
        if wanted and value is None:
            raise MatrixError(f"{name}: {cell.phase} of {cell.method} needs a {axis}")
        if not wanted and value is not None:
            raise MatrixError(f"{name}: {cell.phase} of {cell.method} takes no {axis}")


def _training_rules(cell: CellSpec, name: str) -> None:
    """What phase3 and drift need of a cell, checked before anything runs."""
    if cell.phase == "phase3" and cell.bias:
        raise MatrixError(f"{name}: a train step trains W only; phase3 cells take bias false")
    if cell.variant == "T1m" and cell.mask not in TRANSPOSABLE_MASKS:
        raise MatrixError(
            f"{name}: T1m re-chooses a transposable mask every step, so it starts from one of "
            f"{TRANSPOSABLE_MASKS}, got {cell.mask!r}"
        )
    if cell.phase == "drift" and cell.N_out != cell.N:
        raise MatrixError(f"{name}: drift applies x <- x + tanh(layer(x)), so N_out must be N")


def _normalized(cell: CellSpec) -> CellSpec:
    """A block's cross product names every axis for every phase and method: each cell keeps
    only the axes its phase and method take (a dense method's mask, a phase0 optimizer go)."""
    spec = registry.spec(cell.method)
    phase = PHASES[cell.phase]
    keep = {
        "mask": spec.mask != "none",
        "backend": spec.semi_structured,
        "optimizer": "optimizer" in phase.axes,
        "variant": "variant" in phase.axes and spec.semi_structured,
        "steps": "steps" in phase.axes,
    }
    dropped: dict[str, Any] = {axis: None for axis, kept in keep.items() if not kept}
    return replace(cell, **dropped)


def _expand_block(path, where, block, axes) -> list[CellSpec]:
    _check_keys(path, where, block, AXES)
    for req in ("phase", "method", "N", "B", "world_size"):
        if req not in block:
            _fail(path, where, f"missing key {req!r}")
    values = {**BLOCK_DEFAULTS, **block}
    for axis, vals in values.items():
        if not isinstance(vals, list) or not vals:
            _fail(path, f"{where}.{axis}", f"must be a non-empty list, got {vals!r}")
        if axis in LIST_AXES + OPTIONAL_LIST_AXES:
            for v in vals:
                if v is not None and v not in axes.get(axis, []):
                    _fail(
                        path,
                        f"{where}.{axis}",
                        f"unknown value {v!r}{closest(v, axes.get(axis, []))}; "
                        f"allowed: {axes.get(axis, [])}",
                    )
        else:
            for v in vals:
                if v is not None and (not isinstance(v, int) or isinstance(v, bool) or v <= 0):
                    _fail(path, f"{where}.{axis}", f"must be positive integers, got {v!r}")
    for method in values["method"]:
        fixed = registry.spec(method).world_size
        if fixed and fixed not in values["world_size"]:
            _fail(
                path,
                f"{where}.world_size",
                f"{method} runs with world_size {fixed} only, "
                f"and this block has {values['world_size']}",
            )
    cells: list[CellSpec] = []
    for combo in itertools.product(*(values[axis] for axis in AXES)):
        point = dict(zip(AXES, combo, strict=True))
        fixed = registry.spec(point["method"]).world_size
        if fixed and point["world_size"] != fixed:
            continue  # a block may mix world sizes; each method keeps the ones it runs at
        point["N_out"] = point["N_out"] or point["N"]
        cell = _normalized(CellSpec(**point))
        if cell in cells:
            continue  # the axes it does not take collapsed it onto a cell already listed
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
    _check_keys(path, "axes", axes, LIST_AXES + OPTIONAL_LIST_AXES)
    for axis, implemented in implemented_values().items():
        values = axes.get(axis, [])
        if not isinstance(values, list):
            _fail(path, f"axes.{axis}", f"must be a list, got {values!r}")
        for v in values:
            if not any(v == i and type(v) is type(i) for i in implemented):  # 1 is not True
                _fail(
                    path,
                    f"axes.{axis}",
                    f"{v!r} is not implemented{closest(v, implemented)}; "
                    f"implemented: {list(implemented)}",
                )
    for axis in LIST_AXES:
        if axis not in axes:
            _fail(path, "axes", f"missing axis {axis!r}")
    suites = {}
    for sname, sdoc in doc.get("suites", {}).items():
        where = f"suites.{sname}"
        _check_keys(path, where, sdoc, {"description", "timing", "blocks"})
        timing = sdoc.get("timing", {})
        _check_keys(path, f"{where}.timing", timing, TimingPolicy.keys())
        for k, v in timing.items():
            problem = TimingPolicy.problem(k, v)
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
            TimingPolicy().updated(**timing),
        )
    return Matrix(path, axes, suites)
