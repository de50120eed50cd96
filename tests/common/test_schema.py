"""The record schema (common/schema): every field survives a JSON round trip, a wrong value is
refused by its path, the published records of versions 1 and 2 load through their upgrade, an
unknown version is refused by name, and the schema and the report readers need no torch."""

from __future__ import annotations

import dataclasses
import json
import math
import subprocess
import sys
import types
import typing
from collections import Counter
from typing import Any, Literal

import pytest

from common.errors import RecordError
from common.phases import CATALOG
from common.schema.codec import from_json, json_keys, to_json
from common.schema.figures import CellFigures, PartFigures
from common.schema.phase_figures import PhaseFigures
from common.schema.record import CellRecord
from common.schema.run import RunDocument, TimingPolicyRecord
from common.schema.versions import (
    RECORD_VERSION,
    read_cell_record,
    read_figures,
    read_run_document,
)
from tests.conftest import ROOT

DATA = ROOT / "reports" / "published" / "data"


def sample(hint: Any, seed: int = 0) -> Any:
    """A value of type `hint` with every optional field filled (no None anywhere), so a round
    trip that dropped or retyped any field would show."""
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        hints = typing.get_type_hints(hint)
        fields = enumerate(dataclasses.fields(hint))
        return hint(**{f.name: sample(hints[f.name], seed + i) for i, f in fields})
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return sample(next(a for a in args if a is not type(None)), seed)
    if origin is Literal:
        return args[seed % len(args)]
    if origin is list:
        return [sample(args[0], seed), sample(args[0], seed + 1)]
    if origin is tuple:
        return tuple(sample(a, seed + i) for i, a in enumerate(args))
    if origin is dict:
        return {f"k{seed}": sample(args[1], seed)}
    return {int: 7 + seed, float: 0.25 + seed, str: f"s{seed}", bool: seed % 2 == 0}[hint]


def full_record() -> CellRecord:
    record = sample(CellRecord)
    return dataclasses.replace(record, name=record.cell.name, record_version=RECORD_VERSION)


def test_every_field_of_a_cell_record_survives_a_json_round_trip():
    record = full_record()
    doc = json.loads(json.dumps(to_json(record)))
    assert read_cell_record(doc, "mem") == record
    assert "null" not in json.dumps(doc)  # every field was written with its value
    figures = record.figures
    assert from_json(CellFigures, json.loads(json.dumps(to_json(figures)))) == figures
    run = dataclasses.replace(sample(RunDocument), record_version=RECORD_VERSION)
    assert read_run_document(json.loads(json.dumps(to_json(run))), "mem") == run


def test_extra_info_is_one_flat_object_whose_keys_no_two_blocks_share():
    keys = Counter()
    for f in dataclasses.fields(CellFigures):
        hint = typing.get_type_hints(CellFigures)[f.name]
        keys.update(json_keys(hint) if f.metadata else {f.name})
    assert [k for k, n in keys.items() if n > 1] == []
    info = to_json(sample(CellFigures))
    assert set(info) == set(keys) and "floor_s" in info and "j_per_token" in info


def test_nan_is_written_as_null_and_read_back_by_the_fields_type():
    record = full_record()
    errors = dataclasses.replace(record.ranks[0].errors, rel_fro=math.nan, mean_abs=None)
    ranks = [dataclasses.replace(record.ranks[0], errors=errors)]
    doc = to_json(dataclasses.replace(record, ranks=ranks))
    assert doc["ranks"][0]["errors"]["rel_fro"] is None
    back = read_cell_record(doc, "mem").ranks[0].errors
    assert math.isnan(back.rel_fro) and back.mean_abs is None  # float: NaN; float | None: None


