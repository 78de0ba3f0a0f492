"""CLV: future margin (or revenue) over the horizon (xgboost, Tweedie by default, tuned).

Labelled over ``features.horizon_days`` after each cutoff (or the longest window the history allows,
then projected to the horizon with each customer's BG/NBD ratio); judged on the last full window
against BG/NBD + Gamma-Gamma and the naive total and repeat rates (METRICS.md).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd

from customer_value import plots
from customer_value.config import Config
from customer_value.features.btyd import BTYDModels
from customer_value.features.build import projection_ratio
from customer_value.modeling import evaluate
from customer_value.modeling.gbm import CLV_MONOTONE, CLVModel
from customer_value.modeling.tuning import tune
from customer_value.schema import Column
from customer_value.tasks.base import (
    Assessment,
    BacktestEntry,
    FitResult,
    Task,
    TaskData,
    TaskSpec,
    lifts,
    metric_rows,
    split,
)
from customer_value.tasks.churn import btyd_inputs

__all__ = ["CLVTask", "clv_baselines", "clv_target"]


def clv_target(config: Config, frame: pd.DataFrame) -> str:
    """``future_margin`` where the log has costs (or when asked), else ``future_revenue``."""
    if config.clv.target == "margin" or (config.clv.target == "auto" and "future_margin" in frame):
        return "future_margin"
    return "future_revenue"


def clv_baselines(
    oot: pd.DataFrame, models: BTYDModels, label_days: int, target: str
) -> dict[str, np.ndarray]:
    """CLV baselines over the label window: BG/NBD + Gamma-Gamma, naive total and repeat rates.

    Converted to margin with each customer's margin rate when the target is margin (METRICS.md).
    """
    tenure = np.maximum(oot["tenure_days"].to_numpy(dtype=float), 1.0)
    margin = np.ones(len(oot))
    if target == "future_margin" and "margin_rate" in oot:
        mr = oot["margin_rate"]
        margin = mr.fillna(mr.median()).clip(lower=0).to_numpy()
    repeat_revenue = (oot["monetary_repeat_mean"].fillna(0) * oot["frequency"]).to_numpy()
    out = {
        "naive total rate": oot["monetary_total"].clip(lower=0).to_numpy()
        / tenure
        * label_days
        * margin,
        "naive repeat rate": repeat_revenue / tenure * label_days * margin,
    }
    if models.bgnbd is not None and models.gamma_gamma is not None:
        tx = models.bgnbd.expected_transactions(btyd_inputs(oot), label_days).to_numpy()
        aov = models.gamma_gamma.conditional_expected_value(
            pd.DataFrame({"frequency": oot["frequency"], "monetary_value": oot["monetary_repeat_mean"]})
        ).to_numpy()
        out["BG/NBD + Gamma-Gamma"] = tx * aov * margin
    return out


class CLVTask(Task):
    """The CLV regressor (see the module docstring)."""

    name = "clv"
    column_prefix = "clv"
    model_label = "xgboost clv"
    primary = "normalized_gini"
    guards = ("spearman", "mae", "rmse", "top_decile_capture", "aggregate_error")
    tuning_metric = "val_normalized_gini"
    outputs = (Column("predicted_clv", "float", 40, low=0.0),)
    explained = True
    gates_pipeline = True
    label_columns = ("future_revenue", "future_transactions", "future_margin")

    title = "CLV model (out-of-time)"
    backtest_metrics = (
        "mae",
        "rmse",
        "spearman",
        "normalized_gini",
        "top_decile_capture",
        "decile_mape",
        "aggregate_error",
    )
    chart_metrics = ("normalized_gini", "mae")

    def window_days(self, config: Config) -> int:
        return config.features.horizon_days

    def prediction_window_days(self, config: Config) -> int:
        return config.features.horizon_days

    def trials(self, config: Config) -> int:
        return config.clv.tuning.n_trials

    def target(self, config: Config, frame: pd.DataFrame) -> str:
        return clv_target(config, frame)

    def fit(
        self, config: Config, data: TaskData, seed: int, callbacks: Sequence[Callable] = ()
    ) -> FitResult:
        """Tune on validation normalized Gini; early stopping on the same validation customers."""
        tcfg, features, target = config.clv.tuning, data.features, data.target
        fit_part, stop_part = split(data.train.reset_index(drop=True), tcfg.validation_share, seed)
        X, y = fit_part[features], fit_part[target]
        Xv, yv = stop_part[features], stop_part[target].clip(lower=0)

        def fit(params):
            return CLVModel(
                params=params,
                objective=config.clv.objective,
                n_estimators=tcfg.max_estimators,
                early_stopping_rounds=tcfg.early_stopping_rounds,
                monotone=CLV_MONOTONE,
                random_state=seed,
            ).fit(X, y, Xv, yv)

        def score(model):
            return evaluate.normalized_gini(yv, model.predict(Xv))

        study_name = "clv_tweedie" if config.clv.objective == "tweedie" else "clv_two_part"
        best, study = tune(
            study_name, fit, score, tcfg.n_trials, tcfg.timeout_s, seed, callbacks=list(callbacks)
        )
        model = fit(best)
        return FitResult(
            model,
            params={
                "best": best,
                "best_iteration": model.best_iteration_,
                "objective": config.clv.objective,
                "target": target,
            },
            metrics={"val_normalized_gini": study.best_value, "best_iteration": model.best_iteration_},
        )

    def _y(self, data: TaskData) -> np.ndarray:
        return data.oot[data.target].clip(lower=0).to_numpy(dtype=float)

    def assess(self, model, data: TaskData, config: Config) -> Assessment:
        # Over the label window, as the labels are: the projection to the horizon is not judged.
        y = self._y(data)
        ours = model.predict(data.oot[model.features_])
        headline = evaluate.clv_metrics(y, ours)
        rows = metric_rows(self.model_label, self.name, headline)
        scores = {self.model_label: ours}
        for name, pred in clv_baselines(
            data.oot, data.btyd_oot, data.plan.label_days, data.target
        ).items():
            rows += metric_rows(name, self.name, evaluate.clv_metrics(y, pred))
            scores[name] = pred
        return Assessment(rows, headline, y, scores)

    def gate_score(self, model, data: TaskData, config: Config) -> float:
        return evaluate.normalized_gini(self._y(data), model.predict(data.oot[model.features_]))

    def predict(self, model, features, spec: TaskSpec, btyd) -> dict[str, np.ndarray]:
        clv = model.predict(features[model.features_])
        if spec.projected and btyd is not None:
            clv = clv * projection_ratio(btyd, features, spec.label_days, spec.window_days).to_numpy()
        return {"predicted_clv": clv}

    def metrics(self, y, p) -> dict[str, float]:
        return evaluate.clv_metrics(y, p)

    def backtest_entries(self, predictions, features, labels, btyd, spec, config, oracle):
        y = labels[spec.target].clip(lower=0).to_numpy(float)
        horizon = config.features.horizon_days
        p = predictions["predicted_clv"].to_numpy()
        entries = [BacktestEntry(self.model_label, y, p)]
        for name, pred in clv_baselines(features, btyd, horizon, spec.target).items():
            entries.append(BacktestEntry(name, y, pred))
        if oracle is not None:
            # The oracle's value is revenue-based; ranking metrics compare, errors do not.
            ranking = ("spearman", "normalized_gini", "top_decile_capture")
            entries.append(
                BacktestEntry(
                    "oracle (true state)", y, oracle["predicted_clv"], metrics=ranking, bootstrap=False
                )
            )
        return entries

    def backtest_figures(self, entries, cutoff) -> list[tuple[str, object]]:
        """The CLV decile calibration of ours at one backtest cutoff."""
        ours = entries[0]
        cal = evaluate.decile_calibration(ours.y, ours.p)
        title = f"CLV decile calibration at {pd.Timestamp(cutoff).date()}"
        return [("backtest/clv_deciles.png", plots.decile_chart(cal, title))]

    def tables(self, a: Assessment) -> dict[str, pd.DataFrame]:
        return {
            "metrics/clv_decile_calibration.csv": evaluate.decile_calibration(
                a.y, a.scores[self.model_label]
            ),
            "metrics/clv_lift.csv": evaluate.stack_lifts(lifts(a)),
        }

    def figures(self, a: Assessment, metrics: pd.DataFrame) -> list[tuple[str, object]]:
        cal = evaluate.decile_calibration(a.y, a.scores[self.model_label])
        gains = {k: evaluate.gain_curve(a.y, v) for k, v in a.scores.items()}
        gains["perfect"] = evaluate.gain_curve(a.y, a.y)
        mine = metrics[metrics["task"] == self.name]
        return [
            ("plots/clv_deciles.png", plots.decile_chart(cal, "CLV decile calibration (out-of-time)")),
            ("plots/clv_gain.png", plots.gain_chart(gains, "CLV: cumulative gain (out-of-time)")),
            (
                "plots/clv_lift.png",
                plots.lift_chart(lifts(a), "CLV: lift by decile (out-of-time)"),
            ),
            *[
                (f"plots/clv_{m}.png", plots.metric_bars(mine, m, f"CLV {m} (out-of-time)"))
                for m in self.chart_metrics
            ],
        ]
