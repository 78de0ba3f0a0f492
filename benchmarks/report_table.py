"""What the benchmark scripts share: a markdown table and the printed, optionally saved report."""

from __future__ import annotations

from pathlib import Path

import pandas as pd


def markdown(table: pd.DataFrame) -> str:
    """``table`` as a GitHub markdown table, values as they are (format them first)."""
    head = "| " + " | ".join(map(str, table.columns)) + " |"
    rule = "|" + "|".join("---" for _ in table.columns) + "|"
    body = ["| " + " | ".join(str(v) for v in row) + " |" for row in table.itertuples(index=False)]
    return "\n".join([head, rule, *body])


def publish(text: str, out: Path | None) -> None:
    """Print the report, and write it to ``out`` when given (its folder created)."""
    print(text)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text, encoding="utf-8")
