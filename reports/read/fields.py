"""Typed reads of input files and their fields: every failure names the file and the field.

The report reads files a run may have left half-written or someone may have edited, so each
value is checked where it is read; a bad one raises ReportInputError rather than surfacing later
as a pandas or TypeError far from its cause.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from common.errors import ReportInputError

_MISSING = object()


def read_json(path: Path) -> dict:
    """The JSON object in `path`."""
    if not path.exists():
        raise ReportInputError(f"{path}: no such file")
    text = path.read_text()
    if not text.strip():
        raise ReportInputError(f"{path}: empty file")
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as e:
        raise ReportInputError(f"{path}: not valid JSON ({e})") from None
    if not isinstance(doc, dict):
        raise ReportInputError(f"{path}: not a JSON object")
    return doc


def field(doc: dict, key: str, path: Path, where: str = "", default=_MISSING):
    """doc[key]; a missing key is an error naming `where.key` unless a default is given."""
    if isinstance(doc, dict) and key in doc:
        return doc[key]
    if default is not _MISSING:
        return default
    raise ReportInputError(f"{path}: field {where}{key} is missing")


def number(value, path: Path, name: str, optional: bool = False) -> float:
    """A finite number (bool is not one); None or NaN is allowed, as NaN, where `optional`."""
    if value is None and optional:
        return math.nan
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if math.isfinite(value) or (optional and math.isnan(value)):
            return float(value)
    raise ReportInputError(f"{path}: field {name} is {value!r}, not a finite number")


def numbers(value, path: Path, name: str, optional: bool = False) -> list[float]:
    """A non-empty list of numbers (entries may be None where `optional`)."""
    if not isinstance(value, list) or not value:
        raise ReportInputError(f"{path}: field {name} is {value!r}, not a list of numbers")
    return [number(v, path, f"{name}[{i}]", optional) for i, v in enumerate(value)]
