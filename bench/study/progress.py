"""What a user leaving a study running sees: a rich progress display, and a one-line status
that any terminal can print from the manifest alone.

Cell names are pytest ids, `phase0[dense_single-N128-...]`, which rich would read as markup and
drop: every name shown goes through rich's `escape` (the study's log lines do the same)."""

from __future__ import annotations

import statistics
import threading
import time

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn

from bench.study.manifest import DONE, Manifest
from bench.study.preflight import fmt_s


def eta_s(m: Manifest) -> float | None:
    """Seconds left: the median measured time of the cells run so far times the cells left,
    before any has run, the preflight estimate's share of the cells left."""
    left = sum(c.state in ("pending", "running") for c in m.cells)
    measured = [c.duration_s for c in m.cells if c.duration_s is not None]
    if measured:
        return statistics.median(measured) * left
    total = m.estimate.get("total_s")
    return None if total is None else total * left / max(1, len(m.cells))


def counts_text(m: Manifest) -> str:
    n = m.counts()
    return (
        f"{n['passed']} passed, {n['failed']} failed, {n['skipped']} skipped, "
        f"{n['pending'] + n['running']} to go"
    )


def status_line(m: Manifest, now: float | None = None) -> str:
    """One line: state, cells done of all, counts, current cell, ETA, age of the manifest."""
    now = now or time.time()
    done = sum(c.state in DONE for c in m.cells)
    cycles = m.options.get("cycles", 1)
    parts = [
        f"{m.path.parent.name}: {m.status}",
        f"{done}/{len(m.cells)} cell runs ({cycles} cycle(s))",
        counts_text(m),
    ]
    if m.current:
        parts.append(f"now {m.current}")
    if m.status in ("running", "submitted"):
        parts.append(f"ETA {fmt_s(eta_s(m))}")
    parts.append(f"updated {fmt_s(now - m.updated)} ago")
    return " | ".join(parts)


class StudyProgress:
    """The live display: a bar over cell runs, the counts, the current cell and the ETA."""

    def __init__(self, manifest: Manifest):
        self.console = Console(stderr=True)
        self._progress = Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[counts]} | ETA {task.fields[eta]}"),
            console=self.console,
        )
        self._task = self._progress.add_task("study", total=len(manifest.cells), counts="", eta="?")
        self.refresh(manifest)

    def __enter__(self) -> StudyProgress:
        self._progress.start()
        return self

    def __exit__(self, *exc) -> None:
        self._progress.stop()

    def refresh(self, m: Manifest, current: str | None = None) -> None:
        self._progress.update(
            self._task,
            completed=sum(c.state in DONE for c in m.cells),
            description=escape(current or m.current or "study"),
            counts=counts_text(m),
            eta=fmt_s(eta_s(m)),
        )

    def log(self, text: str) -> None:
        self._progress.console.log(text)

    def countdown(self, seconds: float, stop: threading.Event) -> bool:
        """Pause `seconds` with a visible countdown; False when a stop request cut it short."""
        end = time.monotonic() + seconds
        while (left := end - time.monotonic()) > 0:
            self._progress.update(self._task, description=f"gap: next slice in {left:4.1f} s")
            if stop.wait(min(0.2, left)):
                return False
        return True
