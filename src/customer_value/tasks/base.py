"""What every model task declares, and the small records that flow between a task and the pipelines.

A task is one model the product trains, judges, registers and serves: how it is labelled (its label
window and label columns), fitted and tuned, which baselines it is judged against, its primary and
guard metrics, and the prediction columns it adds. Train, backtest, predict, the champion gate, the
registry, the report and the Spark output schema loop over the registered tasks
(:mod:`customer_value.tasks`), so a new model is one module plus one registration line.

Tasks are domain code: they never touch files or MLflow. What a fit wants logged comes back in
:class:`FitResult`; the pipelines log it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from customer_value.config import Config
from customer_value.features.btyd import BTYDModels
from customer_value.features.build import CutoffPlan
from customer_value.modeling.evaluate import lift_by_decile
from customer_value.modeling.tuning import split_by_customer
from customer_value.schema import Column

__all__ = [
    "Served",
    "versus_baselines",
    "DIRECTION",
    "Task",
    "TaskData",
    "FitResult",
    "Assessment",
    "TaskSpec",
    "BacktestEntry",
    "split",
    "lifts",
    "metric_rows",
]


@dataclass(frozen=True)
class TaskSpec:
    """What scoring needs to know about one task's training, frozen when it was fitted.

    Attributes
    ----------
    label_days : int or None
        The label window the model learnt (None for a task without labels).
    window_days : int or None
        The window its predictions are about (the horizon for CLV); predictions over a shorter
        label window are projected to it.
    target : str or None
        The label column the model was fitted on.
    """

    label_days: int | None = None
    window_days: int | None = None
    target: str | None = None

    @property
    def projected(self) -> bool:
        """True when the label window was shorter than the window predictions are about."""
        return (
            self.label_days is not None
            and self.window_days is not None
            and self.label_days < self.window_days
        )


@dataclass
class TaskData:
    """One task's training and out-of-time rows, as the snapshot step built them.

    ``oot`` is indexed by customer_id; ``btyd_oot`` holds the BG/NBD and Gamma-Gamma fits at the
    out-of-time cutoff (the classical baselines).
    """

    train: pd.DataFrame
    oot: pd.DataFrame
    btyd_oot: BTYDModels
    plan: CutoffPlan | None
    target: str | None
    features: list[str]
    serve: pd.DataFrame | None = None  # rows of the serving cutoffs (the refit's data)
    previous: Any = None  # the champion's model of this task, for tasks that inherit from it
    current: pd.DataFrame | None = None  # every customer's features at as_of: the served base


@dataclass
class FitResult:
    """A fitted model and what its fit wants recorded (params, metrics, tables, notes for the user)."""

    model: Any
    params: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


@dataclass
class Assessment:
    """A task judged on its out-of-time rows.

    Attributes
    ----------
    rows : list of dict
        Tidy metric rows (task, model, metric, value) of ours and every baseline.
    headline : dict
        Our metrics, logged as ``<task>_<metric>`` (the primary metric among them).
    y : ndarray or None
        The out-of-time labels.
    scores : dict
        Model name -> out-of-time predictions (ours first, then the baselines).
    """

    rows: list[dict]
    headline: dict[str, float]
    y: np.ndarray | None = None
    scores: dict[str, np.ndarray] = field(default_factory=dict)


@dataclass
class Served:
    """What a task serves after the gate: the model, and what the run records about the choice."""

    model: Any
    decision: str = ""
    params: dict[str, Any] = field(default_factory=dict)


#: Per metric: +1 higher is better, -1 lower is better, 0 closer to zero (|x|) is better.
DIRECTION = {
    "roc_auc": 1,
    "pr_auc": 1,
    "lift_top_decile": 1,
    "brier": -1,
    "log_loss": -1,
    "normalized_gini": 1,
    "spearman": 1,
    "top_decile_capture": 1,
    "mae": -1,
    "rmse": -1,
    "decile_mape": -1,
    "aggregate_error": 0,
    "transactions_mae": -1,
    "transactions_aggregate_error": 0,
}


def versus_baselines(
    rows: list[dict], ours: str, metrics: Sequence[str], tolerance: float = 0.0
) -> pd.DataFrame:
    """Per metric: ours, the best baseline (name and value) and a verdict (win, tie or loss).

    ``rows`` are an assessment's tidy rows; every model other than ``ours`` (and the oracle) is a
    baseline. A loss is a result worse than the best baseline's by more than ``tolerance``:
    absolute for higher-is-better metrics, relative for lower-is-better ones and |aggregate
    error|. A metric no baseline has is a win by default (nothing to lose to).
    """
    frame = pd.DataFrame(rows)
    out = []
    for metric in metrics:
        sign = DIRECTION[metric]
        m = frame[(frame["metric"] == metric) & frame["value"].notna()]
        mine = m.loc[m["model"] == ours, "value"]
        others = m[(m["model"] != ours) & ~m["model"].str.startswith(("oracle", ours + " ("))]
        if mine.empty:
            continue
        value = float(mine.iloc[0])
        goodness = (others["value"] * sign) if sign else -others["value"].abs()
        if others.empty:
            out.append(
                {"metric": metric, "ours": value, "baseline": "", "best": np.nan, "verdict": "win"}
            )
            continue
        best_row = others.loc[goodness.idxmax()]
        best = float(best_row["value"])
        if sign == 1:
            diff, slack = value - best, tolerance
        else:
            a, b = (value, best) if sign == -1 else (abs(value), abs(best))
            diff, slack = b - a, tolerance * max(abs(b), 1e-12)
        verdict = "win" if diff > 0 else "tie" if diff >= -slack else "loss"
        out.append(
            {
                "metric": metric,
                "ours": value,
                "baseline": best_row["model"],
                "best": best,
                "verdict": verdict,
            }
        )
    return pd.DataFrame(out, columns=["metric", "ours", "baseline", "best", "verdict"])


@dataclass
class BacktestEntry:
    """One model's predictions at a backtest cutoff, with the outcomes they are judged against.

    ``rank_only``: a score that is not a probability (no Brier score or log loss); ``metrics``
    limits the metrics reported (None: all of the task's backtest metrics); ``bootstrap``: whether
    intervals are computed (not for the oracle).
    """

    model: str
    y: np.ndarray
    p: np.ndarray
    rank_only: bool = False
    metrics: tuple[str, ...] | None = None
    bootstrap: bool = True


def metric_rows(model: str, task: str, metrics: Mapping[str, float]) -> list[dict]:
    """Tidy rows ``{task, model, metric, value}`` of one model's metrics."""
    return [{"task": task, "model": model, "metric": k, "value": float(v)} for k, v in metrics.items()]


def lifts(a: Assessment) -> dict[str, pd.DataFrame]:
    """Lift by decile of every model an assessment scored (ours and the baselines)."""
    return {k: lift_by_decile(a.y, v) for k, v in a.scores.items()}


def split(train: pd.DataFrame, share: float, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Training part and validation part, by customer; never the out-of-time snapshot."""
    mask = split_by_customer(train["customer_id"], share, seed)
    return train[~mask], train[mask]


class Task:
    """The interface of a model task (subclass it; instances are stateless and picklable).

    Class attributes
    ----------------
    name : str
        Registry key, config section and MLflow nested-run name (``churn``).
    column_prefix : str
        Prefix of the task's version and run-id prediction columns and of its model artifact
        (``persona`` -> ``persona_model_version``, ``persona_model``).
    model_label : str
        How the product's own model is named in the metric tables (``xgboost churn``).
    primary : str
        The metric the champion gate compares (higher is better).
    guards : tuple of str
        Metrics shown beside the primary one in summaries.
    outputs : tuple of Column
        The prediction columns the task adds.
    explained : bool
        The model has exact per-customer contributions (``contributions``): predictions get reason
        columns and the run gets SHAP plots.
    gates_pipeline : bool
        The deployable chain becomes champion only when this task's model is champion too.
    label_columns : tuple of str
        Label columns the task's snapshots keep (those present in the data).
    tuning_metric : str
        Name of the validation metric each tuning trial logs.
    title : str
        Heading of the task's section in the run report.
    reference : bool
        The task's out-of-time rows are the run's reference rows: personas are fitted on them and
        the persona profile, value and SHAP are computed on them (their labels are read there).
    gate_metrics : tuple of str
        Rank and calibration metrics on which the learned model must not lose to the best
        classical model (within ``serving.tolerance``) to be served (:func:`versus_baselines`).
    headline_metrics : tuple of str
        The metrics ``evaluate`` gives a verdict on against the classical models.
    inherits : bool
        ``fit`` receives the registry's champion of this task's model as ``data.previous``
        (personas keep their ids and names across retrains).
    """

    name: ClassVar[str]
    column_prefix: ClassVar[str]
    model_label: ClassVar[str]
    primary: ClassVar[str]
    guards: ClassVar[tuple[str, ...]] = ()
    outputs: ClassVar[tuple[Column, ...]] = ()
    explained: ClassVar[bool] = False
    gates_pipeline: ClassVar[bool] = False
    label_columns: ClassVar[tuple[str, ...]] = ()
    tuning_metric: ClassVar[str] = ""
    title: ClassVar[str] = ""
    reference: ClassVar[bool] = False
    backtest_metrics: ClassVar[tuple[str, ...]] = ()
    chart_metrics: ClassVar[tuple[str, ...]] = ()
    gate_metrics: ClassVar[tuple[str, ...]] = ()
    headline_metrics: ClassVar[tuple[str, ...]] = ()
    inherits: ClassVar[bool] = False

    # -- labels -----------------------------------------------------------------------------------
    def window_days(self, config: Config) -> int | None:
        """The label window of this task's snapshots (None: the task has no labels)."""
        return None

    def prediction_window_days(self, config: Config) -> int | None:
        """The window predictions are projected to when the label window had to be shorter.

        None (the default): predictions are about the label window itself, never projected.
        """
        return None

    def trials(self, config: Config) -> int:
        """Optuna trials of the task's tuning (0: not tuned)."""
        return 0

    def target(self, config: Config, frame: pd.DataFrame) -> str | None:
        """The label column the model is fitted on."""
        return self.label_columns[0] if self.label_columns else None

    def check(self, config: Config, data: TaskData) -> None:
        """Refuse training data this task cannot learn from (a UserError), before any store opens."""

    # -- fit, judge, score ------------------------------------------------------------------------
    def fit(
        self, config: Config, data: TaskData, seed: int, callbacks: Sequence[Callable] = ()
    ) -> FitResult:
        """Fit (and tune) the task's model on ``data.train`` (or ``data.oot`` without labels)."""
        raise NotImplementedError

    def assess(self, model: Any, data: TaskData, config: Config) -> Assessment:
        """Our model and the baselines on the out-of-time rows."""
        raise NotImplementedError

    def gate_score(self, model: Any, data: TaskData, config: Config) -> float:
        """The primary metric of any fitted model of this task (e.g. the current champion)."""
        raise NotImplementedError

    def serve(self, model: Any, data: TaskData, config: Config, assessment: Assessment) -> Served:
        """The model to serve (by default the fitted one).

        Tasks with classical rivals refit on the latest windows and serve a classical model when
        theirs loses (``gate_metrics``).
        """
        return Served(model)

    def predict(
        self, model: Any, features: pd.DataFrame, spec: TaskSpec, btyd: BTYDModels | None
    ) -> dict[str, np.ndarray]:
        """The task's prediction columns for the rows of ``features``."""
        raise NotImplementedError

    def model_input(self, model: Any, features: pd.DataFrame) -> pd.DataFrame:
        """The columns of ``features`` the model reads (its input example and signature)."""
        return features[list(model.features_)]

    def model_output(self, model: Any, X: pd.DataFrame) -> np.ndarray:
        """What the logged model returns for ``X`` (for its MLflow signature)."""
        return model.predict(X)

    # -- backtest --------------------------------------------------------------------------------
    def metrics(self, y, p) -> dict[str, float]:
        """Every metric of predictions ``p`` against outcomes ``y`` (METRICS.md)."""
        return {}

    def backtest_entries(
        self,
        predictions: pd.DataFrame,
        features: pd.DataFrame,
        labels: pd.DataFrame,
        btyd: BTYDModels,
        spec: TaskSpec,
        config: Config,
        oracle: Mapping[str, np.ndarray] | None,
    ) -> list[BacktestEntry]:
        """What the backtest scores at one cutoff: ours, the baselines and (simulated) the oracle.

        Ours are read from ``predictions``, the chain's own predictions for ``features``.
        """
        return []

    def backtest_figures(self, entries: list[BacktestEntry], cutoff) -> list[tuple[str, Any]]:
        """``(artifact, Figure)`` pairs a backtest logs at one cutoff."""
        return []

    # -- what a run shows -------------------------------------------------------------------------
    def figures(self, assessment: Assessment, metrics: pd.DataFrame) -> list[tuple[str, Any]]:
        """``(artifact path, matplotlib Figure)`` pairs for the run and its report."""
        return []

    def tables(self, assessment: Assessment) -> dict[str, pd.DataFrame]:
        """``{artifact path: table}`` logged with the run."""
        return {}

    def __repr__(self) -> str:
        return f"<task {self.name}>"
