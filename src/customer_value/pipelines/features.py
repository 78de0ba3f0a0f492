"""The features job: validated data -> the feature table at an as_of, written atomically."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from customer_value import io
from customer_value.config import Config
from customer_value.errors import UserError
from customer_value.features.build import build_features
from customer_value.features.catalog import feature_catalog
from customer_value.pipelines.data import ensure_data, load_data

__all__ = ["run_features", "resolve_as_of"]


def resolve_as_of(as_of: str | None, transactions: pd.DataFrame) -> pd.Timestamp:
    """The given date, or the last transaction day when none is given."""
    if as_of is None:
        return transactions["timestamp"].max().normalize()
    try:
        return pd.Timestamp(as_of).normalize()
    except (ValueError, TypeError):
        raise UserError(f"--as-of {as_of!r} is not a date", hint="use YYYY-MM-DD") from None


def run_features(config: Config, as_of: str | None, output: Path) -> tuple[pd.DataFrame, pd.Timestamp]:
    """Build the feature table at ``as_of`` and write it (parquet or csv by extension)."""
    if str(output).lower().endswith((".parquet", ".pq", ".csv", ".csv.gz")) is False:
        raise UserError(
            "unsupported output extension", where=str(output), hint="use .parquet, .csv or .csv.gz"
        )
    ensure_data(config)
    loaded = load_data(config)
    when = resolve_as_of(as_of, loaded.data.transactions)
    frame = build_features(loaded.data, when, config.features)
    feature_catalog([c for c in frame.columns])  # every column is documented
    out = frame.reset_index()
    out.insert(1, "as_of", when)
    io.write_frame(out, output)
    return out, when
