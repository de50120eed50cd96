"""What a method or a 2:4 backend is, in one place: one MethodSpec per method, one BackendSpec per
backend, and nowhere else.

A method's spec holds the rules a cell of it must meet (world size, mask kind, the dimension it
splits over the ranks, the phases it runs), its collectives, its work model (the bytes and FLOPs
one rank moves per forward: the floor's inputs), how the reports show it (label, colour, marker)
and its part in the questions they answer (`Role`: H1-H3, the original study's table, the
summary's baselines). A backend's spec holds its name, how it is shown and where it is the
default. Matrix validation, the floors, the summary, the reports and the scripts read these
specs; no method or backend name is written anywhere else.

This module imports no torch, so reports/ reads labels, styles and roles without it. Built-in
classes are named lazily ("kernels.methods:BlockShock") and imported on first use; an extension
passes its class itself. Extensions are modules that call `register` / `register_backend` when
imported: `--bs-extension MODULE` (the pytest option) or the `BS_EXTENSIONS` environment variable
(comma-separated modules) loads them, in every process that looks a name up (rank workers and
study slices inherit the variable).
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, cast

from common.errors import MatrixError, closest

if TYPE_CHECKING:
    from kernels.backends.base import Backend
    from kernels.methods import Method

COMPRESSED_FRACTION = 9 / 16  # a 2:4 half at 16-bit values: half the values + 2-bit indices
EXTENSIONS_ENV = "BS_EXTENSIONS"
# What a record's kernel_backend says of a method with no 2:4 half, and what Block-Shock's backward
# says when its mask is not transposable (W_g kept dense for grad_X).
DENSE_KERNEL = "dense"
MASKED_DENSE_KERNEL = "masked_dense"

MASK_RULES = ("none", "any", "periodic")
SPLITS = (None, "N", "N_out")
QUESTIONS = ("H1", "H2", "H3", "study", "baseline")
TENSOR_CORES = ("sparse", "dense", None)  # what a backend's GEMM issues (BackendSpec)
MARKERS = ("o", "s", "D", "^", "v", "P", "X", "*")  # matplotlib markers a style may name
FALLBACK_COLORS = tuple(f"C{i}" for i in range(10))  # a method registered with no style


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
HALF = Share(fraction=0.5)


@dataclass(frozen=True)
class WorkModel:
    """Per rank, per forward: shares of the full weight bytes, FLOPs, X bytes and Y bytes."""

    weight: Share = FULL
    flops: Share = FULL
    x: Share = FULL
    y: Share = FULL


SPARSE_HALF = WorkModel(weight=Share(COMPRESSED_FRACTION), flops=HALF)


@dataclass(frozen=True)
class Work:
    """What one rank must move and compute per forward (the floor's inputs)."""

    weight_bytes: float
    bytes: float
    flops: float
    collective: str | None
    collective_bytes: float


@dataclass(frozen=True)
class Style:
    """How a method's series look in every plot: one matplotlib colour (the same in every
    figure) and the marker its first series takes."""

    color: str
    marker: str


@dataclass(frozen=True)
class Role:
    """A method's part in one question the reports answer.

    question: "H1", "H2", "H3" (the hypotheses), "study" (a ratio of the original study's table)
        or "baseline" (a denominator of the end-of-run summary and the speedup plots).
    against: the method this one is divided by in that ratio (None for a baseline).
    proxy: a one-GPU stand-in for a two-rank ratio (H1 falls back to it where the two-rank
        pair was not measured).
    label: the column or line that names the ratio, where the names alone would not say it.
    """

    question: str
    against: str | None = None
    proxy: bool = False
    label: str | None = None


@dataclass(frozen=True)
class Pair:
    """One ratio a question takes: numerator / denominator, as Roles declare it."""

    numerator: str
    denominator: str
    proxy: bool
    label: str | None


@dataclass(frozen=True)
class PeerName:
    """How the original Block-Shock study (docs/DESIGN.md) names one of our methods.

    column: the column of its table of forward times (docs/DESIGN.md, the report's comparison).
    records: the method name its records (metrics.jsonl) carry.
    world_size: the ranks its cell of this method used (its dense_single ran inside a two-rank
        job but is one GPU's work).
    backend: the 2:4 backend its records ran on (its Block-Shock multiplied a
        to_sparse_semi_structured weight through F.linear), None for a dense method.
    """

    column: str
    records: str
    world_size: int
    backend: str | None = None


@dataclass(frozen=True)
class MethodSpec:
    """One method: its rules, collectives, work model, looks, roles and the class that runs it.

    impl: the class (kernels/methods.py's Method), or "module:Class" imported on first use.
    world_size: the one world size it runs at, or None for any that divides `split`.
    mask: "none" (takes no mask), "any" (any complementary 2:4 pair) or "periodic".
    split: the cell dimension divided over the ranks ("N" input features, "N_out" output
        features), or None.
    semi_structured: multiplies a compressed 2:4 half (so a 2:4 backend applies, and a train
        step names its re-compression variant).
    phases: the phases it runs (None: every phase).
    label: what plots and tables call it (default: its name, which the tables show beside it).
    original_study: how the original study names it (PeerName), where it ran it.
    layout: a way to lay one layer out on its GPUs that the planner compares (not a one-GPU
        proxy of a two-GPU method, nor the periodic mask's twin).
    one_gpu_twin: the one-GPU method whose cell is exactly one of its ranks' compute (the same
        bytes and FLOPs; a test holds the work models to it): the planner composes a two-GPU
        cell from the twin's measured cell and a link model.
    """

    name: str
    impl: type[Method] | str
    world_size: int | None
    mask: str = "none"
    split: str | None = None
    collective: str | None = None
    backward_collective: str | None = None  # grad_X's collective (phase2, phase3)
    work_model: WorkModel = WorkModel()
    semi_structured: bool = False
    phases: tuple[str, ...] | None = None
    label: str | None = None
    style: Style | None = None
    roles: tuple[Role, ...] = ()
    original_study: PeerName | None = None
    one_gpu_twin: str | None = None
    layout: bool = False

    @property
    def cls(self) -> type[Method]:
        """The class that runs it (imported on first use when named by a string)."""
        return cast("type[Method]", _resolve(self.impl))

    @property
    def shown_as(self) -> str:
        return self.label or self.name

    def runs(self, phase: str) -> bool:
        return self.phases is None or phase in self.phases

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


@dataclass(frozen=True)
class BackendSpec:
    """One 2:4 backend: its name, how it is shown, where it is the default, its class.

    impl: a kernels/backends/base.Backend subclass, or "module:Class" imported on first use.
    label: what a plot's legend calls it (default: its name, as the tables show it).
    summary: one line on what it runs (the `--bs-backend` help and the docs).
    marker: the marker of a 2:4 method's series on it (the method keeps its colour).
    default_on: device types where a cell that names no backend runs on it ("auto").
    shown: named in a series' label (the emulated path is said by its report section instead).
    candidate: the auto backend times it for every shape and may pick it.
    tensor_cores: which tensor cores its GEMM issues, for the time model: "sparse" (the 2:4
        sparse MMAs), "dense" (the compressed weight expanded into dense MMAs over all N_in
        columns), or None where no one kernel can be said (the emulated path; auto, whose
        records name the backend it picked).
    """

    name: str
    impl: type[Backend] | str
    summary: str
    marker: str
    label: str | None = None
    default_on: tuple[str, ...] = ()
    shown: bool = True
    candidate: bool = False
    tensor_cores: str | None = None

    @property
    def shown_as(self) -> str:
        return self.label or self.name


_METHODS: dict[str, MethodSpec] = {}
_BACKENDS: dict[str, BackendSpec] = {}
_BY_CLASS: dict[str, MethodSpec] = {}  # "module:qualname" of a method's class -> its spec
_BACKEND_OBJECTS: dict[str, Backend] = {}
_CLASSES: dict[str, type] = {}
_loaded_from_env = ""


def _key(impl: type | str) -> str:
    return impl if isinstance(impl, str) else f"{impl.__module__}:{impl.__qualname__}"


def _resolve(impl: type | str) -> type:
    if not isinstance(impl, str):
        return impl
    if impl not in _CLASSES:
        module, _, name = impl.partition(":")
        _CLASSES[impl] = getattr(importlib.import_module(module), name)
    return _CLASSES[impl]


def _check_new(kind: str, name: str, table: Mapping[str, object], spec: object) -> bool:
    """True to add `spec`; False when this very spec is registered already (a module imported
    twice, by name and by unpickling); MatrixError for another spec under a taken name."""
    if name in table:
        if table[name] == spec:
            return False
        raise MatrixError(f"{kind} {name!r} is registered twice, with different specs")
    return True


def register(spec: MethodSpec, replace: bool = False) -> MethodSpec:
    """Add a method; MatrixError naming it and the rule if a field breaks one.

    `replace` lets an extension put another implementation behind a registered name (a test's
    planted slowdown: cells keep their names, so a gate compares them with an unchanged run);
    without it a second, different spec under a taken name is refused."""
    where = f"method {spec.name!r}"
    if spec.mask not in MASK_RULES:
        raise MatrixError(f"{where}: mask rule {spec.mask!r} is not one of {MASK_RULES}")
    if spec.split not in SPLITS:
        raise MatrixError(f"{where}: split {spec.split!r} is not N, N_out or None")
    if spec.style is not None and spec.style.marker not in MARKERS:
        raise MatrixError(f"{where}: marker {spec.style.marker!r} is not one of {MARKERS}")
    for role in spec.roles:
        if role.question not in QUESTIONS:
            raise MatrixError(f"{where}: role {role.question!r} is not one of {QUESTIONS}")
        if (role.against is None) != (role.question == "baseline"):
            raise MatrixError(
                f"{where}: a baseline role names no `against`; a {role.question} role needs one"
            )
    if replace or _check_new("method", spec.name, _METHODS, spec):
        _METHODS[spec.name] = spec
        _BY_CLASS[_key(spec.impl)] = spec
    return spec


def register_backend(spec: BackendSpec) -> BackendSpec:
    """Add a 2:4 backend; MatrixError naming it and the rule if a field breaks one."""
    if spec.marker not in MARKERS:
        raise MatrixError(f"backend {spec.name!r}: marker {spec.marker!r} is not one of {MARKERS}")
    if spec.tensor_cores not in TENSOR_CORES:
        raise MatrixError(
            f"backend {spec.name!r}: tensor_cores {spec.tensor_cores!r} is not one of "
            f"{TENSOR_CORES}"
        )
    for other in _BACKENDS.values():
        shared = set(other.default_on) & set(spec.default_on)
        if shared and other.name != spec.name:
            raise MatrixError(
                f"backend {spec.name!r}: {other.name!r} is already the default on {sorted(shared)}"
            )
    if _check_new("backend", spec.name, _BACKENDS, spec):
        _BACKENDS[spec.name] = spec
    return spec


def load_extensions(modules: Iterable[str]) -> None:
    """Import extension modules (each registers its methods and backends when imported) and
    name them in BS_EXTENSIONS, so processes started from this one load them too."""
    named = [m for m in os.environ.get(EXTENSIONS_ENV, "").split(",") if m]
    for module in modules:
        importlib.import_module(module)
        if module not in named:
            named.append(module)
    os.environ[EXTENSIONS_ENV] = ",".join(named)


def _discover() -> None:
    """Import the modules BS_EXTENSIONS names (once per value of the variable; a module that
    fails to import raises here, and again at the next look-up)."""
    global _loaded_from_env
    value = os.environ.get(EXTENSIONS_ENV, "")
    if value != _loaded_from_env:
        for module in filter(None, value.split(",")):
            importlib.import_module(module)
        _loaded_from_env = value


# -- methods ---------------------------------------------------------------------------------
def spec(name: str) -> MethodSpec:
    """The method called `name`; MatrixError naming the closest one if there is none."""
    _discover()
    if name not in _METHODS:
        raise MatrixError(
            f"unknown method {name!r}{closest(name, _METHODS)}; methods: {sorted(_METHODS)}"
        )
    return _METHODS[name]


def methods() -> tuple[MethodSpec, ...]:
    """Every registered method, in registration order."""
    _discover()
    return tuple(_METHODS.values())


def method_names() -> tuple[str, ...]:
    return tuple(m.name for m in methods())


def spec_for(cls: type) -> MethodSpec:
    """The spec of a method class, or of the nearest registered class it derives from (a test's
    planted subclass runs as its base)."""
    _discover()
    for c in cls.__mro__:
        found = _BY_CLASS.get(_key(c))
        if found is not None:
            return found
    raise MatrixError(f"method class {_key(cls)} is not registered (kernels/registry.py)")


def pairs(question: str) -> tuple[Pair, ...]:
    """The ratios `question` takes, two-rank ones before one-GPU proxies, then by name."""
    if question not in QUESTIONS or question == "baseline":
        raise MatrixError(f"pairs: {question!r} is not a ratio question; {QUESTIONS[:-1]}")
    found = [
        Pair(m.name, r.against, r.proxy, r.label)
        for m in methods()
        for r in m.roles
        if r.question == question and r.against is not None
    ]
    return tuple(sorted(found, key=lambda p: (p.proxy, p.numerator, p.denominator)))


def baselines() -> tuple[str, ...]:
    """The summary's and the speedup plots' denominators, in registration order."""
    return tuple(m.name for m in methods() if any(r.question == "baseline" for r in m.roles))


def style(name: str) -> Style:
    """A method's look; a name not registered here (an old record's, an extension not loaded)
    gets a fallback colour fixed by its name, so it looks the same in every plot too."""
    _discover()
    found = _METHODS.get(name)
    if found is not None and found.style is not None:
        return found.style
    index = sum(map(ord, name))
    return Style(FALLBACK_COLORS[index % len(FALLBACK_COLORS)], MARKERS[index % len(MARKERS)])


def label(name: str) -> str:
    """What plots call a method (its name where it is not registered here)."""
    _discover()
    found = _METHODS.get(name)
    return found.shown_as if found is not None else name


# -- 2:4 backends ------------------------------------------------------------------------------
def backend_spec(name: str) -> BackendSpec:
    """The backend called `name`; MatrixError naming the closest one if there is none."""
    _discover()
    if name not in _BACKENDS:
        raise MatrixError(
            f"unknown 2:4 backend {name!r}{closest(name, _BACKENDS)}; backends: {sorted(_BACKENDS)}"
        )
    return _BACKENDS[name]


def backend_specs() -> tuple[BackendSpec, ...]:
    _discover()
    return tuple(_BACKENDS.values())


def backend_names() -> tuple[str, ...]:
    return tuple(b.name for b in backend_specs())


def backend(name: str) -> Backend:
    """The backend's implementation (kernels/backends/base.Backend), made once per process."""
    found = backend_spec(name)
    if name not in _BACKEND_OBJECTS:
        cls = cast("type[Backend]", _resolve(found.impl))
        _BACKEND_OBJECTS[name] = cls(name)
    return _BACKEND_OBJECTS[name]


# The backend name a cell or a run gives to mean "the best this device has": on a GPU the
# backend of that name, which picks the fastest candidate per shape; elsewhere the device's
# default (the emulated path on a CPU).
AUTO = "auto"


def default_backend(device_type: str) -> str:
    """The backend a 2:4 method runs on where its cell names none and the run asks for AUTO."""
    for b in backend_specs():
        if device_type in b.default_on:
            return b.name
    raise MatrixError(f"no 2:4 backend is the default on {device_type!r}; register one")


def peers() -> dict[str, MethodSpec]:
    """The original study's method names (in its records) -> our method's spec."""
    return {m.original_study.records: m for m in methods() if m.original_study is not None}


def layouts() -> tuple[MethodSpec, ...]:
    """The methods the planner compares as ways to lay one layer out (MethodSpec.layout)."""
    return tuple(m for m in methods() if m.layout)


def twins() -> dict[str, str]:
    """Two-rank method -> its one-GPU twin (MethodSpec.one_gpu_twin), where it has one."""
    return {m.name: m.one_gpu_twin for m in methods() if m.one_gpu_twin is not None}


def auto_candidates() -> tuple[str, ...]:
    """The backends the auto backend chooses among (each still says whether it can run)."""
    return tuple(b.name for b in backend_specs() if b.candidate)


def find_backend(name: object) -> BackendSpec | None:
    """The backend a record names, or None (no backend, a dense kernel, one not loaded here)."""
    _discover()
    return _BACKENDS.get(name) if isinstance(name, str) else None


# -- the built-in methods ------------------------------------------------------------------------
def _method_class(name: str) -> str:
    return f"kernels.methods:{name}"


TP_ROW = WorkModel(weight=SHARD, flops=SHARD, x=SHARD)

register(
    MethodSpec(
        "dense_single",
        _method_class("DenseSingle"),
        world_size=1,
        style=Style("tab:blue", "o"),
        roles=(Role("baseline"),),
        original_study=PeerName("dense_single", "dense_single", 1),
        layout=True,
    )
)
register(
    MethodSpec(
        "dense_tp_row",
        _method_class("DenseTPRow"),
        world_size=None,
        split="N",
        collective="all_reduce",
        backward_collective="all_gather",
        work_model=TP_ROW,
        style=Style("tab:orange", "s"),
        roles=(Role("baseline"),),
        original_study=PeerName("dense_tp", "dense_tp", 2),
        layout=True,
        one_gpu_twin="dense_half",
    )
)
register(
    MethodSpec(
        "dense_tp_col",
        _method_class("DenseTPCol"),
        world_size=None,
        split="N_out",
        collective="all_gather",
        backward_collective="all_reduce",
        work_model=WorkModel(weight=SHARD, flops=SHARD, y=SHARD),
        style=Style("tab:green", "D"),
        layout=True,
    )
)
register(
    MethodSpec(
        "dense_tp_interleaved",
        _method_class("DenseTPInterleaved"),
        world_size=2,
        mask="periodic",
        collective="all_reduce",
        backward_collective="all_gather",
        work_model=TP_ROW,
        style=Style("tab:olive", "^"),
    )
)
register(
    MethodSpec(
        "masked_split_dense",
        _method_class("MaskedSplitDense"),
        world_size=2,
        mask="any",
        collective="all_reduce",
        backward_collective="all_reduce",
        style=Style("tab:purple", "v"),
        roles=(Role("H3", "block_shock"), Role("study", "dense_tp_row")),
        original_study=PeerName("masked_split", "masked_split_dense", 2),
        layout=True,
        one_gpu_twin="dense_single",
    )
)
register(
    MethodSpec(
        "block_shock",
        _method_class("BlockShock"),
        world_size=2,
        mask="any",
        collective="all_reduce",
        backward_collective="all_reduce",
        work_model=SPARSE_HALF,
        semi_structured=True,
        style=Style("tab:red", "P"),
        roles=(
            Role("H1", "dense_tp_row"),
            Role("H2", "dense_tp_row"),
            Role("study", "dense_single"),
            Role("study", "dense_tp_row"),
        ),
        original_study=PeerName("block_shock", "block_shock_2gpu", 2, "flinear"),
        layout=True,
        one_gpu_twin="block_shock_half",
    )
)
register(
    MethodSpec(
        "dense_half",
        _method_class("DenseHalf"),
        world_size=1,
        work_model=WorkModel(HALF, HALF, HALF),
        style=Style("tab:cyan", "X"),
    )
)
register(
    MethodSpec(
        "block_shock_half",
        _method_class("BlockShockHalf"),
        world_size=1,
        mask="any",
        work_model=SPARSE_HALF,
        semi_structured=True,
        style=Style("tab:brown", "P"),
        roles=(
            Role("H1", "dense_half", proxy=True),
            Role("H2", "dense_half", proxy=True),
            Role("study", "dense_half", proxy=True, label="half: block_shock/dense (one GPU)"),
        ),
    )
)

# -- the built-in 2:4 backends (kernels/backends/, one module each) -----------------------------
register_backend(
    BackendSpec(
        "cslt",
        "kernels.backends.cslt:Cslt",
        "torch._cslt_sparse_mm with the alg and split-K its search picked (cached per machine "
        "and shape)",
        marker="s",
        candidate=True,
        tensor_cores="sparse",
    )
)
register_backend(
    BackendSpec(
        "cslt_padded",
        "kernels.backends.cslt_padded:CsltPadded",
        "cslt with B padded to the batch size that ran fastest when the half was built",
        marker="D",
        candidate=True,
        tensor_cores="sparse",
    )
)
register_backend(
    BackendSpec(
        "flinear",
        "kernels.backends.flinear:FLinear",
        "to_sparse_semi_structured + F.linear, the path most users write",
        marker="^",
        tensor_cores="sparse",
    )
)
register_backend(
    BackendSpec(
        "triton",
        "kernels.backends.triton_half:Triton",
        "this project's compressed format and Triton kernel (kernels/triton24.py), tuned per GPU",
        marker="v",
        candidate=True,
        tensor_cores="dense",
    )
)
register_backend(
    BackendSpec(
        "sm90",
        "kernels.backends.sm90:Sm90",
        "CUTLASS 3 sm90 sparse tensor-core GEMM (wgmma.sp, kernels/sm90_24.py), built just in "
        "time on Hopper",
        marker="X",
        candidate=True,
        tensor_cores="sparse",
    )
)
register_backend(
    BackendSpec(
        AUTO,
        "kernels.backends.auto:Auto",
        "per shape, the fastest of the candidate backends that run here and pass a float64 "
        "check, timed in CUDA graphs once per GPU and shape (cached); the record names it",
        marker="*",
        default_on=("cuda",),
    )
)
register_backend(
    BackendSpec(
        "emulated",
        "kernels.backends.emulated:Emulated",
        "masked dense math (no semi-structured kernel off a GPU); every record says emulated",
        marker="o",
        default_on=("cpu",),
        shown=False,
    )
)
