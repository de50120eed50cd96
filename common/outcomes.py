"""The words a cell's record uses for how it ended, shared by the harness that writes them,
the reports that read them and the studies that classify them."""

STATUSES = ("passed", "failed", "error")  # failed: its check failed; error: a rank failed
FAILURE_KINDS = (
    "wrong_result",
    "rank_error",
    "rank_crash",
    "rank_hang",
    "out_of_memory",
    "time_cap",
)
