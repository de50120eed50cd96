"""Real processes for the fault tests: start the harness tagged, find what is left of it.

Every process a fault test starts gets a unique environment variable; its children inherit
it, so `/proc/<pid>/environ` tells which processes of the machine (other tests and other users
of the machine included) belong to the run under test. A process that changed its own
environment would escape this, and none of the harness's does.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

from tests.conftest import ROOT

TAG = "BS_FAULT_TEST_TAG"


def tagged_env(tmp: Path, **extra: str) -> tuple[dict[str, str], str]:
    """An environment for one run under test: its own tag and its own TMPDIR (so the temp
    files it leaves are told apart from everyone else's), the worktree first on the path, and
    Python's fault handler on, so `dump_stacks` can show where a process that hangs is."""
    tag = uuid.uuid4().hex
    tmpdir = tmp / "tmpdir"
    tmpdir.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, TAG: tag, "TMPDIR": str(tmpdir), "PYTHONPATH": str(ROOT),
           "PYTHONUNBUFFERED": "1", "PYTHONFAULTHANDLER": "1", **extra}  # fmt: skip
    return env, tag


def tagged_pids(tag: str) -> list[int]:
    """Live processes (not zombies) carrying the tag."""
    me = os.getpid()
    found = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit() or int(d.name) == me:
            continue
        try:
            environ = (d / "environ").read_bytes()
            state = (d / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z" and f"{TAG}={tag}".encode() in environ.split(b"\0"):
            found.append(int(d.name))
    return found


def describe(pids: list[int]) -> str:
    out = []
    for pid in pids:
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            cmd = "?"
        out.append(f"{pid}: {cmd[:200]}")
    return "\n".join(out)


def dump_stacks(proc: subprocess.Popen, log: Path) -> str:
    """Every thread's Python stack of a process that hangs (started with `tagged_env`: SIGABRT
    makes its fault handler write them to its log, then it dies), as the log's tail."""
    before = log.stat().st_size
    proc.send_signal(signal.SIGABRT)
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        return "(no stacks: the process did not die of SIGABRT within 10 s)"
    with log.open("rb") as f:
        f.seek(before)
        return f.read()[-8000:].decode(errors="replace")


def wait_gone(tag: str, timeout_s: float) -> list[int]:
    """Wait until no process carries the tag; return the survivors after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while True:
        left = tagged_pids(tag)
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.2)


def kill_all(tag: str) -> None:
    """Clean up after a failed test: nothing it started may outlive it."""
    for pid in tagged_pids(tag):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def wait_for(predicate, timeout_s: float, what: str, poll_s: float = 0.2):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(poll_s)
    raise AssertionError(f"timed out after {timeout_s:g} s waiting for {what}")


def started_cells(study: Path) -> list[str]:
    """Names of the cells whose start the study's slices have written to their event files."""
    names = []
    for f in sorted((study / "events").glob("*.rank*.jsonl")):
        for line in f.read_text().splitlines():
            try:
                e = json.loads(line)
            except json.JSONDecodeError:
                break
            if e.get("event") == "start":
                names.append(e["nodeid"].rsplit("::", 1)[1])
    return names


def python(*args: str) -> list[str]:
    return [sys.executable, *args]


def spawn(cmd: list[str], env: dict, log: Path) -> subprocess.Popen:
    """Start a command as a user would from a shell: its own process group, output to a log."""
    f = log.open("ab")
    return subprocess.Popen(
        cmd, cwd=ROOT, env=env, stdout=f, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        start_new_session=True,
    )  # fmt: skip
