"""Personas: named segments of the base, fitted on the latest out-of-time snapshot's features.

No labels: the model is judged by its silhouette in its own feature space. Its profile (size, churn,
CLV, value and drivers per persona) reads the other tasks' prediction columns of the same rows.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np
import pandas as pd

from customer_value import plots
from customer_value.config import Config
from customer_value.modeling.personas import PersonaModel
from customer_value.schema import Column
from customer_value.tasks.base import Assessment, FitResult, Task, TaskData, TaskSpec

__all__ = ["PersonaTask", "persona_profile", "persona_mean_shap"]


class PersonaTask(Task):
    """The persona model (see the module docstring)."""

    name = "personas"
    column_prefix = "persona"
    model_label = "personas"
    primary = "silhouette"
    guards = ("k",)
    outputs = (Column("persona", "string", 10),)

    def fit(
        self, config: Config, data: TaskData, seed: int, callbacks: Sequence[Callable] = ()
    ) -> FitResult:
        """Cluster the out-of-time customers on the configured persona features present."""
        pcfg = config.personas
        features = [f for f in pcfg.features if f in data.oot.columns]
        dropped = sorted(set(pcfg.features) - set(features))
        model = PersonaModel(
            features=features,
            k_min=pcfg.k_min,
            k_max=pcfg.k_max,
            algorithm=pcfg.algorithm,
            silhouette_sample=pcfg.silhouette_sample,
            stability_bootstraps=pcfg.stability_bootstraps,
            min_share=pcfg.min_share,
            random_state=seed,
        ).fit(data.oot)
        sil = model.silhouette(data.oot, seed=seed)
        notes = [f"persona features not in this data, skipped: {', '.join(dropped)}"] if dropped else []
        return FitResult(
            model,
            params={"k": model.k_, "features": features},
            metrics={"silhouette": sil, "k": model.k_},
            tables={"personas/k_selection.csv": model.selection_},
            notes=notes,
        )

    def assess(self, model, data: TaskData, config: Config) -> Assessment:
        sil = model.silhouette(data.oot, seed=config.project.seed)
        return Assessment([], {"k": model.k_, "silhouette": sil})

    def gate_score(self, model, data: TaskData, config: Config) -> float:
        return model.silhouette(data.oot, seed=config.project.seed)

    def predict(self, model, features, spec: TaskSpec, btyd) -> dict[str, np.ndarray]:
        return {"persona": model.predict_names(features).to_numpy()}


def persona_mean_shap(contrib: pd.DataFrame, persona: pd.Series) -> pd.DataFrame:
    """Mean SHAP per persona and feature (the heatmap's table)."""
    c = contrib.drop(columns=["bias"], errors="ignore")
    return c.groupby(persona.reindex(c.index)).mean().reset_index().rename(columns={"index": "persona"})


def persona_profile(
    reference: pd.DataFrame,
    scored: pd.DataFrame,
    values: pd.DataFrame,
    drivers: Mapping[str, pd.DataFrame],
) -> pd.DataFrame:
    """Per persona: size, behaviour, actual and predicted churn, CLV, net value, NPS, drivers.

    Parameters
    ----------
    reference : DataFrame
        The out-of-time rows (indexed by customer_id) with their features and ``churned``.
    scored : DataFrame
        The chain's predictions for the same rows (``persona``, ``churn_probability``,
        ``predicted_clv``), indexed by customer_id.
    values : DataFrame
        Value components (``net_value``, ``acquisition_cost``) for the same rows.
    drivers : dict
        Task -> per-persona top drivers (:func:`customer_value.explain.persona_drivers`).
    """
    frame = pd.DataFrame(
        {
            "persona": scored["persona"],
            "churned": reference["churned"].astype(float),
            "q": scored["churn_probability"],
            # xgboost predicts float32; the profile's means are taken in float64.
            "clv": scored["predicted_clv"].astype(float),
            "recency": reference["days_since_last_purchase"],
            "frequency": reference["frequency"],
            "monetary": reference["monetary_mean"],
            "nps": reference.get("nps_last"),
            "value": values["net_value"],
            "cac": values["acquisition_cost"],
        },
        index=reference.index,
    )
    g = frame.groupby("persona")
    out = pd.DataFrame(
        {
            "customers": g.size(),
            "share": g.size() / len(frame),
            "mean_days_since_last_purchase": g["recency"].mean(),
            "mean_frequency": g["frequency"].mean(),
            "mean_order_value": g["monetary"].mean(),
            "churn_rate_actual": g["churned"].mean(),
            "churn_probability_mean": g["q"].mean(),
            "predicted_clv_mean": g["clv"].mean(),
            "mean_nps": g["nps"].mean(),
            "net_value_total": g["value"].sum(),
            "net_value_mean": g["value"].mean(),
        }
    )
    for task, d in drivers.items():
        top = d.groupby("persona").apply(
            lambda x: ", ".join(f"{r.feature} ({r.mean_shap:+.2f})" for r in x.itertuples()),
            include_groups=False,
        )
        out[f"top_{task}_drivers"] = top.reindex(out.index)
    out = out.sort_values("net_value_total", ascending=False)
    return out.reset_index().rename(columns={"index": "persona"})


def persona_figures(profile: pd.DataFrame) -> list[tuple[str, object]]:
    """The persona chart of a run."""
    return [("plots/personas.png", plots.persona_chart(profile, "Personas"))]
