"""Plots a reader can read (#12.8): titles apart, legends off the data and inside the image,
one look per series, the error bound drawn. Checked on the drawn figure's geometry."""

import itertools

import pandas as pd
import pytest
from matplotlib.colors import to_rgba

from kernels import registry
from reports.render import plots

MASKS = ["complement_1100_0011", "complement_1010_0101", "random_2of4", "magnitude_2of4"]
METHODS = ["block_shock", "masked_split_dense", "dense_tp_interleaved", "dense_tp_col"]


def frame() -> pd.DataFrame:
    """dense_single, dense_tp_row and 16 masked series at two N and two B, long labels."""
    rows = []
    series = [("dense_single", None), ("dense_tp_row", None)]
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
                rel_fro_error=2e-3 + i * 1e-5,
                rel_fro_bound=6.8e-3,
            )
        )
    return pd.DataFrame(rows)


@pytest.fixture
def drawn(monkeypatch, tmp_path):
    """Each plot's figure, laid out as saved, with the renderer that measured it."""
    figs = {}
    save = plots._save

    def keep(fig, out, name):
        fig.canvas.draw()
        figs[name] = (fig, fig.canvas.get_renderer())
        return save(fig, out, name)

    monkeypatch.setattr(plots, "_save", keep)
    return figs


def boxes(fig, renderer):
    axes = [ax.get_window_extent(renderer) for ax in fig.axes]
    titles = [ax.title.get_window_extent(renderer) for ax in fig.axes if ax.get_title()]
    if fig._suptitle is not None:
        titles.append(fig._suptitle.get_window_extent(renderer))
    legends = [lg.get_window_extent(renderer) for lg in fig.legends]
    legends += [ax.get_legend().get_window_extent(renderer) for ax in fig.axes if ax.get_legend()]
    return axes, titles, legends


def assert_readable(fig, renderer):
    axes, titles, legends = boxes(fig, renderer)
    assert legends, "no legend"
    page = fig.bbox
    for a, b in itertools.combinations(titles, 2):
        assert not a.overlaps(b), "titles overlap"
    for lg in legends:
        assert lg.x0 >= page.x0 and lg.y0 >= page.y0, "legend runs off the image"
        assert lg.x1 <= page.x1 and lg.y1 <= page.y1, "legend runs off the image"
        assert not any(lg.overlaps(a) for a in axes), "legend covers the data"
        assert not any(lg.overlaps(t) for t in titles), "legend hides a title"


def series_looks(ax) -> list[tuple]:
    return [(ln.get_color(), ln.get_marker()) for ln in ax.lines if ln.get_marker() != "_"]


def test_time_vs_n_keeps_titles_apart_and_each_series_distinct(drawn, tmp_path):
    name = plots.time_vs_n(frame(), tmp_path, "emulated_", "Emulated results (CPU, host clock)")
    fig, renderer = drawn[name]
    assert_readable(fig, renderer)
    for ax in fig.axes:
        looks = series_looks(ax)  # floors (flat "_" ticks) left out
        assert len(looks) == 18 == len(set(looks))
    assert series_looks(fig.axes[0]) == series_looks(fig.axes[1])  # same look in each panel


@pytest.mark.parametrize("baseline", ["dense_tp_row", "dense_single"])
def test_speedup_legend_stays_inside_the_image(drawn, tmp_path, baseline):
    name = plots.speedup(frame(), tmp_path, "emulated_", baseline)
    assert_readable(*drawn[name])


def test_errors_draws_the_bound(drawn, tmp_path):
    fig, renderer = drawn[plots.errors(frame(), tmp_path, "emulated_")]
    assert_readable(fig, renderer)
    bounds = [ln for ln in fig.axes[0].lines if ln.get_color() == "k"]
    assert bounds and list(bounds[0].get_ydata()) == [6.8e-3, 6.8e-3]


@pytest.mark.parametrize("plot", ["pct_floor", "breakdown"])
def test_the_other_plots_are_readable(drawn, tmp_path, plot):
    t = frame().assign(
        compute_median_s=1e-3, collective_median_s=5e-4, host_overhead_s=float("nan")
    )
    assert_readable(*drawn[getattr(plots, plot)(t, tmp_path, "gpu_")])


def test_one_panel_keeps_its_title_off_a_legend_of_long_labels(drawn, tmp_path):
    t = frame()
    long = t["mask"].map(lambda m: f"{m}, a long registered label" if isinstance(m, str) else m)
    t = t[t.B == 8].assign(mask=long)
    name = plots.time_vs_n(t, tmp_path, "emulated_", "Emulated results (CPU, host clock)")
    assert_readable(*drawn[name])


def test_a_method_has_its_registered_colour_in_every_plot(drawn, tmp_path):
    """One colour per method, from kernels/registry.py, whatever else a figure holds."""
    t = frame()
    names = [
        plots.time_vs_n(t, tmp_path, "a_", "all series"),
        plots.time_vs_n(t[t.method == "block_shock"], tmp_path, "b_", "one method"),
        plots.speedup(t, tmp_path, "c_", "dense_tp_row"),
        plots.errors(t, tmp_path, "d_"),
    ]
    for name in names:
        fig, _ = drawn[name]
        for text, line in zip(fig.legends[0].texts, fig.legends[0].get_lines(), strict=False):
            method = text.get_text().split(" ")[0]
            if method in registry.method_names():
                want = to_rgba(registry.style(method).color)
                assert to_rgba(line.get_color()) == want, (name, text.get_text())
