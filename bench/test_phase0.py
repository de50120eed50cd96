"""phase0: every method against a float64 reference, asserted inline in the cell."""


def phase0(cell, bench):
    bench.run(cell)
