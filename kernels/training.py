"""One train step on one rank: forward, loss, backward, grad_W, optimizer, refresh.

A `TrainState` wraps a built method (kernels/methods.py) with this rank's trainable copy and
its optimizer. Each piece is its own callable so the harness can time it alone: `forward`,
`backward_input`, `grad_weight`, `optimizer_step` and `compress` (refresh the compute copy:
re-compress a 2:4 half, cast a dense one); `step` runs them all in that order.

Precision: fp32 master weights. The optimizer (torch.optim SGD with momentum 0, or AdamW with
torch's defaults and weight_decay 0.01) updates an fp32 copy of what this rank holds; the GEMMs
run in the cell's dtype on the compute copy that `compress` casts (and compresses) from it. This
is how mixed-precision training is run, and it keeps the float64 reference one rule: the same
torch.optim class on a float64 copy (measure/checks/training.py). What a rank holds is
`layer.shard(W)`: a Block-Shock half's kept values only (N_out x N_in/2; T1 and T2), so its
master, gradient and optimizer state are as large as the dense half's and hold no zeros.

Loss: 0.5 * ||Y - T||^2 / B with a fixed fp32 target T, computed in fp32 from Y on every rank
(each rank holds the full Y after the forward's collective); grad_Y = (Y - T) / B in the dtype.
The bias is not trained (phase3 cells have bias off: the matrix says so).

Variants (the 2:4 methods only, `semi_structured` in their spec; the others refresh every step):
- T1: mask fixed; every step re-compresses W_g (and W_g^T for the 2:4 backward).
- T1m: every step re-chooses the transposable mask by magnitude and re-compresses. Choosing a
  complementary split needs the whole W, so each rank holds the full fp32 master W (replicated)
  and its optimizer state, and updates it with the full grad_Y^T X (every rank has X and grad_Y,
  so no collective); both ranks pick the same mask from the same W.
- T2: compress once, never again: forward and backward keep the initial halves while the
  optimizer still updates the master, so its step time is T1's minus the compress (the bound
  with no re-compression); its reference trains with the forward frozen at W_0.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from common.errors import CellSpecError, closest
from kernels.masks import transposable_magnitude_m0
from kernels.methods import BuildArgs, Method

OPTIMIZERS = ("sgd", "adamw")
VARIANTS = ("T1", "T1m", "T2")
ADAMW_DEFAULTS: dict[str, Any] = {"betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0.01}


@dataclass(frozen=True)
class TrainConfig:
    """The training axes of a cell: optimizer name, learning rate and re-compression variant
    (the matrix validates them, measure/cells/matrix.py, before anything runs)."""

    optimizer: str
    lr: float
    variant: str | None = None


def make_optimizer(name: str, params: list[torch.Tensor], lr: float) -> torch.optim.Optimizer:
    """SGD (momentum 0) or AdamW (torch's defaults, weight decay 0.01); CellSpecError naming the
    choices for any other name, so a typo never trains with another optimizer."""
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=0.0)
    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr, **ADAMW_DEFAULTS)
    raise CellSpecError(f"unknown optimizer {name!r}{closest(name, OPTIMIZERS)}; {OPTIMIZERS}")


def mse_loss_grad(y: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(0.5 * ||Y - T||^2 / B in fp32, grad_Y = (Y - T) / B in Y's dtype)."""
    diff = y.float() - target
    return 0.5 * diff.pow(2).sum() / y.shape[0], (diff / y.shape[0]).to(y.dtype)


class TrainState:
    """This rank's master weights, optimizer and variant around a built method."""

    def __init__(
        self,
        layer: Method,
        args: BuildArgs,
        cfg: TrainConfig,
        target: torch.Tensor,
        record_masks: bool = False,
    ):
        if cfg.variant not in (None, *VARIANTS):
            raise CellSpecError(f"unknown variant {cfg.variant!r}; variants: {VARIANTS}")
        self.layer, self.cfg, self.target = layer, cfg, target
        self.dtype = args.weight.dtype
        self.full_master = cfg.variant == "T1m"
        held = args.weight if self.full_master else layer.shard(args.weight)
        # copies, never views of args.weight: the check's reference starts from W_0 after the run
        self.master = torch.nn.Parameter(held.to(torch.float32, copy=True), requires_grad=False)
        layer.own_weight(args.weight)
        self.optimizer = make_optimizer(cfg.optimizer, [self.master], cfg.lr)
        layer.prepare_backward(args)
        # m0 used by each step's forward (T1m only; the check replays them in float64)
        self.m0_history = None
        if record_masks and self.full_master and args.masks is not None:
            self.m0_history = [args.masks[0]]

    def forward(self, x_local: torch.Tensor) -> torch.Tensor:
        return self.layer.forward(x_local)

    def loss_and_grad(self, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The loss and this rank's part of grad_Y (`local_grad_output`)."""
        loss, grad_y = mse_loss_grad(y, self.target)
        return loss, self.layer.local_grad_output(grad_y)

    def backward_input(self, grad_y_local: torch.Tensor) -> torch.Tensor:
        return self.layer.backward_input(grad_y_local)

    def grad_weight(self, x_local: torch.Tensor, grad_y_local: torch.Tensor) -> None:
        """Set the master's gradient: grad_Y^T X restricted (and masked) to what the rank holds,
        or the full grad_Y^T X for T1m's replicated master."""
        if self.full_master:
            g = torch.mm(grad_y_local.t(), x_local)
        else:
            g = self.layer.grad_weight(x_local, grad_y_local)
        self.master.grad = g.float()

    def optimizer_step(self) -> None:
        self.optimizer.step()

    def compress(self) -> None:
        """Refresh the compute copy from the master: cast (dense) or re-compress (2:4); T1m
        first re-chooses the transposable mask by magnitude (the prune)."""
        with torch.no_grad():
            if not self.full_master:
                self.layer.load_weight(self.master.to(self.dtype))
                return
            m0 = transposable_magnitude_m0(self.master)
            mask = m0 if self.layer.rank == 0 else ~m0
            self.layer.load_weight((self.master * mask).to(self.dtype), mask)
            if self.m0_history is not None:
                self.m0_history.append(m0)

    def step(self, x_local: torch.Tensor) -> torch.Tensor:
        """One full train step; returns the loss of its forward (fp32 scalar tensor)."""
        loss, grad_y = self.loss_and_grad(self.forward(x_local))
        self.backward_input(grad_y)  # a lone layer's grad_X goes nowhere, but a step pays for it
        self.grad_weight(x_local, grad_y)
        self.optimizer_step()
        if self.cfg.variant != "T2":
            self.compress()
        return loss

    def state_bytes(self) -> dict:
        """Bytes this rank holds for training beyond the compute copy."""
        size = lambda t: t.numel() * t.element_size()  # noqa: E731
        opt = sum(size(v) for s in self.optimizer.state.values() for v in s.values() if v.dim())
        grad = 0 if self.master.grad is None else size(self.master.grad)
        return {"master_bytes": size(self.master), "optimizer_bytes": opt, "grad_bytes": grad}


def drift_run(layer: Method, x: torch.Tensor, steps: int) -> list[torch.Tensor]:
    """The drift block x <- x + tanh(layer(x)) applied `steps` times with the weights fixed
    (N_out must equal N_in); returns x_1..x_T (each a new tensor, on every rank in full)."""
    if steps <= 0:
        raise CellSpecError(f"drift: T must be a positive number of steps, got {steps}")
    if layer.out.shape[1] != x.shape[1]:
        raise CellSpecError(
            f"drift: x <- x + tanh(layer(x)) needs N_out == N_in, got {layer.out.shape[1]} "
            f"and {x.shape[1]}"
        )
    out = []
    for _ in range(steps):
        x = x + torch.tanh(layer.forward(layer.local_input(x)))
        out.append(x)
    return out