@pytest.mark.parametrize(
    "edit, words",
    [
        (
            lambda d: [*d["ranks"][1]["timing"].values()][0].update(median="fast"),
            ".median is 'fast', not a number",
        ),
        (lambda d: d["ranks"][0].update(seed=True), "ranks[0].seed is True, not an integer"),
        (lambda d: d.update(status="fine"), "field status is 'fine', not one of ('passed'"),
        (lambda d: d["figures"].pop("floor_s"), "field figures.floor_s is missing"),
        (lambda d: d["figures"].update(floor_ms=1.0), "field figures.floor_ms is not part of"),
        (lambda d: d["ranks"][0]["energy"].update(series=[[1.0, 2.0]]), "a list of 5 values"),
        (lambda d: d.update(record_version=6), "record_version is 6; this code reads 1, 2, 3, 4,"),
        (lambda d: d.pop("record_version"), "field record_version is missing"),
    ],
)
def test_a_value_that_does_not_fit_is_refused_by_file_and_path(edit, words):
    doc = to_json(full_record())
    edit(doc)
    with pytest.raises(RecordError) as e:
        read_cell_record(doc, "cells/phase0/x.json")
    assert str(e.value).startswith("cells/phase0/x.json: ") and words in str(e.value)


def test_a_version_three_record_reads_with_the_training_checks_it_lacked():
    """Version 4 added every step's training checks, the exact training probe and phase3's
    step_capture (and grad_weight_dense / step_* medians to the figures): a version-3 record
    without them reads with None there; a current record missing them is refused."""
    doc = to_json(full_record())
    train = doc["ranks"][0]["phase_figures"]
    for key in ("checks", "probe"):
        del train["train"][key]
    del train["step_capture"]
    for key in ("grad_weight_dense_median_s", "step_eager_median_s", "step_graph_median_s"):
        del doc["figures"][key]
    with pytest.raises(RecordError, match=r"phase_figures\.train\.checks is missing"):
        read_cell_record(doc, "v5.json")
    old = read_cell_record({**doc, "record_version": 3}, "v3.json")
    assert old.ranks[0].phase_figures.train.checks is None
    assert old.ranks[0].phase_figures.train.probe is None
    assert old.figures.parts.grad_weight_dense_median_s is None


def test_the_current_version_is_strict_and_only_earlier_versions_fill_what_they_lacked():
    doc = to_json(full_record())
    del doc["ranks"][0]["alg_source"]  # version 1 did not record it
    with pytest.raises(RecordError, match=r"ranks\[0\]\.alg_source is missing"):
        read_cell_record(doc, "v5.json")
    old = read_cell_record({**doc, "record_version": 2}, "v2.json")
    assert old.ranks[0].alg_source is None and old.record_version == 2


def test_version_four_had_no_attempt_and_no_stopping_signal():
    doc = to_json(full_record())
    assert None not in doc["attempt"].values()  # sample() filled it
    del doc["attempt"]
    with pytest.raises(RecordError, match="field attempt is missing"):
        read_cell_record(doc, "v5.json")
    v4 = read_cell_record({**doc, "record_version": 4}, "v4.json")
    assert v4.attempt is None and v4.ranks == full_record().ranks  # None: not recorded
    run = to_json(dataclasses.replace(sample(RunDocument), record_version=4))
    del run["attempt"], run["stopped_by"]
    back = read_run_document(run, "run.json")
    assert back.attempt is None and back.stopped_by is None and back.seed == run["seed"]
    with pytest.raises(RecordError, match="field stopped_by is missing"):
        read_run_document({**run, "record_version": 5}, "run.json")
    with pytest.raises(RecordError, match="field attempt is missing"):
        read_run_document({**run, "record_version": 5, "stopped_by": None}, "run.json")


def _same(a: Any, b: Any) -> bool:
    """Equal as written (NaN, which the oldest records hold, is never equal to itself)."""
    return json.dumps(to_json(a), sort_keys=True) == json.dumps(to_json(b), sort_keys=True)


def test_the_published_records_of_versions_1_and_2_load_and_round_trip():
    """The record folders kept unpacked in the repo (the .tgz archives hold the rest)."""
    versions = Counter()
    for path in sorted(DATA.glob("**/cells/*/*.json")):
        doc = json.loads(path.read_text())
        record = read_cell_record(doc, str(path))
        versions[record.record_version] += 1
        assert _same(from_json(CellRecord, to_json(record)), record)
    for path in sorted(DATA.glob("**/run.json")):
        run = read_run_document(json.loads(path.read_text()), str(path))
        assert _same(from_json(RunDocument, to_json(run)), run)
    assert versions[1] >= 20 and versions[2] >= 8  # h200x2-2026-11-24 (v1), compact-master (v2)


