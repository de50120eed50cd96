"""Stopping a run: SIGTERM (a scheduler's time limit, `timeout`, `kill`) and SIGHUP (a closed
terminal) are handled like SIGINT (Ctrl+C), and a run started by the harness stops with its
parent.

The first of these signals raises `RunStopped` (a KeyboardInterrupt) in the main thread, so
pytest ends the session as it does on Ctrl+C: the cell in flight is abandoned unrecorded, the
rank pools are killed (`BenchSession.close`), the stack files go with them, `run.json` says
`interrupted` with the signal's name, and the exit status is 128 + the signal (130, 143, 129),
as a shell reports a process the signal killed. Later signals are ignored while that clean-up
runs (it is bounded: pools are killed, not waited for), and so is one that comes once the
session is ending anyway; SIGKILL ends it at once.

Two guards keep that stop from being lost. The session's `shouldstop` is set too: Python drops
an exception a handler raises inside a finalizer, and pytest then stops at the next cell
boundary anyway. And where the interrupted stack has a frame with no line number (Python 3.11
gives some generated frames none), pytest cannot draw the interruption's traceback and dies of
a TypeError with exit 1 (seen under load): there the raise waits, the signal is sent again
`RETRY_S` later (by a thread started with the handlers: a handler starting a thread would take
threading's own locks, which the interrupted code may hold), and lands elsewhere. By then
pytest may be stopping already (it raises its own Interrupted at the cell boundary once
`shouldstop` is set): a signal that lands while it handles that interruption, or after, raises
nothing, as one raised inside pytest's report of the interruption would escape it and end the
run with exit 1 and a traceback (seen under load).

A pytest started by the harness (a study's slice, with `BS_PARENT_PID` in its environment)
stops the same way when that parent ends (measure.ranks.lifetime), and is SIGKILLed with its
process group if it is still alive `ORPHAN_GRACE_S` later.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from typing import Any

import pytest

from common.errors import RunStopped
from measure.ranks.lifetime import PARENT_ENV, die_with_parent

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
ORPHAN_GRACE_S = 10.0
RETRY_S = 0.02


class StopSignals:
    """The run's handler of the stop signals, and which one came first."""

    def __init__(self):
        self.signum: int | None = None
        self.raised = False
        self.finishing = False  # the session is ending anyway: a signal now changes nothing
        self.session = None  # pytest's, once it started: its shouldstop ends the loop
        self._previous: dict[int, Any] = {}  # each signal's handler before ours
        self._resend: _Resender | None = None

    def install(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return  # only the main thread may set handlers (an embedded pytest keeps its host's)
        self._resend = _Resender()
        for sig in STOP_SIGNALS:
            self._previous[sig] = signal.signal(sig, self._on_signal)

    def restore(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()
        if self._resend is not None:
            self._resend.close()  # a pending resend would meet the previous handlers at exit
            self._resend = None

    def _on_signal(self, signum, frame) -> None:
        if self.raised or self.finishing:
            return
        if self.signum is None:
            self.signum = signum
            if self.session is not None:
                self.session.shouldstop = f"stopped by {self.name}"
        if _stopping(self.session):
            return
        if not _drawable(frame):
            if self._resend is not None:
                self._resend.ask(self.signum)
            return
        self.raised = True
        raise RunStopped(self.signum)

    @property
    def name(self) -> str | None:
        """SIGTERM, SIGHUP or SIGINT once one came, else None."""
        return None if self.signum is None else signal.Signals(self.signum).name

    @property
    def exitstatus(self) -> int | None:
        return None if self.signum is None else 128 + self.signum


class _Resender:
    """Sends a stop signal again RETRY_S after the handler asks, from a daemon thread started
    with the handlers; asking is one write to a pipe, which takes no lock."""

    def __init__(self) -> None:
        self._read, self._write = os.pipe()
        self.closed = False
        threading.Thread(target=self._run, name="bs-stop-resend", daemon=True).start()

    def ask(self, signum: int) -> None:
        os.write(self._write, bytes([signum]))

    def _run(self) -> None:
        with os.fdopen(self._read, "rb", buffering=0) as pipe:
            while asked := pipe.read(1):
                time.sleep(RETRY_S)
                if not self.closed:
                    os.kill(os.getpid(), asked[0])

    def close(self) -> None:
        """Send nothing more; the thread ends once it has read what was asked before."""
        self.closed = True
        os.close(self._write)


def _stopping(session) -> bool:
    """Whether pytest is already ending the session on an interruption: handling one (the
    exception being handled, here in the interrupted frames, is a KeyboardInterrupt: pytest's
    Interrupted once shouldstop was seen, or a RunStopped), or done handling it."""
    if isinstance(sys.exc_info()[1], KeyboardInterrupt):
        return True
    return session is not None and session.exitstatus == pytest.ExitCode.INTERRUPTED


def _drawable(frame) -> bool:
    """Whether every frame of the stack has a line number (pytest's report of the
    interruption's traceback reads each one)."""
    while frame is not None:
        if frame.f_lineno is None:
            return False
        frame = frame.f_back
    return True


_KEY = pytest.StashKey[StopSignals]()


def stop_signals(config) -> StopSignals | None:
    """The run's StopSignals (None for --help, which installs none)."""
    return config.stash.get(_KEY, None)


def _arm_parent() -> None:
    """Die with the harness process named in the environment: a direct child of it arms the
    kernel's signal too; a grandchild (a torchrun worker) watches its own parent."""
    expected = os.environ.get(PARENT_ENV)
    if not expected:
        return
    direct = os.getppid() == int(expected)
    parent = int(expected) if direct else os.getppid()
    die_with_parent(parent, signal.SIGTERM, ORPHAN_GRACE_S, kernel=direct)


def pytest_configure(config):
    if config.option.help:
        return
    stop = StopSignals()
    stop.install()
    config.stash[_KEY] = stop
    _arm_parent()


def pytest_sessionstart(session):
    stop = stop_signals(session.config)
    if stop is not None:
        stop.session = session


@pytest.hookimpl(tryfirst=True)
def pytest_sessionfinish(session):
    """A stopped run exits 128 + its signal (pytest would exit 2 for any interruption)."""
    stop = stop_signals(session.config)
    if stop is None:
        return
    stop.finishing = True
    if stop.signum is not None:
        session.exitstatus = stop.exitstatus


def pytest_unconfigure(config):
    stop = stop_signals(config)
    if stop is not None:
        stop.restore()
