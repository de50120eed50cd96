"""Runs of the real harness the report tests share (one run per test session: each costs tens of
seconds on two cores), and the figures a build draws, caught before they are closed."""

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from matplotlib.colors import to_rgba
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.transforms import Bbox, BboxBase

from reports.build import build
from reports.render import looks, references
from tests.conftest import ROOT, run_bench

MATRIX = str(ROOT / "tests" / "data" / "report_matrix.json")

# phase0 and phase1 of the smoke suite's cells: every method at N=128 B=8 bf16 on two mask kinds
# (a periodic complement, random 2:4) and the one-GPU halves at N=256: ten phase1 series, more
# than a plot's panel holds, on two N.
SMOKE_SELECTION = (
    "(phase0 or phase1) and ((N128-B8-bf16 and not (1010 or 1001 or magnitude)) or half-N256-B8)"
)


@dataclass(frozen=True)
class Panel:
    """What one axes of a saved figure shows: its title, the series lines drawn on it, its
    reference lines (floors, bounds, a baseline's 1x) by label, and the labels written beside
    them."""

    title: str
    series: list[str]  # the label of each series line (gid "series")
    references: list[str]  # each reference line's label (gid references.REFERENCE)
    written: list[str]  # each reference label written at a line's end (gid references.LABEL)
    bars: int  # bars drawn (a breakdown's panels)
    y: dict[str, tuple[float, ...]]  # each series and reference line's y values, by label


@dataclass(frozen=True)
class Drawn:
    """A saved figure as tests check it: its panels, and the boxes (display units) of its axes,
    titles and legends, laid out as saved."""

    panels: list[Panel]
    axes: list[Bbox]
    titles: list[Bbox]
    legends: list[Bbox]
    page: BboxBase
    legend_entries: list[tuple[str, tuple]]  # (label, rgba) of each entry of the figure legend


def _drawn(fig: Figure) -> Drawn:
    fig.canvas.draw()
    r = fig.canvas.get_renderer()  # type: ignore[attr-defined]
    visible = [ax for ax in fig.axes if ax.get_visible()]
    panels = [
        Panel(
            ax.get_title(),
            [str(ln.get_label()) for ln in ax.lines if ln.get_gid() == "series"],
            [str(ln.get_label()) for ln in ax.lines if ln.get_gid() == references.REFERENCE],
            [t.get_text() for t in ax.texts if t.get_gid() == references.LABEL],
            len(ax.patches),
            {
                str(ln.get_label()): tuple(map(float, ln.get_ydata()))  # type: ignore[arg-type]
                for ln in ax.lines
                if ln.get_gid() in ("series", references.REFERENCE)
            },
        )
        for ax in visible
    ]
    titles = [ax.title.get_window_extent(r) for ax in visible if ax.get_title()]
    if fig._suptitle is not None:  # type: ignore[attr-defined]
        titles.append(fig._suptitle.get_window_extent(r))  # type: ignore[attr-defined]
    legends = [lg.get_window_extent(r) for lg in fig.legends]
    entries = [
        (t.get_text(), to_rgba(h.get_color()))
        for lg in fig.legends
        for t, h in zip(lg.texts, lg.legend_handles, strict=True)
        if isinstance(h, Line2D)
    ]
    boxes = [ax.get_window_extent(r) for ax in visible]
    return Drawn(panels, boxes, titles, legends, fig.bbox, entries)


@contextmanager
def figures() -> Iterator[dict[str, Drawn]]:
    """Every figure saved meanwhile, by file name, as Drawn (looks.save still writes the PNG)."""
    drawn: dict[str, Drawn] = {}
    save = looks.save

    def keep(fig: Figure, out: Path, name: str) -> str:
        drawn[name] = _drawn(fig)
        return save(fig, out, name)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(looks, "save", keep)
        yield drawn


@pytest.fixture(scope="session")
def smoke_run(tmp_path_factory):
    """(benchmark JSON, run folder) of SMOKE_SELECTION, written by the harness (no energy
    window: a CPU has no meter to read, and it costs 0.3 s a cell)."""
    tmp = tmp_path_factory.mktemp("smoke")
    run_bench(
        "-k", SMOKE_SELECTION, "--bs-energy", "off",
        f"--benchmark-json={tmp / 'bench.json'}", "--bs-results", str(tmp / "results"),
    )  # fmt: skip
    (run_dir,) = (tmp / "results").iterdir()
    return tmp / "bench.json", run_dir


@pytest.fixture(scope="session")
def smoke_drawn(smoke_run, tmp_path_factory):
    """(report folder, its figures by file name) of the smoke run (built once; tests read it,
    none writes to it)."""
    with figures() as drawn:
        out = build(list(smoke_run), tmp_path_factory.mktemp("smoke-report") / "report")
    return out, drawn


@pytest.fixture(scope="session")
def smoke_report(smoke_drawn):
    """The report folder of the smoke run."""
    return smoke_drawn[0]


@pytest.fixture(scope="session")
def training_run(tmp_path_factory):
    """phase1, phase2, phase3 and drift of the one-GPU and two-rank pairs (15 cells)."""
    tmp = tmp_path_factory.mktemp("train")
    run_bench(
        "--suite", "report", "--bs-matrix", MATRIX,
        f"--benchmark-json={tmp / 'bench.json'}", "--bs-results", str(tmp / "results"),
    )  # fmt: skip
    (run_dir,) = (tmp / "results").iterdir()
    return tmp / "bench.json", run_dir
