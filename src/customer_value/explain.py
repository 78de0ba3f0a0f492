"""SHAP explanations as tidy frames keyed by ``customer_id``: global, per persona, per customer.

Contributions are exact TreeSHAP values from xgboost (``pred_contribs``, the same values as
``shap.TreeExplainer``) in the model's margin space: log-odds of churn, log of expected value.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["global_importance", "persona_drivers", "top_drivers", "reason"]


def global_importance(contributions: pd.DataFrame) -> pd.DataFrame:
    """Mean |SHAP| and mean SHAP per feature, largest first."""
    c = contributions.drop(columns=["bias"], errors="ignore")
    out = pd.DataFrame(
        {
            "feature": c.columns,
            "mean_abs_shap": c.abs().mean().to_numpy(),
            "mean_shap": c.mean().to_numpy(),
        }
    )
    return out.sort_values("mean_abs_shap", ascending=False, kind="stable").reset_index(drop=True)


def persona_drivers(contributions: pd.DataFrame, personas: pd.Series, top: int = 3) -> pd.DataFrame:
    """Per persona: the ``top`` features by mean |SHAP|, with their mean (signed) SHAP."""
    c = contributions.drop(columns=["bias"], errors="ignore")
    rows = []
    for name, idx in personas.reindex(c.index).groupby(personas.reindex(c.index)).groups.items():
        sub = c.loc[idx]
        imp = sub.abs().mean().sort_values(ascending=False, kind="stable").head(top)
        for rank, (feat, val) in enumerate(imp.items(), start=1):
            rows.append(
                {
                    "persona": name,
                    "rank": rank,
                    "feature": feat,
                    "mean_abs_shap": float(val),
                    "mean_shap": float(sub[feat].mean()),
                }
            )
    return pd.DataFrame(rows, columns=["persona", "rank", "feature", "mean_abs_shap", "mean_shap"])


def _fmt(value: float) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return "missing"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:.2f}".rstrip("0").rstrip(".")


def reason(feature: str, value: float, contribution: float, gap_mean_days: float = np.nan) -> str:
    """A short human-readable reason for one driver of one customer's prediction.

    Examples
    --------
    >>> reason("days_since_last_purchase", 142, 0.8, gap_mean_days=47.3)
    'no purchase for 142 days, 3.0× the usual gap'
    """
    up = contribution > 0
    v = value
    if feature == "days_since_last_purchase":
        gap = gap_mean_days
        extra = f", {v / gap:.1f}× the usual gap" if gap and np.isfinite(gap) and gap > 0 else ""
        return f"no purchase for {_fmt(v)} days{extra}"
    if feature == "overdue_ratio":
        return f"{_fmt(v)}× the usual gap since the last purchase"
    if feature in ("frequency_per_year", "orders_per_year"):
        return f"{_fmt(v)} {'repeat purchases' if feature.startswith('freq') else 'orders'} a year"
    if feature == "revenue_per_year":
        return f"spends {_fmt(v)} a year"
    if feature in ("monetary_mean", "gg_expected_order_value"):
        return f"orders worth {_fmt(v)} on average"
    if feature == "p_alive":
        return f"{v:.0%} likely still active (BG/NBD)"
    if feature == "bgnbd_p_no_purchase":
        return f"{v:.0%} BG/NBD chance of no purchase in the churn window"
    if feature == "return_rate":
        return f"returns {v:.0%} of what they buy"
    if feature == "discount_share":
        return f"{v:.0%} of spend discounted"
    if feature.startswith("spend_trend_") or feature.startswith("purchase_days_trend_"):
        window = feature.rsplit("_", 1)[-1]
        what = "spend" if feature.startswith("spend") else "purchase days"
        return f"{what} {'up' if v > 0 else 'down'} {abs(v):.0%} over the last {window[:-1]} days"
    if feature == "bgnbd_expected_transactions":
        return f"BG/NBD expects {_fmt(v)} purchase days over the horizon"
    if feature == "btyd_expected_spend":
        return f"BG/NBD + Gamma-Gamma expect {_fmt(v)} of spend over the horizon"
    if feature == "days_since_last_survey":
        return f"last survey answer {_fmt(v)} days ago"
    if feature == "csat_mean":
        return f"mean CSAT {_fmt(v)}"
    if feature == "nps_last":
        return f"last NPS {_fmt(v)}"
    if feature == "tickets_90d":
        return f"{_fmt(v)} support tickets in 90 days"
    if feature == "tenure_days":
        return f"customer for {_fmt(v)} days"
    direction = "raises" if up else "lowers"
    return f"{feature.replace('_', ' ')} = {_fmt(v)} ({direction} the prediction)"


def top_drivers(contributions: pd.DataFrame, features: pd.DataFrame, k: int = 3) -> pd.DataFrame:
    """Per customer, the ``k`` features with the largest |SHAP|: feature, value, SHAP, reason.

    Returns a wide frame indexed like ``contributions`` with columns ``driver_{i}_feature``,
    ``driver_{i}_value``, ``driver_{i}_shap``, ``driver_{i}_reason`` for i = 1..k.
    """
    c = contributions.drop(columns=["bias"], errors="ignore")
    values = c.to_numpy()
    # argpartition then a sort of k columns: O(n · features), no per-row Python sort.
    kk = min(k, values.shape[1])
    part = np.argpartition(-np.abs(values), kk - 1, axis=1)[:, :kk]
    order = np.take_along_axis(
        part, np.argsort(-np.abs(np.take_along_axis(values, part, 1)), axis=1, kind="stable"), 1
    )
    names = np.asarray(c.columns)
    out = {}
    feats = features.reindex(c.index)
    gaps = (
        feats["gap_mean_days"].to_numpy(dtype=float)
        if "gap_mean_days" in feats.columns
        else np.full(len(feats), np.nan)
    )
    for i in range(kk):
        col = order[:, i]
        fname = names[col]
        shap_v = values[np.arange(len(values)), col]
        fvals = feats.to_numpy()[np.arange(len(values)), feats.columns.get_indexer(fname)]
        out[f"driver_{i + 1}_feature"] = fname
        out[f"driver_{i + 1}_value"] = fvals.astype(float)
        out[f"driver_{i + 1}_shap"] = shap_v
        out[f"driver_{i + 1}_reason"] = [
            reason(f, float(v), float(s), float(g))
            for f, v, s, g in zip(fname, fvals, shap_v, gaps, strict=True)
        ]
    return pd.DataFrame(out, index=c.index)
