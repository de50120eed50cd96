"""Studies: a suite (or a -k slice of it) run to completion into one folder, surviving a night.

The study process never imports pytest: it runs the harness the way a user does, one pytest
subprocess per slice of cells (`python -m pytest bench --suite S -k <cells> ...`, under torchrun
where asked, or as a submitit job on SLURM), and keeps a manifest of every cell and cycle.
Modules, one concern each: `preflight` (collection, estimate, what cannot run, design hash),
`manifest` (the study's state on disk), `plan` (slices and their commands), `slice_exec` (one
slice under a watchdog), `events` (the pytest plugin that reports cell starts and outcomes),
`classify` (failure classes and the retry policy), `integrity` (sha256 sidecars), `progress`
(the live display and the one-line status), `executors` (in-process, submitit local and SLURM),
`study` (the run and collect loops), `tables` (failure table and spread over cycles for reports).
"""
