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
from customer_value.modeling.blend import BaselineOnly, Blend, SpendAndCounts
from customer_value.modeling.gbm import CLV_MONOTONE, CLVModel
from customer_value.modeling.intervals import ConformalCLV
from customer_value.modeling.tuning import split_by_customer, tune
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
from customer_value.tasks.churn import btyd_inputs

__all__ = [
    "CLVTask",
    "calibrate_intervals",
    "clv_baselines",
    "clv_target",
    "transaction_baselines",
    "crossfit",
]

#: Transaction-count metrics (purchase days in the window), reported beside the spend metrics.
TX_METRICS = ("transactions_mae", "transactions_aggregate_error")


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


def transaction_baselines(
    oot: pd.DataFrame, models: BTYDModels, label_days: int
) -> dict[str, np.ndarray]:
    """Purchase days in the window: BG/NBD and the naive repeat rate (METRICS.md)."""
    tenure = np.maximum(oot["tenure_days"].to_numpy(dtype=float), 1.0)
    out = {"naive repeat rate": oot["frequency"].to_numpy(dtype=float) / tenure * label_days}
    if models.bgnbd is not None:
        out["BG/NBD"] = models.bgnbd.expected_transactions(btyd_inputs(oot), label_days).to_numpy()
    return out


def transaction_metrics(y, p) -> dict[str, float]:
    """MAE and aggregate error of expected purchase days."""
    y, p = np.asarray(y, dtype=float), np.asarray(p, dtype=float)
    total = y.sum()
    return {
        "transactions_mae": float(np.mean(np.abs(p - y))),
        "transactions_aggregate_error": float((p.sum() - total) / total) if total else float("nan"),
    }


def crossfit(blend: Blend, X: pd.DataFrame, y: np.ndarray, seed: int) -> np.ndarray:
    """Blend predictions for every row of X from weights fitted on the other half of customers.

    The served weights are fitted on the whole out-of-time window; judging them there would be
    in-sample, so the out-of-time metrics use two-fold cross-fitting by customer instead.
    """
    half = np.asarray(split_by_customer(pd.Series(X.index, index=X.index), 0.5, seed), dtype=bool)
    out = np.empty(len(X))
    for part in (half, ~half):
        fitted = Blend(blend.model, blend.kind).fit(X[~part], y[~part])
        out[part] = fitted.predict(X[part])
    return out


