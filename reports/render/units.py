"""Numbers as a reader takes them in: times in ms or us with three significant digits, the unit
in the column's header, never raw seconds in scientific notation (`9.162e-05`).

The records and the CSV tables keep SI seconds at full precision (`median_s`): they are data for
programs. Only the printed tables (markdown, HTML) go through here. A column is a time when its
name ends in `_s` (the records' convention: `median_s`, `floor_s`, `compute_median_s`, ...); each
such column gets one unit, chosen by its median, so its values line up and compare at a glance.
"""

from __future__ import annotations

import math

import pandas as pd

SIGNIFICANT = 3
TIME_UNITS = (("ms", 1e-3), ("us", 1e-6))  # the coarsest whose median value is >= 1 wins


def significant(value: float, digits: int = SIGNIFICANT) -> str:
    """`value` to `digits` significant digits in plain notation (0.000123, 1230, 0.0270): the
    digits a reader can trust, without an exponent to decode."""
    if value == 0 or not math.isfinite(value):
        return "0" if value == 0 else str(value)
    exponent = math.floor(math.log10(abs(value)))
    rounded = round(value, digits - 1 - exponent)
    if rounded != 0:  # 999.6 rounds to 1000: one more digit before the point, one fewer after
        exponent = math.floor(math.log10(abs(rounded)))
    return f"{rounded:.{max(0, digits - 1 - exponent)}f}"


def time_unit(seconds: pd.Series) -> tuple[str, float]:
    """The unit of a column of seconds: ms where its median is a millisecond or more, else us."""
    finite = seconds.dropna().abs()
    typical = float(finite.median()) if not finite.empty else 0.0
    return next(((u, f) for u, f in TIME_UNITS if typical >= f), TIME_UNITS[-1])


def is_time(df: pd.DataFrame, column: str) -> bool:
    """A column of seconds: named `*_s` and numeric (booleans are not times)."""
    col = df[column]
    numeric = pd.api.types.is_numeric_dtype(col) and not pd.api.types.is_bool_dtype(col)
    return str(column).endswith("_s") and numeric


def cell(value: object) -> str:
    """One printed value: "-" where missing, floats to three significant digits (an error
    figure below 0.001 in scientific notation: it is no time, and 1.2e-06 reads better than
    0.00000120), everything else as it is."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, float):
        if value != 0 and abs(value) < 1e-3:
            return f"{value:.{SIGNIFICANT - 1}e}"
        return significant(value)
    return str(value)


def _whole(col: pd.Series) -> bool:
    """A float column whose every value is a whole number (or missing)."""
    if not pd.api.types.is_float_dtype(col):
        return False
    finite = col.dropna()
    return not finite.empty and bool((finite == finite.round()).all())


def for_display(df: pd.DataFrame) -> pd.DataFrame:
    """The table as printed strings: each time column in its unit, the unit in its header
    (`median_s` -> `median (us)`), every other value as `cell` prints it."""
    out = {}
    for column in df.columns:
        if is_time(df, column):
            unit, factor = time_unit(df[column])
            values = df[column] / factor
            name = f"{str(column)[: -len('_s')]} ({unit})"
            out[name] = ["-" if pd.isna(v) else significant(float(v)) for v in values.astype(float)]
        elif _whole(df[column]):  # a rank or a count that a missing value made float
            out[str(column)] = ["-" if pd.isna(v) else str(int(v)) for v in df[column]]
        else:
            out[str(column)] = [cell(v) for v in df[column]]
    return pd.DataFrame(out, index=df.index)
