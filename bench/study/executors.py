"""Where slices run: in this process's children (`inprocess`), or as submitit jobs, on SLURM
(`slurm`) or on this machine through submitit's LocalExecutor (`local`, what the tests use).

Both paths run the same function on the slice (`slice_exec.execute_slice`, behind `run_job`
for a job), which writes into the study folder itself: submitit needs a folder the jobs share
anyway, so the records, benchmark JSON, logs and events land where the in-process path puts
them, and merging a job is reading its result, classifying, and writing the sidecars.
"""

from __future__ import annotations

import math
import time

from bench.study.manifest import CellRun
from bench.study.plan import SliceSpec
from bench.study.slice_exec import (
    KILL_GRACE_S,
    SliceResult,
    execute_slice,
    outcomes_from,
    read_events,
    run_job,
)

POLL_S = 0.5


class InProcessExecutor:
    """Slices one after the other, each a subprocess of the study, with the gap between them."""

    def run_wave(self, study, groups: list[list[CellRun]]) -> bool:
        for runs in groups:
            if study.stop.is_set():
                break
            gap = study.opts.gap_s if study.ran_any else 0.0
            if gap and study.progress and not study.progress.countdown(gap, study.stop):
                break
            if gap and not study.progress and study.stop.wait(gap):
                break
            spec = study.new_slice(runs, gap)
            result = execute_slice(spec, study.stop, lambda o, s=spec: study.on_event(s, o))
            study.finish(spec, result)
        return True


class SubmititExecutor:
    """Slices as submitit job arrays, one array per world size (each job gets the GPUs its
    world size needs); waits for them, or returns at once and leaves `collect` to merge."""

    def __init__(self, cluster: str, wait: bool = True):
        self.cluster = cluster  # "local" or "slurm"
        self.wait = wait

    def _executor(self, study, world_size: int, budget_s: float):
        import submitit

        ex = submitit.AutoExecutor(folder=study.opts.out / "submitit", cluster=self.cluster)
        slurm = study.opts.slurm
        params = {
            "timeout_min": slurm.get("time_min") or max(1, math.ceil(budget_s / 60)),
            "nodes": 1,
            "tasks_per_node": 1,
            "name": f"bs-study-ws{world_size}",
        }
        if self.cluster == "slurm":
            params["gpus_per_node"] = world_size
            params["cpus_per_task"] = max(2, 4 * world_size)
            for key in ("partition", "account"):
                if slurm.get(key):
                    params[f"slurm_{key}"] = slurm[key]
        ex.update_parameters(**params)
        return ex

    def run_wave(self, study, groups: list[list[CellRun]]) -> bool:
        """Submit every group; False when returning at once (`--no-wait`)."""
        if self.wait:  # cycle by cycle, so cycles stay interleaved
            groups = [g for g in groups if g[0].cycle == groups[0][0].cycle]
        # each job pauses the gap before its slice, except the study's very first one
        specs = [
            study.new_slice(runs, study.opts.gap_s if (study.ran_any or i) else 0.0)
            for i, runs in enumerate(groups)
        ]
        jobs = {}
        for ws in dict.fromkeys(s.world_size for s in specs):
            group = [s for s in specs if s.world_size == ws]
            budget = max(
                s.startup_budget_s + len(s.cells) * s.cell_budget_s + s.gap_s for s in group
            )
            for spec, job in zip(
                group, self._executor(study, ws, budget).map_array(run_job, group), strict=True
            ):
                jobs[spec.id] = (spec, job)
                sl = study.m.slices[spec.id]
                sl.state, sl.job_id = "submitted", str(job.job_id)
        for spec, _ in jobs.values():
            for r in study._runs(spec):
                r.state = "running"  # queued or running on the cluster
        study.m.current = f"{len(jobs)} job(s) submitted"
        study.save()
        if not self.wait:
            return False
        self._wait(study, jobs)
        return True

    def _wait(self, study, jobs: dict) -> None:
        open_jobs = dict(jobs)
        cancelled_at = None
        while open_jobs:
            if study.stop.is_set() and cancelled_at is None:
                for _, job in open_jobs.values():
                    job.cancel(check=False)
                cancelled_at = time.monotonic()
            for sid, (spec, job) in list(open_jobs.items()):
                if spec.result.exists():
                    study.finish(spec, SliceResult.load(spec.result))
                elif job.done() or (
                    cancelled_at and time.monotonic() - cancelled_at > KILL_GRACE_S + 5
                ):
                    how = "interrupt" if cancelled_at else "exit"
                    study.finish(spec, lost_job(spec, how))
                else:
                    continue
                del open_jobs[sid]
            time.sleep(POLL_S)


def lost_job(spec: SliceSpec, ended_by: str) -> SliceResult:
    """What is known of a job that ended without writing its result (killed by the scheduler,
    its node lost): the cells its events show, the one running at the end charged with it."""
    outcomes, finished = outcomes_from(read_events(spec.events))
    return SliceResult(spec.id, None, ended_by, finished, outcomes, time.time(), time.time())


def collect(study) -> int:
    """Merge every submitted slice whose result is there; return how many are still out."""
    out = 0
    for sid, sl in list(study.m.slices.items()):
        if sl.state != "submitted":
            continue
        spec = study.spec_of(sid)
        if spec.result.exists():
            study.finish(spec, SliceResult.load(spec.result))
        else:
            out += 1
    return out
