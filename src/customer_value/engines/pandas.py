"""The pandas engine: one machine, the whole base in memory (up to tens of millions of rows)."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import pandas as pd

from customer_value import io
from customer_value.chain import Chain, score_tables
from customer_value.config import Config
from customer_value.engines.base import Loaded
from customer_value.engines.sinks import publish
from customer_value.features.build import LabelWindow, TrainingSet, build_training_set
from customer_value.validate import ValidatedData, ValidationReport, validate_tables

__all__ = ["PandasEngine", "LoadedData", "load_data", "data_fingerprint"]


@dataclass
class LoadedData:
    """Validated tables and the report of how they were obtained."""

    data: ValidatedData
    report: ValidationReport


def load_data(config: Config) -> LoadedData:
    """Read every configured source and validate it."""
    dc = config.data
    tx = io.read_source(dc.transactions)
    cust = io.read_source(dc.customers) if dc.customers is not None else None
    inter = io.read_source(dc.interactions) if dc.interactions is not None else None
    camp = io.read_source(dc.campaigns) if dc.campaigns is not None else None
    data, report = validate_tables(tx, dc, customers=cust, interactions=inter, campaigns=camp)
    return LoadedData(data, report)


def data_fingerprint(tables: ValidatedData) -> dict[str, str]:
    """Rows, customers, date range and a content hash of the validated transactions."""
    tx = tables.transactions
    digest = hashlib.sha256(pd.util.hash_pandas_object(tx, index=False).to_numpy().tobytes())
    return {
        "data.rows": str(len(tx)),
        "data.customers": str(tx["customer_id"].nunique()),
        "data.first_date": str(tx["timestamp"].min().date()),
        "data.last_date": str(tx["timestamp"].max().date()),
        "data.sha256": digest.hexdigest()[:16],
    }


class PandasEngine:
    """Sources read with pandas, features and scoring in this process."""

    name = "pandas"

    def load(self, config: Config, summary: bool = True) -> Loaded:
        loaded = load_data(config)
        tables = loaded.data
        return Loaded(
            tables,
            loaded.report.to_frame(),
            loaded.report.facts,
            data_fingerprint(tables) if summary else {},
            tables.transactions["timestamp"].max(),
        )

    def training_set(
        self, loaded: Loaded, as_of: pd.Timestamp, config: Config, labels: Mapping[str, LabelWindow]
    ) -> TrainingSet:
        return build_training_set(loaded.tables, as_of, config.features, config.snapshots, labels)

    def score(
        self,
        loaded: Loaded,
        chain: Chain,
        when: pd.Timestamp,
        config: Config,
        progress: Callable[[int], Any] | None = None,
        alias: str = "champion",
    ) -> pd.DataFrame:
        return score_tables(
            chain,
            loaded.tables,
            when,
            previous_days=config.personas.migration_days,
            reasons=config.predict.reasons,
            exact_share=config.predict.exact_share,
            chunk_size=config.predict.chunk_size,
            progress=progress,
        )

    def publish(self, scored: pd.DataFrame, sink, schema) -> tuple[pd.DataFrame, int, str]:
        return scored, len(scored), publish(scored, sink, schema)
