"""Where slices run: in this process's children (`inprocess`), or as submitit jobs, on SLURM
(`slurm`) or on this machine through submitit's LocalExecutor (`local`, what the tests use).

Both paths run the same function on the slice (`execute.execute_slice`, behind `run_job`
for a job), which writes into the study folder itself: submitit needs a folder the jobs share
anyway, so the records, benchmark JSON, logs and events land where the in-process path puts
them, and merging a job is reading its result, classifying, and writing the sidecars.

A job that ends is merged only once its processes are gone (on this host: found by submitit's
job id in their environment), so nothing writes into the slice after its records were judged.
A job that ended abnormally is classified by what its scheduler says (bench.study.slices.classify:
the local controller's exit signal, SLURM's job state), before what the job itself wrote, and
its cell in flight is retried as the study's policy says.
"""

from __future__ import annotations

import dataclasses
import math
import os
import signal
import socket
import time
from typing import Any

from bench.study.manifest import CellRun
from bench.study.plan import SliceSpec
from bench.study.slices import classify
from bench.study.slices.execute import (
    KILL_GRACE_S,
    SliceResult,
    execute_slice,
    outcomes_from,
    read_events,
    run_job,
)
from measure.ranks.lifetime import processes_with_env, start_time

POLL_S = 0.5
LOCAL_JOB_ENV = "SUBMITIT_LOCAL_JOB_ID"  # submitit's local controller gives its job's processes


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
        """The executor of one world size's jobs, and their time limit in minutes."""
        import submitit

        ex = submitit.AutoExecutor(folder=study.opts.out / "submitit", cluster=self.cluster)
        slurm = study.opts.slurm
        timeout_min = slurm.get("time_min") or max(1, math.ceil(budget_s / 60))
        params = {
            "timeout_min": timeout_min,
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
        return ex, timeout_min

    def run_wave(self, study, groups: list[list[CellRun]]) -> bool:
        """Submit every group; False when returning at once (`--no-wait`)."""
        if self.wait:  # cycle by cycle, so cycles stay interleaved
            groups = [g for g in groups if g[0].cycle == groups[0][0].cycle]
        # each job pauses the gap before its slice, except the study's very first one
        specs = [
            study.new_slice(runs, study.opts.gap_s if (study.ran_any or i) else 0.0)
            for i, runs in enumerate(groups)
        ]
        # a local job that is waited for stops when its runner is gone (not one left to run on)
        owner = (socket.gethostname(), os.getpid(), start_time(os.getpid()))
        jobs = {}
        for ws in dict.fromkeys(s.world_size for s in specs):
            group = [s for s in specs if s.world_size == ws]
            budget = max(
                s.startup_budget_s + len(s.cells) * s.cell_budget_s + s.gap_s for s in group
            )
            ex, timeout_min = self._executor(study, ws, budget)
            group = [
                dataclasses.replace(
                    s,
                    owner=owner if self.wait and self.cluster == "local" else None,
                    time_limit_s=60.0 * timeout_min,
                )
                for s in group
            ]
            for spec, job in zip(group, ex.map_array(run_job, group), strict=True):
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

    def _leftovers(self, job) -> list[int]:
        """The job's processes still alive on this host (a local job's only)."""
        if self.cluster != "local":
            return []
        return processes_with_env(LOCAL_JOB_ENV, str(job.job_id))

    def _ended(self, job) -> tuple[str, str] | None:
        """(class, cause) of a job its scheduler says ended abnormally, else None."""
        if self.cluster == "local":  # the controller's own exit (LocalJob keeps its Popen)
            process = getattr(job, "_process", None)
            return classify.local_job_end(None if process is None else process.poll())
        return classify.slurm_job_end(job.state)

    def _wait(self, study, jobs: dict) -> None:
        open_jobs = dict(jobs)
        cancelled_at = None
        while open_jobs:
            if study.stop.is_set() and cancelled_at is None:
                for _, job in open_jobs.values():
                    job.cancel(check=False)
                cancelled_at = time.monotonic()
            overdue = cancelled_at and time.monotonic() - cancelled_at > KILL_GRACE_S + 5
            for sid, (spec, job) in list(open_jobs.items()):
                if not (job.done() or overdue):
                    continue
                left = self._leftovers(job)
                if left and not overdue:
                    continue  # its task may still be stopping its slice: merge once it is gone
                for pid in left:
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
                study.finish(spec, self._result(spec, job, cancelled_at is not None))
                del open_jobs[sid]
            time.sleep(POLL_S)

    def _result(self, spec: SliceSpec, job, cancelled: bool) -> SliceResult:
        """What the job did: its own result (or its events, if it wrote none), with the end
        its scheduler reports in front when that end was abnormal."""
        result = SliceResult.load(spec.result) if spec.result.exists() else lost_job(spec)
        if cancelled:  # the study stopped it: nothing is charged
            if result.ended_by != "exit":
                result.ended_by = "interrupt"
            return result
        ended = self._ended(job)
        if ended is not None:
            result.ended_by, (result.kind, result.cause) = "killed", ended
        elif not spec.result.exists():
            state = getattr(job, "state", "?")
            result.kind = "rank_crash"
            result.cause = f"the job ended (state {state}) without writing its result"
        return result


def lost_job(spec: SliceSpec) -> SliceResult:
    """What is known of a job that ended without writing its result (killed by the scheduler,
    its node lost): the cells its events show, the one running at the end charged with it."""
    outcomes, finished = outcomes_from(read_events(spec.events))
    now = time.time()
    return SliceResult(spec.id, None, "killed", finished, outcomes, now, now)


def collect(study) -> int:
    """Merge every submitted slice whose job is over: by its result, and for a SLURM job that
    ended abnormally (or without a result) by what SLURM says, as a waiting runner would;
    return how many are still out."""
    out = 0
    slurm = SubmititExecutor("slurm", wait=False)
    for sid, sl in list(study.m.slices.items()):
        if sl.state != "submitted":
            continue
        spec = study.spec_of(sid)
        job: Any = None
        if study.m.options.get("executor") == "slurm" and sl.job_id:
            import submitit

            job = submitit.SlurmJob(study.opts.out / "submitit", sl.job_id)
        if job is not None and job.done():
            study.finish(spec, slurm._result(spec, job, cancelled=False))
        elif job is None and spec.result.exists():
            study.finish(spec, SliceResult.load(spec.result))
        else:
            out += 1
    return out
