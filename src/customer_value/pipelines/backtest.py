"""Rolling out-of-time evaluation: train as ``train`` would at each cutoff, score what happened next.

For each cutoff ``c``: the whole training job runs with ``as_of = c`` (nothing after ``c`` is read),
then its models and the baselines predict the window after ``c`` from features at ``c``, and are
scored against the actual window. Every metric gets a bootstrap confidence interval over customers.
On the simulated base the oracle (the true alive state, purchase rate and order value) is scored
too, so the table shows the gap to the best possible.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from customer_value import plots, tracking
from customer_value.config import Config
from customer_value.errors import UserError
from customer_value.features.build import Vocabulary, build_feature_set, projection_ratio
from customer_value.features.labels import build_labels
from customer_value.modeling import evaluate
from customer_value.pipelines.data import ensure_data, load_data
from customer_value.pipelines.train import churn_baselines, clv_baselines, run_train

__all__ = ["BacktestResult", "run_backtest", "bootstrap_ci"]

CHURN_METRICS = ("roc_auc", "pr_auc", "brier", "log_loss", "lift_top_decile")
CLV_METRICS = (
    "mae",
    "rmse",
    "spearman",
    "normalized_gini",
    "top_decile_capture",
    "decile_mape",
    "aggregate_error",
)


@dataclass
class BacktestResult:
    """The tidy table (cutoff × task × model × metric with a CI) and the parent run id."""

    table: pd.DataFrame
    run_id: str
    seconds: float


def bootstrap_ci(y, p, metric: Callable, n_boot: int, seed: int) -> tuple[float, float]:
    """95 % percentile interval of ``metric(y, p)`` over customers resampled with replacement."""
    y = np.asarray(y, dtype=float)
    p = np.asarray(p, dtype=float)
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(n_boot):
        idx = rng.integers(0, len(y), len(y))
        v = metric(y[idx], p[idx])
        if v == v:
            values.append(v)
    if not values:
        return float("nan"), float("nan")
    return float(np.percentile(values, 2.5)), float(np.percentile(values, 97.5))


def _rows(cutoff, task, model, y, p, names, fn, n_boot, seed, rank_only=False):
    full = fn(y, p)
    rows = []
    for k in names:
        value = full.get(k, np.nan)
        if rank_only and k in ("brier", "log_loss"):
            value = np.nan
        lo = hi = np.nan
        if value == value and n_boot:
            lo, hi = bootstrap_ci(y, p, lambda a, b, k=k: fn(a, b)[k], n_boot, seed)
        rows.append(
            {
                "cutoff": str(pd.Timestamp(cutoff).date()),
                "task": task,
                "model": model,
                "metric": k,
                "value": float(value),
                "ci_low": lo,
                "ci_high": hi,
            }
        )
    return rows


def _oracle(config: Config, index: pd.Index, cutoff, churn_days: int, horizon: int):
    """Oracle churn and value from the simulation's ground truth (None for real data)."""
    sim = config.simulation
    if sim is None or not (sim.truth_dir / "truth.parquet").exists():
        return None
    truth = pd.read_parquet(sim.truth_dir / "truth.parquet").set_index("customer_id").reindex(index)
    dead = truth["death_date"].notna() & (truth["death_date"] <= pd.Timestamp(cutoff))
    lam = truth["purchase_rate_per_day"]
    q = np.where(dead, 1.0, np.exp(-lam * churn_days))
    value = np.where(dead, 0.0, lam * horizon * truth["mean_order_value"])
    return q, value


