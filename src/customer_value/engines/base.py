"""The engine protocol and the data an engine holds for a job (see :mod:`customer_value.engines`)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import pandas as pd

__all__ = ["Engine", "Loaded"]


@dataclass
class Loaded:
    """A job's data as one engine holds it, with what the run records about it.

    Attributes
    ----------
    tables : object
        The engine's own handle (validated pandas frames, or Spark DataFrames).
    report : DataFrame
        Rows read, dropped and changed per table and rule.
    facts : dict
        The validation summary (``facts["summary"]`` has first_date, last_date, ...).
    fingerprint : dict
        ``data.*`` tags: rows, customers, dates, a content hash.
    last : Timestamp
        The last transaction's timestamp.
    """

    tables: Any
    report: pd.DataFrame
    facts: dict
    fingerprint: dict[str, str]
    last: pd.Timestamp


class Engine(Protocol):
    """What an engine does for the jobs (see :mod:`customer_value.engines.pandas`)."""

    name: str

    def load(self, config, summary: bool = True) -> Loaded:
        """Read and validate the configured sources.

        ``summary=False`` (scoring) skips what only a training run records: the data fingerprint
        (a hash over every row) and, on Spark, the full description scan.
        """

    def training_set(self, loaded: Loaded, as_of: pd.Timestamp, config, labels: Mapping):
        """Stacked training snapshots (:class:`customer_value.features.build.TrainingSet`)."""

    def score(
        self,
        loaded: Loaded,
        chain,
        when: pd.Timestamp,
        config,
        progress: Callable[[int], Any] | None = None,
        alias: str = "champion",
    ) -> Any:
        """Predictions for everyone at ``when`` (a frame, or the engine's lazy table).

        ``alias`` names the registered chain, for an engine that scores through the registry.
        """

    def publish(self, scored: Any, sink, schema) -> tuple[pd.DataFrame, int, str]:
        """Validate against ``schema`` and publish atomically; (the rows or top rows, rows, where)."""
