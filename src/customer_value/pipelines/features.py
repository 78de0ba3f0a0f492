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
from customer_value.pipelines.options import check_as_of_in_data, check_output, parse_date

__all__ = ["run_features", "resolve_as_of", "parse_as_of"]


def parse_as_of(as_of) -> pd.Timestamp | None:
    """The cutoff as a naive day, checked before any work; None stays None (the last data day).

    Text must be ISO 8601 (``2024-06-30``): ``pd.Timestamp`` alone would read ``31/12/2023`` as a
    day-first date and ``01/02/2024`` as January 2, silently choosing a cutoff the user did not
    mean. A timezone is refused because the data's timestamps are naive (see ``data.timezone``).

    Parameters
    ----------
    as_of : str, date-like or None
        ``--as-of`` as typed, or a date/Timestamp from code.

    Returns
    -------
    Timestamp or None

    Raises
    ------
    UserError
        Not an ISO date, or one with a timezone.

    Examples
    --------
    >>> parse_as_of("2024-06-30")
    Timestamp('2024-06-30 00:00:00')
    """
    when = parse_date(as_of, "--as-of")
    return None if when is None else when.normalize()


def resolve_as_of(as_of, transactions: pd.DataFrame) -> pd.Timestamp:
    """The given date, or the last transaction day when none is given."""
    when = parse_as_of(as_of)
    return transactions["timestamp"].max().normalize() if when is None else when


def run_features(config: Config, as_of: str | None, output: Path) -> tuple[pd.DataFrame, pd.Timestamp]:
    """Build the feature table at ``as_of`` and write it (parquet or csv by extension)."""
    if str(output).lower().endswith((".parquet", ".pq", ".csv", ".csv.gz")) is False:
        raise UserError(
            "unsupported output extension", where=str(output), hint="use .parquet, .csv or .csv.gz"
        )
    # Every argument is checked before anything is simulated, read or written.
    io.check_writable(output, "--output")
    check_output(output, config, "--output")
    parse_as_of(as_of)
    ensure_data(config)
    loaded = load_data(config)
    when = resolve_as_of(as_of, loaded.data.transactions)
    tx_dates = loaded.data.transactions["timestamp"]
    check_as_of_in_data(when, tx_dates.min(), tx_dates.max())  # the rule train and predict use
    frame = build_features(loaded.data, when, config.features)
    feature_catalog([c for c in frame.columns])  # every column is documented
    out = frame.reset_index()
    out.insert(1, "as_of", when)
    io.write_frame(out, output)
    return out, when
