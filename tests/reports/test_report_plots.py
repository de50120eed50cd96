"""Plots read at a glance (#12.8, #26): at most about eight series an axes, a method's colour the
same in every plot (the registry's), floors and bounds named where they are drawn, breakdown parts
each on its own scale, titles and legends apart from the data. Checked on the drawn figures'
geometry: of a synthetic frame with many series, and of the report the real harness's smoke
cells give."""

import itertools

import pandas as pd
import pytest
from matplotlib.colors import to_rgba

from kernels import registry
from reports.render import facets, plots, train_plots
from reports.render.looks import DPI
from tests.reports.conftest import Drawn, figures

MASKS = ["complement_1100_0011", "complement_1010_0101", "random_2of4", "magnitude_2of4"]
METHODS = ["block_shock", "masked_split_dense", "dense_tp_interleaved", "dense_tp_col"]


def frame() -> pd.DataFrame:
    """dense_single, dense_tp_row and 16 masked series at two N and two B: 18 series."""
    rows = []
    series: list[tuple[str, str | None]] = [("dense_single", None), ("dense_tp_row", None)]
    series += list(itertools.product(METHODS, MASKS))
    for i, ((method, mask), n, b) in enumerate(itertools.product(series, (128, 256), (8, 64))):
        t = 1e-3 * (1 + i % 7) * n / 128
        rows.append(
            dict(
                method=method,
                mask=mask,
                N=n,
                B=b,
                dtype="bf16",
                median_s=t,
                floor_s=t / 9,
                compute_median_s=t / 2,
                collective_median_s=t / 200,  # a part a hundred times smaller than another
                host_overhead_s=float("nan"),
                rel_fro_error=2e-3 + i * 1e-5,
                rel_fro_bound=6.8e-3,
            )
        )
    return pd.DataFrame(rows)


def same(a: str, b: str) -> bool:
    """Label texts equal once wrapping is undone."""
    return a.split() == b.split()


def assert_glanceable(d: Drawn, name: str) -> None:
    """The issue's structural facts, and the geometry of a readable figure: no more than
    MAX_SERIES series an axes, every reference line's label written beside it, titles apart,
    the legend inside the image and off every axes."""
    for p in d.panels:
        assert len(p.series) <= facets.MAX_SERIES, (name, p.title, p.series)
        for ref in p.references:
            assert any(same(ref, w) for w in p.written), (name, p.title, ref, p.written)
        assert len(p.written) == len(p.references), (name, p.title)
    for a, b in itertools.combinations(d.titles, 2):
        assert not a.overlaps(b), f"{name}: titles overlap"
    for lg in d.legends:
        assert lg.x0 >= d.page.x0 and lg.y0 >= d.page.y0, f"{name}: legend runs off the image"
        assert lg.x1 <= d.page.x1 and lg.y1 <= d.page.y1, f"{name}: legend runs off the image"
        assert not any(lg.overlaps(a) for a in d.axes), f"{name}: legend covers the data"
        assert not any(lg.overlaps(t) for t in d.titles), f"{name}: legend hides a title"


def assert_registry_colours(d: Drawn, name: str) -> None:
    """Every legend entry of a method has that method's registered colour."""
    labels = {registry.label(m): m for m in registry.method_names()}
    checked = 0
    for text, rgba in d.legend_entries:
        method = labels.get(text.split(" (")[0].split(" [")[0])
        if method is not None:
            assert rgba == to_rgba(registry.style(method).color), (name, text)
            checked += 1
    assert checked, f"{name}: no legend entry names a method"


@pytest.mark.parametrize(
    "plot", ["time_vs_n", "speedup_dense_tp_row", "speedup_dense_single", "errors", "pct_floor"]
)
def test_many_series_are_split_over_panels_with_their_references_named(tmp_path, plot):
    t = frame()
    with figures() as drawn:
        if plot.startswith("speedup_"):
            name = plots.speedup(t, tmp_path, "x_", plot.removeprefix("speedup_"))
        elif plot == "time_vs_n":
            name = plots.time_vs_n(t, tmp_path, "x_", "Emulated results (CPU, host clock)")
        else:
            name = getattr(plots, plot)(t, tmp_path, "x_")
    d = drawn[name]
    assert_glanceable(d, name)
    assert_registry_colours(d, name)
    assert len(d.panels) > 1  # 18 series do not fit one axes
    # none lost by the split: each masked series in its mask's panels (the mask in the title)
    masked = {registry.label(m) for m in METHODS}
    shown = {(p.title.split(",")[0], s) for p in d.panels for s in p.series if s in masked}
    assert len(shown) == len(METHODS) * len(MASKS), sorted(shown)


