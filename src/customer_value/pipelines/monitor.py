"""``customer-value monitor``: the latest scoring against the champion's training snapshot.

Four checks, each a table: feature drift (PSI and KS per model feature, features at the training
cutoff against features at the scoring date, both point-in-time from the same log), prediction
drift (the chain's scores at both dates), persona shares and migration, and a label-free estimate of
churn performance from the calibrated probabilities. Given an earlier predictions file whose window
has matured, also the realised metrics of that file against what happened, computed exactly as the
backtest scores a cutoff (the same labels, the same metric functions). Everything is logged to
one MLflow run (kind ``monitor``) and written to an HTML report; the result says whether to alert.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from customer_value import tracking
from customer_value.chain import Chain, score_tables
from customer_value.config import Config
from customer_value.errors import UserError
from customer_value.features.build import build_feature_set
from customer_value.features.labels import build_labels
from customer_value.modeling.monitoring import (
    column_drift,
    expected_churn_performance,
    persona_shares,
)
from customer_value.pipelines.data import ensure_data, load_data
from customer_value.pipelines.options import check_as_of_in_data

__all__ = ["MonitorResult", "realised_metrics", "drift_report", "run_monitor"]

PREDICTION_COLUMNS = ("churn_probability", "predicted_clv", "value_at_risk")


@dataclass
class MonitorResult:
    """The monitor's tables, its alerts, and where it logged them."""

    reference_date: pd.Timestamp
    current_date: pd.Timestamp
    features: pd.DataFrame
    predictions: pd.DataFrame
    personas: pd.DataFrame
    migration: pd.DataFrame
    label_free: pd.DataFrame
    realised: pd.DataFrame | None = None
    alerts: list[str] = field(default_factory=list)
    run_id: str | None = None


def model_features(chain: Chain, frame: pd.DataFrame) -> list[str]:
    """The numeric features any model of the chain reads (all numeric columns if unknown)."""
    used: set[str] = set()
    for model in chain.models.values():
        inner = getattr(model, "model", model)
        for attr in ("features_", "features"):
            names = getattr(inner, attr, None)
            if isinstance(names, list | tuple) and names:
                used |= set(map(str, names))
                break
    for ranges in chain.spec.feature_ranges.values():
        used |= set(ranges)
    numeric = [c for c in frame.columns if pd.api.types.is_numeric_dtype(frame[c])]
    picked = [c for c in numeric if c in used]
    return picked or numeric


def realised_metrics(
    chain: Chain, tables, predictions: pd.DataFrame, config: Config, last: pd.Timestamp
) -> pd.DataFrame:
    """Each task's metrics of an earlier predictions file against what happened after it.

    The labels, the customers' order and the metric functions are the backtest's
    (:func:`customer_value.pipelines.backtest.score_cutoff`), so for the same cutoff and the
    same models the numbers are the backtest's. A task whose window has not ended by ``last``
    (the data's last day) is left out.
    """
    as_of = pd.Timestamp(predictions["as_of"].iloc[0]).normalize()
    horizon, churn_days = config.features.horizon_days, config.features.churn_window_days
    fs = build_feature_set(tables, as_of, chain.spec.features, chain.spec.vocabulary)
    f = fs.frame
    missing = f.index.difference(pd.Index(predictions["customer_id"].astype(str)))
    if len(missing) == len(f):
        raise UserError(
            f"the predictions file shares no customer with the data at {as_of.date()}",
            hint="pass a predictions file scored on this config's data",
        )
    preds = predictions.assign(customer_id=predictions["customer_id"].astype(str))
    preds = preds.set_index("customer_id").reindex(f.index[~f.index.isin(missing)])
    f = f.loc[preds.index]
    labels = build_labels(tables.transactions, f.index, as_of, horizon, churn_days)
    rows = []
    for task in chain.tasks:
        window = task.window_days(config)
        if window is None or as_of + pd.Timedelta(days=int(window)) > last:
            continue
        entries = task.backtest_entries(
            preds, f, labels, fs.btyd, chain.spec.tasks[task.name], config, None
        )
        if not entries:
            continue
        ours = entries[0]
        values = task.metrics(ours.y, ours.p) | _served_coverage(task, preds, ours.y)
        for metric in [*task.backtest_metrics, *(k for k in values if k.startswith("coverage_"))]:
            rows.append(
                {
                    "as_of": str(as_of.date()),
                    "task": task.name,
                    "model": ours.model,
                    "metric": metric,
                    "value": float(values.get(metric, np.nan)),
                    "customers": int(len(ours.y)),
                }
            )
    return pd.DataFrame(rows, columns=["as_of", "task", "model", "metric", "value", "customers"])


