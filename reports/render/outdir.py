"""The report folder: built beside its target, then swapped in, and only ever over one of ours.

`reports build --out DIR` replaces DIR whole, so DIR must be a folder this module made: every
report folder holds the MARKER file. Anything else that is not empty (a checkout, a results
folder, the folder of an input) is refused before a byte is written, so a wrong `--out` costs
an error message and never a deleted file. A folder that cannot be written (read-only, no
permission) is refused the same way, before any input is read.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from common.errors import ReportOutputError
from common.folders import unwritable

MARKER = ".block-shock-report"
PROJECT_ROOT = Path(__file__).resolve().parents[2]
DIR_MODE, FILE_MODE = 0o755, 0o644  # reports are read by others (CI artefacts, web servers)


def check_target(out: Path, inputs: list[Path]) -> None:
    """Raise ReportOutputError unless replacing `out` can lose nothing but an earlier report."""
    target = Path(out).absolute()
    if target.is_symlink():
        raise ReportOutputError(f"--out {out}: a symbolic link; give the folder itself")
    real = target.resolve()
    problem = unwritable(target.parent)  # the report is built beside --out, then moved in
    if problem:
        raise ReportOutputError(f"--out {out}: {problem}")
    if real in (Path.cwd().resolve(), PROJECT_ROOT):
        raise ReportOutputError(
            f"--out {out}: the current folder or the project root; give a new folder"
        )
    for p in inputs:
        src = Path(p).resolve()
        if real == src or real in src.parents:
            raise ReportOutputError(f"--out {out}: holds the input {p}; give another folder")
    if not real.exists():
        return
    if not real.is_dir():
        raise ReportOutputError(f"--out {out}: exists and is not a folder")
    if any(real.iterdir()) and not (real / MARKER).is_file():
        raise ReportOutputError(
            f"--out {out}: not empty and not a report folder (no {MARKER} inside); "
            "it would be replaced whole, so give a new or empty folder"
        )


def staging(out: Path) -> Path:
    """An empty folder beside `out`, on the same file system so the final rename is atomic."""
    out = Path(out).absolute()
    out.parent.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f".{out.name}-", dir=out.parent))


def publish(tmp: Path, out: Path) -> None:
    """Mark `tmp` as a report folder, make it world-readable, and put it in place of `out`."""
    (tmp / MARKER).write_text("a report folder written by `python -m reports build`\n")
    for folder, _, files in os.walk(tmp):
        os.chmod(folder, DIR_MODE)
        for f in files:
            os.chmod(os.path.join(folder, f), FILE_MODE)
    out = Path(out)
    if out.exists():
        shutil.rmtree(out)
    tmp.rename(out)
