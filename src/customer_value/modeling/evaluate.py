"""Evaluation metrics, exactly as METRICS.md defines them.

Every model and baseline is scored by these functions on the same out-of-time rows, so numbers
compare across models, runs and datasets. Ties in a ranking are never lucky: within a group of tied
predictions the outcome is spread evenly (the group's mean), as METRICS.md asks.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.stats import spearmanr
from sklearn.metrics import average_precision_score, roc_auc_score

__all__ = [
    "gain_curve",
    "gini",
    "normalized_gini",
    "top_decile_capture",
    "decile_calibration",
    "lift_by_decile",
    "stack_lifts",
    "clv_metrics",
    "churn_metrics",
    "reliability_curve",
]


def gain_curve(y, p) -> np.ndarray:
    """G(k) for k = 1..n: share of Σy held by the k customers with the highest ``p``.

    Customers with tied ``p`` count as randomly ordered: within a tie group each gets the group's
    mean ``y``.

    Examples
    --------
    >>> gain_curve([0, 10, 0, 10], [1, 1, 0, 0]).round(3).tolist()
    [0.25, 0.5, 0.75, 1.0]
    """
    y = np.asarray(y, dtype=float)
    p = np.asarray(p, dtype=float)
    order = np.argsort(-p, kind="stable")
    ys, ps = y[order], p[order]
    # Tie groups along the sorted predictions: replace y by the group mean.
    start = np.concatenate([[True], ps[1:] != ps[:-1]])
    group = np.cumsum(start) - 1
    means = np.bincount(group, weights=ys) / np.bincount(group)
    total = ys.sum()
    if total == 0:
        return np.full(len(y), np.nan)
    return np.cumsum(means[group]) / total


def gini(y, p) -> float:
    """Gini = 2 · mean(G) − 1 of the gain curve of ``p``."""
    return float(2 * np.mean(gain_curve(y, p)) - 1)


def normalized_gini(y, p) -> float:
    """Gini(p) / Gini(y ranked by itself): 1 for the perfect ranking, 0 for a constant one."""
    perfect = gini(y, y)
    return float(gini(y, p) / perfect) if perfect > 0 else float("nan")


def top_decile_capture(y, p) -> tuple[float, float]:
    """(G at k = round(0.1 n) for ``p``, the same for the perfect ranking)."""
    n = len(y)
    k = max(int(round(0.1 * n)), 1)
    return float(gain_curve(y, p)[k - 1]), float(gain_curve(y, y)[k - 1])


def _deciles(p) -> np.ndarray:
    """Ten equal groups by ``p`` (0 = lowest), ties kept in a stable order."""
    n = len(p)
    order = np.argsort(np.asarray(p, dtype=float), kind="stable")
    bucket = np.empty(n, dtype=int)
    bucket[order] = (np.arange(n) * 10) // max(n, 1)
    return bucket


def lift_by_decile(y, p) -> pd.DataFrame:
    """Lift per decile of ``p`` (1 = top 10 %): the decile's share of Σy over its share of customers.

    Read off the tie-aware gain curve, so tied predictions count as randomly ordered and the
    deciles' lifts average to 1. For churn (y ∈ {0, 1}) decile 1's lift is the churn rate among the
    top 10 % over the overall rate.

    Examples
    --------
    >>> lift_by_decile([1, 0, 0, 0, 0, 0, 0, 0, 0, 0], range(10, 0, -1))["lift"].tolist()[:2]
    [10.0, 0.0]
    """
    g = gain_curve(y, p)
    n = len(g)
    edges = np.round(np.arange(11) * n / 10).astype(int)
    cum = np.concatenate([[0.0], g])[edges]
    size = np.diff(edges) / n
    with np.errstate(invalid="ignore", divide="ignore"):
        lift = np.diff(cum) / size
    return pd.DataFrame({"decile": np.arange(1, 11), "customers": np.diff(edges), "lift": lift})


def decile_calibration(y, p) -> pd.DataFrame:
    """Per decile of ``p``: customers, mean prediction, mean outcome."""
    y = np.asarray(y, dtype=float)
    p = np.asarray(p, dtype=float)
    frame = pd.DataFrame({"decile": _deciles(p) + 1, "p": p, "y": y})
    out = frame.groupby("decile").agg(
        customers=("y", "size"), mean_pred=("p", "mean"), mean_actual=("y", "mean")
    )
    return out.reset_index()


def clv_metrics(y, p) -> dict[str, float]:
    """MAE, RMSE, Spearman, normalized Gini, top-decile capture, decile MAPE, aggregate error."""
    y = np.asarray(y, dtype=float)
    p = np.asarray(p, dtype=float)
    capture, perfect = top_decile_capture(y, p)
    cal = decile_calibration(y, p)
    nonzero = cal["mean_actual"] > 0
    mape = (
        float(
            (np.abs(cal["mean_pred"] - cal["mean_actual"])[nonzero] / cal["mean_actual"][nonzero]).mean()
        )
        if nonzero.any()
        else float("nan")
    )
    rho = spearmanr(y, p).statistic if np.ptp(p) > 0 and np.ptp(y) > 0 else float("nan")
    return {
        "mae": float(np.mean(np.abs(p - y))),
        "rmse": float(np.sqrt(np.mean((p - y) ** 2))),
        "spearman": float(rho),
        "normalized_gini": normalized_gini(y, p),
        "top_decile_capture": capture,
        "top_decile_capture_perfect": perfect,
        "decile_mape": mape,
        "aggregate_error": float((p.sum() - y.sum()) / y.sum()) if y.sum() else float("nan"),
    }


def churn_metrics(y, q) -> dict[str, float]:
    """ROC AUC, PR AUC, Brier, log loss, lift in the top decile (churn = positive class)."""
    y = np.asarray(y, dtype=float)
    q = np.asarray(q, dtype=float)
    qc = np.clip(q, 1e-15, 1 - 1e-15)
    n = len(y)
    k = max(int(round(0.1 * n)), 1)
    rate = y.mean()
    top_rate = gain_curve(y, q)[k - 1] * y.sum() / k if y.sum() else float("nan")
    both = 0 < y.sum() < n
    return {
        "roc_auc": float(roc_auc_score(y, q)) if both else float("nan"),
        "pr_auc": float(average_precision_score(y, q)) if both else float("nan"),
        "brier": float(np.mean((q - y) ** 2)),
        "log_loss": float(-np.mean(y * np.log(qc) + (1 - y) * np.log(1 - qc))),
        "lift_top_decile": float(top_rate / rate) if rate > 0 else float("nan"),
        "churn_rate": float(rate),
    }


def reliability_curve(y, q, bins: int = 10) -> pd.DataFrame:
    """Per equal-width bin of predicted probability: customers, mean prediction, observed rate."""
    y = np.asarray(y, dtype=float)
    q = np.asarray(q, dtype=float)
    idx = np.minimum((q * bins).astype(int), bins - 1)
    frame = pd.DataFrame({"bin": idx, "q": q, "y": y})
    out = (
        frame.groupby("bin")
        .agg(customers=("y", "size"), mean_pred=("q", "mean"), observed=("y", "mean"))
        .reset_index()
    )
    out["bin_low"] = out["bin"] / bins
    out["bin_high"] = (out["bin"] + 1) / bins
    return out


def stack_lifts(lifts: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """One long table (model, decile, customers, lift) of per-model :func:`lift_by_decile` tables."""
    return pd.concat([t.assign(model=name) for name, t in lifts.items()], ignore_index=True)[
        ["model", "decile", "customers", "lift"]
    ]
