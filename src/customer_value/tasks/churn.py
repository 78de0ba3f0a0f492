"""Churn: will the customer make no purchase in the churn window? (xgboost, tuned, calibrated).

Labelled over ``features.churn_window_days`` after each cutoff; judged on the latest fully observed
window against BG/NBD's P(no purchase) (METRICS.md's BTYD churn score) and plain recency.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd

from customer_value import plots
from customer_value.config import Config
from customer_value.errors import UserError
from customer_value.features.btyd import BTYDModels
from customer_value.modeling import evaluate
from customer_value.modeling.blend import ChurnBlend
from customer_value.modeling.gbm import CHURN_MONOTONE, ChurnModel
from customer_value.modeling.tuning import tune
from customer_value.schema import Column
from customer_value.tasks.base import (
    Assessment,
    BacktestEntry,
    FitResult,
    Served,
    Task,
    TaskData,
    TaskSpec,
    lifts,
    metric_rows,
    split,
    versus_baselines,
)

__all__ = ["ChurnTask", "churn_baselines", "btyd_inputs"]

#: Baselines that are rankings, not probabilities: no Brier score or log loss for them.
_RANK_ONLY = ("roc_auc", "pr_auc", "lift_top_decile", "churn_rate")
BGNBD = "BG/NBD P(no purchase)"


def btyd_inputs(frame: pd.DataFrame) -> pd.DataFrame:
    """The (frequency, recency, T) frame BG/NBD reads, from feature columns."""
    return pd.DataFrame(
        {"frequency": frame["frequency"], "recency": frame["recency_days"], "T": frame["tenure_days"]},
        index=frame.index,
    )


def churn_baselines(oot: pd.DataFrame, models: BTYDModels, window_days: int) -> dict[str, np.ndarray]:
    """Churn baselines: BG/NBD P(no purchase in the window) and recency (a ranking score only)."""
    out = {"recency (days since last purchase)": oot["days_since_last_purchase"].to_numpy(float)}
    if models.bgnbd is not None:
        out[BGNBD] = models.bgnbd.p_no_purchase(btyd_inputs(oot), window_days).to_numpy()
    return out


class ChurnTask(Task):
    """The churn classifier (see the module docstring)."""

    name = "churn"
    column_prefix = "churn"
    model_label = "xgboost churn"
    primary = "roc_auc"
    guards = ("pr_auc", "brier", "lift_top_decile")
    tuning_metric = "val_roc_auc"
    outputs = (Column("churn_probability", "float", 20, low=0.0, high=1.0),)
    explained = True
    gates_pipeline = True
    label_columns = ("churned",)

    title = "Churn model (out-of-time)"
    reference = True  # the most recent fully observed window, with the churn label
    backtest_metrics = ("roc_auc", "pr_auc", "brier", "log_loss", "lift_top_decile")
    chart_metrics = ("roc_auc", "pr_auc")
    gate_metrics = ("roc_auc", "brier")
    headline_metrics = ("roc_auc", "pr_auc", "brier")

    def window_days(self, config: Config) -> int:
        return config.features.churn_window_days

    def trials(self, config: Config) -> int:
        return config.churn.tuning.n_trials

    def check(self, config: Config, data: TaskData) -> None:
        """Both classes must be in every part the model is fitted on (same splits as ``fit``).

        With one class xgboost stops with a bare ValueError deep inside tuning; this names the
        cause before the tracking store is opened.
        """
        tcfg, seed = config.churn.tuning, config.project.seed
        fit_part, val_part = split(data.train, tcfg.validation_share, seed)
        stop_part, _ = split(val_part, 0.5, seed + 1)
        for part, what in (
            (data.train, "training snapshots"),
            (fit_part, "fitting part of the training snapshots"),
            (stop_part, "early-stopping part of the training snapshots"),
        ):
            if part["churned"].nunique() >= 2:
                continue
            state = (
                "no customer"
                if part.empty
                else (
                    "every customer churned" if bool(part["churned"].iloc[0]) else "no customer churned"
                )
            )
            raise UserError(
                f"the churn model cannot be trained: in the {what} {state} "
                f"({len(part)} rows, churn window {data.plan.label_days} days)",
                hint="use more customers or more history, a different features.churn_window_days, "
                "or another --as-of",
            )

    def fit(
        self, config: Config, data: TaskData, seed: int, callbacks: Sequence[Callable] = ()
    ) -> FitResult:
        """Tune on half of the validation customers, calibrate on the other half."""
        tcfg, features = config.churn.tuning, data.features
        fit_part, val_part = split(data.train.reset_index(drop=True), tcfg.validation_share, seed)
        stop_part, cal_part = split(val_part, 0.5, seed + 1)
        X, y = fit_part[features], fit_part["churned"].astype(int)
        Xv, yv = stop_part[features], stop_part["churned"].astype(int)

        def fit(params, calibrate=False):
            model = ChurnModel(
                params=params,
                n_estimators=tcfg.max_estimators,
                early_stopping_rounds=tcfg.early_stopping_rounds,
                monotone=CHURN_MONOTONE,
                calibration=config.churn.calibration,
                calibration_tolerance=config.churn.calibration_tolerance,
                random_state=seed,
            )
            if calibrate:
                return model.fit(X, y, Xv, yv, cal_part[features], cal_part["churned"].astype(int))
            return model.fit(X, y, Xv, yv)

        def score(model):
            return evaluate.churn_metrics(yv, model.predict_proba(Xv)[:, 1])["roc_auc"]

        best, study = tune(
            "churn", fit, score, tcfg.n_trials, tcfg.timeout_s, seed, callbacks=list(callbacks)
        )
        model = fit(best, calibrate=True)
        return FitResult(
            model,
            params={
                "best": best,
                "best_iteration": model.best_iteration_,
                "calibration": config.churn.calibration,
            },
            metrics={
                "val_roc_auc": study.best_value,
                "best_iteration": model.best_iteration_,
                "calibration_ece_before": getattr(model, "ece_before_", np.nan),
                "calibration_ece_after": getattr(model, "ece_after_", np.nan),
                "calibrated": float(model.calibrator_ is not None),
            },
        )

    def assess(self, model, data: TaskData, config: Config) -> Assessment:
        oot = data.oot
        y = oot["churned"].to_numpy(dtype=float)
        ours = model.predict_proba(oot[model.features_])[:, 1]
        classical = churn_baselines(oot, data.btyd_oot, data.plan.label_days).get(BGNBD)
        if config.serving.blend and classical is not None:
            ours = 0.5 * ours + 0.5 * classical  # what is served (ChurnBlend), judged here
        headline = evaluate.churn_metrics(y, ours)
        rows = metric_rows(self.model_label, self.name, headline)
        scores = {self.model_label: ours}
        for name, score in churn_baselines(oot, data.btyd_oot, data.plan.label_days).items():
            m = evaluate.churn_metrics(y, score)
            if name != BGNBD:
                m = {k: (v if k in _RANK_ONLY else np.nan) for k, v in m.items()}
            rows += metric_rows(name, self.name, m)
            scores[name] = score
        return Assessment(rows, headline, y, scores)

    def serve(self, model, data: TaskData, config: Config, assessment: Assessment) -> Served:
        """Refit on the latest windows, average with BG/NBD; serve BG/NBD alone when ours loses.

        The refit keeps the tuned parameters and round count and is not recalibrated: it is fitted
        on the latest labelled windows, whose churn rate is the latest one (on the Online Retail
        backtests the raw refit had a lower Brier score than the older model calibrated on a
        split of old snapshots, and Platt scaling fitted with the older model on the out-of-time
        window made the refit worse).
        """
        served = model
        if config.serving.refit and data.serve is not None and len(data.serve):
            rows = data.serve
            served = ChurnModel(
                params=model.params,
                n_estimators=model.best_iteration_ + 1,
                monotone=model.monotone,
                calibration="none",
                random_state=config.project.seed,
            ).fit(rows[model.features_], rows["churned"].astype(int))
        verdicts = versus_baselines(
            assessment.rows, self.model_label, self.gate_metrics, config.serving.tolerance
        )
        lost = verdicts[verdicts["verdict"] == "loss"]
        refitted = " (refitted)" if served is not model else ""
        if lost.empty or BGNBD not in assessment.scores:
            if config.serving.blend and BGNBD in assessment.scores:
                text = f"serving the learned model{refitted} averaged with {BGNBD}"
                return Served(ChurnBlend(served), text)
            return Served(served, f"serving the learned model{refitted}")
        losses = ", ".join(f"{r.metric} ({r.ours:.4f} vs {r.best:.4f})" for r in lost.itertuples())
        text = f"serving {BGNBD}: ours loses on {losses}"
        return Served(ChurnBlend(served, learned_weight=0.0), text)

    def gate_score(self, model, data: TaskData, config: Config) -> float:
        y = data.oot["churned"].to_numpy(dtype=float)
        return evaluate.churn_metrics(y, model.predict_proba(data.oot[model.features_])[:, 1])["roc_auc"]

    def predict(self, model, features, spec: TaskSpec, btyd) -> dict[str, np.ndarray]:
        return {"churn_probability": model.predict_proba(features[model.features_])[:, 1]}

    def model_output(self, model, X: pd.DataFrame) -> np.ndarray:
        return model.predict_proba(X)[:, 1]

    def metrics(self, y, p) -> dict[str, float]:
        return evaluate.churn_metrics(y, p)

    def backtest_entries(self, predictions, features, labels, btyd, spec, config, oracle):
        y = labels["churned"].to_numpy(float)
        window = config.features.churn_window_days
        entries = [BacktestEntry(self.model_label, y, predictions["churn_probability"].to_numpy())]
        for name, score in churn_baselines(features, btyd, window).items():
            entries.append(BacktestEntry(name, y, score, rank_only=name != BGNBD))
        if oracle is not None:
            entries.append(
                BacktestEntry("oracle (true state)", y, oracle["churn_probability"], bootstrap=False)
            )
        return entries

    def _curves(self, a: Assessment) -> dict[str, pd.DataFrame]:
        rel = {self.model_label: evaluate.reliability_curve(a.y, a.scores[self.model_label])}
        if BGNBD in a.scores:
            rel["BG/NBD"] = evaluate.reliability_curve(a.y, a.scores[BGNBD])
        return rel

    def tables(self, a: Assessment) -> dict[str, pd.DataFrame]:
        return {
            "metrics/churn_reliability.csv": self._curves(a)[self.model_label],
            "metrics/churn_lift.csv": evaluate.stack_lifts(lifts(a)),
        }

    def figures(self, a: Assessment, metrics: pd.DataFrame) -> list[tuple[str, object]]:
        gains = {k: evaluate.gain_curve(a.y, v) for k, v in a.scores.items()}
        mine = metrics[metrics["task"] == self.name]
        return [
            (
                "plots/churn_reliability.png",
                plots.reliability(self._curves(a), "Churn reliability (out-of-time)"),
            ),
            ("plots/churn_gain.png", plots.gain_chart(gains, "Churn: cumulative gain (out-of-time)")),
            (
                "plots/churn_lift.png",
                plots.lift_chart(lifts(a), "Churn: lift by decile (out-of-time)"),
            ),
            *[
                (
                    f"plots/churn_{m}.png",
                    plots.metric_bars(mine, m, f"Churn {m} (out-of-time)"),
                )
                for m in self.chart_metrics
            ],
        ]
