"""The harness's own exceptions: each names the cell (or file) and the rule it broke."""

from __future__ import annotations

import difflib


class BenchError(Exception):
    """Base of every error the harness raises on purpose."""


class MatrixError(BenchError):
    """benchmarks.json (or a cell built from it) breaks a rule; raised before anything runs."""


class CellSpecError(BenchError):
    """A cell cannot run on this machine or with these axes (names the cell and the rule)."""


class MaskError(BenchError):
    """A mask pair is not 2:4 in every group or not complementary."""


class CorrectnessError(BenchError, AssertionError):
    """A method's output disagrees with the float64 reference beyond the derived bound."""


class RankError(BenchError):
    """A rank raised; carries that rank's traceback."""


class RankTimeout(BenchError):
    """A rank did not answer within the bound; the group it belonged to is torn down."""


class MeterUnavailable(BenchError):
    """No energy meter can read this device; the reason goes into the record, never a number."""


def closest(name: str, allowed) -> str:
    """Return ' (did you mean X?)' for the closest allowed name, or '' when none is close."""
    match = difflib.get_close_matches(str(name), [str(a) for a in allowed], n=1, cutoff=0.5)
    return f" (did you mean {match[0]!r}?)" if match else ""


class StudyError(BenchError):
    """A study (bench.study) cannot start, resume or be read: names the folder and the rule."""