class CLVTask(Task):
    """The CLV regressor (see the module docstring)."""

    name = "clv"
    column_prefix = "clv"
    model_label = "xgboost clv"
    primary = "normalized_gini"
    guards = ("spearman", "mae", "rmse", "top_decile_capture", "aggregate_error")
    tuning_metric = "val_normalized_gini"
    outputs = (
        Column("predicted_clv", "float", 40, low=0.0),
        # The served interval (first level of clv.intervals_levels); empty when the model has no
        # calibrator (labels projected from a shorter window, or a model saved before intervals).
        Column("predicted_clv_low", "float", 41, nullable=True, low=0.0),
        Column("predicted_clv_high", "float", 42, nullable=True, low=0.0),
        Column("clv_interval_level", "float", 43, nullable=True, low=0.0, high=1.0),
    )
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
    gate_metrics = ("normalized_gini", "aggregate_error")
    headline_metrics = (
        "normalized_gini",
        "spearman",
        "top_decile_capture",
        "aggregate_error",
        *TX_METRICS,
    )

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
        counts = None
        if "future_transactions" in fit_part:
            # Purchase days with the spend model's tuned shape: a Poisson model of counts.
            counts = CLVModel(
                params=best,
                objective="poisson",
                n_estimators=tcfg.max_estimators,
                early_stopping_rounds=tcfg.early_stopping_rounds,
                random_state=seed,
            ).fit(X, fit_part["future_transactions"], Xv, stop_part["future_transactions"])
        return FitResult(
            SpendAndCounts(model, counts),
            params={
                "best": best,
                "best_iteration": model.best_iteration_,
                "transactions_best_iteration": None if counts is None else counts.best_iteration_,
                "objective": config.clv.objective,
                "target": target,
            },
            metrics={"val_normalized_gini": study.best_value, "best_iteration": model.best_iteration_},
        )

    def _y(self, data: TaskData) -> np.ndarray:
        return data.oot[data.target].clip(lower=0).to_numpy(dtype=float)

    def assess(self, model, data: TaskData, config: Config) -> Assessment:
        # Over the label window, as the labels are: the projection to the horizon is not judged.
        # Ours is what is served: the blend (cross-fitted here) when blending is on.
        y, oot, seed = self._y(data), data.oot, config.project.seed
        learned = model.spend.predict(oot[model.spend.features_])
        ours = crossfit(Blend(model.spend, "spend"), oot, y, seed) if config.serving.blend else learned
        headline = evaluate.clv_metrics(y, ours)
        rows = metric_rows(self.model_label, self.name, headline)
        scores = {self.model_label: ours}
        if config.serving.blend:
            rows += metric_rows(
                f"{self.model_label} (learned only)", self.name, evaluate.clv_metrics(y, learned)
            )
        for name, pred in clv_baselines(oot, data.btyd_oot, data.plan.label_days, data.target).items():
            rows += metric_rows(name, self.name, evaluate.clv_metrics(y, pred))
            scores[name] = pred
        if model.transactions is not None:
            rows += self._transaction_rows(model, data, config)
            headline.update(
                {
                    r["metric"]: r["value"]
                    for r in rows
                    if r["model"] == self.model_label and r["metric"] in TX_METRICS
                }
            )
        return Assessment(rows, headline, y, scores)

    def _transaction_rows(self, model, data: TaskData, config: Config) -> list[dict]:
        oot = data.oot
        y = oot["future_transactions"].to_numpy(dtype=float)
        learned = model.transactions.predict(oot[model.transactions.features_])
        ours = learned
        if config.serving.blend:
            ours = crossfit(Blend(model.transactions, "transactions"), oot, y, config.project.seed)
        rows = metric_rows(self.model_label, self.name, transaction_metrics(y, ours))
        for name, pred in transaction_baselines(oot, data.btyd_oot, data.plan.label_days).items():
            rows += metric_rows(name, self.name, transaction_metrics(y, pred))
        return rows

    def serve(self, model, data: TaskData, config: Config, assessment: Assessment) -> Served:
        """Refit on the latest windows, blend with the classical models, or serve one of them.

        The blend's weights are fitted on the whole out-of-time window (its level is the latest
        one) and put around the refit. When ours loses to a classical model on a gate metric,
        that classical model is served instead, scaled to the out-of-time window's total.
        """
        oot, tol = data.oot, config.serving.tolerance
        parts, decisions, params = {}, [], {}
        source = self.model_label  # whose out-of-time predictions the served spend repeats
        for kind, fitted, metrics, target in (
            ("spend", model.spend, self.gate_metrics, data.target),
            ("transactions", model.transactions, TX_METRICS, "future_transactions"),
        ):
            if fitted is None:
                parts[kind] = None
                continue
            y = oot[target].clip(lower=0).to_numpy(dtype=float)
            refit = _refit(fitted, data, target, config) if config.serving.refit else fitted
            verdicts = versus_baselines(assessment.rows, self.model_label, metrics, tol)
            lost = verdicts[verdicts["verdict"] == "loss"]
            if not lost.empty:
                best = verdicts.iloc[0]["baseline"]
                parts[kind] = BaselineOnly(refit, kind, best).fit(oot, y)
                source = best if kind == "spend" else source
                decisions.append(
                    f"{kind}: serving {best} (scaled to the latest window's total): ours loses on "
                    + ", ".join(f"{r.metric} ({r.ours:.4f} vs {r.best:.4f})" for r in lost.itertuples())
                )
            elif config.serving.blend:
                blend = Blend(fitted, kind).fit(oot, y)
                parts[kind] = blend.with_model(refit)
                params[f"{kind}_blend_weights"] = blend.weights()
                decisions.append(f"{kind}: serving the learned model blended with the classical ones")
            else:
                parts[kind] = refit
                decisions.append(f"{kind}: serving the learned model")
        season = data.plan.season if data.plan is not None else None
        if config.serving.seasonal and season is not None:
            for part in parts.values():
                if part is not None and hasattr(part, "weights_"):
                    part.weights_ = part.weights_ * season
            params["season_index"] = season
            decisions.append(f"totals scaled by {season:.3f}, the season's change a year earlier")
        served = SpendAndCounts(parts["spend"], parts["transactions"])
        served.intervals = calibrate_intervals(config, data, assessment, source, served)
        return Served(served, "; ".join(decisions), params)

    def gate_score(self, model, data: TaskData, config: Config) -> float:
        return evaluate.normalized_gini(self._y(data), model.predict(data.oot[model.features_]))

    def predict(self, model, features, spec: TaskSpec, btyd) -> dict[str, np.ndarray]:
        X = features[model.features_]
        p = model.predict(X)
        out = {"predicted_clv": p}
        counts = model.predict_transactions(X) if hasattr(model, "predict_transactions") else None
        if counts is not None:
            out["expected_transactions"] = counts
        cal = getattr(model, "intervals", None)
        level = float(cal.levels[0]) if cal is not None and len(cal.levels) else np.nan
        if np.isfinite(level):
            out["predicted_clv_low"], out["predicted_clv_high"] = cal.interval(p, level)
        else:
            out["predicted_clv_low"] = out["predicted_clv_high"] = np.full(len(p), np.nan)
        if spec.projected and btyd is not None:
            ratio = projection_ratio(btyd, features, spec.label_days, spec.window_days).to_numpy()
            out = {k: v * ratio for k, v in out.items()}
        out["clv_interval_level"] = np.full(len(p), level)
        return out

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


def calibrate_intervals(
    config: Config, data: TaskData, assessment: Assessment, source: str, served=None
) -> ConformalCLV | None:
    """Split-conformal CLV intervals calibrated on the out-of-time window (None: not possible).

    The calibration predictions are the assessment's: ``source``'s out-of-time predictions from a
    model fitted on earlier snapshots (cross-fitted when blended), so no calibration label was seen
    by the model it calibrates. Labels shorter than the horizon are projected at scoring time and
    their residuals would be on another scale: no intervals then. With
    ``clv.intervals_match_ranks``, the ``served`` model's predictions for the base at the training
    date (``data.current``) are the reference each served prediction is ranked against.
    """
    levels = config.clv.intervals_levels
    p = assessment.scores.get(source)
    if not levels or p is None or assessment.y is None or (data.plan and data.plan.projected):
        return None
    current = data.current
    reference = None
    if config.clv.intervals_match_ranks and served is not None and current is not None and len(current):
        reference = served.predict(current[served.features_])
    return ConformalCLV(levels=tuple(levels)).fit(assessment.y, p, reference)


def _refit(fitted: CLVModel, data: TaskData, target: str, config: Config) -> CLVModel:
    """The same model refitted on the serving cutoffs, with its tuned parameters and rounds."""
    if not isinstance(fitted, CLVModel):  # a model this task did not fit: served as it is
        return fitted
    rows = data.serve if data.serve is not None and len(data.serve) else data.train
    return CLVModel(
        params=fitted.params,
        objective=fitted.objective,
        n_estimators=fitted.best_iteration_ + 1,
        monotone=fitted.monotone,
        random_state=config.project.seed,
    ).fit(rows[fitted.features_], rows[target].clip(lower=0))
