"""Machine descriptions as data: one TOML file per GPU and one per link kind, every number sourced.

The time model takes its peaks (memory bandwidth, dense and 2:4 math rates per dtype, link
bandwidth) from these files and fits only efficiencies on top of them, so a GPU nobody has run
here can still be answered for: its description alone, labelled as an extrapolation. A file is
checked whole when read: a missing, unknown, mistyped or non-positive field, or a number without
its source, is refused with ReportInputError naming the file and the field, before any model runs.

Layout: `machines/gpus/<name>.toml` and `machines/links/<name>.toml` beside this module; a user
adds a GPU by copying one of them (into that folder or any folder passed as `machines_dir`).
"""

from __future__ import annotations

import math
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from common.errors import ReportInputError, closest

MACHINES_DIR = Path(__file__).parent / "machines"
DTYPES = ("bf16", "fp16", "fp32")
# The rates a description states: dense tensor-core (or, for fp32, CUDA-core) FLOP/s per dtype,
# and the 2:4 sparse tensor-core rate for the dtypes a 2:4 kernel accepts.
MATH_KEYS = ("bf16_dense", "bf16_sparse", "fp16_dense", "fp16_sparse", "fp32_dense")
GPU_NUMBERS = {"memory_bytes_per_s": float, "l2_bytes": int, "sm_count": int, "gpus_per_node": int}
GPU_FIELDS = ("name", "device_names", *GPU_NUMBERS, "link", "math_flop_per_s", "sources")
GPU_SOURCED = (*GPU_NUMBERS, "link", "math_flop_per_s")
LINK_NUMBERS = {"generation": int, "lanes": int, "bytes_per_s": float}
LINK_FIELDS = ("name", "kind", *LINK_NUMBERS, "sources")
LINK_KINDS = ("nvlink", "pcie")


@dataclass(frozen=True)
class LinkSpec:
    """How two GPUs of a node talk: `bytes_per_s` is one direction's peak per GPU."""

    key: str
    name: str
    kind: str
    generation: int
    lanes: int
    bytes_per_s: float
    sources: Mapping[str, str]
    path: str


@dataclass(frozen=True)
class GpuSpec:
    """One GPU's peaks: DRAM bandwidth, FLOP/s per dtype dense and 2:4 sparse, cache and size."""

    key: str
    name: str
    device_names: tuple[str, ...]
    memory_bytes_per_s: float
    l2_bytes: int
    sm_count: int
    gpus_per_node: int
    link: LinkSpec
    math_flop_per_s: Mapping[str, float]
    sources: Mapping[str, str]
    path: str

    def math_rate(self, dtype: str, sparse: bool) -> float:
        """Peak FLOP/s of `dtype` on the dense or the 2:4 sparse tensor cores."""
        key = f"{dtype}_{'sparse' if sparse else 'dense'}"
        if key not in self.math_flop_per_s:
            raise ReportInputError(
                f"{self.path}: no math_flop_per_s.{key}: {self.name} has no "
                f"{'2:4 sparse' if sparse else 'dense'} {dtype} rate (2:4 kernels take bf16/fp16)"
            )
        return self.math_flop_per_s[key]


def _read(path: Path) -> dict[str, object]:
    if not path.is_file():
        raise ReportInputError(f"{path}: no such machine description")
    try:
        return tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as e:
        raise ReportInputError(f"{path}: not valid TOML ({e})") from None


def _check_keys(
    doc: Mapping[str, object], allowed: Iterable[str], path: Path, where: str = ""
) -> None:
    allowed = tuple(allowed)
    for key in doc:
        if key not in allowed:
            raise ReportInputError(
                f"{path}: unknown field {where}{key}{closest(key, allowed)}; "
                f"fields: {', '.join(allowed)}"
            )
    for key in allowed:
        if key not in doc:
            raise ReportInputError(f"{path}: field {where}{key} is missing")


def _positive(value: object, kind: type, path: Path, name: str) -> float:
    """A finite number > 0 (an int where `kind` is int); bool is not a number."""
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    if ok and kind is int and not isinstance(value, int):
        ok = False
    if not ok or not math.isfinite(float(value)) or float(value) <= 0:  # type: ignore[arg-type]
        what = "a positive integer" if kind is int else "a positive number"
        raise ReportInputError(f"{path}: field {name} is {value!r}, not {what}")
    return float(value)  # type: ignore[arg-type]