def test_coinciding_floors_are_one_line_naming_each_method(tmp_path):
    """Methods moving the same bytes have the same floor: drawn once, its label naming all."""
    t = frame()
    with figures() as drawn:
        name = plots.time_vs_n(t, tmp_path, "x_", "floors")
    floors = [r for p in drawn[name].panels for r in p.references]
    assert floors and all(r.startswith("floor: ") for r in floors)
    for p in drawn[name].panels:  # a method's floor at most once a panel
        named = [m.strip() for r in p.references for m in r.removeprefix("floor: ").split(",")]
        assert len(named) == len(set(named)), (p.title, p.references)


def test_the_error_bound_is_drawn_and_named(tmp_path):
    with figures() as drawn:
        name = plots.errors(frame(), tmp_path, "x_")
    bounds = [r for p in drawn[name].panels for r in p.references]
    assert bounds and all(r.startswith("bound: ") for r in bounds)


def test_breakdown_parts_each_get_a_panel_of_their_own(tmp_path):
    """A collective 200 times smaller than compute gets its own axis, not a sliver of one."""
    with figures() as drawn:
        name = plots.breakdown(frame(), tmp_path, "x_")
    d = drawn[name]
    assert [p.title for p in d.panels] == ["forward (median)", "compute alone", "collective alone"]
    assert all(p.bars == 18 * 2 for p in d.panels)  # a bar per series and B at the largest N


def test_one_panel_keeps_its_title_off_a_legend_of_long_labels(tmp_path):
    t = frame()
    long = t["mask"].map(lambda m: f"{m}, a long registered label" if isinstance(m, str) else m)
    t = t[t.B == 8].assign(mask=long)
    with figures() as drawn:
        name = plots.time_vs_n(t, tmp_path, "x_", "Emulated results (CPU, host clock)")
    assert_glanceable(drawn[name], name)


def test_a_method_has_its_registered_colour_in_every_plot(tmp_path):
    """One colour per method, from kernels/registry.py, whatever else a figure holds."""
    t = frame()
    with figures() as drawn:
        names = [
            plots.time_vs_n(t, tmp_path, "a_", "all series"),
            plots.time_vs_n(t[t.method == "block_shock"], tmp_path, "b_", "one method"),
            plots.speedup(t, tmp_path, "c_", "dense_tp_row"),
            plots.errors(t, tmp_path, "d_"),
        ]
    for name in names:
        assert_registry_colours(drawn[name], name)


def test_every_plot_of_a_harness_run_reads_at_a_glance(smoke_drawn):
    """The report of the harness's own smoke cells (ten phase1 series: more than a panel
    holds): each PNG it embeds was drawn, is a PNG of sane size, and passes the checks above."""
    out, drawn = smoke_drawn
    pngs = sorted(p.name for p in out.glob("*.png"))
    assert set(pngs) == set(drawn)
    assert {"emulated_time_vs_n.png", "emulated_errors.png", "emulated_breakdown.png"} <= set(pngs)
    for name in pngs:
        raw = (out / name).read_bytes()
        assert raw[:8] == b"\x89PNG\r\n\x1a\n", name
        width, height = int.from_bytes(raw[16:20], "big"), int.from_bytes(raw[20:24], "big")
        assert 3 * DPI <= width <= 30 * DPI, (name, width)
        assert 1.5 * DPI <= height <= 30 * DPI, (name, height)
        assert 5_000 < len(raw) < 3_000_000, name
        assert_glanceable(drawn[name], name)
    time = drawn["emulated_time_vs_n.png"]
    assert len(time.panels) > 1 and any(p.references for p in time.panels)  # split, floors named
    errors = drawn["emulated_errors.png"]
    assert any(r.startswith("bound: ") for p in errors.panels for r in p.references)


def test_training_plots_of_a_harness_run_read_at_a_glance(training_run, tmp_path):
    from reports.read.load import load
    from reports.read.outcomes import sort_out

    data = load(list(training_run))
    t = sort_out(data).timed
    with figures() as drawn:
        names = [
            train_plots.train_breakdown(t, tmp_path, "x_"),
            train_plots.train_memory(t, tmp_path, "x_"),
            train_plots.drift(data.records, tmp_path, "x_"),
        ]
    assert all(names)
    for name in names:
        assert_glanceable(drawn[name], name)
        assert (tmp_path / name).stat().st_size > 5_000
    breakdown = drawn["x_train_breakdown.png"]
    assert len(breakdown.panels) >= 5  # the step, its timed parts and the rest: one panel each
    drift = drawn["x_drift.png"]
    (panel,) = drift.panels
    assert len(panel.series) == 2 and all(r.startswith("bound: ") for r in panel.references)
