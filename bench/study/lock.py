"""One owner per study folder: a lock held for the study runner's life.

Two runners writing one manifest, or a `--resume` while the old runner or its slices still
write records, would run cells twice. The runner takes `<study>/.lock` (filelock: flock on a
local or network file system, released by the kernel however the process ends) and writes who
it is to `<study>/owner.json`. A second runner is refused with the owner's PID and host. A lock
that is free while owner.json is still there means its owner died without letting go (SIGKILL,
a lost node): the new runner takes the study over and says whose it was. Processes of an
earlier runner on this host (its slices, their ranks, a local job) carry the study in their
environment (STUDY_ENV); while any still runs, the study is refused too, naming them.
"""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path

from filelock import FileLock, Timeout

from common.errors import StudyError
from measure.ranks.lifetime import command_line, processes_with_env

LOCK = ".lock"
OWNER = "owner.json"
STUDY_ENV = "BS_STUDY"  # the study folder, in the environment of every process of its run


def _owner_text(doc: dict | None) -> str:
    if not doc:
        return "another study runner (it has not yet said who it is)"
    since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(doc.get("started", 0)))
    return f"the study runner PID {doc.get('pid')} on host {doc.get('host')} (since {since})"


class StudyLock:
    """The study folder's lock, held from `acquire` until `release` (or the process's end).

    Attributes:
        took_over: the owner.json of a runner that died holding the study, else None.
    """

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self.owner_path = self.folder / OWNER
        self._lock = FileLock(str(self.folder / LOCK))
        self.took_over: dict | None = None

    def _read_owner(self) -> dict | None:
        try:
            return json.loads(self.owner_path.read_text())
        except (OSError, json.JSONDecodeError):
            return None

    def acquire(self) -> StudyLock:
        """Take the study or raise StudyError naming its owner or its live processes."""
        self.folder.mkdir(parents=True, exist_ok=True)
        try:
            self._lock.acquire(timeout=0)
        except Timeout:
            raise StudyError(
                f"{self.folder} is in use by {_owner_text(self._read_owner())}; wait for it to "
                "end, or stop it (Ctrl+C or kill) and run again with --resume"
            ) from None
        try:
            self._refuse_leftovers()
        except StudyError:
            self._lock.release()
            raise
        self.took_over = self._read_owner()
        doc = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.time()}
        tmp = self.owner_path.with_name(OWNER + f".tmp{os.getpid()}")
        tmp.write_text(json.dumps(doc, indent=1))
        os.replace(tmp, self.owner_path)
        os.environ[STUDY_ENV] = str(self.folder)  # inherited by every process started from now
        return self

    def _refuse_leftovers(self) -> None:
        left = processes_with_env(STUDY_ENV, str(self.folder))
        if left:
            listed = "; ".join(f"PID {p}: {command_line(p)[:120]}" for p in left[:5])
            raise StudyError(
                f"{self.folder}: {len(left)} process(es) of an earlier run of this study still "
                f"run on this host ({listed}); its runner, "
                f"{_owner_text(self._read_owner())}, is gone and they stop within seconds: "
                "run again then"
            )

    def release(self) -> None:
        """Let go: owner.json removed first, so a later runner sees a clean hand-over."""
        os.environ.pop(STUDY_ENV, None)
        self.owner_path.unlink(missing_ok=True)
        self._lock.release()

    def __enter__(self) -> StudyLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()

    def took_over_text(self) -> str | None:
        """One line for the user when this runner took over a dead owner's study."""
        if self.took_over is None:
            return None
        return (
            f"took over {self.folder} from {_owner_text(self.took_over)}, which ended without "
            "releasing it"
        )
