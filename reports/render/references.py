"""Lines a measurement is read against (floors, error bounds, the baseline's 1x), labelled where
they are drawn.

A legend entry "floor (dashed, same colour)" left the reader to match a dashed line to a colour,
and the floors of methods that move the same bytes fell on one another. Here each reference
curve is drawn once: curves within 2% of each other at every point are one line naming every
method it holds for, in the method's colour (dark grey where several share it), and its label is
written at its right end, in a margin the axes keep free, nudged apart from the others with a
thin leader back to the line; a line ending before the panel's last x (a method measured at fewer
N) is named beside its own end, with the others ending there, so no leader crosses the data.
"""

from __future__ import annotations

import textwrap
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from kernels import registry

ROOM = 0.36  # share of a panel's width its axes keep free on the right for these labels
SHARED = "0.3"  # colour of a reference line several methods share
SAME = 0.02  # curves within this relative distance at every point are drawn as one
FONT = 6.5  # points
WRAP = 26  # characters a label line may take in the margin
REFERENCE, LABEL = "reference", "reference-label"  # gids: tests and label_ends find them by these


@dataclass(frozen=True)
class Curve:
    """One reference line: its points and the methods it holds for."""

    x: tuple[float, ...]
    y: tuple[float, ...]
    methods: tuple[str, ...]

    @property
    def color(self) -> str:
        return registry.style(self.methods[0]).color if len(self.methods) == 1 else SHARED


def _merge(a: Curve, b: Curve) -> Curve | None:
    """One curve for both where they coincide: within SAME of each other at every x they
    share, the x of one a subset of the other's (a method measured at fewer N); else None."""
    pa, pb = dict(zip(a.x, a.y, strict=True)), dict(zip(b.x, b.y, strict=True))
    if not (set(pa) <= set(pb) or set(pb) <= set(pa)):
        return None
    for x in set(pa) & set(pb):
        if abs(pa[x] - pb[x]) > SAME * max(abs(pa[x]), abs(pb[x])):
            return None
    longer = a if len(a.x) >= len(b.x) else b
    return Curve(longer.x, longer.y, (*a.methods, *b.methods))


def curves(rows: pd.DataFrame, x: str, y: str) -> list[Curve]:
    """Each method's curve of `y` over `x` (its largest value per x: a bound or floor holds for
    every series of the method), merged where they coincide."""
    found: list[Curve] = []
    for method, g in rows[rows[y].notna()].groupby("method", sort=True):
        by = g.groupby(x)[y].max()
        c = Curve(tuple(float(v) for v in by.index), tuple(float(v) for v in by), (str(method),))
        for i, f in enumerate(found):
            merged = _merge(f, c)
            if merged is not None:
                found[i] = merged
                break
        else:
            found.append(c)
    return found


def draw(ax: Axes, found: Iterable[Curve], word: str, scale: float = 1.0, **kw) -> None:
    """Each curve dashed, labelled "<word>: <methods>" (written by label_ends)."""
    for c in found:
        names = ", ".join(registry.label(m) for m in c.methods)
        ys = [v * scale for v in c.y]
        style = {"ls": "--", "lw": 1.1, "marker": "_", "ms": 10, **kw}
        ax.plot(c.x, ys, color=c.color, label=f"{word}: {names}", gid=REFERENCE, **style)


def level(ax: Axes, xs: Iterable[float], y: float, text: str, color: str = SHARED) -> None:
    """A horizontal reference (the baseline's 1x, 100% of floor) over the measured x range."""
    xs = sorted(xs)
    ax.plot([xs[0], xs[-1]], [y, y], color=color, lw=0.9, label=text, gid=REFERENCE)


def _spread(targets: list[float], heights: list[float]) -> list[float]:
    """Centres as near their targets as labels of these heights allow without overlapping,
    all inside [0, 1] (axes fraction)."""
    order = sorted(range(len(targets)), key=lambda i: targets[i])
    pos = [0.0] * len(targets)
    low = 0.0
    for i in order:
        pos[i] = max(targets[i], low + heights[i] / 2)
        low = pos[i] + heights[i] / 2
    over = low - 1.0
    if over > 0:  # pushed past the top: slide the stack down, then keep it above the bottom
        high = 1.0
        for i in reversed(order):
            pos[i] = min(pos[i], high - heights[i] / 2)
            high = pos[i] - heights[i] / 2
    return pos


def label_ends(fig: Figure) -> None:
    """Write every reference line's label at its right end (module doc). Call once the axes'
    scales and limits are final: positions are taken from the drawn figure."""
    fig.canvas.draw()  # lays the panels out, so axes sizes in points are known
    for ax in fig.axes:
        lines = [ln for ln in ax.lines if ln.get_gid() == REFERENCE]
        if not lines:
            continue
        to_axes = ax.transAxes.inverted()
        points = ax.get_window_extent().height * 72 / fig.dpi
        ends, texts, heights = [], [], []
        for ln in lines:
            xs, ys = (np.asarray(v, float) for v in ln.get_data())
            ok = np.isfinite(xs) & np.isfinite(ys) & (ys > 0 if ax.get_yscale() == "log" else True)
            if not ok.any():
                continue
            end = (float(xs[ok][-1]), float(ys[ok][-1]))
            text = textwrap.fill(
                str(ln.get_label()), WRAP, subsequent_indent="  ", break_on_hyphens=False
            )
            ends.append((ln, end, to_axes.transform(ax.transData.transform(end))))
            texts.append(text)
            heights.append((text.count("\n") + 1) * FONT * 1.25 / points)
        if not ends:
            continue
        groups: dict[float, list[int]] = {}  # by the x (axes fraction) the lines end at
        for i, (*_, at) in enumerate(ends):
            groups.setdefault(round(float(at[0]), 2), []).append(i)
        for x_end, group in groups.items():
            x_text = x_end + 0.035  # clear of the markers there
            spread = _spread([float(ends[i][2][1]) for i in group], [heights[i] for i in group])
            for i, y in zip(group, spread, strict=True):
                ln, end, at = ends[i]
                moved = abs(y - at[1]) > 0.01
                leader = {"arrowstyle": "-", "lw": 0.5, "color": ln.get_color()} if moved else None
                note = ax.annotate(
                    texts[i], xy=end, xytext=(x_text, y), textcoords="axes fraction",
                    va="center", ha="left", fontsize=FONT, color=ln.get_color(),
                    arrowprops=leader, gid=LABEL,
                )  # fmt: skip
                note.set_in_layout(False)
