"""Studies: a suite (or a -k slice of it) run to completion into one folder, surviving a night.

The study process never imports pytest: it runs the harness the way a user does, one pytest
subprocess per slice of cells (`python -m pytest bench --suite S -k <cells> ...`, under torchrun
where asked, or as a submitit job on SLURM), and keeps a manifest of every cell and cycle.
Modules, one concern each: `preflight` (collection, estimate, what cannot run, design hash),
`manifest` (the study's state on disk), `plan` (slices and their commands), `lock` (one owner
per study folder), `records` (exactly one record per cell run), `integrity` (sha256 sidecars),
`progress` (the live display and the one-line status), `study` (the run and collect loops),
`tables` (failure table and spread over cycles for reports), and `slices/`: how one slice runs
(`execute` under a watchdog, `executors` in-process or through submitit, `events` the pytest
plugin that reports cell starts and outcomes, `classify` failure classes and the retry policy).
"""
