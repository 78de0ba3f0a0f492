"""A tiny test-only model task: one module, registered from the test, nothing else changed.

``spend_index`` is each customer's mean order value over the base's median (fitted on the reference
rows). It proves that a task added as one module reaches train, backtest, predict, the registry,
the report and the Spark output.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.stats import spearmanr
from sklearn.base import BaseEstimator

from customer_value.schema import Column
from customer_value.tasks.base import Assessment, BacktestEntry, FitResult, Task, metric_rows


class SpendIndex(BaseEstimator):
    """Mean order value / the median one (learned in ``fit``)."""

    def fit(self, X: pd.DataFrame, y=None):
        self.features_ = ["monetary_mean"]
        self.median_ = float(np.nanmedian(X["monetary_mean"].to_numpy(float))) or 1.0
        return self

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        return np.nan_to_num(X["monetary_mean"].to_numpy(float) / self.median_)


def _spearman(y, p) -> dict[str, float]:
    return {"spearman": float(spearmanr(y, p).statistic)}


class SpendIndexTask(Task):
    name = "spend_index"
    column_prefix = "spend_index"
    model_label = "spend index"
    primary = "coverage"
    title = "Spend index (a test-only task)"
    outputs = (Column("spend_index", "float", 45, low=0.0),)
    backtest_metrics = ("spearman",)

    def fit(self, config, data, seed, callbacks=()):
        return FitResult(SpendIndex().fit(data.oot), metrics={"median": 1.0})

    def assess(self, model, data, config):
        p = model.predict(data.oot)
        coverage = float(np.mean(p > 0))
        return Assessment(
            metric_rows(self.model_label, self.name, {"coverage": coverage}), {"coverage": coverage}
        )

    def gate_score(self, model, data, config):
        return float(np.mean(model.predict(data.oot) > 0))

    def predict(self, model, features, spec, btyd):
        return {"spend_index": model.predict(features)}

    def metrics(self, y, p):
        return _spearman(y, p)

    def backtest_entries(self, predictions, features, labels, btyd, spec, config, oracle):
        y = labels["future_revenue"].to_numpy(float)
        return [BacktestEntry(self.model_label, y, predictions["spend_index"].to_numpy())]
