"""Reading any record version into the current types: version 5 as written, versions 1 to 4
through an explicit upgrade, any other refused by version.

What changed, and what each upgrade does:
- version 1 (to 2): a cell record had `correct` and no `status`, `failure_kind`, `failed_rank`,
  `published` or `stacks`; a rank kept `weight_bytes`, `peak_build_bytes` and
  `peak_forward_bytes` beside its other fields instead of a `memory` object; run.json had no
  `status`, `ended`, `exitstatus` or `measurement_version`. The upgrade derives the status from
  `correct` (a failed check is a `wrong_result`) and moves the memory figures.
- version 2 (to 3): the same keys, every one now typed; extra_info carries `record_version`
  (before 3 it carried none, and the oldest files not even the `cell`: it is parsed from the
  benchmark's name); a figure without ceilings is None, not {}.
- version 3 (to 4): phase3's training figures gained `checks` (every check of every step: the
  forward and backward copies, grad_X, the loss, the master, each as measured error / bound) and
  `probe` (the exact training probe), its phase figures `step_capture`; a timed cell's figures
  gained `grad_weight_dense_median_s`, `step_eager_median_s`, `step_graph_median_s` and
  `step_capture`. A version-3 record reads with all of them None.
- version 4 (to 5): run.json and every cell record carry `attempt` (the study attempt and
  torchrun's restart count that wrote them) and run.json `stopped_by` (the signal that
  interrupted the run); a version-4 document (or older) has neither, read as None (not
  recorded). The figures (extra_info) did not change, so they read strictly from version 4 on.
Keys an earlier version did not write take the field's declared default (None: not recorded),
never a made-up value; a key no version wrote, or a value of the wrong type, is refused.
"""

from __future__ import annotations

from typing import Any

from common.cell import CellSpec
from common.errors import RecordError
from common.schema.codec import from_json, to_json
from common.schema.figures import CellFigures
from common.schema.record import CellRecord
from common.schema.run import RunDocument

RECORD_VERSION = 5
READABLE_VERSIONS = (1, 2, 3, 4, 5)
FIGURES_VERSION = 4  # the last version that changed the figures (extra_info)


def version_of(doc: Any, source: str) -> int:
    """The document's record_version, refused by name unless it is one this code reads."""
    if not isinstance(doc, dict):
        raise RecordError(f"{source}: not a JSON object")
    if "record_version" not in doc:
        raise RecordError(f"{source}: field record_version is missing")
    v = doc["record_version"]
    if v not in READABLE_VERSIONS or isinstance(v, bool):
        raise RecordError(
            f"{source}: field record_version is {v!r}; this code reads "
            + ", ".join(map(str, READABLE_VERSIONS))
        )
    return int(v)


def _named(source: str, e: RecordError) -> RecordError:
    return RecordError(f"{source}: {e}")


def read_cell_record(doc: Any, source: str) -> CellRecord:
    """A cell record of any readable version; `source` (the file) prefixes every error."""
    version = version_of(doc, source)
    try:
        if version == RECORD_VERSION:
            record = from_json(CellRecord, doc)
        else:
            record = from_json(CellRecord, _upgrade_record(doc, version), lenient=True)
    except RecordError as e:
        raise _named(source, e) from None
    if record.name != record.cell.name:
        raise RecordError(
            f"{source}: field name is {record.name!r} but its cell is {record.cell.name}"
        )
    if record.status == "passed" and not record.ranks:
        raise RecordError(f"{source}: field ranks is []; a passed cell needs ranks")
    return record


def read_run_document(doc: Any, source: str) -> RunDocument:
    """run.json of any readable version."""
    version = version_of(doc, source)
    try:
        return from_json(RunDocument, doc, lenient=version < RECORD_VERSION)
    except RecordError as e:
        raise _named(source, e) from None


def read_figures(info: Any, name: str, source: str, where: str = "extra_info") -> CellFigures:
    """A benchmark's extra_info (`name`: the benchmark's name, whose cell the oldest files carry
    only there); errors name `source` (the file) and the field under `where`."""
    if not isinstance(info, dict):
        raise RecordError(f"{source}: field {where} is {info!r}, not an object")
    if "record_version" not in info:  # written before version 3, which stamped none
        info = _upgrade_figures(info, 2, name)
    elif version_of(info, f"{source} ({where})") < 3:
        info = _upgrade_figures(info, info["record_version"], name)
    try:
        return from_json(CellFigures, info, where, lenient=info["record_version"] < FIGURES_VERSION)
    except RecordError as e:
        raise _named(source, e) from None


def _upgrade_figures(info: dict[str, Any], version: int, name: str) -> dict[str, Any]:
    out = {**info, "record_version": version}
    if "cell" not in out:
        out["cell"] = to_json(cell_from_name(name))
    if out.get("ceilings") == {}:
        out["ceilings"] = None
    return out


def _upgrade_record(doc: dict[str, Any], version: int) -> dict[str, Any]:
    doc = dict(doc)
    if version == 1:
        correct = doc.get("correct")
        if not isinstance(correct, bool):
            raise RecordError(f"field correct is {correct!r}, not true or false (version 1)")
        doc.update(
            status="passed" if correct else "failed",
            failure_kind=None if correct else "wrong_result",
            failed_rank=None,
            published=bool(correct and "figures" in doc),
        )
        ranks = doc.get("ranks")
        if isinstance(ranks, list):
            doc["ranks"] = [_upgrade_rank_v1(r) for r in ranks]
    if isinstance(doc.get("figures"), dict):
        doc["figures"] = _upgrade_figures(doc["figures"], version, str(doc.get("name")))
    return doc


def _upgrade_rank_v1(rank: Any) -> Any:
    if not isinstance(rank, dict):
        return rank
    rank = dict(rank)
    rank["memory"] = {
        "weight_bytes": rank.pop("weight_bytes", None),
        "build_peak_bytes": rank.pop("peak_build_bytes", None),
        "forward_peak_bytes": rank.pop("peak_forward_bytes", None),
    }
    return rank


def cell_from_name(name: str) -> CellSpec:
    """`phase[method-N..-B..-dtype[-mask]-workload-wsK[-bias]]` back into a CellSpec: the only
    place the oldest benchmark files kept a cell (none of them had the optional axes)."""
    try:
        phase, rest = name.split("[", 1)
        parts = rest.rstrip("]").split("-")
        bias = parts[-1] == "bias"
        if bias:
            parts = parts[:-1]
        method, n, b, dtype = parts[0], parts[1][1:], parts[2][1:], parts[3]
        ws = int(parts[-1][2:])
        workload = parts[-2]
        mask = parts[4] if len(parts) == 7 else None
        n_in, _, n_out = n.partition("x")
        return CellSpec(
            phase, method, int(n_in), int(n_out or n_in), int(b), dtype, mask, workload, ws, bias
        )
    except (ValueError, IndexError):
        raise RecordError(f"benchmark name {name!r} is not a harness cell") from None