def _served_coverage(task, preds: pd.DataFrame, y: np.ndarray) -> dict[str, float]:
    """The share of customers whose outcome fell inside the served interval, as ``coverage_<level>``.

    The interval is the one the predictions file holds for the task's first output
    (``<output>_low``, ``<output>_high``); none (an empty dict) when the file has no interval.
    """
    name = task.outputs[0].name if task.outputs else None
    low, high = f"{name}_low", f"{name}_high"
    level_col = next((c.name for c in task.outputs if c.name.endswith("_interval_level")), None)
    if name is None or low not in preds or high not in preds or len(y) != len(preds):
        return {}
    lo, hi = preds[low].to_numpy(dtype=float), preds[high].to_numpy(dtype=float)
    ok = np.isfinite(lo) & np.isfinite(hi)
    levels = preds[level_col].dropna().unique() if level_col in preds else []
    if not ok.any() or len(levels) != 1:
        return {}
    inside = (y[ok] >= lo[ok] - 1e-9) & (y[ok] <= hi[ok] + 1e-9)
    return {f"coverage_{round(float(levels[0]) * 100)}": float(inside.mean())}


def _label_free(ref_preds: pd.DataFrame, cur_preds: pd.DataFrame, realised: dict | None) -> pd.DataFrame:
    rows = []
    for name, frame in (("training snapshot", ref_preds), ("latest scoring", cur_preds)):
        est = expected_churn_performance(frame["churn_probability"].to_numpy(float))
        rows.append(
            {"scoring": name, "customers": len(frame), **{f"expected_{k}": v for k, v in est.items()}}
        )
    out = pd.DataFrame(rows)
    if realised:
        out.loc[0, [f"realised_{k}" for k in realised]] = list(realised.values())
    return out


def _realised_at_reference(chain, tables, ref_preds, config, last) -> dict | None:
    """The reference scoring's realised churn metrics, once its window has ended.

    They show how far the label-free estimate can be trusted on this base.
    """
    if ref_preds["as_of"].iloc[0] + pd.Timedelta(days=config.features.churn_window_days) > last:
        return None
    got = realised_metrics(chain, tables, ref_preds, config, last)
    # The task that outputs the probabilities (found by its output, not by name).
    task = next(t.name for t in chain.tasks if "churn_probability" in {c.name for c in t.outputs})
    churn = got[got["task"] == task].set_index("metric")["value"]
    labels = build_labels(
        tables.transactions,
        pd.Index(ref_preds["customer_id"].astype(str)),
        ref_preds["as_of"].iloc[0],
        config.features.horizon_days,
        config.features.churn_window_days,
    )
    return {
        "churn_rate": float(labels["churned"].mean()),
        "brier": float(churn.get("brier", np.nan)),
        "roc_auc": float(churn.get("roc_auc", np.nan)),
    }


def usual_span_start(tables, reference: pd.Timestamp, current: pd.Timestamp) -> pd.Timestamp | None:
    """The start of the span before ``reference`` as long as ``reference`` -> ``current``.

    None when ``current`` is not after ``reference`` or the data does not reach that far back
    (then the usual shift is taken as none, and every shift counts).
    """
    gap = current - reference
    if gap <= pd.Timedelta(0):  # scoring at or before the training cutoff: nothing usual to learn
        return None
    start = reference - gap
    first = tables.transactions["timestamp"].min().normalize()
    return start if start >= first + gap else None


