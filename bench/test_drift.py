"""drift: a block x <- x + tanh(layer(x)) applied `steps` times with the weights fixed; the
relative error against the float64 dense trajectory at every step is recorded, asserted inline
(NaN/inf, or an error above the stated bound, fails the cell)."""


def drift(cell, bench):
    bench.run(cell)
