"""Build DIR/report.md, a self-contained DIR/report.html, DIR/*.png and DIR/tables/*.csv.

Everything is written into a temporary folder beside DIR and moved into place only when the
whole report is built, so a failure leaves DIR as it was.
"""

from __future__ import annotations

import base64
import html
import shutil
import tempfile
from pathlib import Path

import pandas as pd
from rich.console import Console

from reports import analysis, plots
from reports.load import load

console = Console(stderr=True)


def _section(t: pd.DataFrame, checked: pd.DataFrame, out: Path, prefix: str, title: str):
    """Plots and tables for one kind of result (GPU or emulated); returns markdown lines."""
    md = [f"## {title}", ""]
    drawn: dict[str, str | None] = {}
    if not t.empty:
        drawn = {
            "forward time vs N": plots.time_vs_n(t, out, prefix, title),
            "speedup vs dense_single": plots.speedup(t, out, prefix, "dense_single"),
            "speedup vs dense_tp_row": plots.speedup(t, out, prefix, "dense_tp_row"),
            "breakdown": plots.breakdown(t, out, prefix),
            "% of floor": plots.pct_floor(t, out, prefix),
            "memory": plots.memory(t, out, prefix),
            "J per token": plots.energy(t, out, prefix),
            "quality-adjusted speed": plots.quality_speed(t, out, prefix),
        }
        cols = [
            "method",
            "mask",
            "N",
            "N_out",
            "B",
            "dtype",
            "world_size",
            "median_s",
            "floor_s",
            "pct_of_floor",
            "compute_median_s",
            "collective_median_s",
            "host_overhead_s",
            "j_per_token",
            "rel_fro_error",
            "load",
            "duty",
            "sm_clock_mhz_median",
            "sm_clock_mhz_min",
            "throttled",
            "stopped_by",
        ]
        table = t[[c for c in cols if c in t]].sort_values(["N", "B", "method"])
        table.to_csv(out / "tables" / f"{prefix}phase1.csv", index=False)
        md += ["### phase1 forward (median device time)", "", _md_table(table), ""]
    drawn["phase0 error vs N"] = plots.errors(checked if not checked.empty else t, out, prefix)
    if not checked.empty:
        checked.drop(columns=["source"]).to_csv(out / "tables" / f"{prefix}phase0.csv", index=False)
        md += [f"phase0: {int(checked.correct.sum())} of {len(checked)} cells correct.", ""]
    figs = [f for f in drawn.values() if f]
    missing = [k for k, f in drawn.items() if not f]
    md += [f"![{f}]({f})" for f in figs]
    if missing:
        md += ["", "Not drawn (these inputs lack the cells or figures): " + ", ".join(missing)]
    return md + [""], figs


