"""Panels a plot's series are split over, so that no axes carries more than about eight lines.

A smoke run holds 18-23 series (every method on five masks); drawn in one axes with ten colours
they cannot be told apart. So when a plot has more than MAX_SERIES series, they are split by what
varies: one facet per mask, the series that take no mask (dense_single, dense TP, the dense half:
the references every masked series is read against) repeated in each, the mask named in the
facet's title instead of in every label; a facet still too full is cut further. Each facet is
then drawn once per column value (B, and the dtype where several), so a panel holds one shape.
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import matplotlib.pyplot as plt
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from reports.render import looks

MAX_SERIES = 8  # lines an axes carries before its series are split over facets
PANEL_W, PANEL_H = 4.2, 3.0  # inches of one panel
WRAP_COLUMNS = 3  # panels per row where the columns do not say how many

Label = Callable[[pd.Series, bool], str]  # (row, with its mask) -> the series' label


@dataclass(frozen=True)
class Facet:
    """Series drawn together: `title` names what they share ("" where it is everything)."""

    title: str
    rows: pd.DataFrame  # with each row's `series` label


@dataclass(frozen=True)
class Panel:
    """One axes of a figure and the rows it draws."""

    ax: Axes
    title: str
    rows: pd.DataFrame


def _chunks(rows: pd.DataFrame, room: int, title: str) -> Iterator[Facet]:
    """The rows' series in facets of at most `room`, a method's series kept together."""
    names = sorted(rows.series.unique())
    parts = math.ceil(len(names) / room)
    for i in range(parts):
        part = names[i * room : (i + 1) * room]
        extra = f" ({i + 1} of {parts})" if parts > 1 else ""
        yield Facet(f"{title}{extra}", rows[rows.series.isin(part)])


def facets(t: pd.DataFrame, label: Label = looks.label, limit: int = MAX_SERIES) -> list[Facet]:
    """The series of `t` split as the module doc says; one facet holding all of them where
    they fit."""
    whole = looks.with_series(t, True, label)
    if whole.series.nunique() <= limit:
        return [Facet("", whole)]
    t = looks.with_series(t, False, label)  # the mask goes to the facet's title
    no_mask = pd.Series(False, index=t.index)
    masked = t["mask"].map(lambda m: isinstance(m, str)) if "mask" in t else no_mask
    refs, rest = t[~masked], t[masked]
    if rest.empty:
        return list(_chunks(refs, limit, "series"))
    room = max(1, limit - refs.series.nunique())
    return [
        Facet(f.title, pd.concat([refs, f.rows]))
        for mask, g in rest.groupby("mask", sort=True)
        for f in _chunks(g, room, f"mask {mask}")
    ]


def column_keys(t: pd.DataFrame, by: tuple[str, ...]) -> pd.Series:
    """Each row's column title: the values of `by` that vary in `t` ("B=64", "B=64 fp16")."""
    varying = [c for c in by if c in t and t[c].nunique() > 1]
    keep = varying or [c for c in by[:1] if c in t]
    return pd.Series(
        [" ".join(_shown(c, r[c]) for c in keep) for _, r in t.iterrows()], index=t.index, dtype=str
    )


def _shown(column: str, value: object) -> str:
    return f"{column}={value}" if column in ("B", "N") else str(value)


def grid(n: int, ncols: int, legend: bool = True) -> tuple[Figure, list[Axes]]:
    """A figure of n panels, `ncols` a row, with room for the legend beside them."""
    nrows = math.ceil(n / ncols)
    width = PANEL_W * ncols + (looks.LEGEND_IN if legend else 0)
    fig, axes = plt.subplots(
        nrows, ncols, figsize=(width, PANEL_H * nrows + 0.7), layout="constrained", squeeze=False
    )
    flat = list(axes.flat)
    for ax in flat[n:]:
        ax.set_visible(False)
    return fig, flat[:n]


def panels(
    t: pd.DataFrame, by: tuple[str, ...] = ("B", "dtype"), label: Label = looks.label
) -> tuple[Figure, list[Panel], dict[str, dict]]:
    """The figure, its panels and each series' look. The series of each column value (B,
    dtype) are split into facets on their own (a dtype only two methods ran in is one panel,
    not one per mask); where every column splits alike, a row of the grid is one facet across
    the columns, else the panels follow one another, a column value's facets together."""
    keys = column_keys(t, by)
    columns = sorted(set(keys), key=_natural)
    per = {c: facets(t[keys == c], label) for c in columns}
    titles = [[f.title for f in per[c]] for c in columns]
    if len(columns) > 1 and all(x == titles[0] for x in titles):
        cells = [(per[c][i], c) for i in range(len(titles[0])) for c in columns]
        ncols = len(columns)
    else:
        cells = [(f, c) for c in columns for f in per[c]]
        ncols = min(WRAP_COLUMNS, len(cells))
    fig, axes = grid(len(cells), ncols)
    out = [
        Panel(ax, ", ".join(x for x in (f.title, c) if x), f.rows)
        for ax, (f, c) in zip(axes, cells, strict=True)
    ]
    return fig, out, looks.styles(pd.concat([f.rows for f, _ in cells]))


def suptitle(fig: Figure, text: str, drawn: list[Panel]) -> None:
    """The figure's title over its panels, from the left edge, wrapped to the width of their
    columns (about 9 characters an inch) so it never reaches the legend beside them."""
    ncols = len({round(p.ax.get_position().x0, 3) for p in drawn})
    width = int(9 * PANEL_W * max(ncols, 1))
    fig.suptitle("\n".join(textwrap.wrap(text, width)), x=0.01, ha="left")


def _natural(key: str) -> tuple:
    """Column titles in numeric order (B=8 before B=64)."""
    return tuple(int(p) if p.isdigit() else p for p in key.replace("=", " ").split())
