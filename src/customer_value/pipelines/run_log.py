"""What a training run logs: its inputs, each fit, the metrics, tables, figures and the HTML report.

Called by :mod:`customer_value.pipelines.train` inside the run; every figure is rendered once, for
MLflow and for the report. Tasks say what they show (:meth:`Task.figures`, :meth:`Task.tables`);
this module only files it.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd

from customer_value import explain, io, plots, report, tracking
from customer_value.config import Config
from customer_value.features.catalog import feature_catalog
from customer_value.modeling.value import persona_value
from customer_value.tasks.base import FitResult
from customer_value.tasks.personas import persona_figures, persona_mean_shap

__all__ = ["log_inputs", "log_fit", "trial_callback", "log_outcome", "comparison"]

#: Metrics where lower is better (the comparison's direction).
LOWER_BETTER = {"mae", "rmse", "brier", "log_loss", "decile_mape"}
#: Rows that describe the data or are signed (not "better" either way): left out of the comparison.
NOT_COMPARED = ("churn_rate", "top_decile_capture_perfect", "aggregate_error")


def log_inputs(config: Config, snaps, loaded) -> None:
    """The config, every task's snapshots as datasets, the validation report, the catalog."""
    tracking.log_params(config.model_dump(mode="json", exclude={"source_path"}))
    features = snaps.training.feature_columns
    counts = {}
    for name, tset in snaps.training.tasks.items():
        label = snaps.data[name].target
        cols = ["customer_id", "as_of", *features, label]
        tracking.log_dataset(tset.train[cols], f"{name}_training_snapshots", "training", targets=label)
        tracking.log_dataset(
            tset.oot[cols].reset_index(drop=True), f"{name}_out_of_time", "evaluation", targets=label
        )
        counts[f"{name}_train_rows"] = len(tset.train)
        counts[f"{name}_oot_rows"] = len(tset.oot)
    tracking.log_table(loaded.report, "data/validation_report.csv")
    tracking.log_text(json.dumps(loaded.facts, indent=2, default=str), "data/validation_summary.json")
    tracking.log_table(feature_catalog([*features, "nps_class"]), "data/feature_catalog.csv")
    tracking.log_metrics(counts)


def log_fit(result: FitResult) -> None:
    """One task's fit, inside its nested run."""
    tracking.log_params(result.params)
    tracking.log_metrics(result.metrics)
    for artifact, table in result.tables.items():
        tracking.log_table(table, artifact)


def trial_callback(metric: str):
    """One nested MLflow run per Optuna trial: its params, score and early-stopping round.

    (optuna-integration's MLflowCallback does the same but is deprecated since 4.9.)
    """

    def callback(study, trial) -> None:
        with tracking.start_run(
            f"trial {trial.number}",
            nested=True,
            tags={
                "optuna.study": study.study_name,
                "optuna.trial": str(trial.number),
                "optuna.state": trial.state.name,
            },
        ):
            tracking.log_params(trial.params)
            if trial.value is not None:
                tracking.log_metrics(
                    {metric: trial.value, "best_iteration": trial.user_attrs.get("best_iteration", -1)}
                )

    return callback


def comparison(metrics: pd.DataFrame, ours: dict[str, str]) -> pd.DataFrame:
    """Ours against the best baseline per task and metric (higher is better except errors).

    ``ours`` maps each task to the name of the product's own model in ``metrics``.
    """
    rows = []
    for (task, metric), grp in metrics.groupby(["task", "metric"], sort=False):
        if metric in NOT_COMPARED:
            continue
        mine = grp[grp["model"] == ours.get(task)]
        base = grp[grp["model"] != ours.get(task)].dropna(subset=["value"])
        if mine.empty or base.empty:
            continue
        lower = metric in LOWER_BETTER
        best = base.loc[base["value"].idxmin() if lower else base["value"].idxmax()]
        o = float(mine["value"].iloc[0])
        rows.append(
            {
                "task": task,
                "metric": metric,
                "ours": o,
                "best_baseline": best["model"],
                "baseline_value": float(best["value"]),
                "ours_wins": bool(o < best["value"] if lower else o > best["value"]),
            }
        )
    return pd.DataFrame(rows)


def _slug(name: str) -> str:
    return re.sub(r"[^0-9a-z]+", "_", name.lower()).strip("_")


class _Figures:
    """Figures logged to MLflow and kept (as data URIs) for the report, rendered once."""

    def __init__(self) -> None:
        self.uris: dict[str, str] = {}

    def add(self, section: str, artifact: str, fig) -> None:
        png = report.figure_png(fig)
        tracking.log_bytes(png, artifact)
        self.uris[f"{section}/{artifact}"] = report.png_data_uri(png)


def _log_metrics(chain, assessments, metrics: pd.DataFrame) -> None:
    for task in chain.tasks:
        a = assessments[task.name]
        tracking.log_metrics({f"{task.name}_{k}": v for k, v in a.headline.items()})
        mine = metrics[metrics["task"] == task.name]
        for name in [m for m in dict.fromkeys(mine["model"]) if m != task.model_label]:
            m = mine[mine["model"] == name].set_index("metric")["value"]
            tracking.log_metrics({f"baseline_{task.name}_{_slug(name)}_{k}": v for k, v in m.items()})


