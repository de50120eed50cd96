"""The study's state on disk: one manifest.json, rewritten whole after every state change.

Every (cell, cycle) pair is one `CellRun` whose state moves pending -> running -> passed |
failed (with its failure class) | skipped (with its reason). The file is written to a temporary
name and moved into place (os.replace), so a reader in another terminal, a resumed study or a
report always finds a whole document, even after a kill.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from common.errors import StudyError

MANIFEST_VERSION = 1
STATES = ("pending", "running", "passed", "failed", "skipped")
DONE = ("passed", "failed", "skipped")


@dataclass
class CellRun:
    """One cell in one cycle: where it ran, how it ended, how often it was tried."""

    name: str  # phase0[<cell id>]
    phase: str
    method: str
    world_size: int
    cycle: int
    state: str = "pending"
    failure_kind: str | None = None
    reason: str | None = None  # failure message (tail) or skip reason
    attempts: int = 0
    slice: str | None = None  # the slice that gave the final state
    gap_s: float = 0.0  # pause before the slice that ran it
    duration_s: float | None = None
    started: float | None = None
    ended: float | None = None

    @property
    def key(self) -> str:
        return f"{self.name}@{self.cycle}"


@dataclass
class SliceRun:
    """One pytest process (or submitit job) over some cells of one cycle and world size."""

    id: str
    cycle: int
    world_size: int
    cells: list[str]
    command: list[str]
    state: str = "pending"  # pending, submitted, running, done, killed, interrupted
    job_id: str | None = None
    returncode: int | None = None
    note: str | None = None


@dataclass
class Manifest:
    path: Path
    suite: str
    k: str | None
    matrix: str
    design_hash: str
    options: dict
    estimate: dict
    cells: list[CellRun]
    slices: dict[str, SliceRun] = field(default_factory=dict)
    # running, submitted, completed (every cell run recorded once: `verify` passes), unverified
    # (it does not: `problems` says why), interrupted (a signal: `stopped_by`)
    status: str = "running"
    current: str | None = None
    next_slice: int = 1
    created: float = field(default_factory=time.time)
    updated: float = field(default_factory=time.time)
    exitstatus: int | None = None
    stopped_by: str | None = None  # the signal that interrupted the last run
    problems: list[str] = field(default_factory=list)  # what `verify` found at the last end
    owner_pid: int | None = None  # the runner that ran it last (its host: owner.json)

    def by_key(self) -> dict[str, CellRun]:
        return {c.key: c for c in self.cells}

    def counts(self) -> dict[str, int]:
        out = dict.fromkeys(STATES, 0)
        for c in self.cells:
            out[c.state] += 1
        return out

    def save(self) -> None:
        """Write the whole manifest atomically (temporary file, then os.replace)."""
        self.updated = time.time()
        doc = {
            "manifest_version": MANIFEST_VERSION,
            **{k: v for k, v in asdict(self).items() if k not in ("path", "cells", "slices")},
            "counts": self.counts(),
            "cells": [asdict(c) for c in self.cells],
            "slices": {k: asdict(s) for k, s in self.slices.items()},
        }
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + f".tmp{os.getpid()}")
        tmp.write_text(json.dumps(doc, indent=1))
        os.replace(tmp, self.path)

    @classmethod
    def load(cls, path: Path) -> Manifest:
        path = Path(path)
        try:
            doc = json.loads(path.read_text())
        except FileNotFoundError:
            raise StudyError(f"{path}: no study manifest here") from None
        except json.JSONDecodeError as e:
            raise StudyError(f"{path}: manifest is not valid JSON: {e}") from None
        if doc.get("manifest_version") != MANIFEST_VERSION:
            raise StudyError(
                f"{path}: manifest_version {doc.get('manifest_version')!r}, "
                f"this runner reads {MANIFEST_VERSION}"
            )
        doc.pop("manifest_version")
        doc.pop("counts", None)
        cells = [CellRun(**c) for c in doc.pop("cells")]
        slices = {k: SliceRun(**s) for k, s in doc.pop("slices").items()}
        return cls(path=path, cells=cells, slices=slices, **doc)
