"""Printers of the report's markdown: tables, and one self-contained HTML page."""

from __future__ import annotations

import base64
import re
from pathlib import Path

import markdown
import pandas as pd

from reports.render.units import for_display


def md_table(df: pd.DataFrame) -> str:
    """A markdown table as a reader takes it in (reports.render.units): times in ms or us with
    the unit in the header, three significant digits, missing values (None, NaN) as "-"."""
    shown = for_display(df)
    head = "| " + " | ".join(shown.columns) + " |"
    sep = "| " + " | ".join("---" for _ in shown.columns) + " |"
    body = ["| " + " | ".join(row) + " |" for row in shown.itertuples(index=False)]
    return "\n".join([head, sep, *body])


def warning(text: str) -> str:
    """A markdown line the HTML page shows as a warning box."""
    return f"> **Warning:** {text}"


STYLE = (
    "<style>body{font-family:sans-serif;max-width:1100px;margin:2em auto}"
    "table{border-collapse:collapse;font-size:11px;display:block;overflow-x:auto;margin:.5em 0}"
    "th,td{border:1px solid #ccc;padding:2px 6px;text-align:right;white-space:nowrap}"
    "th{background:#eee}td:first-child,th:first-child{text-align:left}img{max-width:100%}"
    "blockquote{border:2px solid #b00;background:#fee;padding:.6em;margin:1em 0}</style>"
)
IMAGE = re.compile(r"!\[([^\]]*)\]\(([^)\s]+\.png)\)")


def page(md: str, folder: Path) -> str:
    """One self-contained page: the report's markdown rendered by Python-Markdown (tables as
    HTML tables), every image inlined as a data URI, the warning quote boxed in red. Text from
    the records (failure messages hold `<`) is escaped, never read as HTML; lists nest by two
    spaces, as the report writes them, and each line of a paragraph stays a line."""

    def inline(m: re.Match) -> str:
        data = base64.b64encode((folder / m.group(2)).read_bytes()).decode()
        return f"![{m.group(1)}](data:image/png;base64,{data})"

    body = markdown.markdown(IMAGE.sub(inline, md.replace("&", "&amp;").replace("<", "&lt;")),
                             extensions=["tables", "nl2br"], tab_length=2)  # fmt: skip
    head = "<!doctype html><meta charset='utf-8'><title>Block-Shock bench report</title>"
    return "\n".join([head, STYLE, body])
