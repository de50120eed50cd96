"""How a slice of a study runs: its pytest (or torchrun) under the watchdog (`execute`), where it
runs (`executors`: in this process's children, or submitit's local and SLURM executors), the
plugin its pytest loads to report cell starts and ends (`events`), and the failure classes and
retry policy for what it left (`classify`)."""
