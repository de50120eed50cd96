"""How a series looks in every plot of a report: its label, colour and marker, the legend beside
the panels, and the axes' scales.

A method has one colour in every plot (its registered style, kernels/registry.py); each series of
it a marker of its own (its 2:4 backend's where it shows one, else its method's, else the next
free one), so the series of one method in a panel look apart. Legends sit beside the panels,
never over a point; N is ticked at the measured sizes only.
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Callable, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.ticker import FuncFormatter, NullLocator  # noqa: E402

from kernels import registry  # noqa: E402

DPI = 110
LEGEND_WIDTH = 44  # characters a legend line may take: a registered label can be long
LEGEND_LINE_IN = 0.16  # inches a legend line takes at its font size
LEGEND_IN = 3.0  # inches the legend column adds to a figure's width


def save(fig: Figure, out: Path, name: str) -> str:
    """Write the figure as `out/name` (PNG) and close it; returns the file name."""
    fig.savefig(out / name, dpi=DPI)
    plt.close(fig)
    return name


def _backend_part(backend: object) -> str | None:
    """A series label's backend: its label, or None where the label leaves it out (no backend,
    a dense kernel, a backend its report section already names)."""
    spec = registry.find_backend(backend)
    if spec is not None:
        return spec.shown_as if spec.shown else None
    if isinstance(backend, str) and backend != registry.DENSE_KERNEL:
        return backend  # one not registered here (an extension not loaded): its name
    return None


def label(r: pd.Series | dict, mask: bool = True) -> str:
    """method (mask) [backend]: the backend is part of a series' identity; the mask is left out
    where the panel's title names it."""
    text = registry.label(r["method"])
    if mask and isinstance(r.get("mask"), str):
        text += f" ({r['mask']})"
    backend = _backend_part(r.get("backend"))
    return text + (f" [{backend}]" if backend is not None else "")


def with_series(
    t: pd.DataFrame, mask: bool = True, name: Callable[[pd.Series, bool], str] = label
) -> pd.DataFrame:
    """`t` with each row's series label (`series`, from `name`), sorted by N; a label that
    rows of several world sizes share (TP on one rank and on two) says its world size."""
    names = pd.Series([name(r, mask) for _, r in t.iterrows()], index=t.index, dtype=object)
    if "world_size" in t and not t.empty:
        several = t.groupby(names).world_size.transform("nunique") > 1
        names = names.where(~several, names + " ws=" + t.world_size.astype(str))
    t = t.assign(series=names)
    return t.sort_values("N") if "N" in t else t


def styles(t: pd.DataFrame) -> dict[str, dict]:
    """One look per series (`t.series`), the same in every panel of a figure: its method's
    colour, and its backend's marker (its method's where none shows), moved on to the next
    marker that no other series of that method in the figure has taken."""
    markers = registry.MARKERS
    backend = t.backend if "backend" in t else pd.Series(None, index=t.index)
    rows = t.assign(backend=backend).drop_duplicates("series").sort_values("series")
    looks: dict[str, dict] = {}
    taken: dict[str, set[str]] = {}
    for _, r in rows.iterrows():
        style, spec = registry.style(r.method), registry.find_backend(r.backend)
        first = spec.marker if spec is not None and spec.shown else style.marker
        used = taken.setdefault(r.method, set())
        turn = [markers[(markers.index(first) + i) % len(markers)] for i in range(len(markers))]
        marker = next((m for m in turn if m not in used), first)
        used.add(marker)
        looks[r.series] = {"color": style.color, "marker": marker}
    return looks


def legend(fig: Figure, looks: dict[str, dict], extra: Sequence[tuple[str, dict]] = ()) -> None:
    """A legend beside the panels (never over them): one entry per series, then `extra` entries
    as (label, Line2D keywords); long labels wrap, and the figure grows to the legend's
    height."""
    wrap = textwrap.TextWrapper(LEGEND_WIDTH, subsequent_indent="  ", break_on_hyphens=False)
    handles = [Line2D([], [], ls="-", label=wrap.fill(n), **s) for n, s in looks.items()]
    handles += [Line2D([], [], label=lab, **kw) for lab, kw in extra]
    lines = sum(str(h.get_label()).count("\n") + 1 for h in handles)
    fig.set_figheight(max(fig.get_figheight(), 0.6 + LEGEND_LINE_IN * lines))
    fig.legend(handles=handles, loc="outside right upper", fontsize=7, frameon=False)


def n_axis(ax, ns, room: float = 0.0) -> None:
    """Log N axis ticked at the measured sizes only (log minor labels overlap); `room` is the
    share of the axes' width kept free on the right for the labels of the lines drawn there."""
    ns = sorted(set(int(n) for n in ns))
    ax.set_xscale("log")
    ax.set_xticks(ns, [str(n) for n in ns])
    ax.xaxis.set_minor_locator(NullLocator())
    ax.set_xlabel("N")
    lo, hi = math.log(ns[0]), math.log(ns[-1])
    pad = max(hi - lo, math.log(2)) * 0.08
    span = (hi - lo + 2 * pad) / (1 - room)
    ax.set_xlim(math.exp(lo - pad), math.exp(lo - pad + span))


def keep_room(ax, room: float) -> None:
    """Widen a linear x axis so that `room` of its width is free on the right (for labels)."""
    lo, hi = ax.get_xlim()
    ax.set_xlim(lo, lo + (hi - lo) / (1 - room))


def log_y(ax) -> None:
    """Log y with plain numbers (0.6, not 6x10^-1); between decades, every tick is labelled
    over less than one decade (of numbers that print without an exponent), only 2 and 5 up to
    three, none beyond (labels would collide)."""
    ax.set_yscale("log")
    lo, hi = ax.get_ylim()
    decades = math.log10(hi / lo)
    plain = lo >= 1e-4  # below, labels print with an exponent: label fewer of them
    keep = range(1, 10) if decades < 1 and plain else (2, 5) if decades < 3 else ()

    def minor(v, _):
        return f"{v:g}" if round(v / 10 ** math.floor(math.log10(v))) in keep else ""

    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.yaxis.set_minor_formatter(FuncFormatter(minor))
