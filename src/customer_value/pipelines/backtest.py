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

from customer_value import plots, tasks, tracking
from customer_value.config import Config
from customer_value.features.build import build_feature_set
from customer_value.features.labels import build_labels
from customer_value.pipelines.data import ensure_data, load_data
from customer_value.pipelines.options import check_days, check_windows, parse_dates
from customer_value.pipelines.train import run_train

__all__ = ["BacktestResult", "run_backtest", "bootstrap_ci"]


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
    """Oracle predictions from the simulation's ground truth, by prediction column (None: real data)."""
    sim = config.simulation
    if sim is None or not (sim.truth_dir / "truth.parquet").exists():
        return None
    truth = pd.read_parquet(sim.truth_dir / "truth.parquet").set_index("customer_id").reindex(index)
    dead = truth["death_date"].notna() & (truth["death_date"] <= pd.Timestamp(cutoff))
    lam = truth["purchase_rate_per_day"]
    return {
        "churn_probability": np.where(dead, 1.0, np.exp(-lam * churn_days)),
        "predicted_clv": np.where(dead, 0.0, lam * horizon * truth["mean_order_value"]),
    }


def score_cutoff(config: Config, tables, c: pd.Timestamp, chain, n_boot: int) -> list[dict]:
    """Every task's model, baselines (and oracle) at one cutoff, scored on the window after it."""
    horizon, churn_days = config.features.horizon_days, config.features.churn_window_days
    seed = config.project.seed
    fs = build_feature_set(tables, c, chain.spec.features, chain.spec.vocabulary)
    f = fs.frame
    labels = build_labels(tables.transactions, f.index, c, horizon, churn_days)
    oracle = _oracle(config, f.index, c, churn_days, horizon)
    predictions, _ = chain.core(f, fs.btyd)  # the chain's own predictions, as `predict` makes them
    rows: list[dict] = []
    for task in chain.tasks:
        entries = task.backtest_entries(
            predictions, f, labels, fs.btyd, chain.spec.tasks[task.name], config, oracle
        )
        for e in entries:
            names = e.metrics or task.backtest_metrics
            boots = n_boot if e.bootstrap else 0
            rows += _rows(c, task.name, e.model, e.y, e.p, names, task.metrics, boots, seed, e.rank_only)
        intervals = getattr(chain.models[task.name], "intervals", None)
        if intervals is not None and entries:  # entries[0] is ours, as the chain predicts it
            groups = predictions["persona"] if "persona" in predictions else None
            rows += _interval_rows(c, task.name, entries[0], intervals, groups, n_boot, seed)
        for artifact, fig in task.backtest_figures(entries, c) if entries else []:
            tracking.log_figure(fig, artifact)
    # Aggregate (whole-base) transaction error of the models that predict counts.
    y_tx = labels["future_transactions"].to_numpy(float)
    if fs.btyd.bgnbd is not None:
        bg_tx = f["bgnbd_expected_transactions"].to_numpy(float)
        rows.append(_agg_row(c, "BG/NBD + Gamma-Gamma", y_tx, bg_tx))
    naive_tx = f["frequency"] / np.maximum(f["tenure_days"], 1) * horizon
    rows.append(_agg_row(c, "naive repeat rate", y_tx, naive_tx.to_numpy(float)))
    return rows


