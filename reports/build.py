"""Build DIR/report.md, a self-contained DIR/report.html, DIR/*.png and DIR/tables/*.csv.

Everything is written into a temporary folder beside DIR and moved into place only when the
whole report is built, so a failure leaves DIR as it was; DIR itself is only ever replaced when
it is a report folder (reports.render.outdir).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
from rich.console import Console

from common.phases import with_primary
from reports.analysis import figures as analysis
from reports.analysis.verdicts import verdicts
from reports.read import study
from reports.read.load import load
from reports.read.outcomes import sort_out
from reports.render import outdir, train_section
from reports.render.html import md_table, page, warning
from reports.render.section import section

console = Console(stderr=True)

EMULATED_TITLE = "Emulated results (CPU, masked dense, host clock: never compare with GPU)"


def _emulated(df: pd.DataFrame, emulated: bool) -> pd.DataFrame:
    return df[df.emulated.astype(bool) == emulated] if not df.empty else df


def _verdicts(gpu_t: pd.DataFrame, tables: Path) -> list[str]:
    md = ["## Verdicts (GPU results only)", ""]
    for v in verdicts(gpu_t):
        md += [f"- **{v.hypothesis}**: {v.verdict}, on {v.basis}"]
        if not v.table.empty:
            v.table.to_csv(tables / f"verdict_{v.slug}.csv", index=False)
            for _, r in v.table.iterrows():
                shared = " (ranks shared one GPU)" if r.get("shared_device") else ""
                md.append(f"  - {r.label} = {r.ratio:.3f} [{r.lo:.3f}, {r.hi:.3f}]{shared}")
    return md + [""]


def _model(gpu_t: pd.DataFrame, tables: Path) -> list[str]:
    m, eff = analysis.model(gpu_t)
    if m.empty:
        return []
    m.to_csv(tables / "model.csv", index=False)
    md = [
        "## Model: floor / (median fraction of floor, one per method and 2:4 backend)",
        "",
        "Efficiencies: " + ", ".join(f"{k} {v:.2f}" for k, v in sorted(eff.items())),
        f"Median |error| {m.error.abs().median():.1%}, worst {m.error.abs().max():.1%}"
        f" over {len(m)} cells.",
        "",
    ]
    reg = analysis.region(gpu_t, eff)
    if reg.empty:
        return md
    reg.to_csv(tables / "region.csv", index=False)
    grid = "nowhere on the grid N 4096..131072, B 16..4096"
    for pair, r in reg.groupby("pair", sort=True):
        wins = ", ".join(f"N={w.N} B={w.B}" for _, w in r[r.block_shock_wins].iterrows())
        md.append(f"- Predicted region where {pair} < 1: {wins or grid}.")
    return md + [""]


def build(inputs: list[Path], out_dir: Path) -> Path:
    out_dir = Path(out_dir)
    outdir.check_target(out_dir, inputs)
    console.print(f"[bold]reading[/] {len(inputs)} input(s)")
    data = load(inputs)
    o = sort_out(data)
    gpu_all, emu_all = _emulated(o.timed, False), _emulated(o.timed, True)
    forward = o.timed[o.timed.phase.isin(with_primary("forward"))] if not o.timed.empty else o.timed
    gpu_t, emulated_t = _emulated(forward, False), _emulated(forward, True)
    records = data.records[data.records.emulated.notna()] if not data.records.empty else None
    gpu_c, emu_c = _emulated(o.checked, False), _emulated(o.checked, True)
    tmp = outdir.staging(out_dir)
    try:
        tables = tmp / "tables"
        tables.mkdir()
        md = ["# Block-Shock bench report", ""]
        md += [line for r in data.runs if r.problem for line in (warning(r.problem), "")]
        md += study.section(data.studies)
        md += ["Inputs: " + ", ".join(str(p) for p in inputs), "", "## Cells", ""]
        md += [*o.counts, ""]
        if not o.left_out.empty:
            o.left_out.to_csv(tables / "left_out.csv", index=False)
            md += [
                f"### Failed and excluded cells ({len(o.left_out)}): in no table or plot below",
                "",
                md_table(o.left_out),
                "",
            ]
        console.print("[bold]verdicts[/] (bootstrap 95% intervals)")
        md += _verdicts(gpu_all, tables) + _model(gpu_t, tables)
        original = analysis.study_table(gpu_t)
        original.to_csv(tables / "original_study.csv", index=False)
        md += ["## The original study beside ours (ratios; each row names its GPU)", ""]
        md += [md_table(original), ""]
        console.print("[bold]plots[/]")
        figs: list[str] = []
        for emulated, t, every, checked, prefix, title, clock in (
            (False, gpu_t, gpu_all, gpu_c, "gpu_", "GPU results", "device"),
            (True, emulated_t, emu_all, emu_c, "emulated_", EMULATED_TITLE, "host"),
        ):
            if t.empty and checked.empty and every.empty:
                continue
            sec, f = section(t, checked, tmp, prefix, title, clock)
            recs = _emulated(records, emulated) if records is not None else pd.DataFrame()
            train, g = train_section.section(every, recs, tmp, prefix, clock)
            md, figs = md + sec + train, figs + f + g
        (tmp / "report.md").write_text("\n".join(md))
        (tmp / "report.html").write_text(page("\n".join(md), tmp))
        console.print(f"[bold]writing[/] {out_dir} ({len(figs)} plots)")
        outdir.check_target(out_dir, inputs)  # again: the folder may have changed meanwhile
        outdir.publish(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out_dir
