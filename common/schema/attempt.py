"""Who wrote a run's documents (run.json and every cell record): the attempt.

A study runs each cell in a slice, a fresh pytest, and runs a cell again in a new slice when a
slice was killed, hung or timed out; torchrun may restart its workers. Each document carries the
attempt that wrote it, so a study keeps a killed attempt's records apart as that attempt's and
never counts a cell run twice (bench/study/records.py).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(kw_only=True)
class Attempt:
    """The writer of a run's documents.

    id: the study's attempt (`--bs-attempt`: the slice id); None outside a study.
    restart_count: torchrun's TORCHELASTIC_RESTART_COUNT; None outside torchrun.
    """

    id: str | None
    restart_count: int | None
