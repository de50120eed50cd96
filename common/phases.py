"""What each phase is, described once and readable without torch: its check, the measurements
its task makes, the timing it publishes, its floor, the cell axes it takes and the figures it adds.

measure/phases/__init__.py pairs each entry with the rank task that does the work; the figures
(measure/records/figures.py) choose the floor from `floor`, the study's estimate charges
`measurement_count`, the matrix checks `axes`, and the reports pick each table's rows by what a
phase publishes (`with_primary("forward")`) rather than by its name. Adding a phase is one entry
here, one task module in measure/phases/ and one cell function in bench/.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

FloorKind = Literal["forward", "backward", "none"]


@dataclass(frozen=True)
class Measurement:
    """One stopping-rule measurement a task makes, each after its own warm-up.

    Attributes:
        names: the key its statistics are stored under in RankResult.timing; two names where
            the key says which timing mode made it (the forward in the mode that is not the
            primary one: `forward_eager` when graph replay is primary, `forward_graph` when eager
            is), of which a cell makes at most one.
        split: made only on two or more ranks (compute and collective timed apart).
    """

    names: tuple[str, ...]
    split: bool = False


@dataclass(frozen=True)
class PhaseInfo:
    """One phase, as the harness, the study and the reports see it.

    Attributes:
        name: the phase axis value and the bench/ cell function's name.
        checks: what must hold before anything is timed, in order: "forward" (every phase: one
            forward against float64 under the derived bounds, then the exact probe), then the
            phase's own ("backward": grad_X against float64; "training": weights and losses
            after `steps` steps against a float64 reference; "drift": the per-step error).
        measurements: what its task times (empty: the phase publishes no timing).
        primary: the timing it publishes (pytest-benchmark's samples, the report's median).
        floor: the floor model its primary timing is held to: "forward" (bytes and FLOPs of one
            forward), "backward" (grad_X = grad_Y W moves the same bytes and FLOPs), "none".
        axes: the optional cell axes it takes (optimizer, variant, steps).
        figures: the PhaseFigures fields its task fills (common/schema/phase_figures.py).
    """

    name: str
    checks: tuple[str, ...]
    measurements: tuple[Measurement, ...] = ()
    primary: str | None = None
    floor: FloorKind = "none"
    axes: tuple[str, ...] = ()
    figures: tuple[str, ...] = ()

    @property
    def timed(self) -> bool:
        """Whether the phase publishes a timing (and so needs the machine's ceilings)."""
        return bool(self.measurements)

    @property
    def timing_names(self) -> tuple[str, ...]:
        """Every key its task may store a timing under, the primary first."""
        return tuple(n for m in self.measurements for n in m.names)

    def measurement_count(self, world_size: int) -> int:
        """Measurements a cell of this phase makes on CUDA at this world size: what a study's
        estimate charges a cell before any has been measured."""
        return sum(1 for m in self.measurements if world_size > 1 or not m.split)


_SPLIT = (Measurement(("compute",), split=True), Measurement(("collective",), split=True))

CATALOG: dict[str, PhaseInfo] = {
    p.name: p
    for p in (
        PhaseInfo("phase0", checks=("forward",)),
        PhaseInfo(
            "phase1",
            checks=("forward",),
            # the primary mode, the other mode (CUDA graph-capable groups), L2-flushed cold
            measurements=(
                Measurement(("forward",)),
                Measurement(("forward_eager", "forward_graph")),
                Measurement(("forward_cold",)),
                *_SPLIT,
            ),
            primary="forward",
            floor="forward",
        ),
        PhaseInfo(
            "phase2",
            checks=("forward", "backward"),
            measurements=(Measurement(("backward",)), Measurement(("forward_backward",)), *_SPLIT),
            primary="backward",
            floor="backward",
            figures=("backward_backend", "backward_errors"),
        ),
        PhaseInfo(
            "phase3",
            checks=("forward", "training"),
            measurements=tuple(
                Measurement((n,))
                for n in ("step", "backward", "grad_weight", "optimizer", "compress")
            ),
            primary="step",
            axes=("optimizer", "variant", "steps"),
            figures=("train", "master_bytes", "optimizer_bytes", "grad_bytes"),
        ),
        PhaseInfo("drift", checks=("forward", "drift"), axes=("steps",), figures=("drift",)),
    )
}


def with_primary(timing: str) -> tuple[str, ...]:
    """The phases that publish `timing` ("forward", "backward", "step"): a report's rows of
    that kind of time."""
    return tuple(p.name for p in CATALOG.values() if p.primary == timing)


def adding(figure: str) -> tuple[str, ...]:
    """The phases whose records carry the phase figure `figure` (e.g. "drift")."""
    return tuple(p.name for p in CATALOG.values() if figure in p.figures)


def check_only() -> tuple[str, ...]:
    """The phases that run the forward check and nothing else: their figure is the error."""
    return tuple(
        p.name for p in CATALOG.values() if p.checks == ("forward",) and not p.measurements
    )
