"""The process-group pool: real gloo ranks, reuse, and failures that never hang pytest.

Every bound under test is the task's: pools start under the default start-up bound, so a slow
spawn on a busy machine is not read as a hang. Each failure says which rank and how.
"""

import math
import os
import subprocess
import sys
import tempfile
import time

import pytest

from common.errors import BenchError, RankError, RankTimeout
from measure.ranks.failures import GRACE_S, Timeouts, cause_line, describe_exit
from measure.ranks.pool import _STACK_PREFIX, _STACK_WAIT_S, RankPool
from tests.conftest import ROOT
from tests.measure.rank_tasks import (
    all_reduce_rank_plus_one,
    die_in_a_collective,
    out_of_memory_on_every_rank,
    raise_after_a_pending_collective_on_rank0,
    raise_on_every_rank,
    raise_on_rank1,
    rank_and_pid,
    sleep_on_rank0,
    wait_in_all_reduce_on_rank0,
)


def test_two_gloo_ranks_all_reduce(gloo_pair):
    assert gloo_pair.backend == "gloo"
    assert gloo_pair.run(all_reduce_rank_plus_one) == [3.0, 3.0]


def test_the_pool_is_reused_not_restarted(gloo_pair):
    first = gloo_pair.run(rank_and_pid)
    second = gloo_pair.run(rank_and_pid)
    assert first == second and [r for r, _ in first] == [0, 1]


def test_errors_on_every_rank_before_any_collective_keep_the_pool(gloo_pair):
    """A mask error in each of 5 cells costs the error, not a grace period and a restart each."""
    before = gloo_pair.run(rank_and_pid)
    t0 = time.monotonic()
    for i in range(5):
        with pytest.raises(RankError) as failure:
            gloo_pair.run(raise_on_every_rank, f"planted mask error {i}")
        e = failure.value
        assert e.kind == "rank_error" and e.rank in (0, 1) and e.stacks is None
        assert f"raise_on_every_rank: rank {e.rank} of world_size 2 raised:" in str(e)
        assert f"planted mask error {i} on rank {e.rank}" in str(e)
        assert f"also rank {1 - e.rank} (secondary)" in str(e)
        assert "torn down" not in str(e)
    assert time.monotonic() - t0 < GRACE_S  # not one grace period, let alone five
    assert gloo_pair.alive
    assert gloo_pair.run(rank_and_pid) == before  # the same processes answer


def test_an_out_of_memory_error_is_its_own_kind(gloo_pair):
    with pytest.raises(RankError, match="CUDA out of memory") as failure:
        gloo_pair.run(out_of_memory_on_every_rank)
    assert failure.value.kind == "out_of_memory"
    assert gloo_pair.alive


def test_a_rank_that_raises_while_another_waits_tears_down_after_the_grace():
    pool = RankPool(2, "cpu", Timeouts(task_s=60))
    t0 = time.monotonic()
    expected = r"rank 1 of world_size 2 raised:[\s\S]*planted failure"
    with pytest.raises(RankError, match=expected) as f:
        pool.run(raise_on_rank1)
    assert time.monotonic() - t0 < 20  # the grace period, not the 60 s bound
    e = f.value
    assert e.kind == "rank_error" and e.rank == 1
    assert "in barrier" in e.stacks[0]  # where rank 0 was left waiting
    # the failure's last line is a note ("the group was torn down"); its cause is the error
    record_text = f"phase0[c-ws2]: {e}"
    assert record_text.splitlines()[-1] == "the group was torn down"
    assert cause_line(record_text) == "ValueError: planted failure on rank 1"
    assert not pool.alive
    with pytest.raises(RankError, match="torn down"):
        pool.run(rank_and_pid)


def test_a_collective_left_pending_by_one_rank_tears_down_though_all_answered():
    pool = RankPool(2, "cpu")
    with pytest.raises(RankError, match=r"planted failure[\s\S]*different numbers of collectives"):
        pool.run(raise_after_a_pending_collective_on_rank0)
    assert not pool.alive


def test_a_rank_that_hangs_times_out_within_the_task_bound_with_every_ranks_stack():
    pool = RankPool(2, "cpu", Timeouts(task_s=3))  # start-up: its own, default bound
    assert pool.run_setup(sleep_on_rank0, 4) == [0, 1]  # set-up too: longer than the task's
    t0 = time.monotonic()
    with pytest.raises(
        RankTimeout, match=r"rank\(s\) \[0\] of world_size 2 did not answer within 3 s"
    ) as failure:
        pool.run(wait_in_all_reduce_on_rank0)
    elapsed = time.monotonic() - t0
    assert 3 <= elapsed < 3 + _STACK_WAIT_S + 10  # far under the group's own 600 s bound
    e = failure.value
    assert isinstance(e, RankError) and e.kind == "rank_hang" and e.rank == 0
    assert set(e.stacks) == {0, 1}
    assert "in wait_in_all_reduce_on_rank0" in e.stacks[0] and "in all_reduce" in e.stacks[0]
    assert "--- rank 0 (did not answer) ---" in str(e) and "in all_reduce" in str(e)
    assert not pool.alive


