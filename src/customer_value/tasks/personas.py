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

__all__ = ["PersonaTask", "persona_profile", "persona_mean_shap", "migration_matrix", "identity_note"]


class PersonaTask(Task):
    """The persona model (see the module docstring)."""

    name = "personas"
    column_prefix = "persona"
    model_label = "personas"
    primary = "silhouette"
    guards = ("k",)
    inherits = True
    outputs = (
        Column("persona_id", "int", 9, low=1.0),
        Column("persona", "string", 10),
        Column("previous_persona_id", "int", 11, nullable=True, low=1.0, required=False),
        Column("previous_persona", "string", 12, nullable=True, required=False),
    )

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
            k_tolerance=pcfg.k_tolerance,
            min_stability=pcfg.min_stability,
            retrain_tolerance=pcfg.retrain_tolerance,
            shrink_prior=pcfg.shrink_prior,
            random_state=seed,
        ).fit(data.oot, previous=_comparable(data.previous, data.oot))
        sil = model.silhouette(data.oot, seed=seed)
        notes = [f"persona features not in this data, skipped: {', '.join(dropped)}"] if dropped else []
        tables = {"personas/k_selection.csv": model.selection_}
        if model.identity_ is not None:
            tables["personas/identity.csv"] = model.identity_
            notes.append(identity_note(model.identity_))
        return FitResult(
            model,
            params={"k": model.k_, "features": features},
            metrics={"silhouette": sil, "k": model.k_},
            tables=tables,
            notes=notes,
        )

    def assess(self, model, data: TaskData, config: Config) -> Assessment:
        sil = model.silhouette(data.oot, seed=config.project.seed)
        return Assessment([], {"k": model.k_, "silhouette": sil})

    def gate_score(self, model, data: TaskData, config: Config) -> float:
        return model.silhouette(data.oot, seed=config.project.seed)

    def predict(self, model, features, spec: TaskSpec, btyd) -> dict[str, np.ndarray]:
        labels = model.predict(features)
        return {
            "persona_id": np.asarray(model.persona_ids, dtype=np.int64)[labels],
            "persona": np.asarray(model.names_, dtype=object)[labels],
        }


def _comparable(previous, frame: pd.DataFrame):
    """The champion's persona model when it can label these rows (same features), else None."""
    if previous is None or not set(getattr(previous, "features_", ["?"])) <= set(frame.columns):
        return None
    return previous


def identity_note(identity: pd.DataFrame) -> str:
    """One line for the run's output: how the personas relate to the champion's."""
    parts = []
    for status in ("kept", "renamed", "appeared", "vanished"):
        rows = identity[identity["status"] == status]
        if rows.empty:
            continue
        if status == "kept":
            parts.append(f"{len(rows)} kept")
        elif status == "renamed":
            parts.append(
                "renamed "
                + ", ".join(
                    f"#{r.persona_id} {r.previous_persona!r} → {r.persona!r}" for r in rows.itertuples()
                )
            )
        elif status == "appeared":
            parts.append("new " + ", ".join(f"#{r.persona_id} {r.persona!r}" for r in rows.itertuples()))
        else:
            parts.append(
                "gone "
                + ", ".join(f"#{r.previous_id} {r.previous_persona!r}" for r in rows.itertuples())
            )
    return "personas against the champion's: " + "; ".join(parts)


