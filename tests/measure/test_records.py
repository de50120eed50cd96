"""The writer and the readers share one schema: what RunRecords writes, the reports read back
as equal objects; the energy series moves to its CSV file; a run.json field the schema does not
know is refused when it is set, not when a report reads it; run.json and every record say which
attempt wrote them, and run.json which signal stopped the run."""

from __future__ import annotations

import csv
import dataclasses

import pytest

from common.errors import RecordError
from common.schema.attempt import Attempt
from common.schema.energy import EnergyFigures
from common.schema.figures import CellFigures
from measure.records.results import CellResult
from measure.records.writer import RunRecords
from reports.read.records import read_record, read_run, run_state
from tests.common.test_schema import sample
from tests.reports.report_inputs import cell, rank

SERIES = [(10.0, 250.5, 1980, 61, 0), (10.02, 300.0, 1965, 62, 4)]


def _result() -> CellResult:
    spec = cell("block_shock", mask="random_2of4", phase="phase1")
    energy = dataclasses.replace(sample(EnergyFigures), series=SERIES, series_csv=None)
    ranks = [dataclasses.replace(rank(r), energy=energy) for r in range(2)]
    figures = dataclasses.replace(sample(CellFigures), cell=spec)
    return CellResult(spec, "passed", ranks, figures=figures)


def test_a_written_record_reads_back_equal_with_its_series_in_csv(tmp_path):
    records = RunRecords(tmp_path, "run1")
    result = _result()
    path = records.write_cell(result)
    back = read_record(path)
    for r, original in zip(back.ranks, result.ranks, strict=True):
        assert r.energy.series is None and r.energy.series_csv.endswith(f".rank{r.rank}.csv")
        rows = list(csv.reader((records.dir / r.energy.series_csv).open()))
        assert rows[0][:2] == ["t_s", "power_w"] and rows[2] == [
            "0.0200",
            "300.0",
            "1965",
            "62",
            "4",
        ]
        assert dataclasses.replace(r, energy=original.energy) == original  # the rest, as it was
    expected = result.record("run1", records.attempt)
    assert dataclasses.replace(back, ranks=expected.ranks) == expected
    assert result.ranks[0].energy.series == SERIES  # the session's objects are left alone


def test_run_json_is_typed_as_it_is_set(tmp_path):
    records = RunRecords(tmp_path, "run2")
    records.update_run(
        suite="smoke", seed=5, options={"backend": "auto", "mode": "graph", "energy": True}
    )
    env = {"host": "h", "python": "3", "torch": "2", "cuda": None, "cusparselt": None}
    env |= {"cpu": "x86_64", "device_type": "cpu", "commit": "abc"}
    records.update_run(environment={"ws1": [env]})
    records.update_run(environment={"ws2": [env, env]})  # merged beside ws1
    with pytest.raises(RecordError, match="gpu_name is not part of Environment"):
        records.update_run(environment={"ws4": [{**env, "gpu_name": "H100"}]})
    records.write_cell(_result())
    records.finish(exitstatus=0, interrupted=False)
    run = read_run(records.dir / "run.json")
    assert run == records.run and sorted(run.environment) == ["ws1", "ws2"]
    assert run.environment["ws1"][0].gpu is None and run.options.mode == "graph"
    assert run_state(records.dir).problem is None and run.status == "completed"


def test_every_fact_nvml_adds_to_a_gpu_rank_has_a_field_in_the_record_schema(monkeypatch):
    """The GPU-only facts never reach a CPU run's record, so a key the schema lacks failed only
    on a GPU (max_mem_clock_mhz, seen on an H100): read them through a stand-in NVML whose
    every call returns a number, then decode the rank's environment with the schema."""
    import types

    import torch

    from common.schema.codec import from_json
    from common.schema.machine import Environment
    from measure.machine import environment, nvml

    fake = types.SimpleNamespace(
        nvmlSystemGetDriverVersion=lambda: "580.0",
        nvmlDeviceGetName=lambda h: "GPU",
        nvmlDeviceGetEnforcedPowerLimit=lambda h: 700_000,
        nvmlDeviceGetMaxClockInfo=lambda h, clock: 1980 + clock,
        NVML_CLOCK_SM=0,
        NVML_CLOCK_MEM=2,
    )
    monkeypatch.setattr(nvml, "pynvml", fake)
    monkeypatch.setattr(nvml, "handle", lambda device: object())
    facts = nvml.static_info(torch.device("cpu"))
    assert "nvml" not in facts, facts  # every call answered: the facts are the GPU's
    env = {**environment.describe(torch.device("cpu")), **facts}
    decoded = from_json(Environment, env, "environment", lenient=True)  # CUDA-only keys unset
    assert decoded.max_mem_clock_mhz == 1982 and decoded.power_limit_w == 700.0


def test_run_json_and_records_name_their_attempt_and_the_stopping_signal(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCHELASTIC_RESTART_COUNT", "2")
    records = RunRecords(tmp_path, "run3", attempt="c1-ws2-0004")
    back = read_record(records.write_cell(_result()))
    assert back.attempt == Attempt(id="c1-ws2-0004", restart_count=2)
    records.finish(exitstatus=143, interrupted=True, stopped_by="SIGTERM")
    run = read_run(records.dir / "run.json")
    assert run.attempt == back.attempt and run.status == "interrupted"
    assert (run.stopped_by, run.exitstatus) == ("SIGTERM", 143)
    monkeypatch.delenv("TORCHELASTIC_RESTART_COUNT")
    alone = RunRecords(tmp_path, "run4")  # outside a study and torchrun: both null, not absent
    assert read_record(alone.write_cell(_result())).attempt == Attempt(id=None, restart_count=None)
