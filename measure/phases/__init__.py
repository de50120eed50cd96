"""The phases: each a task module beside this one, described once in PHASES.

A phase's entry says whether it publishes a timing, which optional cell axes it takes and how
many stopping-rule measurements its task makes (what a study's estimate charges a cell before
any has been measured). Adding a phase is one task module here, one entry below and one cell
function in bench/.
"""

from __future__ import annotations

from measure.phases.backward import run_backward_timing
from measure.phases.drift import run_drift
from measure.phases.forward import run_check, run_forward_timing
from measure.phases.pipeline import Phase, TaskOptions
from measure.phases.train import run_train_step

__all__ = ["PHASES", "Phase", "TaskOptions"]

PHASES: dict[str, Phase] = {
    p.name: p
    for p in (
        Phase("phase0", run_check, timed=False),
        # forward in graph and eager mode and cold (CPU: host and cold)
        Phase("phase1", run_forward_timing, timed=True, measurements=3, split_measurements=2),
        # backward, forward + backward
        Phase("phase2", run_backward_timing, timed=True, measurements=2, split_measurements=2),
        # step, backward, grad_W, optimizer, compress
        Phase(
            "phase3",
            run_train_step,
            timed=True,
            axes=("optimizer", "variant", "steps"),
            measurements=5,
        ),
        Phase("drift", run_drift, timed=False, axes=("steps",)),
    )
}