def test_every_published_benchmark_file_reads_into_cell_figures():
    """Files of every age: extra_info without optional cell axes (2026-11-24), and the oldest,
    whose cell was only in the benchmark's name."""
    read = Counter()
    for path in sorted(DATA.glob("*/*.json")):
        doc = json.loads(path.read_text())
        if "machine_info" not in doc:
            continue  # not a pytest-benchmark file
        for i, b in enumerate(doc["benchmarks"]):
            figures = read_figures(b["extra_info"], b["name"], str(path), f"benchmarks[{i}]")
            assert figures.cell.name == b["name"]
            read["without cell" if "cell" not in b["extra_info"] else "with cell"] += 1
    assert read["without cell"] > 0 and read["with cell"] > 100


def test_the_timing_policy_record_has_the_policys_fields():
    from measure.timing.policy import TimingPolicy

    names = [f.name for f in dataclasses.fields(TimingPolicyRecord)]
    assert sorted(names) == sorted(TimingPolicy.keys())
    assert from_json(TimingPolicyRecord, dataclasses.asdict(TimingPolicy())) is not None


def test_each_phase_describes_what_its_records_hold():
    """Every timing a phase names has its `<name>_median_s` home in the figures (but the one it
    publishes), every figure it adds is a PhaseFigures field, and the counts the study charges
    come from the names."""
    parts = {f.name for f in dataclasses.fields(PartFigures)}
    phase_figures = {f.name for f in dataclasses.fields(PhaseFigures)}
    for info in CATALOG.values():
        assert {f"{n}_median_s" for n in info.timing_names if n != info.primary} <= parts
        assert set(info.figures) <= phase_figures
        assert (info.primary is None) == (not info.timed)
        assert info.primary is None or info.primary in info.timing_names
        assert info.floor == "none" or info.timed
    counts = {name: (p.measurement_count(1), p.measurement_count(2)) for name, p in CATALOG.items()}
    assert counts == {
        "phase0": (0, 0),
        "phase1": (3, 5),
        "phase2": (2, 4),
        "phase3": (7, 7),  # grad_weight_dense: a 2:4 half's only (6 for a dense method)
        "drift": (0, 0),
    }


BLOCK_TORCH = """
import importlib.abc, sys
class NoTorch(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "torch" or name.startswith("torch."):
            raise ImportError("torch is blocked in this test")
sys.meta_path.insert(0, NoTorch())
"""


def test_the_schema_and_the_report_readers_import_without_torch():
    """A process where `import torch` fails reads a published record and a benchmark file."""
    run = DATA / "h200x2-2026-11-24" / "records-phase1-a"
    bench = DATA / "h200x2-2026-11-24" / "phase1_N16384_B64.json"
    code = (
        BLOCK_TORCH
        + f"""
import common.schema, common.schema.versions, common.phases
import reports.read.fields, reports.read.records, reports.read.load, reports.read.outcomes
import reports.read.study
from pathlib import Path
data = reports.read.load.load([Path({str(run)!r}), Path({str(bench)!r})])
assert len(data.records) == 4 and len(data.benchmarks) > 0
try:
    import torch
except ImportError as e:
    print("blocked:", e)
assert "torch" not in sys.modules
print("ok")
"""
    )
    cmd = [sys.executable, "-c", code]
    out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "blocked: torch is blocked" in out.stdout and out.stdout.strip().endswith("ok")


def test_a_version_3_environment_written_before_max_mem_clock_mhz_still_loads():
    """The field came after record version 3 was written by many runs: a strict read of one of
    theirs must not call it missing, and a GPU rank's value must survive a round trip."""
    import dataclasses

    from common.schema.codec import from_json, to_json
    from common.schema.machine import Environment

    old = {f.name: None for f in dataclasses.fields(Environment)}
    old.update(host="h", python="3.11", torch="2.13", cpu="x", device_type="cpu", commit="c")
    del old["max_mem_clock_mhz"]
    assert from_json(Environment, old, "environment").max_mem_clock_mhz is None
    gpu = from_json(Environment, {**old, "max_mem_clock_mhz": 2619}, "environment")
    assert to_json(gpu)["max_mem_clock_mhz"] == 2619
    assert "max_mem_clock_mhz" not in to_json(from_json(Environment, old, "environment"))
