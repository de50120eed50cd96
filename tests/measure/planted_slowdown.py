"""Test-only plugin (`-p tests.measure.planted_slowdown`): dense_single does 20% more work.

It registers dense_single again with a class whose weight has N_out/5 more rows (W's own rows
again): every forward multiplies X by the taller weight into a taller output whose first N_out
columns are the layer's `out` (so the check still sees the right product, in the buffer it
poisons). Its cells keep their names, so a run with this plugin is a real run of a slower
dense_single that the regression gate must flag against a run without it. The ranks get the
class through the spec the session sends them (as for tests.kernels.planted_methods); nothing
in the harness is patched. `--plant-extra-work` sets the fraction (default 0.2).
"""

from __future__ import annotations

import os
from dataclasses import replace

import torch

from kernels import registry
from kernels.methods import DenseSingle

_ENV = "BS_TEST_PLANTED_EXTRA_WORK"  # carries the option to the spawned ranks


class SlowerDense(DenseSingle):
    def build(self, a):
        n_out = a.weight.shape[0]
        extra = max(1, round(n_out * float(os.environ.get(_ENV, "0.2"))))
        rows = torch.arange(n_out + extra, device=a.weight.device) % n_out  # W, then W again
        self.w = a.weight[rows].contiguous()
        self.b = None if a.bias is None else a.bias[rows]
        self.tall = torch.empty(
            a.batch, n_out + extra, dtype=a.weight.dtype, device=self.out.device
        )
        self.out = self.tall[:, :n_out]
        self.weight_bytes = self._bytes(self.w, self.b)

    def compute(self, x):
        if self.b is not None:
            torch.addmm(self.b, x, self.w.t(), out=self.tall)
        else:
            torch.mm(x, self.w.t(), out=self.tall)
        return self.out


def pytest_addoption(parser):
    parser.addoption(
        "--plant-extra-work",
        type=float,
        default=0.2,
        help="fraction of dense_single's work added by tests.measure.planted_slowdown",
    )


def pytest_configure(config):
    os.environ[_ENV] = str(config.getoption("--plant-extra-work"))


registry.register(replace(registry.spec("dense_single"), impl=SlowerDense), replace=True)
