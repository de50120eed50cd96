"""`python -m reports.planner`: on my GPUs, at my N and batch, which layout wins?

    python -m reports.planner --machine h100_sxm --machine b200 --n 32768 --batch 64
    python -m reports.planner --machine rtx_pro_4000_blackwell \\
        --records <Block-Shock checkout>/results/official --mode eager --n 16384 --batch 64 \\
        --plot results/regions.png

For each machine description named, every layout of one N x N linear layer (one GPU dense, row
and column tensor parallel, the masked split, Block-Shock on each 2:4 backend) is predicted by
the time model (reports/model), fitted on `--records` (the harness's pytest-benchmark JSON files,
run folders, or the original study's results folders; default: this repository's committed H100
and H200 runs). It prints the winner, its margin over the runner-up with a 95% bootstrap interval,
the share of draws it wins, the term that decides it (per-call, memory, math or link), each
layout's time and terms, and what each number rests on: fitted on this machine, calibrated with
its cells, composed from its measured one-GPU half, or extrapolated from another machine's fit
(said so, with which). `--plot` draws the winner over N x B for each machine.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402

from common.errors import BenchError, ReportInputError  # noqa: E402
from reports.model import machine  # noqa: E402
from reports.model.fitting import source_fit  # noqa: E402
from reports.model.observations import Measured, load  # noqa: E402
from reports.model.plan import (  # noqa: E402
    Answer,
    answer,
    candidates,
    link_basis,
    link_library,
    target_fit,
)
from reports.model.time_model import MODES, Prediction, predict  # noqa: E402
from reports.model.validation import H100_RUNS, H100X2_RUNS, H200X2_RUNS  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_RECORDS = tuple(ROOT / p for p in (*H100_RUNS, *H100X2_RUNS, *H200X2_RUNS))
GRID_N = (4096, 8192, 16384, 32768, 65536, 131072)
GRID_B = (1, 4, 16, 64, 256, 1024, 4096)


def fmt_time(s: float) -> str:
    """Seconds in s, ms or us with three significant digits (a table reads 126 us, not 1.255e-4)."""
    value, unit = next(
        ((s / f, u) for f, u in ((1.0, "s"), (1e-3, "ms"), (1e-6, "us")) if abs(s) >= f),
        (s / 1e-6, "us"),
    )
    digits = max(0, 2 - math.floor(math.log10(abs(value)))) if value else 0
    text = f"{value:.{digits}f}"
    if len(text.replace(".", "").lstrip("0")) > 3 and "." not in text:  # 999.6 us -> 1.00 ms
        return fmt_time(float(f"{s:.3g}"))
    return f"{text} {unit}"


def report(a: Answer) -> list[str]:
    """The answer for one machine, as printed."""
    w, (ratio, lo, hi) = a.winner, a.margin
    lines = [
        f"== {a.gpu.name} ({a.gpu.link.name}, {a.gpu.key}): {status(a)}: {a.fit.basis}",
        f"collective model: {link_basis(a.fit, a.gpu.link)}",
        f"winner: {w.cell.label} ({w.cell.world_size} GPU{'s' if w.cell.world_size > 1 else ''}) "
        f"{fmt_time(w.total_s)} [{fmt_time(w.interval[0])}, {fmt_time(w.interval[1])}]",
    ]
    if a.runner_up is not None:
        lines.append(
            f"by {ratio:.2f}x over {a.runner_up.cell.label} (95% interval {lo:.2f}-{hi:.2f}; "
            f"fastest in {100 * a.wins_share:.0f}% of draws); decided by the {a.decided_by} term"
        )
    if w.basis.startswith("GUESS"):
        lines.append(
            f"warning: the winner rests on a guess ({w.basis.removeprefix('GUESS: ')}): time "
            f"its kernel on any GPU to settle it"
        )
    if w.prediction.l2_resident:
        lines.append("note: the winner's bytes fit in L2; the memory term (DRAM) is an upper bound")
    lines.append(
        f"{'layout':<26}{'time':>10}  {'95% interval':<22}{'per-call':>10}{'memory':>10}"
        f"{'math':>10}{'link':>10}  bound by  basis"
    )
    for c in a.candidates:
        t = c.prediction.terms
        lines.append(
            f"{c.cell.label:<26}{fmt_time(c.total_s):>10}  "
            f"{fmt_time(c.interval[0]) + ' - ' + fmt_time(c.interval[1]):<22}"
            + "".join(f"{fmt_time(t[k]):>10}" for k in ("per-call", "memory", "math", "link"))
            + f"  {c.prediction.regime:<9} {c.basis}"
        )
    return lines


def _winners(a: Answer, dtype: str, world_size: int, mode: str) -> list[list[Prediction]]:
    """Per (B, N) of the grid, every layout's point prediction, fastest first."""
    rows = []
    for b in GRID_B:
        for n in GRID_N:
            preds = []
            for c in candidates(n, b, dtype, world_size, mode, a.fit):
                try:
                    preds.append(predict(c, a.gpu, a.fit))
                except ReportInputError:
                    continue
            rows.append(sorted(preds, key=lambda p: p.total_s))
    return rows