def run_backtest(
    config: Config,
    cutoffs: list[str],
    horizon_days: int | None = None,
    n_boot: int = 100,
    say: Callable[[str], None] = print,
) -> BacktestResult:
    """Train at each cutoff and score the window after it; log one parent run, one per cutoff."""
    t0 = time.perf_counter()
    # Every option is checked before anything is read or configured.
    wanted = parse_dates(cutoffs, "--cutoffs")
    check_days(horizon_days, "--horizon-days")
    config = config.model_copy(deep=True)
    if horizon_days is not None:
        config.features.horizon_days = int(horizon_days)
    # Backtest models are for measurement only: they never enter the registry.
    config.tracking.register_models = False
    tracking.check_store(config.tracking, writes_report=True)  # fails now, not after the data
    ensure_data(config)
    tables = load_data(config).data
    last = tables.transactions["timestamp"].max().normalize()
    horizon, churn_days = config.features.horizon_days, config.features.churn_window_days
    stamps = check_windows(wanted, max(horizon, churn_days), last, "cutoff(s)", "--horizon-days")
    tracking.setup(config.tracking, config.tracking.experiment or config.project.name)
    rows: list[dict] = []
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
                cut_rows = score_cutoff(config, tables, c, res.chain, n_boot)
                ours = {t.name: t.model_label for t in tasks.registered()}
                for r in cut_rows:
                    if ours.get(r["task"]) == r["model"] and r["value"] == r["value"]:
                        tracking.log_metrics({f"{r['task']}_{r['metric']}": r["value"]})
                tracking.log_table(pd.DataFrame(cut_rows), "backtest/metrics.csv")
                rows += cut_rows
        table = pd.DataFrame(rows)
        tracking.log_table(table, "backtest/metrics.csv")
        for task in tasks.registered():
            for metric in task.chart_metrics:
                tracking.log_figure(
                    plots.metric_by_cutoff(
                        table[(table["task"] == task.name)], metric, f"{task.name} {metric} by cutoff"
                    ),
                    f"backtest/{task.name}_{metric}_by_cutoff.png",
                )
        run_id = parent.info.run_id
    return BacktestResult(table, run_id, time.perf_counter() - t0)


def interval_metrics(y, p, intervals, levels) -> dict[str, float]:
    """Per level: share of customers whose outcome is inside their interval, and mean width.

    Also ``coverage_<level>_rest``, the same share without the customers of point-mass bins
    (:meth:`~customer_value.modeling.intervals.ConformalCLV.point_mass`: their bin bought nothing
    at least ``level`` of the time, so its coverage hangs on which intervals hold 0), and
    ``point_mass_share_<level>``, how many customers those are.
    """
    y = np.asarray(y, dtype=float)
    out = {}
    for level in levels:
        low, high = intervals.interval(p, level)
        tag = f"{round(100 * level):g}"
        inside = (y >= low) & (y <= high)
        out[f"coverage_{tag}"] = float(np.mean(inside))
        out[f"interval_width_{tag}"] = float(np.mean(high - low))
        mass = intervals.point_mass(p, level)
        out[f"coverage_{tag}_rest"] = float(np.mean(inside[~mass])) if (~mass).any() else np.nan
        out[f"point_mass_share_{tag}"] = float(np.mean(mass))
    return out


def total_coverage(y, p, intervals, levels, groups=None, seed: int = 0) -> dict[str, float]:
    """Per level: 1/0 whether the base's realised total is inside its interval.

    With ``groups`` (personas), also the share of groups whose realised total is inside theirs.
    """
    y = np.asarray(y, dtype=float)
    out = {}
    for level in levels:
        tag = f"{round(100 * level):g}"
        low, high = intervals.total_interval(p, level, seed=seed)
        out[f"total_coverage_{tag}"] = float(low <= y.sum() <= high)
        if groups is not None:
            g = intervals.group_intervals(p, groups, level, seed=seed)
            actual = pd.Series(y).groupby(np.asarray(groups)).sum().reindex(g.index)
            out[f"persona_total_coverage_{tag}"] = float(
                ((g["low"] <= actual) & (actual <= g["high"])).mean()
            )
    return out


def _interval_rows(cutoff, task, entry, intervals, groups, n_boot, seed) -> list[dict]:
    """Coverage and width of ours' prediction intervals at one cutoff (per customer, then totals)."""
    levels = list(intervals.levels)
    fn = lambda y, p: interval_metrics(y, p, intervals, levels)  # noqa: E731
    rows = _rows(
        cutoff, task, entry.model, entry.y, entry.p, list(fn(entry.y, entry.p)), fn, n_boot, seed
    )
    totals = total_coverage(entry.y, entry.p, intervals, levels, groups, seed)
    base = {"cutoff": str(pd.Timestamp(cutoff).date()), "task": task, "model": entry.model}
    nan = {"ci_low": np.nan, "ci_high": np.nan}
    return rows + [{**base, "metric": k, "value": v, **nan} for k, v in totals.items()]


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
