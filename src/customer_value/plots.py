"""Figures only: each function takes data and returns a matplotlib Figure; nothing is saved or shown.

Figures are built with ``matplotlib.figure.Figure`` (no pyplot state, no backend switch at import).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

__all__ = [
    "importance_bar",
    "beeswarm",
    "dependence",
    "reliability",
    "gain_chart",
    "decile_chart",
    "lift_chart",
    "persona_chart",
    "persona_shap_heatmap",
    "metric_bars",
]


def _fig(w=7.0, h=4.5):
    fig = Figure(figsize=(w, h), dpi=100, layout="constrained")
    return fig, fig.subplots()


def importance_bar(importance: pd.DataFrame, title: str, top: int = 15) -> Figure:
    """Horizontal bars of mean |SHAP| per feature."""
    top_imp = importance.head(top).iloc[::-1]
    fig, ax = _fig(7, 0.3 * len(top_imp) + 1.5)
    ax.barh(top_imp["feature"], top_imp["mean_abs_shap"], color="#3b6ea5")
    ax.set_xlabel("mean |SHAP value| (margin scale)")
    ax.set_title(title)
    return fig


def beeswarm(
    contributions: pd.DataFrame, features: pd.DataFrame, title: str, top: int = 12, seed: int = 0
) -> Figure:
    """SHAP value per customer and feature, coloured by the feature's value (rank-scaled)."""
    c = contributions.drop(columns=["bias"], errors="ignore")
    order = c.abs().mean().sort_values(ascending=False).index[:top][::-1]
    fig, ax = _fig(8, 0.38 * len(order) + 1.5)
    rng = np.random.default_rng(seed)
    for i, feat in enumerate(order):
        x = c[feat].to_numpy()
        v = features[feat].reindex(c.index).rank(pct=True).to_numpy()
        y = i + rng.uniform(-0.3, 0.3, len(x))
        sc = ax.scatter(
            x,
            y,
            c=np.nan_to_num(v, nan=0.5),
            cmap="coolwarm",
            s=4,
            alpha=0.6,
            vmin=0,
            vmax=1,
            linewidths=0,
        )
    ax.set_yticks(range(len(order)), list(order))
    ax.axvline(0, color="grey", lw=0.8)
    ax.set_xlabel("SHAP value (margin scale)")
    ax.set_title(title)
    fig.colorbar(sc, ax=ax, label="feature value (percentile)")
    return fig


def dependence(contributions: pd.DataFrame, features: pd.DataFrame, feature: str, title: str) -> Figure:
    """Feature value against its SHAP value."""
    fig, ax = _fig(6, 4)
    ax.scatter(
        features[feature].reindex(contributions.index),
        contributions[feature],
        s=5,
        alpha=0.5,
        color="#3b6ea5",
        linewidths=0,
    )
    ax.axhline(0, color="grey", lw=0.8)
    ax.set_xlabel(feature)
    ax.set_ylabel(f"SHAP value of {feature}")
    ax.set_title(title)
    return fig


def reliability(curves: dict[str, pd.DataFrame], title: str) -> Figure:
    """Observed churn rate against mean predicted probability per bin, one line per model."""
    fig, ax = _fig(5.5, 5)
    ax.plot([0, 1], [0, 1], color="grey", ls="--", lw=1, label="perfect")
    for name, curve in curves.items():
        ax.plot(curve["mean_pred"], curve["observed"], marker="o", label=name)
    ax.set_xlabel("mean predicted churn probability")
    ax.set_ylabel("observed churn rate")
    ax.set_title(title)
    ax.legend()
    return fig


def gain_chart(gains: dict[str, np.ndarray], title: str) -> Figure:
    """Cumulative gain: share of the outcome captured by the top x% of customers."""
    fig, ax = _fig(6, 5)
    for name, g in gains.items():
        x = np.arange(1, len(g) + 1) / len(g)
        ax.plot(x, g, label=name)
    ax.plot([0, 1], [0, 1], color="grey", ls="--", lw=1, label="random")
    ax.set_xlabel("share of customers (ranked by prediction)")
    ax.set_ylabel("share of outcome captured")
    ax.set_title(title)
    ax.legend()
    return fig


