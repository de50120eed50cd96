"""Every process the harness starts dies with the process that started it.

A rank worker, a study slice, a study's local job: each must end when its parent ends, even
when the parent is killed with SIGKILL and runs no clean-up. Two mechanisms, both armed in the
child, because a child in a session of its own (a slice: the terminal's Ctrl+C must reach only
the study) is out of reach of its parent's process group:

- Linux's parent-death signal (`prctl(PR_SET_PDEATHSIG)`): the kernel signals the child the
  moment its parent exits. It fires when the parent *thread* that started the child exits, so
  the harness starts children from the main thread only; exec keeps it (except for setuid
  programs, of which the harness runs none); and a parent that died before the child armed it
  is seen only as `os.getppid()` changing, which `die_with_parent` checks right after arming.
- A watcher thread polling `os.getppid()` (`die_with_parent`, every `POLL_S`): where there is
  no parent-death signal (not Linux), or where the signal's handler may not run (the main
  thread stuck in a C call), it sends the signal itself and, after `grace_s`, SIGKILL to the
  process group it leads (its rank workers with it) or to itself.

`python -m measure.ranks.lifetime --parent PID -- CMD ...` arms a command that cannot arm
itself (torchrun; a pytest before its plugins load) with SIGTERM and execs it: the study's
slices start this way. `processes_with_env` finds what is left of a run on this host by an
environment variable its processes inherit (the study tags its tree with its folder).
"""

from __future__ import annotations

import argparse
import ctypes
import os
import signal
import sys
import threading
import time
from pathlib import Path

POLL_S = 0.5
PR_SET_PDEATHSIG = 1  # <linux/prctl.h>

# The pid of the process a harness child must die with; its pytest reads it (measure.plugin).
PARENT_ENV = "BS_PARENT_PID"


def _set_parent_death_signal(sig: int) -> bool:
    """Ask the kernel for `sig` when the parent exits; False where the call does not exist."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def die_with_parent(
    parent_pid: int,
    sig: int = signal.SIGTERM,
    grace_s: float | None = None,
    kernel: bool = True,
    watch: bool = True,
) -> None:
    """Make this process get `sig` when `parent_pid`, its parent, ends.

    Args:
        parent_pid: the parent this process was started by; if it already ended (this
            process has another parent now), `sig` is sent at once.
        sig: SIGTERM where the process stops cleanly on it (a pytest run of the harness),
            SIGKILL where it has nothing to clean up (a rank worker).
        grace_s: after the watcher sent `sig` itself, how long the process may take to end
            before it SIGKILLs its process group (if it leads one) or itself; None: never.
        kernel: arm the kernel's parent-death signal too. Only for a parent that started
            this process from its main thread (the harness's own processes); a parent the
            harness did not write (torchrun) gets the watcher alone.
        watch: start the watcher even where the kernel's signal is armed (a process whose
            handler may not run in time). A rank worker passes False: SIGKILL needs no
            handler, and a thread waking in a process that times host work is kept out of
            it where the kernel can do the job.
    """
    armed_by_kernel = kernel and _set_parent_death_signal(sig)
    if os.getppid() != parent_pid:
        os.kill(os.getpid(), sig)
    if armed_by_kernel and not watch:
        return
    watcher = threading.Thread(
        target=_watch, args=(parent_pid, sig, grace_s), name="bs-parent-watch", daemon=True
    )
    watcher.start()


def _watch(parent_pid: int, sig: int, grace_s: float | None) -> None:
    while os.getppid() == parent_pid:
        time.sleep(POLL_S)
    os.kill(os.getpid(), sig)
    if grace_s is None:
        return
    time.sleep(grace_s)
    if os.getpgrp() == os.getpid():
        os.killpg(os.getpid(), signal.SIGKILL)
    os.kill(os.getpid(), signal.SIGKILL)


def child_env(env: dict[str, str] | None = None) -> dict[str, str]:
    """`env` (default: this process's) naming this process as the parent to die with."""
    return {**(os.environ if env is None else env), PARENT_ENV: str(os.getpid())}


def armed(command: list[str]) -> list[str]:
    """`command` behind this module's launcher: it dies (SIGTERM) with the calling process."""
    return [
        sys.executable,
        "-m",
        "measure.ranks.lifetime",
        "--parent",
        str(os.getpid()),
        "--",
        *command,
    ]


def start_time(pid: int) -> int | None:
    """The process's start time (clock ticks after boot), so a reused pid is told apart; None
    when no such process is alive (or /proc cannot be read: not Linux)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    if fields[0] == "Z":  # exited, not yet reaped: it does nothing any more
        return None
    return int(fields[19])


def alive(pid: int, started: int | None = None) -> bool:
    """Whether the process runs (and, given `started`, is the one that started then)."""
    if not Path("/proc/self").exists():  # no /proc (not Linux): ask the kernel, no start time
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    now = start_time(pid)
    return now is not None and (started is None or now == started)


def processes_with_env(key: str, value: str) -> list[int]:
    """Live processes of this user on this host whose environment has key=value (children
    inherit it, so it finds a whole process tree), this process excepted."""
    needle = f"{key}={value}".encode()
    found = []
    for d in Path("/proc").glob("[0-9]*"):
        pid = int(d.name)
        if pid == os.getpid():
            continue
        try:
            environ = (d / "environ").read_bytes()
        except OSError:  # gone, or another user's
            continue
        if needle in environ.split(b"\0") and alive(pid):
            found.append(pid)
    return sorted(found)


def command_line(pid: int) -> str:
    """The process's command line, for messages ('?' once it is gone)."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return "?"
    return raw.replace(b"\0", b" ").decode(errors="replace").strip()


def main(argv: list[str] | None = None) -> None:
    """Arm SIGTERM on the parent's death, then become the command (exec keeps the arming)."""
    p = argparse.ArgumentParser(prog="python -m measure.ranks.lifetime", description=__doc__)
    p.add_argument("--parent", type=int, required=True, help="pid this command dies with")
    p.add_argument("command", nargs=argparse.REMAINDER, help="-- then the command")
    a = p.parse_args(argv)
    command = a.command[1:] if a.command[:1] == ["--"] else a.command
    if not command:
        p.error("no command after --")
    _set_parent_death_signal(signal.SIGTERM)
    if os.getppid() != a.parent:
        sys.exit(128 + signal.SIGTERM)  # the parent is gone already: nothing to run for
    os.execvp(command[0], command)


if __name__ == "__main__":
    main()