def region_plot(
    answers: Sequence[Answer], dtype: str, world_size: int, mode: str, out: Path
) -> None:
    """The winning layout over N x B per machine (point predictions), its margin written in;
    one colour per layout across all panels."""
    grids = [_winners(a, dtype, world_size, mode) for a in answers]
    labels = sorted({preds[0].cell.label for g in grids for preds in g})
    cmap = plt.get_cmap("tab10", max(len(labels), 2))
    fig, axes = plt.subplots(1, len(answers), figsize=(6 * len(answers), 4.6), squeeze=False)
    for ax, a, g in zip(axes[0], answers, grids, strict=True):
        index = np.array([labels.index(p[0].cell.label) for p in g]).reshape(len(GRID_B), -1)
        ax.imshow(
            index,
            cmap=cmap,
            vmin=-0.5,
            vmax=max(len(labels), 2) - 0.5,
            aspect="auto",
            origin="lower",
        )
        for k, preds in enumerate(g):
            i, j = divmod(k, len(GRID_N))
            margin = preds[1].total_s / preds[0].total_s if len(preds) > 1 else 1.0
            l2 = "\n(L2)" if preds[0].l2_resident else ""
            ax.text(
                j,
                i,
                f"{margin:.2f}x\n{preds[0].regime}{l2}",
                ha="center",
                va="center",
                fontsize=6.5,
            )
        ax.set_xticks(range(len(GRID_N)), [str(n) for n in GRID_N])
        ax.set_yticks(range(len(GRID_B)), [str(b) for b in GRID_B])
        ax.set_xlabel("N (N x N layer)")
        ax.set_ylabel("B (tokens)")
        ax.set_title(f"{a.gpu.name}, {dtype}, {mode} ({status(a)})", fontsize=9)
        shown = sorted(set(index.flat))
        handles = [Patch(color=cmap(k)) for k in shown]
        ax.legend(
            handles,
            [labels[k] for k in shown],
            fontsize=7,
            loc="upper left",
            bbox_to_anchor=(0, -0.13),
            ncol=2,
        )
    fig.suptitle(
        "Fastest layout (cell text: margin over the runner-up, the winner's bound)", fontsize=10
    )
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=120)
    plt.close(fig)


def status(a: Answer) -> str:
    """How the machine's parameters were had: fitted, calibrated, or EXTRAPOLATED."""
    if a.fit.extrapolated:
        return "EXTRAPOLATED"
    return "calibrated" if "calibrated" in a.fit.basis else "fitted"


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m reports.planner", description=__doc__.split("\n\n")[0]
    )
    ap.add_argument(
        "--machine",
        action="append",
        required=True,
        help="a machine description: file stem (h100_sxm), name, device name or a .toml path",
    )
    ap.add_argument("--n", type=int, required=True, help="the layer's N (N x N weight)")
    ap.add_argument("--batch", type=int, required=True, help="tokens per forward (B)")
    ap.add_argument("--dtype", default="bf16", choices=("bf16", "fp16", "fp32"))
    ap.add_argument("--phase", default="phase1", help="only phase1 (the forward) is modelled")
    ap.add_argument("--world-size", type=int, default=2, help="GPUs the layer may use (default 2)")
    ap.add_argument(
        "--mode",
        default="graph",
        choices=MODES,
        help="graph: CUDA-graph replay (the harness's figure); eager: plain calls",
    )
    ap.add_argument(
        "--records",
        action="append",
        type=Path,
        help="calibration inputs: benchmark JSON, run folders, original-study results "
        "(default: the committed H100 and H200 runs)",
    )
    ap.add_argument("--source", help="the machine whose fit is the prior (default: most cells)")
    ap.add_argument(
        "--machines-dir",
        type=Path,
        default=machine.MACHINES_DIR,
        help="folder with gpus/ and links/ descriptions (add yours by copying one)",
    )
    ap.add_argument("--draws", type=int, default=100, help="bootstrap draws for the intervals")
    ap.add_argument("--plot", type=Path, help="write the N x B region plot (PNG) here")
    args = ap.parse_args(argv)
    try:
        if args.phase != "phase1":
            raise ReportInputError(
                f"phase {args.phase!r}: the time model covers phase1 (the forward) only; backward "
                "and train-step times have no fitted model yet"
            )
        if args.n <= 0 or args.batch <= 0 or args.world_size <= 0 or args.draws <= 0:
            raise ReportInputError("--n, --batch, --world-size and --draws must be positive")
        gpus = machine.load_all(args.machines_dir)
        targets = [machine.find(m, args.machines_dir) for m in args.machine]
        gpus.update({g.key: g for g in targets})
        measured: Measured = load(args.records or DEFAULT_RECORDS, gpus)
        counts = {k: len(measured.on(k).cells) for k in gpus}
        src_key = args.source or max(counts, key=lambda k: counts[k])
        if src_key not in gpus:
            src_key = machine.find(src_key, args.machines_dir).key
        src_measured = measured.on(src_key)
        src = source_fit(measured, gpus, src_key)
        library = link_library(measured, gpus)
        per = ", ".join(f"{k}: {v}" for k, v in counts.items() if v)
        print(
            f"records: {len(measured.cells)} cells ({per}), {len(measured.skipped)} skipped; "
            f"prior: {src.basis}"
        )
        print(
            f"question: N={args.n} B={args.batch} {args.dtype} phase1 forward, {args.mode} mode, "
            f"up to {args.world_size} GPUs"
        )
        answers = []
        for gpu in targets:
            base = target_fit(src, measured, gpu, library)
            cells = candidates(args.n, args.batch, args.dtype, args.world_size, args.mode, base)
            a = answer(gpu, src, src_measured, gpus[src_key], measured, library, cells, args.draws)
            answers.append(a)
            print("\n".join(["", *report(a)]))
        if args.plot:
            region_plot(answers, args.dtype, args.world_size, args.mode, args.plot)
            print(f"\nregion plot: {args.plot}")
    except BenchError as e:
        print(f"planner: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
