"""Holdout evaluation against the classical models, protocol-R style, on any config.

For each calibration end ``c``: the training job runs with ``as_of = c`` (nothing after ``c`` is
read), the served chain scores every customer with a purchase day on or before ``c``, and the
predictions are judged on the ``holdout_days`` after ``c`` against what each customer did, beside
BG/NBD + Gamma-Gamma, MBG/NBD + Gamma-Gamma and the naive total and repeat rates, all scored by
the same functions (METRICS.md). Each headline metric gets a 95 % bootstrap interval (customers
resampled) and a verdict: does ours beat the best classical model?
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.stats import spearmanr

from customer_value import tracking
from customer_value.config import Config
from customer_value.features.build import build_feature_set
from customer_value.features.labels import build_labels
from customer_value.modeling import evaluate
from customer_value.modeling.btyd import ModifiedBetaGeoModel
from customer_value.pipelines.backtest import bootstrap_ci
from customer_value.pipelines.data import ensure_data, load_data
from customer_value.pipelines.options import check_days, check_windows, parse_dates
from customer_value.pipelines.train import run_train
from customer_value.tasks.base import DIRECTION
from customer_value.tasks.churn import btyd_inputs

__all__ = ["EvaluationResult", "run_evaluate", "HEADLINE", "classical_predictions", "score_holdout"]

OURS = "customer_value (served)"
#: (metric, prediction column, label column, METRICS.md function key)
HEADLINE = (
    ("normalized_gini", "predicted_clv", "future_revenue"),
    ("spearman", "predicted_clv", "future_revenue"),
    ("top_decile_capture", "predicted_clv", "future_revenue"),
    ("aggregate_error", "predicted_clv", "future_revenue"),
    ("roc_auc", "churn_probability", "churned"),
    ("pr_auc", "churn_probability", "churned"),
    ("brier", "churn_probability", "churned"),
    ("transactions_mae", "expected_transactions", "future_transactions"),
    ("transactions_aggregate_error", "expected_transactions", "future_transactions"),
)


@dataclass
class EvaluationResult:
    """The tidy table (cal_end × model × metric, with intervals) and the verdicts."""

    table: pd.DataFrame
    verdicts: pd.DataFrame
    seconds: float


def metric(name: str, y, p) -> float:
    """One headline metric of predictions ``p`` against outcomes ``y`` (METRICS.md)."""
    y, p = np.asarray(y, dtype=float), np.asarray(p, dtype=float)
    if name in ("roc_auc", "pr_auc", "brier"):
        return evaluate.churn_metrics(y, p)[name]
    if name == "transactions_mae":
        return float(np.mean(np.abs(p - y)))
    if name in ("aggregate_error", "transactions_aggregate_error"):
        return float((p.sum() - y.sum()) / y.sum()) if y.sum() else float("nan")
    if name == "top_decile_capture":
        return evaluate.top_decile_capture(y, p)[0]
    if name == "spearman":
        # Just the rank correlation (clv_metrics would also build deciles and gains per sample).
        return float(spearmanr(y, p).statistic) if np.ptp(p) > 0 and np.ptp(y) > 0 else float("nan")
    return evaluate.normalized_gini(y, p)


def classical_predictions(
    features: pd.DataFrame, btyd, days: int, margin: bool = False
) -> dict[str, dict[str, np.ndarray]]:
    """Model name -> prediction column -> values: BG/NBD, MBG/NBD (+ Gamma-Gamma), naive rates.

    With ``margin`` the spend predictions are converted with each customer's margin rate, as the
    CLV baselines of training are (METRICS.md), so they compare with a margin CLV.
    """
    out = _classical(features, btyd, days)
    if margin and "margin_rate" in features:
        mr = features["margin_rate"]
        rate = mr.fillna(mr.median()).clip(lower=0).to_numpy()
        for preds in out.values():
            if "predicted_clv" in preds:
                preds["predicted_clv"] = preds["predicted_clv"] * rate
    return out


def _classical(features: pd.DataFrame, btyd, days: int) -> dict[str, dict[str, np.ndarray]]:
    tenure = np.maximum(features["tenure_days"].to_numpy(dtype=float), 1.0)
    freq = features["frequency"].to_numpy(dtype=float)
    repeat = features["monetary_repeat_mean"].fillna(0).to_numpy(dtype=float) * freq
    out = {
        "naive total rate": {
            "predicted_clv": np.clip(features["monetary_total"].to_numpy(float), 0, None)
            / tenure
            * days,
            "expected_transactions": features["purchase_days"].to_numpy(float) / tenure * days,
        },
        "naive repeat rate": {
            "predicted_clv": np.clip(repeat, 0, None) / tenure * days,
            "expected_transactions": freq / tenure * days,
        },
    }
    X = btyd_inputs(features)
    buyers = features["purchase_days"].to_numpy() > 0
    aov = None
    if btyd.gamma_gamma is not None:
        aov = btyd.gamma_gamma.conditional_expected_value(
            pd.DataFrame(
                {"frequency": features["frequency"], "monetary_value": features["monetary_repeat_mean"]}
            )
        ).to_numpy()
    mbg = None
    if buyers.sum() >= 10 and (freq[buyers] > 0).any():
        mbg = ModifiedBetaGeoModel(penalizer=1e-4).fit(X[buyers])
    for name, model in (("BG/NBD", btyd.bgnbd), ("MBG/NBD", mbg)):
        if model is None:
            continue
        tx = model.expected_transactions(X, days).to_numpy()
        preds = {
            "expected_transactions": tx,
            "churn_probability": model.p_no_purchase(X, days).to_numpy(),
        }
        if aov is not None:
            preds["predicted_clv"] = tx * aov
        out[f"{name} + Gamma-Gamma" if aov is not None else name] = preds
    return out


def score_holdout(
    predictions: dict[str, dict[str, np.ndarray]],
    labels: pd.DataFrame,
    n_boot: int,
    seed: int,
    spend_label: str = "future_revenue",
) -> pd.DataFrame:
    """Every model's headline metrics (ours with a bootstrap interval) on the holdout labels.

    ``spend_label`` is what ``predicted_clv`` means: revenue, or margin where the log has costs.
    """
    rows = []
    for model, preds in predictions.items():
        for name, column, label in HEADLINE:
            label = spend_label if label == "future_revenue" else label
            if column not in preds or label not in labels:
                continue
            y = labels[label].clip(lower=0).to_numpy(dtype=float)
            p = np.asarray(preds[column], dtype=float)
            if not np.isfinite(p).all():
                continue
            lo = hi = np.nan
            if model == OURS and n_boot:
                lo, hi = bootstrap_ci(y, p, lambda a, b, n=name: metric(n, a, b), n_boot, seed)
            rows.append(
                {
                    "model": model,
                    "metric": name,
                    "value": metric(name, y, p),
                    "ci_low": lo,
                    "ci_high": hi,
                }
            )
    return pd.DataFrame(rows, columns=["model", "metric", "value", "ci_low", "ci_high"])


#: Headline metrics (issue 14): spend and churn; transactions instead of spend without amounts.
SPEND_HEADLINE = ("normalized_gini", "spearman", "top_decile_capture", "aggregate_error")
CHURN_HEADLINE = ("roc_auc", "pr_auc", "brier")
COUNT_HEADLINE = ("transactions_mae", "transactions_aggregate_error")


def verdicts(table: pd.DataFrame, amounts: bool = True) -> pd.DataFrame:
    """Per cal_end and metric: ours, the best classical model, win or loss, headline or not.

    With amounts the headline metrics are spend and churn; without (a constant amount), the
    transaction counts replace spend.
    """
    headline = CHURN_HEADLINE + (SPEND_HEADLINE if amounts else COUNT_HEADLINE)
    out = []
    for (cal_end, name), g in table.groupby(["cal_end", "metric"], sort=False):
        mine = g[g["model"] == OURS]
        others = g[g["model"] != OURS]
        if mine.empty or others.empty:
            continue
        sign = DIRECTION[name]
        good = others["value"] * sign if sign else -others["value"].abs()
        best = others.loc[good.idxmax()]
        ours = float(mine["value"].iloc[0])
        better = (
            (ours > best["value"])
            if sign == 1
            else (ours < best["value"])
            if sign == -1
            else (abs(ours) < abs(best["value"]))
        )
        out.append(
            {
                "cal_end": cal_end,
                "metric": name,
                "ours": ours,
                "ci_low": float(mine["ci_low"].iloc[0]),
                "ci_high": float(mine["ci_high"].iloc[0]),
                "best_classical": best["model"],
                "classical": float(best["value"]),
                "verdict": "win" if better else "loss",
                "headline": name in headline,
            }
        )
    return pd.DataFrame(out)


def _spend_target(chain) -> str:
    """The label ``predicted_clv`` is trained on (the task that outputs it decides)."""
    for task in chain.tasks:
        if any(c.name == "predicted_clv" for c in task.outputs):
            return chain.spec.tasks[task.name].target or "future_revenue"
    return "future_revenue"


def run_evaluate(
    config: Config,
    cal_ends: list[str],
    holdout_days: int,
    n_boot: int = 200,
    say: Callable[[str], None] = print,
) -> EvaluationResult:
    """Train at each calibration end, serve, and judge the holdout after it (see module doc)."""
    t0 = time.perf_counter()
    check_days(holdout_days, "--holdout-days")
    stamps = parse_dates(cal_ends, "--cal-end")  # before anything is read
    config = config.model_copy(deep=True)
    config.features.horizon_days = config.features.churn_window_days = int(holdout_days)
    config.tracking.register_models = False  # measurement only: never enters the registry
    # Its runs live in their own experiment, so they never become a project's "latest run".
    config.tracking.experiment = f"{config.tracking.experiment or config.project.name}-evaluate"
    tracking.check_store(config.tracking, writes_report=True)
    ensure_data(config)
    tables = load_data(config).data
    last = tables.transactions["timestamp"].max().normalize()
    stamps = check_windows(stamps, holdout_days, last, "calibration end(s)", "--holdout-days")
    # A log without amounts carries a constant one: its "spend" is a count, not a headline.
    amounts = tables.transactions["amount"].abs().nunique() > 1
    parts = []
    for c in stamps:
        say(f"calibration end {c.date()}: training as `train --as-of {c.date()}` would")
        res = run_train(config, as_of=c, say=lambda m: say(f"  {m}"))
        fs = build_feature_set(tables, c, res.chain.spec.features, res.chain.spec.vocabulary)
        f = fs.frame[fs.frame["purchase_days"] > 0]  # every customer with a purchase day
        preds, _ = res.chain.core(f, fs.btyd)
        labels = build_labels(tables.transactions, f.index, c, holdout_days, holdout_days)
        cols = ("predicted_clv", "churn_probability", "expected_transactions")
        models = {OURS: {k: preds[k].to_numpy(float) for k in cols if k in preds}}
        target = _spend_target(res.chain)
        models.update(classical_predictions(f, fs.btyd, holdout_days, target == "future_margin"))
        scored = score_holdout(models, labels, n_boot, config.project.seed, target)
        scored.insert(1, "target", target)
        scored.insert(0, "cal_end", str(c.date()))
        parts.append(scored)
    table = pd.concat(parts, ignore_index=True)
    return EvaluationResult(table, verdicts(table, amounts), time.perf_counter() - t0)