def drift_report(
    chain: Chain, tables, reference: pd.Timestamp, current: pd.Timestamp, config: Config
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Feature drift, prediction drift, persona shares, migration and both scorings.

    Returns ``(features, predictions, personas, migration, reference_scores, current_scores)``.
    """
    from customer_value.tasks.personas import migration_matrix

    m = config.monitoring
    spec = chain.spec

    def features(when):
        return build_feature_set(tables, when, spec.features, spec.vocabulary).frame

    ref_f, cur_f = features(reference), features(current)
    earlier = usual_span_start(tables, reference, current)
    early_f = features(earlier) if earlier is not None else None
    cols = model_features(chain, ref_f)
    feats = column_drift(ref_f, cur_f, cols, m.psi_threshold, m.ks_threshold, m.bins, early_f)
    ref_preds = score_tables(chain, tables, reference, reasons="none")
    cur_preds = score_tables(chain, tables, current, reasons="none")
    early_preds = score_tables(chain, tables, earlier, reasons="none") if earlier is not None else None
    preds = column_drift(
        ref_preds,
        cur_preds,
        list(PREDICTION_COLUMNS),
        m.prediction_psi_threshold,
        1.01,
        m.bins,
        early_preds,
    )
    shares = persona_shares(ref_preds, cur_preds)
    migration = migration_matrix(ref_preds.set_index("customer_id"), cur_preds.set_index("customer_id"))
    return feats, preds, shares, migration, ref_preds, cur_preds


def alerts_for(features: pd.DataFrame, predictions: pd.DataFrame, config: Config) -> list[str]:
    """One line per threshold passed (empty: nothing to alert on)."""
    out = []
    drifted = features[features["drifted"]] if not features.empty else features
    if len(drifted) > config.monitoring.max_drifted_features:
        names = ", ".join(
            f"{r.column} (PSI {r.psi:.2f}, KS {r.ks_statistic:.2f})"
            for r in drifted.head(5).itertuples()
        )
        out.append(
            f"{len(drifted)} feature(s) drifted (more than monitoring.max_drifted_features = "
            f"{config.monitoring.max_drifted_features}): {names}"
        )
    for r in predictions[predictions["drifted"]].itertuples() if not predictions.empty else []:
        out.append(f"prediction {r.column} drifted (PSI {r.psi:.2f})")
    return out


def run_monitor(
    config: Config,
    as_of: pd.Timestamp | None,
    alias: str,
    previous: pd.DataFrame | None,
    say: Callable[[str], None] = lambda _m: None,
) -> MonitorResult:
    """Load the champions, compare the scoring date with their training snapshot, log it all."""
    from customer_value.pipelines.predict import load_chain

    tracking.check_store(config.tracking, must_exist=True)
    # The data first: an --as-of outside it is refused before minutes of loading models.
    say("[1/4] reading and validating the data")
    ensure_data(config)
    tables = load_data(config).data
    stamps = tables.transactions["timestamp"]
    last = stamps.max().normalize()
    current = last if as_of is None else as_of
    check_as_of_in_data(current, stamps.min(), stamps.max())
    say(f"[2/4] loading the {alias} models")
    chain = load_chain(config, alias)
    reference = pd.Timestamp(chain.spec.as_of).normalize()
    say(f"[3/4] drift: training snapshot {reference.date()} against {current.date()}")
    feats, preds, shares, migration, ref_p, cur_p = drift_report(
        chain, tables, reference, current, config
    )
    realised = None
    if previous is not None:
        realised = realised_metrics(chain, tables, previous, config, last)
    label_free = _label_free(ref_p, cur_p, _realised_at_reference(chain, tables, ref_p, config, last))
    result = MonitorResult(
        reference,
        current,
        feats,
        preds,
        shares,
        migration,
        label_free,
        realised,
        alerts_for(feats, preds, config),
    )
    say("[4/4] logging to MLflow")
    result.run_id = _log(config, result)
    return result


def _log(config: Config, r: MonitorResult) -> str:
    tracking.setup(config.tracking, config.tracking.experiment or config.project.name)
    with tracking.start_run(
        f"monitor {r.current_date.date()}",
        tags={
            "kind": "monitor",
            "reference": str(r.reference_date.date()),
            "alert": str(bool(r.alerts)),
        },
    ) as run:
        tracking.log_params(
            {"reference_date": str(r.reference_date.date()), "current_date": str(r.current_date.date())}
        )
        metrics = {
            "drifted_features": float(r.features["drifted"].sum()) if not r.features.empty else 0.0,
            "max_feature_psi": float(r.features["psi"].max()) if not r.features.empty else 0.0,
        }
        for row in r.predictions.itertuples():
            metrics[f"psi_{row.column}"] = float(row.psi)
        latest = r.label_free.iloc[-1]
        metrics |= {k: float(latest[k]) for k in r.label_free.columns if k.startswith("expected_")}
        for row in r.realised.itertuples() if r.realised is not None else []:
            metrics[f"realised_{row.task}_{row.metric}"] = float(row.value)
        tracking.log_metrics({k: v for k, v in metrics.items() if math.isfinite(v)})
        tracking.log_table(r.features, "monitor/feature_drift.csv")
        tracking.log_table(r.predictions, "monitor/prediction_drift.csv")
        tracking.log_table(r.personas, "monitor/persona_shares.csv")
        tracking.log_table(r.migration, "monitor/persona_migration.csv")
        tracking.log_table(r.label_free, "monitor/label_free_churn.csv")
        if r.realised is not None:
            tracking.log_table(r.realised, "monitor/realised_metrics.csv")
        return run.info.run_id


def read_previous(path: str | Path) -> pd.DataFrame:
    """An earlier predictions file, checked as ``target`` checks it, with one scoring date."""
    from customer_value.pipelines.target import read_predictions

    frame = read_predictions(path)
    if "as_of" not in frame or frame["as_of"].isna().any() or frame["as_of"].nunique() != 1:
        raise UserError(
            "the predictions file needs one scoring date in its as_of column",
            where=str(path),
            hint="pass a file written by `customer-value predict`, unedited",
        )
    return frame
