"""sha256 sidecars for every record a study collected, and the check a report runs first.

After a slice ends, each file it left under `runs/<slice>/`, its benchmark JSON and what the
study set apart of it under `superseded/<slice>/` (bench.study.records) get a `<file>.sha256`
beside them, in `sha256sum` format, so `sha256sum -c` checks them too.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

SUFFIX = ".sha256"
SUPERSEDED = "superseded"  # bench.study.records sets a slice's unkept records apart there


def _digest(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def record_files(study: Path, slice_id: str | None = None) -> list[Path]:
    """The files of the study (or of one slice) that carry a sidecar."""
    pattern = slice_id or "*"
    files = [p for top in ("runs", SUPERSEDED) for p in (study / top).glob(f"{pattern}/**/*")]
    files = [p for p in files if p.is_file()] + list((study / "bench").glob(f"{pattern}.json"))
    return sorted(p for p in files if not p.name.endswith((SUFFIX, ".tmp")))


def write_sidecars(study: Path, slice_id: str) -> int:
    """Write (or rewrite) the sidecar of every record file of one slice; return how many."""
    files = record_files(study, slice_id)
    for p in files:
        p.with_name(p.name + SUFFIX).write_text(f"{_digest(p)}  {p.name}\n")
    return len(files)


def verify(study: Path) -> list[str]:
    """Problems with the study's records: a file without a sidecar, a sidecar whose file is
    gone, or a digest that does not match. An empty list means every record is as written."""
    study = Path(study)
    problems = []
    for p in record_files(study):
        side = p.with_name(p.name + SUFFIX)
        if not side.exists():
            problems.append(f"{p.relative_to(study)}: no {SUFFIX} sidecar")
        elif side.read_text().split()[0] != _digest(p):
            problems.append(f"{p.relative_to(study)}: sha256 differs from its sidecar")
    sidecars = [p for top in ("runs", SUPERSEDED) for p in (study / top).glob(f"**/*{SUFFIX}")]
    for side in sidecars + list((study / "bench").glob(f"*{SUFFIX}")):
        if not side.with_name(side.name[: -len(SUFFIX)]).exists():
            problems.append(f"{side.relative_to(study)}: its record is missing")
    return problems
