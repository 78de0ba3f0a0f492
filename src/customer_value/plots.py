"""Figures only: each function takes data and returns a matplotlib Figure; nothing is saved or shown.

Figures are built with ``matplotlib.figure.Figure`` (no pyplot state, no backend switch at import).
The SHAP figures are shap's own plots (``shap.plots.*``) of a ``shap.Explanation``
(:func:`customer_value.explain.explanation`); those that draw only on pyplot's current figure get
one that pyplot holds just while they draw (:func:`_pyplot_figure`).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

if TYPE_CHECKING:  # shap is imported where a SHAP figure is drawn (it imports slowly)
    import shap

__all__ = [
    "importance_bar",
    "beeswarm",
    "waterfall",
    "dependence",
    "reliability",
    "gain_chart",
    "decile_chart",
    "lift_chart",
    "persona_chart",
    "persona_shap_heatmap",
    "metric_bars",
    "return_curve",
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


def beeswarm(explanation: shap.Explanation, title: str, top: int = 12) -> Figure:
    """The beeswarm of shap: SHAP value per customer and feature, coloured by the feature's value.

    Parameters
    ----------
    explanation : shap.Explanation
        Many customers (e.g. a sample), as :func:`customer_value.explain.explanation` makes it.
    title : str
        The figure's title.
    top : int
        Features shown by mean |SHAP|; the rest are summed in one row.
    """
    import shap  # slow to import: only where a SHAP figure is drawn

    rows = min(top, explanation.shape[1])
    fig, ax = _fig(8, 0.4 * rows + 1.8)
    # shap draws on the axes it is given: no pyplot figure, and our size (plot_size=None).
    shap.plots.beeswarm(explanation, max_display=top, ax=ax, show=False, plot_size=None)
    ax.set_xlabel("SHAP value (margin scale)")
    ax.set_title(title)
    return fig


def waterfall(explanation: shap.Explanation, title: str, top: int = 10) -> Figure:
    """The waterfall of shap for one customer: from the base value to their margin, one feature a bar.

    Parameters
    ----------
    explanation : shap.Explanation
        One customer (``explanation[i]``), in the model's margin space.
    title : str
        The figure's title (say whose prediction it is).
    top : int
        Features drawn one by one; the rest are summed in one bar.
    """
    import shap

    with _pyplot_figure(layout=None) as fig:
        shap.plots.waterfall(explanation, max_display=top, show=False)
        _grow_to_fit(fig, title)
    return fig


def dependence(explanation: shap.Explanation, feature: str, title: str) -> Figure:
    """The scatter of shap: one feature's value against its SHAP value, over its distribution."""
    import shap

    with _pyplot_figure(6, 4) as fig:
        # ``scatter`` makes its axes current through pyplot, so it needs a pyplot figure too.
        ax = fig.subplots()
        shap.plots.scatter(explanation[:, feature], ax=ax, show=False, title=title)
    ax.set_ylabel(f"SHAP value of {feature}")
    return fig


@contextmanager
def _pyplot_figure(
    width: float = 8.0, height: float = 6.0, layout: str | None = "constrained"
) -> Iterator[Figure]:
    """A figure that pyplot holds only while shap draws on it, then lets go of (never shown).

    shap's waterfall draws on ``plt.gcf()``; this makes a fresh current figure, keeps interactive
    mode off while shap draws (shap turns it off itself and would leave it off), and closes the
    figure so that pyplot, a notebook or a later plot never sees it. The Figure stays usable.
    """
    import matplotlib.pyplot as plt

    with plt.ioff():
        fig = plt.figure(figsize=(width, height), dpi=100, layout=layout)
        try:
            yield fig
        finally:
            plt.close(fig)


def _grow_to_fit(fig: Figure, title: str, pad: float = 0.1, title_room: float = 0.35) -> None:
    """Fit the canvas to what is drawn, and add a title, without moving or resizing the axes.

    shap's waterfall sizes its arrows and places its value labels for the axes it drew on, and
    leaves its long "value = feature" labels outside the figure (it expects a tight bounding box
    when saved): a layout engine would shrink the axes and spill the labels, so the canvas grows.
    """
    w, h = fig.get_size_inches()
    box = fig.get_tightbbox(fig.canvas.get_renderer())  # inches
    x0, y0 = box.x0 - pad, box.y0 - pad
    new_w, new_h = box.width + 2 * pad, box.height + 2 * pad + title_room
    # Read every position first: moving one axes moves its twins (shap's top and bottom labels).
    boxes = [(ax, ax.get_position().bounds) for ax in fig.axes]
    for ax, (left, bottom, width, height) in boxes:
        ax.set_position(
            [(left * w - x0) / new_w, (bottom * h - y0) / new_h, width * w / new_w, height * h / new_h]
        )
    fig.set_size_inches(new_w, new_h)
    fig.suptitle(title, y=1 - pad / new_h, va="top")


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


def qini_chart(qini: pd.DataFrame, title: str) -> Figure:
    """The Qini curve (incremental responders by customers targeted) against random targeting."""
    fig, ax = _fig(6, 5)
    n, q = qini["n"].to_numpy(dtype=float), qini["qini"].to_numpy(dtype=float)
    ax.plot(n, q, color="#3b6ea5", label="model")
    ax.plot([0, n[-1]], [0, q[-1]], color="grey", ls="--", lw=1, label="random")
    ax.axhline(0, color="grey", lw=0.5)
    ax.set_xlabel("customers targeted (highest predicted uplift first)")
    ax.set_ylabel("incremental responders")
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


def return_curve(curve: pd.DataFrame, contacts: int, break_even: int, title: str) -> Figure:
    """Cumulative expected net return by contacts made, best customers first.

    Left: the whole base, with the budgeted list's depth and the break-even depth marked. Right:
    one curve per persona (each ranked within itself), so a persona that stops paying early shows.
    """
    fig = Figure(figsize=(11, 4.5), dpi=100, layout="constrained")
    left, right = fig.subplots(1, 2)
    base = curve[curve["persona"] == "all"]
    left.plot(base["contacts"], base["expected_net_gain"], color="#3b6ea5", label="expected net return")
    left.axhline(0, color="grey", lw=1)
    if contacts > 0:
        at = float(base.loc[base["contacts"] == contacts, "expected_net_gain"].iloc[0])
        left.axvline(contacts, color="#2f855a", ls="--", lw=1, label=f"budgeted list ({contacts:,})")
        left.plot([contacts], [at], "o", color="#2f855a")
    left.axvline(break_even, color="#c53030", ls=":", lw=1, label=f"break-even ({break_even:,})")
    left.set_xlabel("customers contacted (highest expected gain first)")
    left.set_ylabel("cumulative expected net return")
    left.set_title(title)
    left.legend(fontsize=8)
    for name, group in curve[curve["persona"] != "all"].groupby("persona", sort=True):
        right.plot(group["contacts"], group["expected_net_gain"], label=str(name))
    right.axhline(0, color="grey", lw=1)
    right.set_xlabel("customers contacted within the persona")
    right.set_ylabel("cumulative expected net return")
    right.set_title("per persona")
    right.legend(fontsize=8)
    return fig
