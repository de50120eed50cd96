"""Printers of the report's markdown: tables, and one self-contained HTML page."""

from __future__ import annotations

import base64
import html
from pathlib import Path

import pandas as pd


def md_table(df: pd.DataFrame) -> str:
    """A markdown table; missing values (None, NaN) read "-"."""

    def fmt(v):
        if v is None or (isinstance(v, float) and v != v):
            return "-"
        return f"{v:.4g}" if isinstance(v, float) else str(v)

    head = "| " + " | ".join(df.columns) + " |"
    sep = "| " + " | ".join("---" for _ in df.columns) + " |"
    body = ["| " + " | ".join(fmt(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join([head, sep, *body])


def warning(text: str) -> str:
    """A markdown line the HTML page shows as a warning box."""
    return f"> **Warning:** {text}"


def page(md: str, folder: Path) -> str:
    """A plain self-contained page: markdown lines as text, tables as <pre>, images inlined."""
    parts = [
        "<!doctype html><meta charset='utf-8'><title>Block-Shock bench report</title>",
        "<style>body{font-family:sans-serif;max-width:1100px;margin:2em auto}"
        "pre{font-size:11px;overflow-x:auto}img{max-width:100%}"
        ".warning{border:2px solid #b00;background:#fee;padding:.6em}</style>",
    ]
    block: list[str] = []
    for line in md.splitlines() + [""]:
        if line.startswith("|"):
            block.append(line)
            continue
        if block:
            parts.append("<pre>" + html.escape("\n".join(block)) + "</pre>")
            block = []
        if line.startswith("!["):
            name = line[line.index("(") + 1 : -1]
            data = base64.b64encode((folder / name).read_bytes()).decode()
            parts.append(f"<img alt='{html.escape(name)}' src='data:image/png;base64,{data}'>")
        elif line.startswith("#"):
            level = len(line) - len(line.lstrip("#"))
            parts.append(f"<h{level}>{html.escape(line.lstrip('# '))}</h{level}>")
        elif line.startswith("> **Warning:** "):
            text = html.escape(line.removeprefix("> **Warning:** "))
            parts.append(f"<p class='warning'><strong>Warning:</strong> {text}</p>")
        elif line.strip():
            parts.append(f"<p>{html.escape(line)}</p>")
    return "\n".join(parts)