def run_backtest(
    config: Config,
    cutoffs: list[str],
    horizon_days: int | None = None,
    n_boot: int = 100,
    say: Callable[[str], None] = print,
) -> BacktestResult:
    """Train at each cutoff and score the window after it; log one parent run, one per cutoff."""
    t0 = time.perf_counter()
    if horizon_days is not None:
        config = config.model_copy(deep=True)
        config.features.horizon_days = int(horizon_days)
    # Backtest models are for measurement only: they never enter the registry.
    config = config.model_copy(deep=True)
    config.tracking.register_models = False
    tracking.check_store(config.tracking)  # an unreachable server fails now, not after the data
    ensure_data(config)
    tables = load_data(config).data
    last = tables.transactions["timestamp"].max().normalize()
    horizon, churn_days = config.features.horizon_days, config.features.churn_window_days
    try:
        stamps = sorted(pd.Timestamp(c).normalize() for c in cutoffs)
    except (ValueError, TypeError):
        raise UserError(
            f"--cutoffs {','.join(cutoffs)!r} are not all dates", hint="use YYYY-MM-DD,YYYY-MM-DD"
        ) from None
    window = max(horizon, churn_days)
    late = [c for c in stamps if c + pd.Timedelta(days=window) > last]
    if late:
        raise UserError(
            f"cutoff(s) {', '.join(str(c.date()) for c in late)} leave less than the {window}-day "
            f"window before the data ends on {last.date()}",
            hint=f"use cutoffs on or before {(last - pd.Timedelta(days=window)).date()}, or a "
            "shorter --horizon-days",
        )
    experiment = config.tracking.experiment or config.project.name
    tracking.setup(config.tracking, experiment)
    rows: list[dict] = []
    seed = config.project.seed
    with tracking.start_run(
        f"backtest {','.join(str(c.date()) for c in stamps)}",
        tags={"kind": "backtest", "horizon_days": str(horizon), "churn_window_days": str(churn_days)},
    ) as parent:
        tracking.log_params(
            {
                "cutoffs": [str(c.date()) for c in stamps],
                "horizon_days": horizon,
                "churn_window_days": churn_days,
                "bootstrap": n_boot,
            }
        )
        for c in stamps:
            say(f"cutoff {c.date()}: training as `train` would with as_of = {c.date()}")
            with tracking.start_run(f"cutoff {c.date()}", nested=True, tags={"cutoff": str(c.date())}):
                res = run_train(config, as_of=c, nested=True, say=lambda m: say(f"  {m}"))
                churn, clv = res.models["churn"], res.models["clv"]
                meta = clv.meta_
                vocab = Vocabulary(
                    tuple(meta["vocabulary"]["categories"]), tuple(meta["vocabulary"]["channels"])
                )
                fs = build_feature_set(tables, c, config.features, vocab)
                f = fs.frame
                labels = build_labels(tables.transactions, f.index, c, horizon, churn_days)
                target = meta["target"]
                y_churn = labels["churned"].to_numpy(float)
                y_clv = labels[target].clip(lower=0).to_numpy(float)
                q = churn.predict_proba(f[churn.features_])[:, 1]
                p = clv.predict(f[clv.features_])
                if meta["label_days"] < horizon:
                    p = p * projection_ratio(fs.btyd, f, meta["label_days"], horizon).to_numpy()
                cut_rows = _rows(
                    c,
                    "churn",
                    "xgboost churn",
                    y_churn,
                    q,
                    CHURN_METRICS,
                    evaluate.churn_metrics,
                    n_boot,
                    seed,
                )
                for name, score in churn_baselines(f, fs.btyd, churn_days).items():
                    cut_rows += _rows(
                        c,
                        "churn",
                        name,
                        y_churn,
                        score,
                        CHURN_METRICS,
                        evaluate.churn_metrics,
                        n_boot,
                        seed,
                        rank_only=not name.startswith("BG/NBD"),
                    )
                cut_rows += _rows(
                    c, "clv", "xgboost clv", y_clv, p, CLV_METRICS, evaluate.clv_metrics, n_boot, seed
                )
                for name, pred in clv_baselines(f, fs.btyd, horizon, target).items():
                    cut_rows += _rows(
                        c, "clv", name, y_clv, pred, CLV_METRICS, evaluate.clv_metrics, n_boot, seed
                    )
                # Aggregate (whole-base) transaction error of the models that predict counts.
                y_tx = labels["future_transactions"].to_numpy(float)
                if fs.btyd.bgnbd is not None:
                    bg_tx = f["bgnbd_expected_transactions"].to_numpy(float)
                    cut_rows.append(_agg_row(c, "BG/NBD + Gamma-Gamma", y_tx, bg_tx))
                naive_tx = f["frequency"] / np.maximum(f["tenure_days"], 1) * horizon
                cut_rows.append(_agg_row(c, "naive repeat rate", y_tx, naive_tx.to_numpy(float)))
                oracle = _oracle(config, f.index, c, churn_days, horizon)
                if oracle is not None:
                    cut_rows += _rows(
                        c,
                        "churn",
                        "oracle (true state)",
                        y_churn,
                        oracle[0],
                        CHURN_METRICS,
                        evaluate.churn_metrics,
                        0,
                        seed,
                    )
                    # The oracle's value is revenue-based; ranking metrics compare, errors do not.
                    cut_rows += [
                        r
                        for r in _rows(
                            c,
                            "clv",
                            "oracle (true state)",
                            y_clv,
                            oracle[1],
                            CLV_METRICS,
                            evaluate.clv_metrics,
                            0,
                            seed,
                        )
                        if r["metric"] in ("spearman", "normalized_gini", "top_decile_capture")
                    ]
                table = pd.DataFrame(cut_rows)
                for r in cut_rows:
                    if r["model"].startswith("xgboost") and r["value"] == r["value"]:
                        tracking.log_metrics({f"{r['task']}_{r['metric']}": r["value"]})
                tracking.log_table(table, "backtest/metrics.csv")
                tracking.log_figure(
                    plots.decile_chart(
                        evaluate.decile_calibration(y_clv, p), f"CLV decile calibration at {c.date()}"
                    ),
                    "backtest/clv_deciles.png",
                )
                rows += cut_rows
        table = pd.DataFrame(rows)
        tracking.log_table(table, "backtest/metrics.csv")
        for task, metric in (
            ("churn", "roc_auc"),
            ("churn", "pr_auc"),
            ("clv", "normalized_gini"),
            ("clv", "mae"),
        ):
            tracking.log_figure(
                plots.metric_by_cutoff(
                    table[(table["task"] == task)], metric, f"{task} {metric} by cutoff"
                ),
                f"backtest/{task}_{metric}_by_cutoff.png",
            )
        run_id = parent.info.run_id
    return BacktestResult(table, run_id, time.perf_counter() - t0)


def _agg_row(cutoff, model, y, p) -> dict:
    total = float(np.sum(y))
    value = float((np.nansum(p) - total) / total) if total and np.isfinite(p).all() else np.nan
    return {
        "cutoff": str(pd.Timestamp(cutoff).date()),
        "task": "transactions",
        "model": model,
        "metric": "aggregate_transactions_error",
        "value": value,
        "ci_low": np.nan,
        "ci_high": np.nan,
    }