def _md_table(df: pd.DataFrame) -> str:
    def fmt(v):
        if isinstance(v, float):
            return "-" if v != v else f"{v:.4g}"
        return str(v)

    head = "| " + " | ".join(df.columns) + " |"
    sep = "| " + " | ".join("---" for _ in df.columns) + " |"
    body = ["| " + " | ".join(fmt(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join([head, sep, *body])


def build(inputs: list[Path], out_dir: Path) -> Path:
    console.print(f"[bold]reading[/] {len(inputs)} input(s)")
    timed, checked = load(inputs)
    emulated_t = timed[timed.emulated.astype(bool)] if not timed.empty else timed
    gpu_t = timed[~timed.emulated.astype(bool)] if not timed.empty else timed
    emu_c = checked[checked.emulated.astype(bool)] if not checked.empty else checked
    gpu_c = checked[~checked.emulated.astype(bool)] if not checked.empty else checked
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}-", dir=out_dir.parent))
    try:
        (tmp / "tables").mkdir()
        md = ["# Block-Shock bench report", "", "Inputs: " + ", ".join(str(p) for p in inputs), ""]
        console.print("[bold]verdicts[/] (bootstrap 95% intervals)")
        md += ["## Verdicts (GPU results only)", ""]
        for v in analysis.verdicts(gpu_t):
            md += [f"- **{v['hypothesis']}**: {v['verdict']}, on {v['basis']}"]
            if not v["table"].empty:
                name = v["hypothesis"].split()[0].lower()
                v["table"].to_csv(tmp / "tables" / f"verdict_{name}.csv", index=False)
                for _, r in v["table"].iterrows():
                    md.append(
                        f"  - N={r.N} B={r.B} {r.numerator}"
                        f"{'(' + r['mask'] + ')' if isinstance(r['mask'], str) else ''}"
                        f"/{r.denominator} = {r.ratio:.3f} [{r.lo:.3f}, {r.hi:.3f}]"
                        + (" (ranks shared one GPU)" if r.shared_device else "")
                    )
        md.append("")
        m, eff = analysis.model(gpu_t)
        if not m.empty:
            m.to_csv(tmp / "tables" / "model.csv", index=False)
            md += [
                "## Model: floor / (method's median fraction of floor)",
                "",
                "Efficiencies: " + ", ".join(f"{k} {v:.2f}" for k, v in sorted(eff.items())),
                f"Median |error| {m.error.abs().median():.1%}, worst {m.error.abs().max():.1%}"
                f" over {len(m)} cells.",
                "",
            ]
            reg = analysis.region(gpu_t, eff)
            if not reg.empty:
                reg.to_csv(tmp / "tables" / "region.csv", index=False)
                wins = reg[reg.block_shock_wins]
                md += [
                    f"Predicted region where {reg.pair.iloc[0]} < 1: "
                    + (
                        ", ".join(f"N={r.N} B={r.B}" for _, r in wins.iterrows())
                        or "nowhere on the grid N 4096..131072, B 16..4096"
                    )
                    + ".",
                    "",
                ]
        study = analysis.study_table(gpu_t)
        study.to_csv(tmp / "tables" / "original_study.csv", index=False)
        md += [
            "## The original study beside ours (ratios; each row names its GPU)",
            "",
            _md_table(study),
            "",
        ]
        console.print("[bold]plots[/]")
        figs = []
        if not gpu_t.empty or not gpu_c.empty:
            sec, f = _section(gpu_t, gpu_c, tmp, "gpu_", "GPU results")
            md += sec
            figs += f
        if not emulated_t.empty or not emu_c.empty:
            sec, f = _section(
                emulated_t,
                emu_c,
                tmp,
                "emulated_",
                "Emulated results (CPU, masked dense, host clock: never compare with GPU)",
            )
            md += sec
            figs += f
        (tmp / "report.md").write_text("\n".join(md))
        (tmp / "report.html").write_text(_html("\n".join(md), tmp))
        console.print(f"[bold]writing[/] {out_dir} ({len(figs)} plots)")
        if out_dir.exists():
            shutil.rmtree(out_dir)
        tmp.rename(out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out_dir


def _html(md: str, folder: Path) -> str:
    """A plain self-contained page: markdown lines as text, tables as <pre>, images inlined."""
    parts = [
        "<!doctype html><meta charset='utf-8'><title>Block-Shock bench report</title>",
        "<style>body{font-family:sans-serif;max-width:1100px;margin:2em auto}"
        "pre{font-size:11px;overflow-x:auto}img{max-width:100%}</style>",
    ]
    block: list[str] = []
    for line in md.splitlines() + [""]:
        if line.startswith("|"):
            block.append(line)
            continue
        if block:
            parts.append("<pre>" + html.escape("\n".join(block)) + "</pre>")
            block = []
        if line.startswith("!["):
            name = line[line.index("(") + 1 : -1]
            data = base64.b64encode((folder / name).read_bytes()).decode()
            parts.append(f"<img alt='{html.escape(name)}' src='data:image/png;base64,{data}'>")
        elif line.startswith("#"):
            level = len(line) - len(line.lstrip("#"))
            parts.append(f"<h{level}>{html.escape(line.lstrip('# '))}</h{level}>")
        elif line.strip():
            parts.append(f"<p>{html.escape(line)}</p>")
    return "\n".join(parts)
