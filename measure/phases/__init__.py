"""The phases: each a task module beside this one, paired here with its description.

What a phase is (its check, its measurements and the one it publishes, its floor, its axes, its
figures) is described once, torch-free, in common/phases.py's CATALOG, which the reports read
too; this table adds the rank task that does the work. Adding a phase is one entry there, one
task module here (and its line below) and one cell function in bench/.
"""

from __future__ import annotations

from common.phases import CATALOG
from measure.phases.backward import run_backward_timing
from measure.phases.drift import run_drift
from measure.phases.forward import run_check, run_forward_timing
from measure.phases.pipeline import Phase, Task, TaskOptions
from measure.phases.train import run_train_step

__all__ = ["PHASES", "Phase", "TaskOptions"]

TASKS: dict[str, Task] = {
    "phase0": run_check,
    "phase1": run_forward_timing,
    "phase2": run_backward_timing,
    "phase3": run_train_step,
    "drift": run_drift,
}

PHASES: dict[str, Phase] = {name: Phase(info, TASKS[name]) for name, info in CATALOG.items()}