def migration_matrix(before: pd.DataFrame, after: pd.DataFrame) -> pd.DataFrame:
    """Who moved between personas from one scoring to the next, and the value they carry.

    Parameters
    ----------
    before, after : DataFrame
        Predictions at two dates, indexed by customer_id, with ``persona_id`` and ``persona``;
        ``after`` also with ``predicted_clv``, ``net_value`` and ``value_at_risk`` (the value
        moved is valued at the later date). Customers absent ``before`` come from "(new)".

    Returns
    -------
    DataFrame
        One row per (from, to) pair with customers: ``from_id``, ``from_persona``, ``to_id``,
        ``to_persona``, ``customers``, ``share_of_from`` (of the from-persona's customers still
        in the base), ``predicted_clv``, ``net_value``, ``value_at_risk`` (sums), largest flows
        of changers first, then those who stayed.
    """
    b = before.reindex(after.index)
    frame = pd.DataFrame(
        {
            "from_id": b["persona_id"].astype("Int64"),
            "from_persona": b["persona"].astype(object).where(b["persona"].notna(), "(new)"),
            "to_id": after["persona_id"].astype("Int64"),
            "to_persona": after["persona"].astype(object),
            "predicted_clv": after["predicted_clv"].astype(float),
            "net_value": after["net_value"].astype(float),
            "value_at_risk": after["value_at_risk"].astype(float),
        },
        index=after.index,
    )
    keys = ["from_id", "from_persona", "to_id", "to_persona"]
    g = frame.groupby(keys, dropna=False, sort=False)
    out = g[["predicted_clv", "net_value", "value_at_risk"]].sum()
    out.insert(0, "customers", g.size())
    out = out.reset_index()
    totals = out.groupby("from_persona")["customers"].transform("sum")
    out.insert(5, "share_of_from", out["customers"] / totals)
    out["moved"] = out["from_id"].isna() | (out["from_id"] != out["to_id"]).fillna(True)
    out = out.sort_values(
        ["moved", "customers", "from_persona", "to_persona"], ascending=[False, False, True, True]
    )
    return out.drop(columns="moved").reset_index(drop=True)


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
        The chain's predictions for the same rows (``persona_id``, ``persona``,
        ``churn_probability``, ``predicted_clv``, ``value_at_risk``), indexed by customer_id.
    values : DataFrame
        Value components (:func:`customer_value.modeling.value.customer_value`) of the same rows.
    drivers : dict
        Task -> per-persona top drivers (:func:`customer_value.explain.persona_drivers`).
    """
    frame = pd.DataFrame(
        {
            "persona_id": scored["persona_id"],
            "persona": scored["persona"],
            "churned": reference["churned"].astype(float),
            "q": scored["churn_probability"],
            # xgboost predicts float32; the profile's means are taken in float64.
            "clv": scored["predicted_clv"].astype(float),
            "var": scored["value_at_risk"].astype(float),
            "recency": reference["days_since_last_purchase"],
            "frequency": reference["frequency"],
            "monetary": reference["monetary_mean"],
            "nps": reference.get("nps_last"),
            "value": values["net_value"],
            "cts": values["expected_cost_to_serve"],
            "referral": values["expected_referral_value"],
            "cac": values["acquisition_cost"],
            "clv_to_cac": values["clv_to_cac"],
        },
        index=reference.index,
    )
    g = frame.groupby("persona")
    cac = g["cac"].sum(min_count=1)
    out = pd.DataFrame(
        {
            "persona_id": g["persona_id"].first().astype("int64"),
            "customers": g.size(),
            "share": g.size() / len(frame),
            "mean_days_since_last_purchase": g["recency"].mean(),
            "mean_frequency": g["frequency"].mean(),
            "mean_order_value": g["monetary"].mean(),
            "churn_rate_actual": g["churned"].mean(),
            "churn_probability_mean": g["q"].mean(),
            "predicted_clv_mean": g["clv"].mean(),
            "mean_nps": g["nps"].mean(),
            # Benefits − costs over the horizon, as totals (net = CLV − serve + referrals − CAC).
            "predicted_clv_total": g["clv"].sum(),
            "cost_to_serve_total": g["cts"].sum(),
            "referral_value_total": g["referral"].sum(),
            "acquisition_cost_total": cac.fillna(0.0),
            "net_value_total": g["value"].sum(),
            "net_value_mean": g["value"].mean(),
            # CLV:CAC of the persona (totals; missing where no acquisition cost is known).
            "clv_to_cac": g["clv"].sum() / cac.where(cac > 0),
            "clv_to_cac_median": g["clv_to_cac"].median(),
            "value_at_risk_total": g["var"].sum(),
            "value_at_risk_share": g["var"].sum() / max(float(frame["var"].sum()), 1e-12),
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