def _text(value: object, path: Path, name: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ReportInputError(f"{path}: field {name} is {value!r}, not a non-empty string")
    return value


def _sources(doc: Mapping[str, object], sourced: Iterable[str], path: Path) -> dict[str, str]:
    """Every number's source, as text: a figure without one is refused."""
    table = doc["sources"]
    if not isinstance(table, dict):
        raise ReportInputError(f"{path}: field sources is not a table")
    _check_keys(table, sourced, path, "sources.")
    return {k: _text(v, path, f"sources.{k}") for k, v in table.items()}


def load_link(path: Path) -> LinkSpec:
    """Read and check one link description."""
    doc = _read(path)
    _check_keys(doc, LINK_FIELDS, path)
    kind = _text(doc["kind"], path, "kind")
    if kind not in LINK_KINDS:
        raise ReportInputError(f"{path}: field kind is {kind!r}, not one of {LINK_KINDS}")
    nums = {k: _positive(doc[k], t, path, k) for k, t in LINK_NUMBERS.items()}
    return LinkSpec(
        key=path.stem,
        name=_text(doc["name"], path, "name"),
        kind=kind,
        generation=int(nums["generation"]),
        lanes=int(nums["lanes"]),
        bytes_per_s=nums["bytes_per_s"],
        sources=_sources(doc, LINK_NUMBERS, path),
        path=str(path),
    )


def load_gpu(path: Path, links_dir: Path | None = None) -> GpuSpec:
    """Read and check one GPU description and the link description it names."""
    doc = _read(path)
    _check_keys(doc, GPU_FIELDS, path)
    names = doc["device_names"]
    if not isinstance(names, list) or not names:
        raise ReportInputError(f"{path}: field device_names is {names!r}, not a list of names")
    math_table = doc["math_flop_per_s"]
    if not isinstance(math_table, dict):
        raise ReportInputError(f"{path}: field math_flop_per_s is not a table")
    _check_keys(math_table, MATH_KEYS, path, "math_flop_per_s.")
    rates = {k: _positive(v, float, path, f"math_flop_per_s.{k}") for k, v in math_table.items()}
    nums = {k: _positive(doc[k], t, path, k) for k, t in GPU_NUMBERS.items()}
    link_key = _text(doc["link"], path, "link")
    links = links_dir or path.parent.parent / "links"
    link_path = links / f"{link_key}.toml"
    if not link_path.is_file():
        known = sorted(p.stem for p in links.glob("*.toml"))
        raise ReportInputError(
            f"{path}: field link is {link_key!r}{closest(link_key, known)}, "
            f"but {link_path} does not exist; links: {known}"
        )
    return GpuSpec(
        key=path.stem,
        name=_text(doc["name"], path, "name"),
        device_names=tuple(_text(n, path, "device_names[]") for n in names),
        memory_bytes_per_s=nums["memory_bytes_per_s"],
        l2_bytes=int(nums["l2_bytes"]),
        sm_count=int(nums["sm_count"]),
        gpus_per_node=int(nums["gpus_per_node"]),
        link=load_link(link_path),
        math_flop_per_s=rates,
        sources=_sources(doc, GPU_SOURCED, path),
        path=str(path),
    )


def load_all(machines_dir: Path = MACHINES_DIR) -> dict[str, GpuSpec]:
    """Every GPU description of a machines folder, by file stem."""
    gpus = sorted((machines_dir / "gpus").glob("*.toml"))
    if not gpus:
        raise ReportInputError(f"{machines_dir}: no gpus/*.toml machine descriptions")
    return {p.stem: load_gpu(p) for p in gpus}


def find(name: str, machines_dir: Path = MACHINES_DIR) -> GpuSpec:
    """A description by file stem, description name, device name, or a path to a TOML file."""
    if name.endswith(".toml"):
        return load_gpu(Path(name))
    gpus = load_all(machines_dir)
    for spec in gpus.values():
        if name in (spec.key, spec.name, *spec.device_names):
            return spec
    raise ReportInputError(
        f"no machine description named {name!r}{closest(name, gpus)} in {machines_dir}/gpus; "
        f"known: {sorted(gpus)} (add yours by copying one of those files)"
    )


def for_device(device_name: str, gpus: Mapping[str, GpuSpec]) -> GpuSpec | None:
    """The description whose device_names holds the name a record carries, None if none does."""
    for spec in gpus.values():
        if device_name in spec.device_names:
            return spec
    return None
