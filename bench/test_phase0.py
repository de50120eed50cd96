"""phase0: every method against a float64 reference, asserted inline in the cell."""

from measure.runner import run_phase0


def phase0(cell, ranks, bench, cell_seed):
    results = ranks.run(run_phase0, cell.as_dict(), cell_seed, bench.task_options())
    bench.finish(cell, results)