def _log_shap(chain, ex, reference: pd.DataFrame, figs: _Figures) -> dict[str, pd.DataFrame]:
    """SHAP tables and figures per explained task; waterfalls for the customers most at risk."""
    persona = ex.scored["persona"]
    # The task that predicts churn explains its riskiest reference customers one by one.
    risk_task = next(
        (t.name for t in chain.tasks if any(c.name == "churn_probability" for c in t.outputs)), None
    )
    tables = {}
    for name, contrib in ex.contributions.items():
        imp = explain.global_importance(contrib)
        mean_shap = persona_mean_shap(contrib, persona)
        tracking.log_table(imp, f"shap/{name}_global_importance.csv")
        tracking.log_table(ex.drivers[name], f"shap/{name}_persona_drivers.csv")
        tracking.log_table(mean_shap, f"shap/{name}_persona_mean_shap.csv")
        figs.add(
            "shap", f"shap/{name}_importance.png", plots.importance_bar(imp, f"{name}: mean |SHAP|")
        )
        figs.add(
            "shap",
            f"shap/{name}_persona_shap.png",
            plots.persona_shap_heatmap(
                mean_shap,
                list(imp["feature"].head(10)),
                f"{name}: mean SHAP per persona (top 10 features)",
            ),
        )
        sample = explain.explanation(contrib.loc[ex.sample], reference)
        figs.add("shap", f"shap/{name}_beeswarm.png", plots.beeswarm(sample, f"{name}: SHAP values"))
        for feat in imp["feature"].head(3):
            figs.add(
                "shap",
                f"shap/{name}_dependence_{feat}.png",
                plots.dependence(sample, feat, f"{name}: {feat}"),
            )
        if name == risk_task:
            at_risk = ex.scored["churn_probability"].sort_values(ascending=False, kind="stable")[:3]
            risky = explain.explanation(contrib.loc[at_risk.index], reference)
            for i, (customer, p) in enumerate(at_risk.items()):
                figs.add(
                    "shap",
                    # An id is the user's text: keep it readable but safe as an artifact path.
                    f"shap/{name}_waterfall_{re.sub(r'[^0-9A-Za-z_.-]+', '_', str(customer))}.png",
                    plots.waterfall(
                        risky[i], f"{name}: customer {customer}, churn probability {p:.0%} (log-odds)"
                    ),
                )
        tables[f"{name} global importance"] = imp.head(15)
    return tables


def log_outcome(config, chain, assessments, metrics, ex, snaps, loaded, tags, run_id) -> None:
    """Metrics, tables, figures and the HTML report of a finished fit (MLflow and a local copy)."""
    ours = {t.name: t.model_label for t in chain.tasks}
    compared = comparison(metrics, ours)
    _log_metrics(chain, assessments, metrics)
    tracking.log_table(metrics, "metrics/oot_metrics.csv")
    tracking.log_table(compared, "metrics/comparison.csv")
    tracking.log_table(ex.profile, "personas/persona_profiles.csv")
    persona_task = _persona_task(chain)
    personas = chain.models[persona_task]
    tracking.log_table(personas.profile_.reset_index(drop=True), "personas/centroids.csv")
    migration_title = ""
    if ex.migration is not None:
        tracking.log_table(ex.migration, "personas/migration.csv")
        before, after = ex.migration_dates
        migration_title = f"Migration from {before.date()} to {after.date()}"
    tracking.log_table(
        persona_value(ex.values, ex.scored["persona"]).reset_index(), "value/persona_value.csv"
    )
    figs = _Figures()
    for task in chain.tasks:
        for artifact, table in task.tables(assessments[task.name]).items():
            tracking.log_table(table, artifact)
        for artifact, fig in task.figures(assessments[task.name], metrics):
            figs.add(task.name, artifact, fig)
    for artifact, fig in persona_figures(ex.profile):
        figs.add(persona_task, artifact, fig)  # the report's persona section
    shap_tables = _log_shap(chain, ex, snaps.reference, figs)
    page = report.render_report(
        f"customer_value run {run_id} (as_of {tags['as_of']})",
        {
            **loaded.facts.get("summary", {}),
            **{k: v for k, v in tags.items() if k not in ("notes", "status")},
        },
        loaded.report,
        ex.profile,
        compared,
        metrics,
        figs.uris,
        shap_tables,
        config.model_dump(mode="json", exclude={"source_path"}),
        sections=[(t.name, t.title) for t in chain.tasks if t.title],
        migration=ex.migration,
        migration_title=migration_title,
        identity=getattr(personas, "identity_", None),
    )
    page = tracking.redact(page)  # the page quotes the config and the data's paths
    tracking.log_text(page, "report/report.html")
    io.write_text(page, Path(config.tracking.report_path))


def _persona_task(chain) -> str:
    """The task whose output is the ``persona`` column (its model has the centroid profile)."""
    return next(t.name for t in chain.tasks if any(c.name == "persona" for c in t.outputs))