@pytest.mark.parametrize(
    "rank, how, exit_text",
    [(1, "sigkill", "killed by signal 9 (SIGKILL)"), (0, "exit", "exited with code 3")],
)
def test_a_dead_rank_is_named_by_its_exit(rank, how, exit_text):
    pool = RankPool(2, "cpu", Timeouts(task_s=60))
    t0 = time.monotonic()
    with pytest.raises(RankError) as failure:
        pool.run(die_in_a_collective, rank, how)
    assert time.monotonic() - t0 < 30  # noticed, not waited out
    e = failure.value
    first_line = str(e).splitlines()[0]
    assert first_line == f"die_in_a_collective: rank {rank} of world_size 2 died: {exit_text}"
    assert cause_line(f"phase0[c-ws2]: {e}") == first_line  # no traceback: the first line
    assert e.kind == "rank_crash" and e.rank == rank
    assert not pool.alive


@pytest.mark.parametrize("bad", [0, -1, math.nan, math.inf])
@pytest.mark.parametrize("field", ["startup_s", "setup_s", "task_s"])
def test_every_timeout_must_be_finite_and_positive(field, bad):
    with pytest.raises(BenchError, match=f"{field} must be a finite positive number"):
        Timeouts(**{field: bad})


@pytest.mark.parametrize("value", ["0", "-1", "nan", "inf"])
@pytest.mark.parametrize(
    "option", ["--bs-rank-timeout", "--bs-startup-timeout", "--bs-setup-timeout"]
)
def test_a_timeout_option_not_finite_and_positive_is_a_usage_error(pytester, option, value):
    pytester.makeconftest('pytest_plugins = ["measure.plugin"]')
    result = pytester.runpytest_inprocess(f"{option}={value}", "-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"*{option} must be a finite positive number of seconds*"])


def test_an_exit_status_of_128_plus_a_signal_says_the_signal_stopped_it():
    """A pytest stopped by SIGTERM exits 143 (measure.plugin.signals): named as such."""
    assert describe_exit(143) == "exited with code 143 (128 + SIGTERM: stopped by it)"
    assert describe_exit(-9) == "killed by signal 9 (SIGKILL)"
    assert describe_exit(1) == "exited with code 1"


def test_a_new_pool_removes_the_stack_folder_of_a_run_that_is_gone():
    """A pytest killed with SIGKILL cannot remove its ranks' stack folder: the next pool on the
    machine does, and leaves a live run's alone."""
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    dead_pid = int(gone.stdout)
    stale = tempfile.mkdtemp(prefix=f"{_STACK_PREFIX}{dead_pid}-ws2-")
    live = tempfile.mkdtemp(prefix=f"{_STACK_PREFIX}{os.getpid()}-ws2-")
    try:
        pool = RankPool(1, "cpu")
        assert not os.path.exists(stale)
        assert os.path.isdir(live)  # this process is alive: its folder is kept
        pool.close()
    finally:
        for folder in (stale, live):
            if os.path.isdir(folder):
                os.rmdir(folder)


STOP_INSIDE_A_TASK_PUT = """
import os, signal, sys, threading, time, traceback
from measure.ranks.pool import RankPool
from tests.measure.rank_tasks import rank_and_pid

class Stop(BaseException):  # what a stop signal raises (RunStopped is a KeyboardInterrupt)
    pass

armed = False

def on_signal(signum, frame):
    if armed:
        raise Stop()

if __name__ == "__main__":
    signal.signal(signal.SIGUSR2, on_signal)
    pool = RankPool(1, "cpu")
    pool.run(rank_and_pid)
    running = True

    def send():
        while running:
            os.kill(os.getpid(), signal.SIGUSR2)
            time.sleep(0.0002)

    threading.Thread(target=send, daemon=True).start()
    inside = 0
    deadline = time.monotonic() + 60
    seq = 10**6
    while inside < 20 and time.monotonic() < deadline:
        try:
            armed = True
            for q in pool._tasks:  # what pool.run does to hand a task over
                seq += 1
                q.put((seq, rank_and_pid, ()))
            armed = False
        except Stop:
            armed = False
            inside += "put" in [f.name for f in traceback.extract_tb(sys.exc_info()[2])[1:]]
    running = False
    pool.close(force=True)  # as a stopped run does
    print("stops inside a task put:", inside, flush=True)
"""


def test_a_stop_raised_inside_a_task_hand_over_leaves_the_process_able_to_exit(tmp_path):
    """A stop signal raises wherever the main thread is, also inside the put that hands a rank
    its task. A multiprocessing.Queue put there left its lock held, and the process hung at
    exit in the queue's finalizer (a pytest stopped by SIGHUP printed its summary, then never
    exited). Real signals, 20 of them landing inside a put; the process must then exit."""
    script = tmp_path / "stop_inside_a_task_put.py"
    script.write_text(STOP_INSIDE_A_TASK_PUT)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TMPDIR": str(tmp_path)}
    proc = subprocess.Popen(
        [sys.executable, str(script)], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True,
    )  # fmt: skip
    try:
        out, _ = proc.communicate(timeout=240)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
        pytest.fail(f"the process did not exit after its stops:\n{out[-3000:]}")
    assert proc.returncode == 0, out[-3000:]
    assert "stops inside a task put: 20" in out, out[-3000:]