def persona_shap_heatmap(mean_shap: pd.DataFrame, features: list[str], title: str) -> Figure:
    """Mean SHAP per persona (rows) and feature (columns): what drives each persona, and which way.

    ``mean_shap`` has a ``persona`` column and one column per feature; red raises the prediction,
    blue lowers it, on a scale symmetric around 0.
    """
    table = mean_shap.set_index("persona")[features]
    values = table.to_numpy(dtype=float)
    fig, ax = _fig(1.1 * len(features) + 2.5, 0.55 * len(table) + 1.8)
    limit = float(np.nanmax(np.abs(values))) or 1.0
    image = ax.imshow(values, cmap="RdBu_r", vmin=-limit, vmax=limit, aspect="auto")
    ax.set_xticks(range(len(features)), features, rotation=40, ha="right", fontsize=8)
    ax.set_yticks(range(len(table)), table.index, fontsize=9)
    for (i, j), v in np.ndenumerate(values):
        ax.text(
            j,
            i,
            f"{v:+.2f}",
            ha="center",
            va="center",
            fontsize=7,
            color="white" if abs(v) > 0.6 * limit else "black",
        )
    fig.colorbar(image, ax=ax, label="mean SHAP (margin units)")
    ax.set_title(title)
    return fig


def lift_chart(lifts: dict[str, pd.DataFrame], title: str) -> Figure:
    """Lift per decile of the prediction (1 = top 10 %), one group of bars per model."""
    fig, ax = _fig(6.5, 4)
    width = 0.8 / max(len(lifts), 1)
    for i, (name, table) in enumerate(lifts.items()):
        x = table["decile"].to_numpy() + (i - (len(lifts) - 1) / 2) * width
        ax.bar(x, table["lift"], width=width, label=name)
    ax.axhline(1, color="grey", ls="--", lw=1, label="random")
    ax.set_xticks(range(1, 11))
    ax.set_xlabel("decile of prediction (1 = highest 10 %)")
    ax.set_ylabel("lift (share of outcome / share of customers)")
    ax.set_title(title)
    ax.legend(fontsize=8)
    return fig


def decile_chart(calibration: pd.DataFrame, title: str) -> Figure:
    """Mean prediction and mean outcome per decile of the prediction."""
    fig, ax = _fig(6.5, 4)
    x = calibration["decile"].to_numpy()
    ax.bar(x - 0.2, calibration["mean_pred"], width=0.4, label="predicted", color="#3b6ea5")
    ax.bar(x + 0.2, calibration["mean_actual"], width=0.4, label="actual", color="#e07b39")
    ax.set_xlabel("decile of prediction (10 = highest)")
    ax.set_ylabel("mean per customer")
    ax.set_title(title)
    ax.legend()
    return fig


def persona_chart(profile: pd.DataFrame, title: str) -> Figure:
    """Customers and mean net value per persona."""
    fig = Figure(figsize=(9, 4), dpi=100, layout="constrained")
    ax1, ax2 = fig.subplots(1, 2)
    names = profile["persona"].astype(str)
    ax1.barh(names, profile["customers"], color="#3b6ea5")
    ax1.set_title("customers")
    ax2.barh(names, profile["net_value_mean"], color="#e07b39")
    ax2.set_title("mean net value over the horizon")
    fig.suptitle(title)
    return fig


def metric_bars(table: pd.DataFrame, metric: str, title: str) -> Figure:
    """One metric for every model (ours and the baselines)."""
    fig, ax = _fig(6, 3.5)
    sub = table[table["metric"] == metric]
    ax.barh(
        sub["model"],
        sub["value"],
        color=["#3b6ea5" if m.startswith("xgboost") else "#9aa5b1" for m in sub["model"]],
    )
    ax.set_xlabel(metric)
    ax.set_title(title)
    return fig


def metric_by_cutoff(table: pd.DataFrame, metric: str, title: str) -> Figure:
    """One line per model: the metric (with its bootstrap interval) at each cutoff."""
    fig, ax = _fig(6.5, 4)
    sub = table[table["metric"] == metric]
    for model, grp in sub.groupby("model", sort=False):
        grp = grp.sort_values("cutoff")
        ax.plot(grp["cutoff"], grp["value"], marker="o", label=model)
        if grp["ci_low"].notna().any():
            ax.fill_between(grp["cutoff"], grp["ci_low"], grp["ci_high"], alpha=0.15)
    ax.set_xlabel("cutoff")
    ax.set_ylabel(metric)
    ax.set_title(title)
    ax.legend(fontsize=7)
    return fig
