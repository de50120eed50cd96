"""The original Block-Shock study's phase-1 records, read as a peer's data.

The public repository MathewYoussef/Block-Shock keeps one folder per run,
`results/official/**/phase1_forward/<method>/<run_id>/`, holding `metrics.jsonl` (one JSON line:
the cell's shape and timing summaries in ms), `env.json` (the GPU and torch) and `config.yaml`
(the mask and workload). Each run becomes one ImportedCell: our method name and 2:4 backend for
its method, its forward p50 in seconds, and its timing method stated, because it is not ours:
one CUDA-event pair around each eager call, 100 calls back to back after 10 warm-up calls, rank 0
only, no CUDA graph, no L2 flush, only summaries kept (no samples). Every cell is labelled
imported, with the file it came from, so a report can never pass it off as a harness record.

A run folder whose `metrics.jsonl` is empty (the original has a few) is skipped with the reason;
a malformed one is refused by name (ReportInputError), as the report does with its own inputs.
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import yaml

from common.errors import ReportInputError, closest
from kernels import registry
from reports.model.machine import MACHINES_DIR, GpuSpec, for_device, load_all

ORIGIN = "MathewYoussef/Block-Shock (original study)"
TIMING = (
    "original study: one CUDA-event pair per eager forward call, 100 calls back to back after "
    "10 warm-up calls, rank 0, p50; no CUDA graph, no L2 flush, summaries only"
)
# Its method names map to ours through the registry (MethodSpec.original_study: its dense_tp is
# row-parallel, configs/methods/dense_tp.yaml: tensor_parallel: row; its Block-Shock multiplies a
# to_sparse_semi_structured weight through F.linear, our `flinear` backend; its dense_single ran
# inside a two-rank job but is one GPU's work).


@dataclass(frozen=True)
class ImportedCell:
    """One run of the original study as the harness would hold a phase-1 cell: its axes, its
    median (the original's p50) in seconds, its timing method and where it came from."""

    method: str
    backend: str | None
    N: int
    N_out: int
    B: int
    dtype: str
    mask: str | None
    workload: str | None
    world_size: int
    bias: bool
    median_s: float
    p95_s: float
    mean_s: float
    calls: int
    collective_median_s: float | None  # its all-reduce p50, timed alone inside the call
    gpu: str
    machine: str | None  # the machine description matched by `gpu`, None if none matches
    torch: str
    original_method: str
    run_id: str
    sweep: str
    source: str
    samples: tuple[float, ...] | None = None  # the original kept summaries only
    phase: str = "phase1"
    mode: str = "eager"
    timing: str = TIMING
    imported_from: str = ORIGIN
    imported: bool = True

    def row(self) -> dict[str, object]:
        """The cell as a report row: the benchmark table's column names plus the labels."""
        return {**asdict(self), "emulated": False, "name": self.name}

    @property
    def name(self) -> str:
        """A harness-style cell name, marked as imported."""
        mask = f"-{self.mask}" if self.mask else ""
        backend = f"-{self.backend}" if self.backend else ""
        return (
            f"original:{self.phase}[{self.method}-N{self.N}-B{self.B}-{self.dtype}{mask}-"
            f"{self.workload}-ws{self.world_size}{backend}]:{self.sweep}/{self.run_id}"
        )


@dataclass(frozen=True)
class ImportResult:
    """The cells read and the run folders skipped, each with its reason."""

    cells: tuple[ImportedCell, ...]
    skipped: tuple[tuple[str, str], ...] = field(default=())


def _field(doc: object, key: str, path: Path, where: str = "") -> object:
    if not isinstance(doc, Mapping) or key not in doc:
        raise ReportInputError(f"{path}: field {where}{key} is missing")
    return doc[key]


def _ms(doc: object, key: str, path: Path, where: str) -> float:
    value = _field(doc, key, path, where)
    if not isinstance(value, (int, float)) or isinstance(value, bool) or value < 0:
        raise ReportInputError(f"{path}: field {where}{key} is {value!r}, not a duration in ms")
    return float(value)


def _config(run: Path) -> tuple[str | None, str | None]:
    """The mask and workload names of a run, None where its config.yaml does not say."""
    path = run / "config.yaml"
    if not path.is_file():
        return None, None
    try:
        cfg = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        raise ReportInputError(f"{path}: not valid YAML ({e})") from None
    mask, workload = cfg.get("mask"), cfg.get("workload")
    return (
        mask.get("name") if isinstance(mask, dict) else None,
        workload.get("name") if isinstance(workload, dict) else None,
    )


def _sweep(run: Path) -> str:
    """The sweep a run belongs to: the folder under `sweeps/`, or `legacy`/`runs`."""
    parts = run.parts
    if "sweeps" in parts and parts.index("sweeps") + 1 < len(parts):
        return parts[parts.index("sweeps") + 1]
    i = parts.index("phase1_forward")
    return parts[i - 1] if i > 0 else "official"


def read_run(metrics: Path, gpus: Mapping[str, GpuSpec] | None = None) -> ImportedCell | None:
    """One run folder's cell; None when its metrics.jsonl is empty (the run wrote nothing)."""
    lines = [ln for ln in metrics.read_text().splitlines() if ln.strip()]
    if not lines:
        return None
    if len(lines) > 1:
        raise ReportInputError(f"{metrics}: {len(lines)} records; a phase-1 run writes one")
    try:
        doc = json.loads(lines[0])
    except json.JSONDecodeError as e:
        raise ReportInputError(f"{metrics}: not valid JSON ({e})") from None
    theirs = str(_field(doc, "method", metrics))
    known = registry.peers()
    if theirs not in known:
        raise ReportInputError(
            f"{metrics}: field method is {theirs!r}{closest(theirs, known)}; known: {sorted(known)}"
        )
    if _field(doc, "phase", metrics) != "phase1_forward":
        raise ReportInputError(f"{metrics}: field phase is {doc['phase']!r}, not phase1_forward")
    ours = known[theirs]
    assert ours.original_study is not None  # peers() holds only methods that have one
    method, backend, ws = ours.name, ours.original_study.backend, ours.original_study.world_size
    timings = _field(doc, "timings_ms", metrics)
    fwd = _field(timings, "forward", metrics, "timings_ms.")
    where = "timings_ms.forward."
    if _ms(fwd, "count", metrics, where) <= 0 or _ms(fwd, "p50_ms", metrics, where) <= 0:
        raise ReportInputError(f"{metrics}: field {where}p50_ms: no timed forward calls")
    coll = timings.get("allreduce") if isinstance(timings, dict) else None
    coll_ms = _ms(coll, "p50_ms", metrics, "timings_ms.allreduce.") if coll else 0.0
    env_path = metrics.parent / "env.json"
    if not env_path.is_file():
        raise ReportInputError(f"{env_path}: no such file (the run's GPU is unknown without it)")
    env = json.loads(env_path.read_text())
    gpu = str(_field(env, "cuda_device_name", env_path))
    spec = for_device(gpu, gpus if gpus is not None else load_all(MACHINES_DIR))
    mask, workload = _config(metrics.parent)
    n = int(_field(doc, "N", metrics))  # type: ignore[call-overload]
    return ImportedCell(
        method=method,
        backend=backend,
        N=n,
        N_out=n,
        B=int(_field(doc, "B", metrics)),  # type: ignore[call-overload]
        dtype=str(_field(doc, "dtype", metrics)),
        mask=mask if ours.mask != "none" else None,
        workload=workload,
        world_size=ws,
        bias=bool(doc.get("bias_bytes", 0)),
        median_s=_ms(fwd, "p50_ms", metrics, where) / 1e3,
        p95_s=_ms(fwd, "p95_ms", metrics, where) / 1e3,
        mean_s=_ms(fwd, "avg_ms", metrics, where) / 1e3,
        calls=int(_ms(fwd, "count", metrics, where)),
        collective_median_s=coll_ms / 1e3 if coll_ms > 0 else None,
        gpu=gpu,
        machine=spec.key if spec else None,
        torch=str(env.get("torch_version")),
        original_method=theirs,
        run_id=str(doc.get("run_id", metrics.parent.name)),
        sweep=_sweep(metrics.parent),
        source=str(metrics),
    )


def load(folders: Iterable[Path]) -> ImportResult:
    """Every phase-1 run under the folders (the original's `results/official`, a sweep, or a
    single run folder); empty runs are skipped with the reason, anything else malformed refused."""
    gpus = load_all(MACHINES_DIR)
    cells, skipped = [], []
    for folder in map(Path, folders):
        if not folder.exists():
            raise ReportInputError(f"{folder}: no such folder")
        found = sorted({*folder.glob("**/phase1_forward/*/*/metrics.jsonl")})
        if (folder / "metrics.jsonl").is_file():
            found = [folder / "metrics.jsonl"]
        if not found:
            raise ReportInputError(
                f"{folder}: no phase1_forward/<method>/<run_id>/metrics.jsonl under it: "
                "not the original study's results folder"
            )
        for metrics in found:
            cell = read_run(metrics, gpus)
            if cell is None:
                skipped.append((str(metrics), "empty metrics.jsonl: the run wrote no record"))
            else:
                cells.append(cell)
    return ImportResult(tuple(cells), tuple(skipped))


def pooled(cells: Iterable[ImportedCell]) -> tuple[ImportedCell, ...]:
    """One cell per shape and method, as a study pools its cycles: the median over the runs of
    each run's p50 (and of its all-reduce p50), the runs counted in `calls`. The original repeats
    most cells in up to six sweeps that differ by a few percent, with a slow outlier now and then
    (dense_single N=32768: 4.02 ms in one sweep, 3.66 in the other eight)."""
    groups: dict[tuple[object, ...], list[ImportedCell]] = {}
    for c in cells:
        key = (c.method, c.backend, c.N, c.N_out, c.B, c.dtype, c.mask, c.world_size, c.gpu)
        groups.setdefault(key, []).append(c)
    out = []
    for group in groups.values():
        colls = [c.collective_median_s for c in group if c.collective_median_s is not None]
        first = group[0]
        out.append(
            replace(
                first,
                median_s=statistics.median(c.median_s for c in group),
                p95_s=statistics.median(c.p95_s for c in group),
                mean_s=statistics.median(c.mean_s for c in group),
                calls=sum(c.calls for c in group),
                collective_median_s=statistics.median(colls) if colls else None,
                run_id=f"median of {len(group)} runs",
                sweep=",".join(sorted({c.sweep for c in group})),
                source=",".join(sorted(c.source for c in group)),
            )
        )
    return tuple(sorted(out, key=lambda c: (c.method, c.N, c.B)))


def typed_table(cells: Iterable[ImportedCell]) -> dict[int, dict[str, float]]:
    """The shape of reports/analysis/figures.py's ORIGINAL_STUDY, derived from the records:
    per N (B=64), each method's forward p50 in ms, the median over every run of that cell."""
    by: dict[int, dict[str, list[float]]] = {}
    for c in cells:
        peer = registry.spec(c.method).original_study
        if c.B == 64 and peer is not None:
            by.setdefault(c.N, {}).setdefault(peer.column, []).append(c.median_s)
    return {
        n: {col: statistics.median(v) * 1e3 for col, v in sorted(cols.items())}
        for n, cols in sorted(by.items())
    }
