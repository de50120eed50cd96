"""Whether a folder the harness will write into can be written, asked before anything runs.

A read-only results folder found after an hour of cells loses the hour; found first it costs one
line. The question is answered by the file system itself: an unnamed temporary file is created
in the folder, or in the nearest folder above it that exists (the harness creates the rest),
then dropped; permission bits alone would be wrong for root, for read-only mounts and for
network file systems that map users.
"""

from __future__ import annotations

import tempfile
from pathlib import Path


def unwritable(folder: Path) -> str | None:
    """Why files cannot be written in `folder` (made where missing), or None when they can.

    Returns:
        A clause naming the folder that refused, to follow the folder's name in a message:
        "cannot write in /mnt/ro (read-only file system)"; None when files can be written.
    """
    existing = Path(folder).absolute()
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        return f"{existing} exists and is not a folder"
    try:
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as e:
        return f"cannot write in {existing} ({(e.strerror or str(e)).lower()})"
    return None
